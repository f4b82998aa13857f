// Package fetch is the device side of a signed, chunked repository: it resolves a
// channel or manifest URL to a verified manifest, plans what must be downloaded
// and what can be reused (staging, the active slot), refuses early when the disk
// or the byte budget cannot take it, downloads chunks in parallel with retries,
// resume and a bandwidth limit, and assembles the files into a slot being filled.
//
// Invariants: no byte reaches the staging store or a slot before the chunk it
// belongs to matched its sha256 and declared size; a chunk is never decompressed
// past its declared size; staged chunks are re-hashed before they are reused, so
// a restart or a power cut can cost a download but never a wrong byte.
//
// Error kinds: the signed documents failing verification, and a bundle's bad
// chunks, wrap verify.ErrRejected (final). Bytes from the network that do not
// match the verified manifest wrap ErrCorrupt: fetched again a few times, then
// also ErrDownload. A 404 wraps ErrNotFound: at once for the URL given, after
// retries for a chunk. Network trouble that outlasts the retries (including a
// server below the minimum rate or past the deadline) wraps ErrDownload; a
// refusal before downloading wraps ErrNoSpace or ErrOverBudget.
package fetch
