package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/pgstorage/storage/limits"
	"github.com/pgstorage/storage/metrics"
)

// Every request, whichever door answers it, passes observe: it gets a request id (the
// client's X-Request-Id when it sent a usable one), and when it is answered it is counted
// (metrics) and logged, once, in one line. What the line and the counts say is gathered in
// the request's record while the request runs: its operation and bucket (route, or the door
// through Observe), its caller (the prelude's settings), the body bytes it read, the error it
// was answered with.

// headerRequestID carries the request id both ways.
const headerRequestID = "X-Request-Id"

// record is what a request's metrics and log line say, gathered while it runs.
type record struct {
	id        string
	op        *metrics.Op
	bucket    string
	role, sub string
	received  int64  // request body bytes read (RequestBody)
	code      string // the error code the request was answered with, when it failed
	err       error  // and what caused it
	body      countingReader
}

type recordKey struct{}

var records = sync.Pool{New: func() any { return new(record) }}

// recordOf returns the request's record; one that did not pass observe (a test calling a
// handler directly) gets a throwaway one.
func recordOf(ctx *fasthttp.RequestCtx) *record {
	if r, ok := ctx.UserValue(recordKey{}).(*record); ok {
		return r
	}
	r := new(record)
	ctx.SetUserValue(recordKey{}, r)
	return r
}

// Operations of requests no route (or door) claims.
const (
	opUnmatched  = "storage.unmatched"  // answered 404 by the router, or a preflight nobody claimed
	opPreflight  = "storage.preflight"  // an OPTIONS request answered by the CORS layer
	opUnreadable = "storage.unreadable" // not readable as HTTP (readFailed)
	opStatus     = "storage.status"
	opVersion    = "storage.version"
	opMetrics    = "storage.metrics"
)

// observe wraps the whole handler (all doors): request id, then metrics and the log line.
func (s *Server) observe(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	unmatched := s.metrics.Op(opUnmatched)
	return func(ctx *fasthttp.RequestCtx) {
		start := time.Now()
		rec := records.Get().(*record)
		*rec = record{id: requestID(ctx.Request.Header.Peek(headerRequestID))}
		ctx.SetUserValue(recordKey{}, rec)
		h(ctx)
		// After the handler: an error response was reset, headers and all, on its way.
		ctx.Response.Header.Set(headerRequestID, rec.id)
		if rec.op == nil {
			rec.op = unmatched
		}
		took := time.Since(start)
		status := ctx.Response.StatusCode()
		// A body stream counts its bytes as they go (countingStream); the log line says what
		// its response declared.
		var sent, declared int64
		switch {
		case ctx.IsHead():
		case ctx.Response.IsBodyStream():
			declared = int64(max(ctx.Response.Header.ContentLength(), 0))
		default:
			sent = int64(len(ctx.Response.Body()))
			declared = sent
		}
		rec.op.Done(status, took, rec.received, sent)
		s.logRequest(ctx, rec, status, took, declared)
		ctx.SetUserValue(recordKey{}, nil)
		records.Put(rec)
	}
}

// requestID returns the client's id when it is one a log can carry as is (1 to 128 visible
// ASCII characters), else a new one.
func requestID(sent []byte) string {
	if len(sent) > 0 && len(sent) <= 128 {
		ok := true
		for _, c := range sent {
			if c < 0x21 || c > 0x7e {
				ok = false
				break
			}
		}
		if ok {
			return string(sent)
		}
	}
	return uuid.NewString()
}

// Observe tells the server which operation a door's request is, and on which bucket ("" when
// none or not known yet), for its metrics and log line. Call it as soon as the door knows.
func (s *Server) Observe(ctx *fasthttp.RequestCtx, op, bucket string) {
	rec := recordOf(ctx)
	rec.op = s.metrics.Op(op)
	if bucket != "" {
		rec.bucket = bucket
	}
}

// Failed tells the server what a door's request was answered with when it failed (its code in
// the door's error table, and the error behind it), for its log line (the REST routes'
// writeError does the same).
func Failed(ctx *fasthttp.RequestCtx, code string, err error) {
	rec := recordOf(ctx)
	rec.code, rec.err = code, err
}

// RequestID is the request's id (what X-Request-Id answers).
func RequestID(ctx *fasthttp.RequestCtx) string { return recordOf(ctx).id }

