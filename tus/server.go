package tus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/identity"
	"github.com/pgstorage/storage/proxy"
)

// Defaults of Config.
const (
	DefaultURLPath     = "/upload/resumable"
	DefaultExpiry      = 24 * time.Hour
	DefaultLockTimeout = 5 * time.Second
	// DefaultMaxConcurrent keeps the lock pool well inside PostgreSQL's default 100
	// connections with a few servers.
	DefaultMaxConcurrent = 16
)

// Config is what the TUS door needs beyond the proxy (cmd/storage documents the environment
// variables behind each field).
type Config struct {
	// URLPath (TUS_URL_PATH) is the path written into Location before the upload id. Empty:
	// /upload/resumable under the prefix the request came in by (/storage/v1 or none).
	URLPath string
	// Expiry (TUS_URL_EXPIRY_MS) is how long an unfinished upload lives after its last
	// append (or its creation); 0 means DefaultExpiry.
	Expiry time.Duration
	// PublicURL (STORAGE_PUBLIC_URL): when set, its scheme and host make Location's, instead
	// of the request's Host and forwarding headers.
	PublicURL *url.URL
	// AllowForwardedPath (REQUEST_ALLOW_X_FORWARDED_PATH): prefix Location's path with
	// X-Forwarded-Prefix.
	AllowForwardedPath bool
	// LockTimeout is how long a request waits for another request's hold on the same upload
	// before 503 "acquiring lock timeout"; 0 means DefaultLockTimeout.
	LockTimeout time.Duration
	// MaxConcurrent (TUS_MAX_CONCURRENT_UPLOADS) is how many PATCHes (and DELETEs) may hold an
	// upload's lock at once on this server: each holds a database connection of a pool of its
	// own while its body streams. Past it, 503 and Retry-After. 0 means DefaultMaxConcurrent.
	MaxConcurrent int
	Logger        *slog.Logger
}

// Server is the TUS door. Mount it on the proxy (proxy.Server.Mount).
type Server struct {
	cfg      Config
	p        *proxy.Server
	db       *proxy.DB     // requests' calls, on the server's pool
	locks    *proxy.DB     // connections held for upload locks, a pool of their own
	slots    chan struct{} // one per connection of locks: taken before one is held
	verifier *identity.Verifier
	blobs    resumableStore
	log      *slog.Logger
	holders  holders // this server's PATCHes holding an upload's lock (release.go)

	listening  chan struct{} // closed once Run listens
	listenOnce sync.Once
}

