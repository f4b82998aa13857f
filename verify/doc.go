// Package verify owns what modelslot trusts about a model version: the manifest
// (model, version, sequence, and every file with its path, size, mode and sha256),
// the rules a path must follow before it may be written anywhere, and the streaming
// digests that decide whether bytes on disk are the bytes the manifest names.
//
// Invariant: a Manifest returned by Parse or built by Scan has passed Validate, so
// every path in it is relative, clean, unique and free of "..", and every mode is a
// plain permission set. Every rejection wraps ErrRejected.
package verify
