package fetch

import "errors"

// Error kinds, for errors.Is. Rejections of the artifact itself wrap
// verify.ErrRejected (exit 3); these are the others.
var (
	// ErrDownload: the network or the server failed past every retry. Trying
	// again later may work; what was verified is kept in staging.
	ErrDownload = errors.New("download failed")
	// ErrNotFound: the server has no such file (HTTP 404/410): at once for
	// the channel or manifest URL given, after retries for a chunk.
	ErrNotFound = errors.New("not found on the server")
	// ErrCorrupt: bytes received for a chunk do not match what the verified
	// manifest declares for it (digest, size, zstd frame). Under a manifest
	// whose signature held, that is the transport's fault (a captive portal,
	// a broken proxy or mirror): the chunk is fetched again, and if it stays
	// bad the error also wraps ErrDownload, never verify.ErrRejected. From a
	// bundle the same bytes are the artifact's: there it is a rejection.
	ErrCorrupt = errors.New("chunk does not match the manifest")
	// ErrNoSpace: the disk cannot hold the update; refused before downloading.
	ErrNoSpace = errors.New("not enough free space")
	// ErrOverBudget: the update would download more than the configured budget.
	ErrOverBudget = errors.New("download budget exceeded")
)
