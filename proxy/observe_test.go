package proxy

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/metrics"
)

func TestRequestID(t *testing.T) {
	t.Parallel()
	require.Equal(t, "abc-123_x", requestID([]byte("abc-123_x")))
	require.Equal(t, strings.Repeat("x", 128), requestID([]byte(strings.Repeat("x", 128))))
	for _, bad := range []string{"", "has space", "tab\t", "nul\x00", "é", strings.Repeat("x", 129)} {
		id := requestID([]byte(bad))
		require.NotEqual(t, bad, id)
		require.Len(t, id, 36, "a UUID replaces %q", bad)
	}
}

// BenchmarkObserve is what counting (metrics) and the request's log line add to a request that
// does nothing else (GET /version): against a server that counts nothing
// (METRICS_ENABLED=false) with the request log off (LOG_LEVEL=warn, as in `make bench`), one
// that counts, and one that also writes the JSON line (to io.Discard: the write itself is not
// measured).
func BenchmarkObserve(b *testing.B) {
	for _, bc := range []struct {
		name  string
		on    bool
		level slog.Level
	}{{"disabled", false, slog.LevelWarn}, {"metrics", true, slog.LevelWarn}, {"metrics+log", true, slog.LevelInfo}} {
		b.Run(bc.name, func(b *testing.B) {
			reg := metrics.Disabled()
			if bc.on {
				reg = metrics.New("bench")
			}
			s := New(Config{JWTSecret: testSecret, Version: "bench", Metrics: reg,
				Logger: slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: bc.level}))}, nil)
			h := s.Handler()
			var ctx fasthttp.RequestCtx
			b.ReportAllocs()
			for b.Loop() {
				ctx.Request.Reset()
				ctx.Response.Reset()
				ctx.Request.Header.SetMethod("GET")
				ctx.Request.SetRequestURI("/version")
				ctx.Request.Header.Set(headerRequestID, "bench-1")
				h(&ctx)
			}
		})
	}
}
