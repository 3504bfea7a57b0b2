package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe for the sink's flusher and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogSink: info lines wait in the buffer; a warning goes out at once with every line before
// it, in order; stopping the flusher writes the rest.
func TestLogSink(t *testing.T) {
	var out syncBuffer
	sink := newLogSink(&out)
	log := newLogger(Config{LogFormat: "json"}, sink)
	log.Info("request", "n", 1)
	log.Info("request", "n", 2)
	require.Empty(t, out.String(), "info lines are buffered")
	log.Warn("something to see now")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 3, out.String())
	require.Contains(t, lines[0], `"n":1`)
	require.Contains(t, lines[1], `"n":2`)
	require.Contains(t, lines[2], `"level":"WARN"`)

	log.With("k", "v").Info("last")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sink.run(ctx) }()
	cancel()
	<-done
	require.Contains(t, out.String(), `"msg":"last","k":"v"`, "stopping flushes")
}
