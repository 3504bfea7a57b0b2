package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// The request log writes a line per request. Written one by one, each line is a write(2) of
// its own, which costs a small request about a sixth of its CPU (`make bench`,
// BENCH_LOG_LEVEL=info); buffered, lines go out in batches. Buffering must not lose what
// matters or hold a line for long: a warning or an error is written at once, with everything
// buffered before it, and the rest within logFlushInterval.

// logFlushInterval bounds how long an info or debug line waits in the buffer.
const logFlushInterval = 100 * time.Millisecond

// logSink is a buffered writer safe for concurrent use.
type logSink struct {
	mu  sync.Mutex
	buf *bufio.Writer
}

func newLogSink(w io.Writer) *logSink { return &logSink{buf: bufio.NewWriterSize(w, 64<<10)} }

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// Flush writes what is buffered.
func (s *logSink) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Flush() //nolint:errcheck // stderr gone: nowhere to report it
}

// run flushes every logFlushInterval until ctx is done, then once more.
func (s *logSink) run(ctx context.Context) {
	t := time.NewTicker(logFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.Flush()
			return
		case <-t.C:
			s.Flush()
		}
	}
}

// flushingHandler writes a record at warn or above through to the sink at once.
type flushingHandler struct {
	slog.Handler
	sink *logSink
}

func (h flushingHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		h.sink.Flush()
	}
	return err
}

func (h flushingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return flushingHandler{h.Handler.WithAttrs(attrs), h.sink}
}

func (h flushingHandler) WithGroup(name string) slog.Handler {
	return flushingHandler{h.Handler.WithGroup(name), h.sink}
}