// New returns the TUS door of p, storing bytes in blobs, which must implement blob.Resumable.
func New(p *proxy.Server, blobs blob.Store, cfg Config) (*Server, error) {
	rb, ok := blobs.(resumableStore)
	if !ok {
		return nil, fmt.Errorf("tus: the blob store %T cannot append (blob.Resumable)", blobs)
	}
	if cfg.Expiry <= 0 {
		cfg.Expiry = DefaultExpiry
	}
	if cfg.LockTimeout <= 0 {
		cfg.LockTimeout = DefaultLockTimeout
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	locks, err := p.Sibling("tus_locks", int32(cfg.MaxConcurrent))
	if err != nil {
		return nil, fmt.Errorf("tus: lock pool: %w", err)
	}
	return &Server{cfg: cfg, p: p, db: p.DB(), locks: locks, slots: make(chan struct{}, cfg.MaxConcurrent),
		verifier: p.Verifier(), blobs: rb, log: cfg.Logger, listening: make(chan struct{})}, nil
}

// resumableStore is a blob store that can append.
type resumableStore interface {
	blob.Store
	blob.Resumable
}

// Close closes the lock pool. Call it after the server stopped serving.
func (s *Server) Close() { s.locks.Close() }

// Operation ids (storage.operation), as the reference names them.
const (
	opOptions      = "storage.tus.options"
	opCreate       = "storage.tus.upload.create"
	opGet          = "storage.tus.upload.get"
	opPart         = "storage.tus.upload.part"
	opDelete       = "storage.tus.upload.delete"
	opCreateSigned = "storage.tus.upload.create_signed"
	opGetSigned    = "storage.tus.upload.get_signed"
	opPartSigned   = "storage.tus.upload.part_signed"
	opDeleteSigned = "storage.tus.upload.delete_signed"
)

const basePath = "/upload/resumable"

// Routes implements proxy.Door: every TUS route, JWT and signed. Literal "sign" beats the id
// wildcard, as in the reference.
func (s *Server) Routes() []proxy.Route {
	var rs []proxy.Route
	add := func(method, path string, h fasthttp.RequestHandler) {
		rs = append(rs, proxy.Route{Method: method, Path: path, Handler: h})
	}
	for _, signed := range []bool{false, true} {
		p := basePath
		ops := [4]string{opCreate, opGet, opPart, opDelete}
		if signed {
			p += "/sign"
			ops = [4]string{opCreateSigned, opGetSigned, opPartSigned, opDeleteSigned}
		}
		create := s.handle(ops[0], signed, s.create)
		add(fasthttp.MethodPost, p, create)
		add(fasthttp.MethodPost, p+"/{id}", create)
		add(fasthttp.MethodHead, p+"/{id}", s.handle(ops[1], signed, s.head))
		add(fasthttp.MethodPatch, p+"/{id}", s.handle(ops[2], signed, s.patch))
		add(fasthttp.MethodDelete, p+"/{id}", s.handle(ops[3], signed, s.terminate))
		add(fasthttp.MethodPut, p+"/{id}", s.handle(ops[2], signed, func(*call) *Error { return errPutNotFound }))
	}
	return rs
}

// call is one TUS request on its way through a handler.
type call struct {
	ctx    *fasthttp.RequestCtx
	op     string
	signed bool
	id     identity.Identity
	upsert bool
	// token is the signed route's x-signature, verified against the upload's object once it
	// is known (verifySigned).
	token string
}

// settings are the prelude's arguments for the call's identity.
func (s *Server) settings(c *call) []any { return s.p.Settings(c.ctx, c.id, c.op) }

// handle runs the pipeline every TUS request passes (TUS.md §3): the JWT (JWT routes; its
// failures answer in the REST format), Tus-Resumable, header validation, then the method; its
// errors are written in the TUS format. Every response carries Tus-Resumable and CORS headers.
func (s *Server) handle(op string, signed bool, h func(*call) *Error) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		c := &call{ctx: ctx, op: op, signed: signed, id: identity.Anonymous}
		s.p.Observe(ctx, op, "")
		s.setCORS(ctx)
		if !signed {
			// A missing header is an empty token: "Invalid Compact JWS", as the reference.
			id, err := s.verifier.Verify(proxy.BearerToken(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)))
			if err != nil {
				s.writeREST(ctx, proxy.AuthError(err))
				return
			}
			c.id = id
			c.upsert = string(ctx.Request.Header.Peek("x-upsert")) == "true"
		}
		ctx.Response.Header.Set("Tus-Resumable", "1.0.0")
		if e := validateHeaders(ctx); e != nil {
			s.writeError(c, e)
			return
		}
		if e := h(c); e != nil {
			s.writeError(c, e)
		}
	}
}

// verifySigned checks the signed route's x-signature against the upload's object and makes the
// call run as the token's signer, with the token's upsert (TUS.md §7.3).
func (s *Server) verifySigned(c *call, bucket, name string) *Error {
	if !c.signed {
		return nil
	}
	var tokens int
	for range c.ctx.Request.Header.PeekAll("x-signature") {
		tokens++
	}
	tok := c.ctx.Request.Header.Peek("x-signature")
	if tokens != 1 || len(tok) == 0 {
		return errNoSignature
	}
	claims, err := s.verifier.VerifyURL(string(tok), "upload", bucket+"/"+name)
	if err != nil {
		return &Error{Status: 400, Body: err.Error()}
	}
	id, err := s.verifier.Uploader(claims, string(tok))
	if err != nil {
		return &Error{Status: 403, Body: err.Error()}
	}
	c.id = id
	c.upsert = claims.Upsert != nil && *claims.Upsert
	return nil
}

