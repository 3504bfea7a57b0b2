package proxy

import (
	"strings"

	"github.com/valyala/fasthttp"
)

// Browsers call the server directly (the reference leaves CORS to Supabase's gateway), so the
// proxy answers preflights for every route and marks every response for the allowed origins.

// corsAllowHeaders are the request headers storage-js and supabase-js send.
const corsAllowHeaders = "authorization, apikey, x-client-info, content-type, cache-control, x-upsert, x-metadata, x-robots-tag, range, if-none-match, if-modified-since, if-match, if-unmodified-since, content-encoding"

// corsExposeHeaders are the response headers clients read.
const corsExposeHeaders = "etag, content-length, content-range, content-disposition, content-type, cache-control, last-modified, accept-ranges, x-robots-tag, x-transformations, retry-after, x-request-id"

const corsAllowMethods = "GET, HEAD, POST, PUT, DELETE, OPTIONS"

// cors wraps h: OPTIONS is a preflight answered here (204), and every response to an allowed
// origin carries Access-Control-Allow-Origin and the exposed headers.
func (s *Server) cors(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		origin := string(ctx.Request.Header.Peek(fasthttp.HeaderOrigin))
		allowed := s.corsOrigin(origin)
		if ctx.IsOptions() {
			recordOf(ctx).op = s.preflight
			for _, d := range s.doors {
				if d.Preflight(ctx, []byte(requestPath(ctx))) {
					return
				}
			}
			if allowed != "" {
				hdr := &ctx.Response.Header
				s.setCORS(hdr, allowed)
				hdr.Set(fasthttp.HeaderAccessControlAllowMethods, corsAllowMethods)
				reqHeaders := ctx.Request.Header.Peek(fasthttp.HeaderAccessControlRequestHeaders)
				if len(reqHeaders) > 0 {
					hdr.SetBytesV(fasthttp.HeaderAccessControlAllowHeaders, reqHeaders)
				} else {
					hdr.Set(fasthttp.HeaderAccessControlAllowHeaders, corsAllowHeaders)
				}
				hdr.Set(fasthttp.HeaderAccessControlMaxAge, "86400")
			}
			ctx.SetStatusCode(fasthttp.StatusNoContent)
			return
		}
		h(ctx)
		// A door that set its own CORS headers (its expose list) keeps them.
		if allowed != "" && len(ctx.Response.Header.Peek(fasthttp.HeaderAccessControlAllowOrigin)) == 0 {
			s.setCORS(&ctx.Response.Header, allowed)
		}
	}
}

func (s *Server) setCORS(hdr *fasthttp.ResponseHeader, allowed string) {
	hdr.Set(fasthttp.HeaderAccessControlAllowOrigin, allowed)
	hdr.Set(fasthttp.HeaderAccessControlExposeHeaders, corsExposeHeaders)
	if allowed != "*" {
		hdr.Add(fasthttp.HeaderVary, "Origin")
	}
}

// corsOrigin returns the Access-Control-Allow-Origin value for a request from origin: "*"
// when every origin is allowed, the origin itself when it is listed, "" otherwise (no CORS
// headers: the browser blocks the response).
func (s *Server) corsOrigin(origin string) string {
	for _, o := range s.cfg.CORSAllowedOrigins {
		if o == "*" {
			return "*"
		}
		if origin != "" && strings.EqualFold(o, origin) {
			return origin
		}
	}
	return ""
}
