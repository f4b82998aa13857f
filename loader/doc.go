// Package loader is the library an inference server embeds to serve the model
// behind modelslot's link. It opens the model by resolving the link once, follows
// swaps of the link (fsnotify on the link's directory, on by default) and SIGHUP,
// and reloads without dropping a request: the new model is loaded in the
// background, checked against its own probe data, swapped in atomically, and the
// old one is closed when its last in-flight request is done. Under systemd it
// reports READY=1, RELOADING=1, STATUS= and pings the watchdog only while the
// server's own liveness check passes.
//
// Invariants: one model is read from exactly one slot directory (every file of a
// load goes through one directory handle opened through the link once, never
// through the link path again); a request holds one Lease for its whole life, so
// it sees one model and one version; a model is closed only after every lease on
// it is released; a model that fails its probe is never swapped in.
//
// The package imports nothing of modelslot: it reads the few manifest fields it
// needs itself, so any server can vendor it.
package loader
