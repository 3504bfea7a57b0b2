package proxy

import "github.com/valyala/fasthttp"

// Status answers GET /status: 200 with an empty body, no database involved (load balancers).
func (s *Server) Status(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusOK)
}

// Version answers GET /version with the configured version string.
func (s *Server) Version(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(s.cfg.Version)
}

// Health answers GET /health: {"healthy":true} when the database answers a storage call as
// the caller, {"healthy":false} when it does not. The JWT must be valid.
func (s *Server) Health(r *request) error {
	one := 1 // the cheapest storage call as the caller: a page of one bucket
	if _, err := s.db.BucketList(ctxOf(r), s.settings(r), bucketListParams{Limit: &one}); err != nil {
		s.log.Warn("health probe failed", "err", err)
		return writeJSON(r.ctx, []byte(`{"healthy":false}`))
	}
	return writeJSON(r.ctx, []byte(`{"healthy":true}`))
}
