// Package loader is the library an inference server embeds to serve the model
// behind modelslot's link: it resolves the link once per load so one model is read
// from exactly one slot, follows swaps of the link, and reloads without dropping a
// request.
package loader
