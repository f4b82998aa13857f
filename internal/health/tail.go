package health

// tailBuffer is an io.Writer that keeps only the last max bytes written to it,
// in a fixed buffer: whatever is written, it never holds more than 2×max.
type tailBuffer struct {
	buf     []byte
	max     int
	written int64
}

func newTailBuffer(max int) *tailBuffer {
	return &tailBuffer{buf: make([]byte, 0, 2*max), max: max}
}

// Write never fails: what does not fit pushes out the oldest bytes.
func (t *tailBuffer) Write(p []byte) (int, error) {
	t.written += int64(len(p))
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return len(p), nil
	}
	if len(t.buf)+len(p) > cap(t.buf) {
		keep := t.buf[len(t.buf)-(t.max-len(p)):]
		t.buf = append(t.buf[:0], keep...)
	}
	t.buf = append(t.buf, p...)
	return len(p), nil
}

// Bytes returns the last max bytes written (fewer if fewer were written).
func (t *tailBuffer) Bytes() []byte {
	if len(t.buf) > t.max {
		return t.buf[len(t.buf)-t.max:]
	}
	return t.buf
}

// Written is how many bytes were written in all.
func (t *tailBuffer) Written() int64 { return t.written }
