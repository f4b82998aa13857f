package fetch

import "log/slog"

// retryLog adapts slog to retryablehttp's LeveledLogger: everything it says
// is DEBUG. It logs each failed attempt as an error, which is noise before the
// real error that is returned; that an attempt is retried, and why, is logged
// once by Client.noteRetry.
type retryLog struct{ l *slog.Logger }

func (r retryLog) Error(msg string, kv ...any) { r.l.Debug(msg, kv...) }
func (r retryLog) Warn(msg string, kv ...any)  { r.l.Debug(msg, kv...) }
func (r retryLog) Info(msg string, kv ...any)  { r.l.Debug(msg, kv...) }
func (r retryLog) Debug(msg string, kv ...any) { r.l.Debug(msg, kv...) }
