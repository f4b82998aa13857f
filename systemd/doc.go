// Package systemd controls the inference unit over D-Bus and watches its health
// (ActiveState, NRestarts, Result, MemoryCurrent); it knows nothing of slots.
package systemd
