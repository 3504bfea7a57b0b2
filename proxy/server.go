package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/identity"
	"github.com/pgstorage/storage/limits"
	"github.com/pgstorage/storage/metrics"
)

// Config is what the proxy needs from the server's configuration (cmd/storage documents the
// environment variables behind each field).
type Config struct {
	JWTSecret           string        // AUTH_JWT_SECRET: HMAC key for bearer tokens, when Verifier is nil
	JWTAlgorithm        string        // AUTH_JWT_ALGORITHM: HS256 (default), HS384 or HS512, when Verifier is nil
	UploadFileSizeLimit int64         // UPLOAD_FILE_SIZE_LIMIT: global upload limit in bytes
	Version             string        // VERSION: what GET /version answers
	HeaderTimeout       time.Duration // SERVER_HEADER_TIMEOUT: time to receive a request's headers; 0 = none
	IdleTimeout         time.Duration // SERVER_IDLE_TIMEOUT: keep-alive wait for the next request; 0 = HeaderTimeout
	Logger              *slog.Logger
	Blobs               blob.Store // where object bytes live (STORAGE_BACKEND)
	CORSAllowedOrigins  []string   // CORS_ALLOWED_ORIGINS: origins browsers may call from; nil = ["*"]
	UploadURLExpiry     int64      // UPLOAD_SIGNED_URL_EXPIRATION_TIME: signed upload URLs live this many seconds
	// EmptyQueued, when set, is called after a bucket-empty job was queued, so the server's
	// collector can start on it without waiting for its next turn. It must not block.
	EmptyQueued func()
	// Verifier checks bearer and signed-URL tokens and the role allow-list. nil = one for
	// JWTSecret and JWTAlgorithm with the default roles; `storage serve` builds it from
	// AUTH_JWT_SECRET, AUTH_JWT_ALGORITHM, JWT_JWKS and AUTH_ALLOWED_ROLES.
	Verifier *identity.Verifier
	// Limits: connection and transfer caps (SERVER_MAX_*), and the idle timeouts of request
	// bodies (SERVER_READ_TIMEOUT) and responses (SERVER_WRITE_TIMEOUT). Zero fields: none.
	Limits limits.Config
	// StatementTimeout and LockTimeout (DATABASE_STATEMENT_TIMEOUT, DATABASE_LOCK_TIMEOUT)
	// bound each request's SQL call, transaction-locally; PoolAcquireTimeout
	// (DATABASE_POOL_ACQUIRE_TIMEOUT) bounds the wait for a pooled connection, after which the
	// request is refused with 503. Zero: none.
	StatementTimeout, LockTimeout, PoolAcquireTimeout time.Duration
	// Render is image transformation (/render/image; transform in POST /object/sign).
	Render RenderConfig
	// Metrics is where requests are counted (nil: a registry of the server's own).
	// ServeMetrics serves its scrape at GET /metrics on this server's routes (METRICS_ADDR
	// unset); otherwise whoever owns the registry serves it.
	Metrics      *metrics.Registry
	ServeMetrics bool
	// InlineMax (STORAGE_INLINE_MAX): uploads of at most this many bytes keep them in
	// PostgreSQL (storage.inline_blobs), written with the row in one transaction; 0: none.
	// Reads serve inline bytes whatever it is set to now.
	InlineMax int64
}

// Server holds the proxy's dependencies; routes.go wires its handlers.
type Server struct {
	cfg         Config
	db          *DB
	verifier    *identity.Verifier
	blobs       blob.Store
	log         *slog.Logger
	lim         *limits.Limiter
	uploadLimit string // cfg.UploadFileSizeLimit as the prelude passes it
	// statementTimeout and lockTimeout are cfg's, in milliseconds as the prelude passes them.
	statementTimeout, lockTimeout string
	doors                         []Door       // other protocols' routes (Mount)
	rates                         *rateLimiter // the render routes' (nil: none)
	metrics                       *metrics.Registry
	preflight                     *metrics.Op
}

