package proxy

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/blob"
)

// Access to an object read: which caller the object routes see.
type readAccess int

const (
	readAuthenticated readAccess = iota // /authenticated/: JWT required, RLS for private buckets
	readOptional                        // /object/{b}/{k}: JWT optional; anonymous = public buckets only
	readPublic                          // /public/: no JWT read; public buckets only
)

// lookup returns the object row a read route serves; withBytes: with its inline bytes.
func (s *Server) lookup(r *request, access readAccess, withBytes bool) (object, error) {
	publicOnly := access == readPublic || access == readOptional && r.id.Token == ""
	return s.db.ObjectInfo(ctxOf(r), s.settings(r), param(r.ctx, "bucket"), param(r.ctx, "key"), publicOnly, withBytes)
}

// ObjectGet answers GET on the download routes: the bytes, streamed from the blob store, with
// the reference's headers; If-Match / If-Unmodified-Since → 412, Range → 206 (or 416),
// If-None-Match / If-Modified-Since → 304.
func (s *Server) ObjectGet(access readAccess) handlerFunc {
	return func(r *request) error {
		o, err := s.lookup(r, access, true)
		if err != nil {
			return err
		}
		return s.serveBlob(r, &o, "")
	}
}

// serveBlob writes the object's bytes and headers. expires, when set, replaces Cache-Control
// (signed URLs).
func (s *Server) serveBlob(r *request, o *object, expires string) error {
	if done, err := readHeaders(r.ctx, o, expires); done {
		return err
	}
	if o.inline != nil {
		return serveBytes(r.ctx, o.inline)
	}
	size := int64(0)
	if o.meta.Size != nil {
		size = *o.meta.Size
	}
	return s.streamBlob(r, blob.VersionKey(deref(o.Version)), size)
}

// serveBytes sends b, bytes in memory (an inline object, a fresh variant): the request's
// Range of them (206, or 416), else all of them.
func serveBytes(ctx *fasthttp.RequestCtx, b []byte) error {
	size := int64(len(b))
	offset, length, partial, err := byteRange(ctx, size)
	if err != nil {
		return err
	}
	if partial {
		setContentRange(ctx, offset, length, size)
	}
	ctx.Response.SetBodyRaw(b[offset : offset+length])
	return nil
}

// streamBlob sends the blob under key, size bytes long: the request's Range of it (206, or
// 416), else all of it, streamed from the store.
func (s *Server) streamBlob(r *request, key string, size int64) error {
	offset, length, partial, err := byteRange(r.ctx, size)
	if err != nil {
		return err
	}
	body, err := s.blobs.Get(blobCtx, key, offset, length)
	if errors.Is(err, blob.ErrNotFound) {
		return ErrBlobNotFound
	}
	if err != nil {
		return internalError(err)
	}
	if partial {
		setContentRange(r.ctx, offset, length, size)
	}
	r.ctx.SetBodyStream(r.holdSlot(body), int(length))
	return nil
}

// byteRange resolves the request's Range against size: (offset, length, partial), or the
// 416 refusal.
func byteRange(ctx *fasthttp.RequestCtx, size int64) (int64, int64, bool, error) {
	offset, length, partial, ok := parseRange(ctx.Request.Header.Peek(fasthttp.HeaderRange), size)
	if !ok {
		e := *ErrInvalidRange
		e.Headers = [][2]string{{fasthttp.HeaderContentRange, "bytes */" + strconv.FormatInt(size, 10)}}
		return 0, 0, false, &e
	}
	return offset, length, partial, nil
}

// setContentRange marks the response as the part [offset, offset+length) of size bytes.
func setContentRange(ctx *fasthttp.RequestCtx, offset, length, size int64) {
	ctx.SetStatusCode(fasthttp.StatusPartialContent)
	ctx.Response.Header.Set(fasthttp.HeaderContentRange,
		"bytes "+strconv.FormatInt(offset, 10)+"-"+strconv.FormatInt(offset+length-1, 10)+"/"+strconv.FormatInt(size, 10))
}

