// Package slots owns the on-disk layout of one model: two slot directories (a and
// b), the link that the inference server reads, state.json, the lock, and the
// recovery of any step a crash interrupted.
//
// Invariants, defended by every function here and by the crash tests: the link
// points at a complete slot whose files match its manifest (or does not exist
// before the first activation); state.json always parses; a change to the link is
// written to state.json as an intent before the link moves, so recovery can always
// finish it. A slot is filled under a temp name and renamed into place only when
// every file has been verified.
package slots