// New returns a Server answering from pool.
func New(cfg Config, pool *pgxpool.Pool) *Server {
	if cfg.JWTAlgorithm == "" {
		cfg.JWTAlgorithm = "HS256"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.UploadURLExpiry <= 0 {
		cfg.UploadURLExpiry = 7200
	}
	cfg.Render.defaults()
	if cfg.CORSAllowedOrigins == nil {
		cfg.CORSAllowedOrigins = []string{"*"}
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New(cfg.Version)
	}
	if cfg.Verifier == nil {
		v, err := identity.New(identity.Config{Secret: cfg.JWTSecret, Algorithm: cfg.JWTAlgorithm})
		if err != nil {
			panic("proxy.New: Config needs a Verifier or a JWTSecret: " + err.Error())
		}
		cfg.Verifier = v
	}
	s := &Server{
		cfg:      cfg,
		db:       NewDB(pool),
		verifier: cfg.Verifier,
		blobs:    cfg.Blobs,
		log:      cfg.Logger,
		lim:      limits.New(cfg.Limits, cfg.Logger),
		metrics:  cfg.Metrics,
	}
	s.statementTimeout, s.lockTimeout = millis(cfg.StatementTimeout), millis(cfg.LockTimeout)
	s.preflight = s.metrics.Op(opPreflight)
	s.metrics.Pool("main", pool.Stat)
	s.metrics.GaugeFunc("storage_uploads_in_flight", "Request bodies streaming to the blob store now (REST, S3, TUS; SERVER_MAX_UPLOADS caps them).",
		func() float64 { return float64(s.lim.Uploads.InUse()) })
	s.metrics.GaugeFunc("storage_downloads_in_flight", "Downloads and renders whose bodies are being sent now (SERVER_MAX_DOWNLOADS caps them).",
		func() float64 { return float64(s.lim.Downloads.InUse()) })
	if cfg.Render.RateLimit > 0 {
		s.rates = newRateLimiter(cfg.Render.RateLimit)
	}
	s.db.acquireTimeout = cfg.PoolAcquireTimeout
	if cfg.UploadFileSizeLimit > 0 {
		s.uploadLimit = strconv.FormatInt(cfg.UploadFileSizeLimit, 10)
	}
	return s
}

// millis renders d as whole milliseconds, rounded up so that a positive timeout stays on
// (PostgreSQL reads 0 as none).
func millis(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Millisecond-1)/time.Millisecond), 10)
}

// HTTPServer is the proxy's fasthttp server behind the limits (package limits): Serve
// applies them to the listener, so every door mounted on the router shares them.
type HTTPServer struct {
	*fasthttp.Server
	s *Server
}

// Serve serves ln through the limits: connections past a cap are refused with 503 and
// Retry-After in the reference's error shape, before they reach the server.
func (h *HTTPServer) Serve(ln net.Listener) error {
	return h.Server.Serve(h.s.lim.Listen(ln, h.s.refusal))
}

// HTTPServer returns the HTTP server for s, with every timeout and limit taken from the
// config.
func (s *Server) HTTPServer() *HTTPServer {
	h := s.Handler()
	return &HTTPServer{s: s, Server: &fasthttp.Server{
		// A request reaching the router has its headers: from here its body's reads follow
		// progress (limits.Config.ReadIdle) instead of the header deadline.
		Handler: func(ctx *fasthttp.RequestCtx) {
			limits.ConnOf(ctx.Conn()).FollowProgress()
			h(ctx)
		},
		Name: "storage",
		// ReadTimeout bounds the headers (and the first 8 KiB of a body, which the server
		// reads with them); bodies then follow progress. Writes follow progress too: the
		// limits' connection pushes its write deadline back as bytes go out, so the server
		// sets none of its own.
		ReadTimeout: s.cfg.HeaderTimeout,
		IdleTimeout: s.cfg.IdleTimeout,
		// The router matches the raw path (PathOriginal), so keys are addressed verbatim
		// ("a///b" is not "a/b"); route parameters are percent-decoded once, by param.
		NoDefaultServerHeader: true,
		// Upload bodies stream from the socket to the blob store: only the first
		// preReadBodySize bytes of a request are buffered, whatever the object's size, and
		// multipart bodies are parsed by the upload handler as a stream, not into temp files.
		StreamRequestBody:            true,
		MaxRequestBodySize:           preReadBodySize,
		DisablePreParseMultipartForm: true,
		// Requests fasthttp cannot read are answered like every refusal, and no credential
		// reaches the log from its lines (logging.go).
		ErrorHandler:          s.readFailed,
		SecureErrorLogMessage: true,
		Logger:                httpLogger{s.log},
	}}
}

// authMode says how a route authenticates its caller.
type authMode int

const (
	// authJWT: the Authorization header is required (its absence is a schema error, as in
	// the reference) and must carry a valid JWT.
	authJWT authMode = iota
	// authBearer: a valid JWT is required, but its absence is an auth error, not a schema
	// error (list v2 declares no header schema in the reference).
	authBearer
	// authOptional: a valid JWT is used when sent; a missing or invalid one makes the
	// request anonymous (the reference's optional-auth object routes). A validly signed
	// token whose role is not allowed is refused, not made anonymous: its sender is known
	// and asked for a role it may not have, which is not the same as sending no token.
	authOptional
	// authNone: no token is read; the request runs as anon.
	authNone
)

// preReadBodySize is how much of a request body the server reads before the handler runs;
// the rest streams.
const preReadBodySize = 64 << 10

