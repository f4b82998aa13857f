//go:build modelslot_nofsync

package durable

// enabled is false only in the power-cut canary build, which must be caught
// losing data; never ship a binary built with this tag.
const enabled = false
