package s3

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/identity"
	"github.com/pgstorage/storage/proxy"
)

// Config is what the S3 door needs beyond the proxy (cmd/storage documents the environment
// variables behind each field).
type Config struct {
	// AccessKeyID and SecretKey (S3_PROTOCOL_ACCESS_KEY_ID, S3_PROTOCOL_ACCESS_KEY_SECRET) are
	// the server-wide key pair; requests signed with it run as the service role. Either
	// empty: only session-token requests authenticate.
	AccessKeyID, SecretKey string
	// ServiceKey (SERVICE_KEY) is the JWT key-pair requests run as; empty: role service_role,
	// no sub.
	ServiceKey string
	// TenantID (PROJECT_REF, TENANT_ID) and AnonKey (ANON_KEY) are the access key id and the
	// secret of session-token mode, whose x-amz-security-token carries the caller's JWT.
	TenantID, AnonKey string
	// Region (REGION, STORAGE_S3_REGION): what GetBucketLocation and HeadBucket answer and
	// the credential scope's region when EnforceRegion (S3_PROTOCOL_ENFORCE_REGION).
	Region        string
	EnforceRegion bool
	// Prefix (S3_PROTOCOL_PREFIX): prepended to the path the signature covers, for
	// deployments behind a path-rewriting proxy; AllowForwardedPrefix
	// (REQUEST_ALLOW_X_FORWARDED_PATH) lets X-Forwarded-Prefix replace it.
	Prefix               string
	AllowForwardedPrefix bool
	// PublicURL (STORAGE_PUBLIC_URL), AllowForwardedHeader (S3_ALLOW_FORWARDED_HEADER) and
	// NonCanonicalHostHeader (S3_PROTOCOL_NON_CANONICAL_HOST_HEADER) decide the host the
	// signature covers (S3.md §2.8).
	PublicURL              *url.URL
	AllowForwardedHeader   bool
	NonCanonicalHostHeader string
	// MaxDeleteObjects caps the keys of one DeleteObjects (AWS: 1000); 0 means 1000.
	MaxDeleteObjects int
	// MultipartExpiry (S3_MULTIPART_EXPIRY) is how long a multipart upload lives after its
	// creation or its last part; the collector then removes it and its parts. 0 means
	// DefaultMultipartExpiry.
	MultipartExpiry time.Duration
	Logger          *slog.Logger
}

// DefaultTenantID is the session-token mode's access key id when PROJECT_REF and TENANT_ID
// are unset, as in the reference.
const DefaultTenantID = "storage-single-tenant"

// DefaultMultipartExpiry is how long an idle multipart upload lives by default.
const DefaultMultipartExpiry = 24 * time.Hour

// Server is the S3 door. Mount it on the proxy (proxy.Server.Mount).
type Server struct {
	cfg      Config
	p        *proxy.Server
	db       *proxy.DB
	blobs    blob.Store
	verifier *identity.Verifier
	auth     authConfig
	service  identity.Identity // who access-key requests run as
	log      *slog.Logger
}

// New returns the S3 door of p, reading bytes from blobs.
func New(p *proxy.Server, blobs blob.Store, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TenantID == "" {
		cfg.TenantID = DefaultTenantID
	}
	if cfg.MultipartExpiry <= 0 {
		cfg.MultipartExpiry = DefaultMultipartExpiry
	}
	if cfg.MaxDeleteObjects <= 0 {
		cfg.MaxDeleteObjects = 1000
	}
	s := &Server{cfg: cfg, p: p, db: p.DB(), blobs: blobs, verifier: p.Verifier(), log: cfg.Logger,
		service: identity.Identity{Role: "service_role"}}
	if cfg.ServiceKey != "" {
		id, err := s.verifier.Verify(cfg.ServiceKey)
		if err != nil {
			return nil, fmt.Errorf("s3: SERVICE_KEY: %w", err)
		}
		s.service = id
	}
	s.auth = authConfig{
		AccessKeyID: cfg.AccessKeyID, SecretKey: cfg.SecretKey, TenantID: cfg.TenantID, AnonKey: cfg.AnonKey,
		Region: cfg.Region, EnforceRegion: cfg.EnforceRegion, Prefix: cfg.Prefix,
		AllowForwardedPrefix: cfg.AllowForwardedPrefix, AllowForwardedHeader: cfg.AllowForwardedHeader,
		NonCanonicalHostHeader: cfg.NonCanonicalHostHeader,
	}
	if cfg.PublicURL != nil {
		s.auth.PublicHost = cfg.PublicURL.Host
	}
	return s, nil
}

// mount is where the door answers (and under /storage/v1, as every route).
const mount = "/s3"

// Routes implements proxy.Door: the door owns its whole prefix instead (ServePrefix).
func (s *Server) Routes() []proxy.Route { return nil }

// Preflight implements proxy.Door: S3 has no CORS preflight of its own; the REST preflight
// answers.
func (s *Server) Preflight(*fasthttp.RequestCtx, []byte) bool { return false }

// Prefix implements proxy.Prefixed: every path under /s3.
func (s *Server) Prefix() string { return mount }

