package fetch

import "errors"

// Error kinds, for errors.Is. Rejections of the artifact itself wrap
// verify.ErrRejected (exit 3); these are the others.
var (
	// ErrDownload: the network or the server failed past every retry. Trying
	// again later may work; what was verified is kept in staging.
	ErrDownload = errors.New("download failed")
	// ErrNotFound: the server has no such file (HTTP 404/410), even after retries.
	ErrNotFound = errors.New("not found on the server")
	// ErrNoSpace: the disk cannot hold the update; refused before downloading.
	ErrNoSpace = errors.New("not enough free space")
	// ErrOverBudget: the update would download more than the configured budget.
	ErrOverBudget = errors.New("download budget exceeded")
)
