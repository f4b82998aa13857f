package fetch

import "log/slog"

// retryLog adapts slog to retryablehttp's LeveledLogger one level down: it
// reports each failed attempt as an error, but an attempt that will be retried
// is a warning for us, and the final failure is returned, not logged.
type retryLog struct{ l *slog.Logger }

func (r retryLog) Error(msg string, kv ...any) { r.l.Warn(msg, kv...) }
func (r retryLog) Warn(msg string, kv ...any)  { r.l.Warn(msg, kv...) }
func (r retryLog) Info(msg string, kv ...any)  { r.l.Debug(msg, kv...) }
func (r retryLog) Debug(msg string, kv ...any) { r.l.Debug(msg, kv...) }
