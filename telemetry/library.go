package telemetry

import (
	"context"
	"log/slog"
)

// LibraryLogger returns a logger for a dependency that logs through slog
// (go-mysql's binlog reader, say): its lines carry "library": name and its
// info lines, routine for us, are lowered to debug; warnings and errors
// stay as they are.
func LibraryLogger(log *slog.Logger, name string) *slog.Logger {
	return slog.New(demoted{log.Handler()}).With("library", name)
}

// demoted lowers info records to debug.
type demoted struct{ h slog.Handler }

func lower(l slog.Level) slog.Level {
	if l >= slog.LevelInfo && l < slog.LevelWarn {
		return slog.LevelDebug
	}
	return l
}

func (d demoted) Enabled(ctx context.Context, l slog.Level) bool {
	return d.h.Enabled(ctx, lower(l))
}

func (d demoted) Handle(ctx context.Context, r slog.Record) error {
	r.Level = lower(r.Level)
	return d.h.Handle(ctx, r)
}

func (d demoted) WithAttrs(attrs []slog.Attr) slog.Handler { return demoted{d.h.WithAttrs(attrs)} }
func (d demoted) WithGroup(name string) slog.Handler       { return demoted{d.h.WithGroup(name)} }
