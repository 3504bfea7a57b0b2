package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/render"
)

// Image transformation (spec RENDER.md): /render/image/{public,authenticated,sign}/… read the
// object as the downloads do (one storage.object_info call, RLS deciding), then serve the
// variant the request names. Variants are cached in the blob store beside their source's
// version (blob.VariantKey), written once: a second request for one costs a download, not a
// render, and the collector frees them with the version.

// RenderConfig configures image transformation.
type RenderConfig struct {
	// Engine renders variants; nil turns transformation off: the routes answer the 404 of
	// unknown routes and POST /object/sign ignores transform, as the reference does with
	// IMAGE_TRANSFORMATION_ENABLED unset.
	Engine render.Engine
	// Limits clamp the requested size (zero: render.DefaultLimits).
	Limits render.Limits
	// MaxSourceSize refuses sources larger than this many bytes before they are read
	// (IMAGE_TRANSFORMATION_MAX_SOURCE_SIZE; 0: none).
	MaxSourceSize int64
	// Queue bounds the renders in progress and those waiting (nil: one per core, 64 waiting
	// at most 15 s each).
	Queue *render.Queue
	// NoCache renders every request instead of keeping variants in the blob store.
	NoCache bool
	// RateLimit, when > 0, allows each client address that many requests per second to one
	// render path (RATE_LIMITER_ENABLED, RATE_LIMITER_RENDER_PATH_MAX_REQ_SEC; spec §8.3).
	RateLimit int
}

func (c *RenderConfig) defaults() {
	if c.Limits == (render.Limits{}) {
		c.Limits = render.DefaultLimits
	}
	if c.Queue == nil {
		c.Queue = render.NewQueue(runtime.GOMAXPROCS(0), 64, 15*time.Second)
	}
}

// Render errors.
var (
	// ErrRenderBusy: every render slot is taken and the queue is full.
	ErrRenderBusy = &Error{Status: 429, Code: "SlowDown", Label: "Too Many Requests",
		Message: "Too many image transformations in progress; retry later", HTTPStatus: 429, Headers: retryAfter}
	// ErrFocalPoint: a signed token whose focal point lies outside the image.
	ErrFocalPoint = &Error{Status: 400, Code: "InvalidParameter", Message: render.FocalPointMessage}
)

// renderError is the REST answer to a renderer's refusal (spec §7: HTTP 400, code
// InvalidRequest, the reference's message).
func renderError(e *render.Error) *Error {
	return &Error{Status: 400, Code: "InvalidRequest", Message: e.Message}
}

// RenderImage answers GET and HEAD /render/image/{public,authenticated}/{bucket}/{key}: the
// transformation in the query, the object read as the download route of the same name does.
func (s *Server) RenderImage(access readAccess) handlerFunc {
	return func(r *request) error {
		o, err := s.queryTransform(r)
		if err != nil {
			return err
		}
		row, err := s.lookup(r, access, true)
		if access == readAuthenticated && errors.Is(err, ErrNoSuchBucket) {
			e := sqlStates["ST002"].Error // the reference looks up the object alone: NoSuchKey
			err = &e
		}
		if err != nil {
			return err
		}
		return s.serveVariant(r, &row, o, "")
	}
}

// queryTransform reads the transformation of a request's query (spec §3).
func (s *Server) queryTransform(r *request) (render.Options, error) {
	args := r.ctx.QueryArgs()
	if args.Len() == 0 {
		return render.Options{}, nil
	}
	o, msg := render.Parse(func(name string) (string, bool) {
		v := args.Peek(name)
		return string(v), v != nil
	}, s.cfg.Render.Limits, "querystring")
	if msg != "" {
		return o, schemaError(msg)
	}
	return o, nil
}

// echoTransform checks the transformation query of the object HEAD and info routes, which
// accept it and transform nothing, and echoes it in X-Transformations as the reference does
// (spec §11).
func (s *Server) echoTransform(r *request) error {
	o, err := s.queryTransform(r)
	if seg := o.Segments(); err == nil && len(seg) > 0 {
		r.ctx.Response.Header.Set("X-Transformations", strings.Join(seg, ","))
	}
	return err
}