// request is one HTTP request on its way through a handler.
type request struct {
	ctx  *fasthttp.RequestCtx
	id   Identity
	op   string       // operation id for storage.operation
	slot *limits.Gate // the transfer slot the request holds, if any (see route)
}

// handlerFunc parses a request, makes one call, writes the response, and returns any error
// for route to render.
type handlerFunc func(r *request) error

// route wraps a handler with what every route does first: Content-Type check, authentication,
// and the one place errors are rendered.
func (s *Server) route(op string, mode authMode, h handlerFunc) fasthttp.RequestHandler {
	gate, busy := s.transferGate(op)
	m := s.metrics.Op(op)
	return func(ctx *fasthttp.RequestCtx) {
		recordOf(ctx).op = m
		r := &request{ctx: ctx, op: op, id: anonymous}
		if gate != nil {
			// Transfers take a slot first and fail fast when none is free: no queue, and
			// no database work for a request that cannot run.
			if !gate.TryAcquire() {
				s.writeError(ctx, busy)
				return
			}
			r.slot = gate
			defer r.releaseSlot()
		}
		err := s.authenticate(r, mode)
		if err == nil {
			err = h(r)
		}
		if err != nil {
			s.writeError(ctx, err)
		}
	}
}

func (s *Server) authenticate(r *request, mode authMode) error {
	if !utf8.Valid(r.ctx.Request.Header.RequestURI()) { // it becomes request.path, text
		return ErrURLNotText
	}
	if ct := r.ctx.Request.Header.ContentType(); len(ct) > 0 && !validContentType(ct) {
		return ErrInvalidMimeType
	}
	if mode == authNone {
		return nil
	}
	h := r.ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	if h == nil {
		switch mode {
		case authOptional:
			return nil
		case authBearer:
			return ErrAccessDenied.with("Invalid Compact JWS")
		}
		return schemaError("headers must have required property 'authorization'")
	}
	id, err := s.verifier.Verify(tokenFromHeader(h))
	switch {
	case err == nil:
		r.id = id
		identify(r.ctx, id)
		return nil
	case mode == authOptional && !errors.Is(err, identity.ErrRoleNotAllowed):
		return nil // an invalid token on an optional-auth route: anonymous, as the reference
	}
	return authError(err, false)
}

// writeError renders err through the one error format. Unexpected errors reach the client as
// a bare InternalError; the request's log line has their cause (logRequest).
func (s *Server) writeError(ctx *fasthttp.RequestCtx, err error) {
	e, ok := err.(*Error)
	if !ok {
		e = interpretError(err).(*Error)
	}
	// A body that stopped arriving is the cause of whatever failed while reading it (an
	// upload has been aborted by then): the client gets 408, and its connection is closed
	// rather than drained.
	stalled := limits.ConnOf(ctx.Conn()).Stalled()
	if stalled {
		e = ErrRequestTimeout
	}
	rec := recordOf(ctx)
	rec.code, rec.err = e.Code, err
	closeConn := stalled || !drainBody(ctx)
	ctx.Response.Reset()
	if closeConn {
		ctx.SetConnectionClose()
	}
	for _, h := range e.Headers {
		ctx.Response.Header.Set(h[0], h[1])
	}
	ctx.SetStatusCode(e.httpStatus())
	if ctx.IsHead() { // HEAD errors carry the status only
		return
	}
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetBody(errorBody(e))
}

// drainLimit is how much of an unread request body a refusal still reads, so that the client,
// still sending, gets the answer instead of a connection reset (as with the reference, which
// reads every body); beyond it the connection is closed.
const drainLimit = 16 << 20

// drainBody reads what is left of the request body, up to drainLimit, and reports whether
// the connection can serve another request.
func drainBody(ctx *fasthttp.RequestCtx) bool {
	if stream := RequestBody(ctx); stream != nil {
		if n, err := io.CopyN(io.Discard, stream, drainLimit); n == drainLimit || err != nil && err != io.EOF {
			return false
		}
	}
	return true
}

// writeJSON sends a 200 JSON body. body becomes the response's buffer (no copy): callers
// hand over a slice they will not touch again, typically one from responseBuf.
func writeJSON(ctx *fasthttp.RequestCtx, body []byte) error {
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.Response.SwapBody(body)
	return nil
}

// responseBuf returns the response's pooled body buffer, empty, for a handler to append its
// JSON to and pass to writeJSON: once the pool is warm a response allocates nothing and is
// not copied.
func responseBuf(ctx *fasthttp.RequestCtx) []byte {
	return ctx.Response.SwapBody(nil)[:0]
}

