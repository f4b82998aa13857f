package rollout

import (
	"crypto/sha256"
	"encoding/binary"
)

// Bucket places a device in [0, FullShare): the first 8 bytes of
// sha256(salt NUL device id) modulo FullShare. It depends only on its inputs,
// so the device and the controller agree, and a device keeps its bucket across
// restarts.
func Bucket(deviceID, salt string) uint32 {
	h := sha256.New()
	h.Write([]byte(salt))
	h.Write([]byte{0})
	h.Write([]byte(deviceID))
	sum := h.Sum(nil)
	return uint32(binary.BigEndian.Uint64(sum[:8]) % FullShare)
}

// StageOf returns the first stage whose cumulative share covers the device, or
// -1 when even the last stage does not. Shares only grow from stage to stage,
// so a device that is in stage i stays in every later one.
func (r *Rollout) StageOf(deviceID string) int {
	b := Bucket(deviceID, r.Salt)
	for i, s := range r.Stages {
		if b < s.Share {
			return i
		}
	}
	return -1
}

// InCohort reports whether the device is in one of the stages opened so far.
func (r *Rollout) InCohort(deviceID string) bool {
	s := r.StageOf(deviceID)
	return s >= 0 && s <= r.Stage
}