// identify records the caller of a request, for its log line.
func identify(ctx *fasthttp.RequestCtx, id Identity) {
	rec := recordOf(ctx)
	rec.role, rec.sub = id.Role, id.Sub
}

// RequestBody is the request's body stream (nil when it has none), counting what is read of it.
// Every door reads bodies through it.
func RequestBody(ctx *fasthttp.RequestCtx) io.Reader {
	stream := ctx.RequestBodyStream()
	if stream == nil {
		return nil
	}
	rec := recordOf(ctx)
	rec.body = countingReader{r: stream, n: &rec.received}
	return &rec.body
}

type countingReader struct {
	r io.Reader
	n *int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

// countingStream is a response body stream that counts its bytes as they go out, and may
// hold a transfer slot, which it gives back when the server closes it (as downloads do).
type countingStream struct {
	io.ReadCloser
	op   *metrics.Op
	slot *limits.Gate // nil: none
}

func (c *countingStream) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.op.Sent(int64(n))
	return n, err
}

// WriteTo passes the stream itself to a writer that reads from streams (the server's body
// writer does), so a file still goes out with sendfile as it would unwrapped.
func (c *countingStream) WriteTo(w io.Writer) (int64, error) {
	var n int64
	var err error
	if rf, ok := w.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(c.ReadCloser)
	} else {
		n, err = io.Copy(w, c.ReadCloser)
	}
	c.op.Sent(n)
	return n, err
}

func (c *countingStream) Close() error {
	err := c.ReadCloser.Close()
	if c.slot != nil {
		c.slot.Release()
		c.slot = nil
	}
	return err
}

// logRequest writes the request's one line: info, or error for a 5xx (with its cause); the
// probes' (status, metrics) at debug. Never a token: the path is logged without its query,
// and an error's text is redacted.
func (s *Server) logRequest(ctx *fasthttp.RequestCtx, rec *record, status int, took time.Duration, sent int64) {
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelError
	case rec.op.Name == opStatus || rec.op.Name == opMetrics:
		level = slog.LevelDebug
	}
	if !s.log.Enabled(context.Background(), level) {
		return
	}
	bucket := rec.bucket
	if bucket == "" {
		bucket = param(ctx, "bucket")
	}
	role := rec.role
	if role == "" {
		role = anonymous.Role
	}
	attrs := make([]slog.Attr, 0, 16)
	attrs = append(attrs,
		slog.String("request_id", rec.id),
		slog.String("method", string(ctx.Method())),
		slog.String("path", string(ctx.Path())),
		slog.String("operation", rec.op.Name),
		slog.String("protocol", rec.op.Protocol),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(took.Microseconds())/1000),
		slog.Int64("bytes_in", rec.received),
		slog.Int64("bytes_out", sent),
		slog.String("role", role),
		slog.String("remote", ctx.RemoteIP().String()),
	)
	if bucket != "" {
		attrs = append(attrs, slog.String("bucket", bucket))
	}
	if rec.sub != "" {
		attrs = append(attrs, slog.String("sub", rec.sub))
	}
	if rec.code != "" {
		attrs = append(attrs, slog.String("error_code", rec.code))
	}
	if rec.err != nil {
		attrs = append(attrs, errorAttrs(rec.err, status)...)
	}
	s.log.LogAttrs(context.Background(), level, "request", attrs...)
}

// errorAttrs describes the error behind a failed request: the SQLSTATE when the database
// decided; otherwise its text, redacted, when it says more than the answer did (a server
// error, or a refusal with a cause: a body that could not be read).
func errorAttrs(err error, status int) []slog.Attr {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return []slog.Attr{slog.String("sqlstate", pgErr.Code)}
	}
	var e *Error
	if status >= 500 || !errors.As(err, &e) || e.Cause != nil {
		return []slog.Attr{slog.String("error", redact(err.Error()))}
	}
	return nil
}

// metricsHandler serves the scrape on the API listener (Config.ServeMetrics).
func (s *Server) metricsHandler() fasthttp.RequestHandler {
	return s.probe(opMetrics, fasthttpadaptor.NewFastHTTPHandler(s.metrics.Handler()))
}

// probe names a handler that is not a route of the SQL API (status, version, metrics) for the
// metrics.
func (s *Server) probe(op string, h fasthttp.RequestHandler) fasthttp.RequestHandler {
	m := s.metrics.Op(op)
	return func(ctx *fasthttp.RequestCtx) {
		recordOf(ctx).op = m
		h(ctx)
	}
}
