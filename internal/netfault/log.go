package netfault

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sort"

	"github.com/rs/zerolog"
)

// zerologFor returns a zerolog logger (toxiproxy's) that writes to logger: each event becomes one
// slog record at the matching level, its message the event's message and its fields attributes. The
// zerolog level is the lowest one logger accepts, so events logger would drop are not even encoded.
func zerologFor(logger *slog.Logger) zerolog.Logger {
	if logger == nil {
		return zerolog.Nop()
	}
	ctx := context.Background()
	level := zerolog.Disabled
	for _, l := range []struct {
		z zerolog.Level
		s slog.Level
	}{{zerolog.ErrorLevel, slog.LevelError}, {zerolog.WarnLevel, slog.LevelWarn},
		{zerolog.InfoLevel, slog.LevelInfo}, {zerolog.DebugLevel, slog.LevelDebug}} {
		if logger.Enabled(ctx, l.s) {
			level = l.z
		}
	}
	return zerolog.New(slogWriter{logger}).Level(level)
}

// slogWriter is a zerolog.LevelWriter that logs each JSON event to a slog.Logger.
type slogWriter struct{ logger *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) { return w.WriteLevel(zerolog.NoLevel, p) }

func (w slogWriter) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	var sl slog.Level
	switch {
	case level == zerolog.NoLevel || level == zerolog.InfoLevel:
		sl = slog.LevelInfo
	case level <= zerolog.DebugLevel:
		sl = slog.LevelDebug
	case level == zerolog.WarnLevel:
		sl = slog.LevelWarn
	default:
		sl = slog.LevelError
	}
	var fields map[string]any
	if err := json.Unmarshal(p, &fields); err != nil {
		w.logger.Log(context.Background(), sl, string(bytes.TrimSpace(p)))
		return len(p), nil
	}
	msg, _ := fields[zerolog.MessageFieldName].(string)
	delete(fields, zerolog.MessageFieldName)
	delete(fields, zerolog.LevelFieldName)
	attrs := make([]slog.Attr, 0, len(fields))
	for _, k := range sortedKeys(fields) {
		attrs = append(attrs, slog.Any(k, fields[k]))
	}
	w.logger.LogAttrs(context.Background(), sl, msg, attrs...)
	return len(p), nil
}

// sortedKeys returns the keys of m in order.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
