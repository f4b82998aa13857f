package verify

import (
	"errors"
	"fmt"
)

// ErrRejected is the kind of every error that means "this artifact must not be
// used": a digest or size mismatch, an unsafe path, a malformed manifest. The
// command line maps it to exit code 3. Retrying cannot fix it.
var ErrRejected = errors.New("artifact rejected")

// ErrUntrustedKey means an envelope carries no signature by a trusted key. It
// is an ErrRejected; callers that must tell "signed by a key we do not know"
// from other rejections (the rollout follower reports it as its own reason)
// test it with errors.Is.
var ErrUntrustedKey = fmt.Errorf("%w: untrusted key", ErrRejected)

// MismatchError says which file of a slot or artifact differs from its manifest.
type MismatchError struct {
	Path   string // slash-separated path inside the model tree
	Reason string // what differs, in words: "sha256 abc… != def…", "size 10 != 12"
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%s: %s", e.Path, e.Reason)
}

// Unwrap makes every mismatch an ErrRejected for errors.Is.
func (e *MismatchError) Unwrap() error { return ErrRejected }

func rejectf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrRejected}, args...)...)
}