// writeError answers e in the TUS format: its status, a plain text body. The unread part of
// the request body is drained (up to a bound) so that a client still sending reads the answer.
func (s *Server) writeError(c *call, e *Error) {
	ctx := c.ctx
	if e.rest != nil {
		s.writeREST(ctx, e.rest)
		return
	}
	if proxy.Stalled(ctx) {
		e = errStalled
	}
	var cause error = errors.New(strings.TrimSpace(e.Body))
	if e.cause != nil {
		cause = fmt.Errorf("%s: %w", strings.TrimSpace(e.Body), e.cause)
	}
	proxy.Failed(ctx, "", cause)
	if e.Status == 408 || !proxy.DrainBody(ctx) {
		ctx.SetConnectionClose()
	}
	for _, h := range e.Headers {
		ctx.Response.Header.Set(h[0], h[1])
	}
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("text/plain;charset=UTF-8")
	if !ctx.IsHead() {
		ctx.SetBodyString(e.Body)
	}
}

// writeREST answers like the REST routes (the JWT failures of TUS.md §3), with CORS.
func (s *Server) writeREST(ctx *fasthttp.RequestCtx, e *proxy.Error) {
	body, status := proxy.RESTErrorBody(e)
	if !proxy.DrainBody(ctx) {
		ctx.SetConnectionClose()
	}
	ctx.SetStatusCode(status)
	for _, h := range e.Headers {
		ctx.Response.Header.Set(h[0], h[1])
	}
	if ctx.IsHead() {
		return
	}
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetBody(body)
}

// pathID is the upload id of the request: the last segment of its path. A segment that is
// part of the TUS path itself ("resumable", "sign") is none.
func pathID(ctx *fasthttp.RequestCtx) (uploadID, *Error) {
	raw, _ := ctx.UserValue("id").(string)
	if raw == "" || strings.Contains(basePath+"/sign", raw) {
		return uploadID{}, errNotFound
	}
	return parseID(raw)
}

// upload is a row of storage.resumable_uploads, as the server reads it.
type upload struct {
	Version      string
	Bucket, Name string
	OwnerID      *string
	Length       *int64
	Offset       int64
	SizeLimit    *int64
	Mimetype     string
	CacheControl string
	UserMetadata []byte
	Metadata     string
	BlobState    string
	MD5State     []byte
	CreatedAt    time.Time
	ExpiresAt    time.Time
	CompletedAt  *time.Time
}

// uploadColumns lists the columns upload.scan reads, each after prefix (a row or a composite).
func uploadColumns(prefix string) string {
	cols := []string{"version", "bucket_id", "name", "owner_id", "upload_length", "upload_offset", "size_limit",
		"mimetype", "cache_control", "user_metadata", "metadata", "blob_state", "md5_state", "created_at",
		"expires_at", "completed_at"}
	for i, c := range cols {
		cols[i] = prefix + c
	}
	return strings.Join(cols, ", ")
}

// scan reads the columns of uploadColumns, then into extra the columns after them.
func (u *upload) scan(row interface{ Scan(...any) error }, extra ...any) error {
	var um *string
	dest := append([]any{&u.Version, &u.Bucket, &u.Name, &u.OwnerID, &u.Length, &u.Offset, &u.SizeLimit, &u.Mimetype,
		&u.CacheControl, &um, &u.Metadata, &u.BlobState, &u.MD5State, &u.CreatedAt, &u.ExpiresAt, &u.CompletedAt}, extra...)
	err := row.Scan(dest...)
	if um != nil {
		u.UserMetadata = []byte(*um)
	}
	return err
}

// expired reports whether the upload's time is up (it answers 410 until the collector removes it).
func (u *upload) expired() bool { return !u.ExpiresAt.After(time.Now()) }

// blobKey is where the upload's bytes go: the object's version's blob.
func (u *upload) blobKey() string { return blob.VersionKey(u.Version) }

// writeExpires adds Upload-Expires for an upload still in progress.
func writeExpires(ctx *fasthttp.RequestCtx, at time.Time) {
	ctx.Response.Header.Set("Upload-Expires", at.UTC().Format(http.TimeFormat))
}

// ctxOf is the context of the request's database calls and blob appends.
func ctxOf(c *call) context.Context { return c.ctx }