// readHeaders applies a read's preconditions and writes the headers every read of o carries
// (those of writeObjectHeaders, Expires for signed URLs, the revalidation hint, ?download).
// done: the response is complete (304) or refused (412, the error).
func readHeaders(ctx *fasthttp.RequestCtx, o *object, expires string) (done bool, err error) {
	if preconditionFailed(ctx, o) {
		return true, ErrPreconditionFailed
	}
	writeObjectHeaders(ctx, o)
	if expires != "" {
		ctx.Response.Header.Del(fasthttp.HeaderCacheControl)
		ctx.Response.Header.Set(fasthttp.HeaderExpires, expires)
	} else if inm := ctx.Request.Header.Peek(fasthttp.HeaderIfNoneMatch); inm != nil {
		// Revalidating clients (CDNs) get a stale-while-revalidate hint when their copy is old.
		if string(inm) != o.meta.ETag {
			ctx.Response.Header.Set(fasthttp.HeaderCacheControl, o.meta.CacheControl+", stale-while-revalidate=30")
		}
	}
	if download, ok := queryValue(ctx, "download"); ok {
		ctx.Response.Header.Set(fasthttp.HeaderContentDisposition, contentDisposition(download))
	}
	if notModified(ctx, o) {
		ctx.Response.Header.Del(fasthttp.HeaderContentType)
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return true, nil
	}
	return false, nil
}

// ErrBlobNotFound: the row exists but its blob does not (reference: S3 backend's answer).
var ErrBlobNotFound = &Error{Status: 404, Code: "NoSuchKey", Label: "Not found", Message: "The resource was not found",
	Headers: [][2]string{{fasthttp.HeaderCacheControl, "no-store"}}}

// ErrInvalidRange: a Range the object cannot satisfy; the one 416 status line.
var ErrInvalidRange = &Error{Status: 416, Code: "InvalidRange", Label: "invalid_range", Message: "invalid range provided", HTTPStatus: 416}

// ErrPreconditionFailed: If-Match or If-Unmodified-Since failed on a download. The reference
// ignores both; we answer as HTTP says (RFC 9110 §13.2.2), with an explicit 412.
var ErrPreconditionFailed = &Error{Status: 412, Code: "PreconditionFailed", Label: "precondition_failed",
	Message: "At least one of the pre-conditions you specified did not hold", HTTPStatus: 412}

// ObjectHead answers HEAD on the download routes from the row alone (no blob access); errors
// have no body. If-Match / If-Unmodified-Since → 412 as on GET; If-None-Match and
// If-Modified-Since are ignored, as by the reference.
func (s *Server) ObjectHead(access readAccess) handlerFunc {
	return func(r *request) error {
		if err := s.echoTransform(r); err != nil {
			return err
		}
		o, err := s.lookup(r, access, false)
		if err != nil {
			return err
		}
		if preconditionFailed(r.ctx, &o) {
			return ErrPreconditionFailed
		}
		writeObjectHeaders(r.ctx, &o)
		if o.meta.ContentLength != nil {
			r.ctx.Response.Header.SetContentLength(int(*o.meta.ContentLength))
		}
		r.ctx.Response.SkipBody = true
		return nil
	}
}

// ObjectInfo answers GET /object/info/…: the row as JSON.
func (s *Server) ObjectInfo(access readAccess) handlerFunc {
	return func(r *request) error {
		if err := s.echoTransform(r); err != nil {
			return err
		}
		o, err := s.lookup(r, access, false)
		if err != nil {
			return err
		}
		h := &r.ctx.Response.Header
		h.Set(fasthttp.HeaderETag, o.meta.ETag)
		h.Set(fasthttp.HeaderLastModified, httpDate(o.meta.LastModified))
		h.Set(fasthttp.HeaderCacheControl, o.meta.CacheControl)
		return writeJSON(r.ctx, appendObjectInfo(responseBuf(r.ctx), &o))
	}
}

// ObjectDelete answers DELETE /object/{bucket}/{key}.
func (s *Server) ObjectDelete(r *request) error {
	if err := s.db.ObjectDelete(ctxOf(r), s.settings(r), param(r.ctx, "bucket"), param(r.ctx, "key")); err != nil {
		return err
	}
	return writeJSON(r.ctx, messageBody("Successfully deleted"))
}

// ObjectDeleteMany answers DELETE /object/{bucket} {"prefixes": [names…]}: exact names.
func (s *Server) ObjectDeleteMany(r *request) error {
	f, err := parseBody(r.ctx, false)
	if err != nil {
		return err
	}
	f.require("prefixes")
	names := f.array("prefixes", 1, maxBatchNames)
	if f.err != nil {
		return f.err
	}
	deleted, err := s.db.ObjectDeleteMany(ctxOf(r), s.settings(r), param(r.ctx, "bucket"), names)
	if err != nil {
		return err
	}
	b := []byte{'['}
	for i := range deleted {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendObjectRow(b, &deleted[i])
	}
	return writeJSON(r.ctx, append(b, ']'))
}