// ServePrefix implements proxy.Prefixed: the service (/s3, /s3/), bucket (/s3/b, /s3/b/) and
// object (/s3/b/k…) shapes, for the methods S3 uses; others go to the REST 404.
func (s *Server) ServePrefix(ctx *fasthttp.RequestCtx, rest []byte) bool {
	switch string(ctx.Method()) {
	case fasthttp.MethodGet, fasthttp.MethodHead, fasthttp.MethodPut, fasthttp.MethodPost, fasthttp.MethodDelete:
	default:
		return false
	}
	r := &request{ctx: ctx}
	s.p.Observe(ctx, opUnmatched, "") // until dispatch names the operation
	defer func() {
		if v := recover(); v != nil { // a bug answers 500, as the routes' panic handler does
			s.writeError(r, &Error{Status: 500, Code: errInternal.Code, Message: errInternal.Message, cause: fmt.Errorf("panic: %v", v)})
		}
	}()
	if len(rest) > 1 {
		bucket, key, hasKey := strings.Cut(string(rest[1:]), "/")
		r.rawBucket, r.rawKey, r.hasKey = bucket, key, hasKey && key != ""
	}
	if err := s.serve(r); err != nil {
		s.writeError(r, err)
	}
	return true
}

// request is one S3 request on its way through a handler.
type request struct {
	ctx    *fasthttp.RequestCtx
	id     identity.Identity
	sig    signed
	op     string
	bucket string
	key    string
	hasKey bool // an object path (/s3/b/k); /s3/b/ is the bucket's
	// rawBucket and rawKey are the path's segments as sent (percent-encoded).
	rawBucket, rawKey string
}

// settings are the prelude's arguments for the request's SQL call.
func (r *request) settings(s *Server) []any { return s.p.Settings(r.ctx, r.id, r.op) }

// serve authenticates, dispatches and runs a request.
func (s *Server) serve(r *request) error {
	ctx := r.ctx
	var err error
	if r.bucket, err = unescape(r.rawBucket); err != nil {
		return errInvalidBucketName
	}
	if r.key, err = unescape(r.rawKey); err != nil {
		return invalidKey(r.rawKey)
	}
	op := s.dispatch(r)
	if op != nil {
		s.p.Observe(ctx, op.name, r.bucket)
	}
	if op == postObject {
		// A browser form signs itself in its fields (policy.go).
		r.op = op.name
		return s.postObject(r)
	}
	sig, aerr := verify(ctx, &s.auth)
	if aerr != nil {
		return aerr
	}
	r.sig = sig
	if err := s.identify(r); err != nil {
		return err
	}
	if op == nil {
		return errNoOperation
	}
	r.op = op.name
	if op.name != opPostObject && strings.HasPrefix(string(ctx.Request.Header.ContentType()), "multipart/form-data") {
		return errFormData
	}
	return op.run(s, r)
}

// identify sets who a verified request runs as: the session token's JWT, or the key pair's
// service identity.
func (s *Server) identify(r *request) error {
	if !r.sig.Session {
		r.id = s.service
		return nil
	}
	id, err := s.verifier.Verify(r.sig.Token)
	if err != nil {
		var ie *identity.Error
		if errors.As(err, &ie) {
			return errAccessDenied.with(ie.Message)
		}
		return errAccessDenied
	}
	r.id = id
	return nil
}

// unescape percent-decodes a path segment once ('+' stays '+').
func unescape(raw string) (string, error) {
	v, err := url.PathUnescape(raw)
	if err != nil || strings.ContainsRune(v, 0) {
		return "", errors.New("bad escape")
	}
	return v, nil
}

// writeError renders err as the XML error document with its own status line (HEAD: the
// status only). Unexpected errors are logged with their cause and sent as InternalError.
func (s *Server) writeError(r *request, err error) {
	ctx := r.ctx
	e := fromCall(err)
	if proxy.Stalled(ctx) {
		e = errStalled
	}
	proxy.Failed(ctx, e.Code, err)
	closeConn := proxy.Stalled(ctx) || !proxy.DrainBody(ctx)
	ctx.Response.Reset()
	if closeConn {
		ctx.SetConnectionClose()
	}
	for _, h := range e.Headers {
		ctx.Response.Header.Set(h[0], h[1])
	}
	ctx.SetStatusCode(e.Status)
	if ctx.IsHead() || e.Status == fasthttp.StatusNotModified {
		return
	}
	if e == errNoOperation {
		return // the reference's empty 404
	}
	w := newXML("Error")
	w.elem("Resource", resource(ctx))
	w.elem("Code", e.Code)
	w.elem("Message", e.Message)
	w.send(ctx, e.Status)
}

// resource is the error document's Resource: the request path without the gateway prefix and
// the mount, its segments joined by '/', as sent (still percent-encoded).
func resource(ctx *fasthttp.RequestCtx) string {
	p := string(ctx.Request.URI().PathOriginal())
	p = strings.TrimPrefix(p, "/storage/v1")
	p = strings.Replace(p, mount, "", 1)
	var segs []string
	for _, seg := range strings.Split(p, "/") {
		if seg != "" {
			segs = append(segs, seg)
		}
	}
	return strings.Join(segs, "/")
}

// isoTime renders t as S3's XML timestamps: UTC with milliseconds.
func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