// settings returns the prelude's arguments for r, in preludeSettings order.
func (s *Server) settings(r *request) []any {
	return preludeArgs(r.id, r.op, headersJSON(r.ctx), string(r.ctx.Method()), requestPath(r.ctx), recordOf(r.ctx).id, s.uploadLimit, s.statementTimeout, s.lockTimeout)
}

// serviceSettings is settings with the role switched to service_role: a signed download reads
// the object its token names as the service (the token is the authorization, as in the
// reference).
func (s *Server) serviceSettings(r *request) []any {
	id := r.id
	id.Role = serviceRole
	return preludeArgs(id, r.op, headersJSON(r.ctx), string(r.ctx.Method()), requestPath(r.ctx), recordOf(r.ctx).id, s.uploadLimit, s.statementTimeout, s.lockTimeout)
}

func preludeArgs(id Identity, op, headers, method, path, requestID, uploadLimit, statementTimeout, lockTimeout string) []any {
	claims := id.Claims
	if claims == "" {
		claims = `{"role":` + string(appendJSONString(nil, id.Role)) + `}`
	}
	return []any{id.Role, id.Role, id.Token, id.Sub, claims, headers, method, path, op, "true", uploadLimit, requestID, statementTimeout, lockTimeout}
}

// Prelude returns the statement and arguments that open a request's transaction for id
// running operation op, as the server sends them but without statement and lock timeouts.
// For tests and tools that must see the database as a request does (the migrating role owns
// the tables and bypasses RLS).
func Prelude(id Identity, op string) (string, []any) {
	return preludeSQL, preludeArgs(id, op, "{}", "POST", "/", "", "", "0", "0")
}

// headersJSON renders the request headers as one JSON object with lower-case names, the shape
// policies read from request.headers. Repeated headers are joined with ", ".
func headersJSON(ctx *fasthttp.RequestCtx) string {
	// Repeated (and non-ASCII) names are rare: without them the object is written in one
	// pass, into a buffer on the stack.
	var names [32][]byte
	n, repeated := 0, false
	for k := range ctx.Request.Header.All() {
		for _, seen := range names[:min(n, len(names))] {
			if bytes.EqualFold(seen, k) {
				repeated = true
			}
		}
		for _, c := range k {
			if c >= utf8.RuneSelf { // not a token: the general path lower-cases it properly
				repeated = true
			}
		}
		if n < len(names) {
			names[n] = k
		}
		n++
	}
	if !repeated && n <= len(names) {
		var buf [1024]byte
		b := append(buf[:0], '{')
		first := true
		for k, v := range ctx.Request.Header.All() {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendLowerJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, unsafeString(v))
		}
		return string(append(b, '}'))
	}
	return headersJSONRepeated(ctx)
}

// appendLowerJSONString appends the header name k, lower-cased, as a JSON string.
func appendLowerJSONString(b, k []byte) []byte {
	start := len(b)
	b = appendJSONString(b, unsafeString(k))
	for i := start; i < len(b); i++ {
		if c := b[i]; 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return b
}

// unsafeString views b as a string without copying, for appending it somewhere at once.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// headersJSONRepeated is headersJSON for requests that repeat a header name.
func headersJSONRepeated(ctx *fasthttp.RequestCtx) string {
	seen := map[string]int{}
	var names []string
	var values [][]byte
	for k, v := range ctx.Request.Header.All() {
		name := string(bytes.ToLower(k))
		if i, ok := seen[name]; ok {
			values[i] = append(append(values[i], ", "...), v...)
			continue
		}
		seen[name] = len(names)
		names = append(names, name)
		values = append(values, append([]byte(nil), v...))
	}
	b := make([]byte, 0, 512)
	b = append(b, '{')
	for i, name := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, name)
		b = append(b, ':')
		b = appendJSONString(b, string(values[i]))
	}
	return string(append(b, '}'))
}

// param returns a route parameter percent-decoded once. When the decoded value could not be
// text (bad escapes, NUL, invalid UTF-8) the raw value is returned instead: its '%' makes the
// SQL API refuse it as an invalid key or bucket name, rather than PostgreSQL as bad text.
func param(ctx *fasthttp.RequestCtx, name string) string {
	raw, _ := ctx.UserValue(name).(string)
	if v, err := url.PathUnescape(raw); err == nil && utf8.ValidString(v) && !strings.ContainsRune(v, 0) {
		return v
	}
	return raw
}

// ctxOf returns the context database calls run under: the request's, so a server shutdown
// cancels them.
func ctxOf(r *request) context.Context { return r.ctx }

// blobCtx is the context of blob store calls. Not the request's: fasthttp recycles the
// RequestCtx once the handler returns, while a download's body is still being streamed (and
// an S3 client's transport may still watch its context).
var blobCtx = context.Background()