// writeObjectHeaders sets the headers every successful read carries.
func writeObjectHeaders(ctx *fasthttp.RequestCtx, o *object) {
	h := &ctx.Response.Header
	ct := o.meta.Mimetype
	if strings.Contains(strings.ToLower(ct), "text/html") {
		ct = "text/plain" // never let stored HTML run in the storage origin
	}
	h.SetContentType(ct)
	// Stored bytes never run as a page of the storage origin (its cookies, its storage, its
	// CORS grants): browsers take the type as given (no sniffing text into HTML), and a
	// document they render (SVG, XHTML, XML with its stylesheets…) runs no script, in an
	// origin of its own. The same file still works in an <img> or <video> on any site.
	h.Set(fasthttp.HeaderXContentTypeOptions, "nosniff")
	if sandboxed(ct) {
		h.Set(fasthttp.HeaderContentSecurityPolicy, "sandbox")
	}
	h.Set(fasthttp.HeaderETag, o.meta.ETag)
	h.Set(fasthttp.HeaderLastModified, httpDate(o.meta.LastModified))
	h.Set(fasthttp.HeaderCacheControl, o.meta.CacheControl)
	h.Set(fasthttp.HeaderAcceptRanges, "bytes")
	robots := o.meta.XRobotsTag
	if robots == "" || !validRobotsTag(robots) {
		robots = "none"
	}
	h.Set("X-Robots-Tag", robots)
}

// preconditionFailed applies If-Match (strong comparison; "*" matches, the object exists)
// and, without it, If-Unmodified-Since: steps 1 and 2 of RFC 9110 §13.2.2, so a failure wins
// over If-None-Match, If-Modified-Since and Range, which come after. An unparsable date is
// ignored, as the RFC says.
func preconditionFailed(ctx *fasthttp.RequestCtx, o *object) bool {
	if im := ctx.Request.Header.Peek(fasthttp.HeaderIfMatch); im != nil {
		return !etagListMatches(string(im), o.meta.ETag, true)
	}
	if ius := ctx.Request.Header.Peek(fasthttp.HeaderIfUnmodifiedSince); ius != nil {
		since, err := fasthttp.ParseHTTPDate(ius)
		lm, err2 := time.Parse(time.RFC3339Nano, o.meta.LastModified)
		return err == nil && err2 == nil && lm.Truncate(time.Second).After(since)
	}
	return false
}

// sandboxed reports whether a download of type ct is sent with the sandbox policy: every type
// but PDF. Listing the types that can carry script (SVG, XHTML, every XML type through
// stylesheets, multipart/x-mixed-replace…) would let one the list forgot through; nothing is
// lost by sandboxing images, media or text, which run nothing; a PDF, though, is shown by a
// viewer that browsers refuse to start in a sandboxed document, and its scripts are the
// viewer's, which cannot reach the origin.
func sandboxed(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return !strings.EqualFold(strings.TrimSpace(mt), "application/pdf")
}

// notModified applies If-None-Match (ETag) and, without it, If-Modified-Since.
func notModified(ctx *fasthttp.RequestCtx, o *object) bool {
	if inm := ctx.Request.Header.Peek(fasthttp.HeaderIfNoneMatch); inm != nil {
		return etagListMatches(string(inm), o.meta.ETag, false)
	}
	if ims := ctx.Request.Header.Peek(fasthttp.HeaderIfModifiedSince); ims != nil {
		since, err := fasthttp.ParseHTTPDate(ims)
		lm, err2 := time.Parse(time.RFC3339Nano, o.meta.LastModified)
		return err == nil && err2 == nil && !lm.Truncate(time.Second).After(since)
	}
	return false
}

// etagListMatches reports whether the If-Match / If-None-Match list holds "*" or etag:
// compared strongly (a weak tag never matches) or weakly (W/ ignored), RFC 9110 §8.8.3.2.
// Splitting on commas is exact for our ETags (quoted hex digests, never a comma); a foreign
// tag containing one cannot equal them either way.
func etagListMatches(list, etag string, strong bool) bool {
	if strong && strings.HasPrefix(etag, "W/") {
		return false
	}
	etag = strings.TrimPrefix(etag, "W/")
	for _, tag := range strings.Split(list, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" {
			return true
		}
		if weak, ok := strings.CutPrefix(tag, "W/"); ok {
			if strong {
				continue
			}
			tag = weak
		}
		if tag == etag {
			return true
		}
	}
	return false
}