// RenderImageSigned answers GET and HEAD /render/image/sign/{bucket}/{key}?token=: the object
// and the transformation the token names (the query's are ignored), read as the service.
func (s *Server) RenderImageSigned(r *request) error {
	token, err := tokenParam(r)
	if err != nil {
		return err
	}
	bucket, key := signedParam(r, "bucket"), signedParam(r, "key")
	c, err := s.verifyURLToken(token, "download", bucket+"/"+key)
	if err != nil {
		return err
	}
	o := render.ParseTransformations(c.Transformations, s.cfg.Render.Limits)
	if !o.CheckFocalPoint() {
		return ErrFocalPoint
	}
	// The token's format is honoured (the reference drops it, and origin then gets negotiated).
	// Without one, a webp or avif named in the transformations stands, as the reference
	// renders it (storage.url_sign takes a transformations string without a format).
	switch {
	case c.Format == "origin" || c.Format == "webp" || c.Format == "avif":
		o.Format = c.Format
	case o.Format != "webp" && o.Format != "avif":
		o.Format = ""
	}
	row, err := s.db.ObjectInfo(ctxOf(r), s.serviceSettings(r), bucket, key, false, true)
	if err != nil {
		return err
	}
	expires := ""
	if c.ExpiresAt != nil {
		expires = c.ExpiresAt.UTC().Format(http.TimeFormat)
	}
	return s.serveVariant(r, &row, o, expires)
}

// serveVariant answers with o applied to row's object: conditional requests are decided on
// the source's ETag and date before any work (a variant changes only with its source, and
// the response varies by Accept when the format is negotiated), then the cached variant is
// streamed, or the source rendered (in a queue slot), cached and sent.
func (s *Server) serveVariant(r *request, row *object, o render.Options, expires string) error {
	ctx := r.ctx
	h := &ctx.Response.Header
	if seg := o.Segments(); len(seg) > 0 {
		h.Set("X-Transformations", strings.Join(seg, ","))
	}
	if o.Negotiated() {
		h.Set(fasthttp.HeaderVary, "Accept")
	}
	if done, err := readHeaders(ctx, row, expires); done {
		return err
	}
	f := render.Output(o, string(ctx.Request.Header.Peek(fasthttp.HeaderAccept)), row.meta.Mimetype)
	h.SetContentType(f.ContentType())
	version := deref(row.Version)
	if version == "" { // a row without bytes (written by SQL)
		return renderError(render.ErrUnsupported)
	}
	key := blob.VariantKey(version, o.Variant(f))
	cfg := &s.cfg.Render
	if !cfg.NoCache {
		size, err := s.blobs.Size(blobCtx, key)
		if err == nil {
			return s.streamBlob(r, key, size)
		}
		if !errors.Is(err, blob.ErrNotFound) {
			return internalError(err)
		}
	}
	if row.meta.Size != nil && cfg.MaxSourceSize > 0 && *row.meta.Size > cfg.MaxSourceSize {
		return renderError(render.ErrFileSize)
	}
	release, err := cfg.Queue.Acquire(blobCtx)
	if err != nil {
		return ErrRenderBusy
	}
	defer release()
	src, err := s.readSource(row, cfg.MaxSourceSize)
	if err != nil {
		return err
	}
	out, err := cfg.Engine.Render(src, o, f)
	var refused *render.Error
	if errors.As(err, &refused) {
		return renderError(refused)
	}
	if err != nil {
		return internalError(err)
	}
	if !cfg.NoCache {
		// Written once: a concurrent render of the same variant may have won (ErrExists).
		// A store that fails only costs the next request a render.
		if err := s.blobs.Put(blobCtx, key, bytes.NewReader(out), int64(len(out))); err != nil && !errors.Is(err, blob.ErrExists) {
			s.log.Warn("render: variant not cached", "key", key, "error", err)
		}
	}
	return serveBytes(ctx, out)
}

// readSource reads the source's bytes (libvips decodes from memory), at most limit of them:
// the row's inline bytes, or its blob's.
func (s *Server) readSource(row *object, limit int64) ([]byte, error) {
	if row.inline != nil {
		if limit > 0 && int64(len(row.inline)) > limit {
			return nil, renderError(render.ErrFileSize)
		}
		return row.inline, nil
	}
	size := row.meta.Size
	body, err := s.blobs.Get(blobCtx, blob.VersionKey(deref(row.Version)), 0, -1)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, ErrBlobNotFound
	}
	if err != nil {
		return nil, internalError(err)
	}
	defer body.Close()
	var buf bytes.Buffer
	if size != nil && *size > 0 && (limit <= 0 || *size <= limit) {
		buf.Grow(int(*size))
	}
	var rd io.Reader = body
	if limit > 0 {
		rd = io.LimitReader(body, limit+1)
	}
	if _, err := buf.ReadFrom(rd); err != nil {
		return nil, internalError(err)
	}
	if limit > 0 && int64(buf.Len()) > limit {
		return nil, renderError(render.ErrFileSize)
	}
	return buf.Bytes(), nil
}
