//go:build !modelslot_nofsync

package durable

// enabled is true in every real build.
const enabled = true