// parseRange resolves a Range header against size: (offset, length, partial, satisfiable). No
// header, or one that is not a single bytes range, means the whole object.
func parseRange(h []byte, size int64) (int64, int64, bool, bool) {
	spec, ok := strings.CutPrefix(string(h), "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, size, false, true
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, size, false, true
	}
	var start, end int64
	var err error
	switch {
	case first == "": // the last n bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 || size == 0 {
			return 0, 0, false, false
		}
		start, end = max(size-n, 0), size-1
	default:
		if start, err = strconv.ParseInt(first, 10, 64); err != nil || start >= size {
			return 0, 0, false, false
		}
		end = size - 1
		if last != "" {
			if end, err = strconv.ParseInt(last, 10, 64); err != nil || end < start {
				return 0, 0, false, false
			}
			end = min(end, size-1)
		}
	}
	return start, end - start + 1, true, true
}

// contentDisposition renders ?download: attachment, with the given file name when there is one.
func contentDisposition(name string) string {
	if name == "" {
		return "attachment;"
	}
	enc := encodeURIComponent(name)
	return "attachment; filename=" + enc + "; filename*=UTF-8''" + enc
}

// encodeURIComponent escapes like JavaScript's function of that name.
func encodeURIComponent(s string) string {
	e := url.QueryEscape(s)
	e = strings.ReplaceAll(e, "+", "%20")
	for _, c := range []string{"!", "'", "(", ")", "*"} {
		e = strings.ReplaceAll(e, url.QueryEscape(c), c)
	}
	return e
}

// queryValue returns a query parameter and whether it was present at all (?download is
// meaningful without a value).
func queryValue(ctx *fasthttp.RequestCtx, name string) (string, bool) {
	args := ctx.QueryArgs()
	if !args.Has(name) {
		return "", false
	}
	return string(args.Peek(name)), true
}

// httpDate renders the stored ISO timestamp as an HTTP date; "" when there is none.
func httpDate(iso string) string {
	t, err := time.Parse(time.RFC3339Nano, iso)
	if err != nil {
		return ""
	}
	return t.UTC().Format(http.TimeFormat)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// appendObjectInfo renders the info body (no schema filtering in the reference: every field).
func appendObjectInfo(b []byte, o *object) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, o.ID)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, o.Name)
	b = append(b, `,"version":`...)
	b = appendNullableString(b, o.Version)
	b = append(b, `,"bucket_id":`...)
	b = appendJSONString(b, o.BucketID)
	b = append(b, `,"size":`...)
	b = appendInt64OrNull(b, o.meta.Size)
	b = append(b, `,"content_type":`...)
	b = appendNonEmptyOrNull(b, o.meta.Mimetype)
	b = append(b, `,"cache_control":`...)
	b = appendNonEmptyOrNull(b, o.meta.CacheControl)
	b = append(b, `,"etag":`...)
	b = appendNonEmptyOrNull(b, o.meta.ETag)
	b = append(b, `,"metadata":`...)
	b = appendRawOrNull(b, o.UserMetadata)
	b = append(b, `,"last_modified":`...)
	b = appendJSTime(b, o.UpdatedAt)
	b = append(b, `,"created_at":`...)
	b = appendJSTime(b, o.CreatedAt)
	return append(b, '}')
}

// appendObjectRow renders an object row in the reference's object schema (delete many, copy):
// plain-string fields render NULL as "".
func appendObjectRow(b []byte, o *object) []byte {
	b = append(b, `{"name":`...)
	b = appendJSONString(b, o.Name)
	b = append(b, `,"bucket_id":`...)
	b = appendJSONString(b, o.BucketID)
	b = append(b, `,"owner":`...)
	b = appendStringOrEmpty(b, o.Owner)
	b = append(b, `,"owner_id":`...)
	b = appendStringOrEmpty(b, o.OwnerID)
	b = append(b, `,"version":`...)
	b = appendStringOrEmpty(b, o.Version)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, o.ID)
	b = append(b, `,"updated_at":`...)
	b = appendJSTime(b, o.UpdatedAt)
	b = append(b, `,"created_at":`...)
	b = appendJSTime(b, o.CreatedAt)
	b = append(b, `,"last_accessed_at":`...)
	b = appendJSTime(b, o.LastAccessedAt)
	b = append(b, `,"metadata":`...)
	b = appendRawOrNull(b, o.Metadata)
	b = append(b, `,"user_metadata":`...)
	b = appendRawOrNull(b, o.UserMetadata)
	return append(b, '}')
}

func appendNullableString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendJSONString(b, *s)
}

func appendNonEmptyOrNull(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendJSONString(b, s)
}

func appendRawOrNull(b []byte, raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return append(b, "null"...)
	}
	return append(b, raw...)
}
