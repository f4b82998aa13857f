// Package systemd controls the inference unit over D-Bus and watches its health
// (ActiveState, NRestarts, Result, MemoryCurrent); it knows nothing of slots.
//
// A Manager talks to one systemd manager, the system one or a user one, chosen by
// Settings; the same code path serves production and the tests, which point Bus at
// a private test manager. Restart and Reload wait for the job's result; Watch
// reports the first health failure of a unit as a Failure whose Reason is one of
// the health contract's failure reasons. The Notify functions speak sd_notify for
// modelslot's own agent and do nothing outside systemd.
//
// Invariants: every call that waits takes a context and returns when it ends;
// an unhealthy unit is reported as a *Failure (errors.As), never as a bare string;
// a memory figure systemd does not know (2^64-1) is never compared with a limit —
// the RSS of the unit's processes is used instead.
package systemd
