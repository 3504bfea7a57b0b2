package tus

import (
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// The headers of TUS.md §6.1 and §15.
const (
	tusExtensions = "creation,creation-with-upload,creation-defer-length,termination,expiration"
	allowMethods  = "POST, HEAD, PATCH, OPTIONS, DELETE"
	allowHeaders  = "Authorization, Content-Type, Location, Tus-Extension, Tus-Max-Size, Tus-Resumable, Tus-Version, Upload-Concat, Upload-Defer-Length, Upload-Length, Upload-Metadata, Upload-Offset, X-HTTP-Method-Override, X-Requested-With, X-Forwarded-Host, X-Forwarded-Proto, Forwarded, Authorization, X-Upsert, Upload-Expires, ApiKey, x-signature, x-client-info"
	// The reference's list, plus Upload-Expires and Tus-Complete: browsers may read those too.
	exposeHeaders     = "Authorization, Content-Type, Location, Tus-Extension, Tus-Max-Size, Tus-Resumable, Tus-Version, Upload-Concat, Upload-Defer-Length, Upload-Length, Upload-Metadata, Upload-Offset, X-HTTP-Method-Override, X-Requested-With, X-Forwarded-Host, X-Forwarded-Proto, Forwarded, Upload-Expires, Tus-Complete"
	offsetOctetStream = "application/offset+octet-stream"
)

// validated lists, in alphabetical order, the headers checked on every request but OPTIONS
// (content-type on PATCH only).
var validated = []struct {
	name  string
	valid func(v string, method []byte) bool
}{
	{"content-type", func(v string, m []byte) bool { return string(m) != fasthttp.MethodPatch || v == offsetOctetStream }},
	{"tus-resumable", func(v string, _ []byte) bool { return v == "1.0.0" }},
	{"tus-version", func(v string, _ []byte) bool { return v == "1.0.0" }},
	{"upload-concat", func(v string, _ []byte) bool { return v == "partial" || strings.HasPrefix(v, "final;") }},
	{"upload-defer-length", func(v string, _ []byte) bool { return v == "1" }},
	{"upload-length", func(v string, _ []byte) bool { _, ok := parseSize(v); return ok }},
	{"upload-metadata", func(v string, _ []byte) bool { _, ok := parseMetadata(v); return ok }},
	{"upload-offset", func(v string, _ []byte) bool { _, ok := parseSize(v); return ok }},
	{"x-forwarded-proto", func(v string, _ []byte) bool { return v == "http" || v == "https" }},
}

// validateHeaders is the tus core's check (TUS.md §3 step 2): Tus-Resumable present (412),
// then every present protocol header well-formed (400 naming all the bad ones).
func validateHeaders(ctx *fasthttp.RequestCtx) *Error {
	h := &ctx.Request.Header
	if len(h.Peek("Tus-Resumable")) == 0 {
		return errResumableRequired
	}
	var bad []string
	for _, v := range validated {
		val := h.Peek(v.name)
		if len(val) == 0 {
			continue
		}
		if !v.valid(string(val), h.Method()) {
			bad = append(bad, v.name)
		}
	}
	if len(bad) > 0 {
		return tusErr(400, "Invalid "+strings.Join(bad, " ")+"\n")
	}
	return nil
}

// parseSize parses a non-negative decimal in canonical form (no sign, no leading zeros).
func parseSize(v string) (int64, bool) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != v {
		return 0, false
	}
	return n, true
}

// header returns a request header's value and whether it was sent. An empty value counts as
// none: fasthttp cannot tell an empty Content-Type from a missing one.
func header(ctx *fasthttp.RequestCtx, name string) (string, bool) {
	v := ctx.Request.Header.Peek(name)
	return string(v), len(v) > 0
}

// setCORS marks a TUS response for the allowed origins, with TUS's exposed headers.
func (s *Server) setCORS(ctx *fasthttp.RequestCtx) {
	origin := s.p.CORSOrigin(string(ctx.Request.Header.Peek(fasthttp.HeaderOrigin)))
	if origin == "" {
		return
	}
	hdr := &ctx.Response.Header
	hdr.Set(fasthttp.HeaderAccessControlAllowOrigin, origin)
	hdr.Set(fasthttp.HeaderAccessControlExposeHeaders, exposeHeaders)
	if origin != "*" {
		hdr.Add(fasthttp.HeaderVary, "Origin")
	}
}

// Preflight implements proxy.Door: OPTIONS on any path under /upload/resumable is TUS's
// capability discovery and CORS preflight (TUS.md §6.1): no auth, 204.
func (s *Server) Preflight(ctx *fasthttp.RequestCtx, path []byte) bool {
	p := string(path)
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if p != basePath && !strings.HasPrefix(p, basePath+"/") {
		return false
	}
	s.setCORS(ctx)
	hdr := &ctx.Response.Header
	hdr.Set("Tus-Resumable", "1.0.0")
	hdr.Set("Tus-Version", "1.0.0")
	hdr.Set("Tus-Extension", tusExtensions)
	if max := s.p.UploadFileSizeLimit(); max > 0 {
		hdr.Set("Tus-Max-Size", strconv.FormatInt(max, 10))
	}
	if len(hdr.Peek(fasthttp.HeaderAccessControlAllowOrigin)) > 0 {
		hdr.Set(fasthttp.HeaderAccessControlAllowMethods, allowMethods)
		hdr.Set(fasthttp.HeaderAccessControlAllowHeaders, allowHeaders)
		hdr.Set(fasthttp.HeaderAccessControlMaxAge, "86400")
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return true
}
