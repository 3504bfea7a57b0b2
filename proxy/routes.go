package proxy

import (
	"fmt"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
)

// Handler returns the router with every route of the server. This is the only place routes
// are registered: each line names method, path, operation id, authentication and handler.
func (s *Server) Handler() fasthttp.RequestHandler {
	r := router.New()
	// The reference neither redirects nor answers 405: anything unmatched is its 404.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = false
	r.HandleOPTIONS = false
	r.NotFound = s.notFound
	r.PanicHandler = s.panicked

	r.GET("/status", s.Status)
	r.GET("/version", s.Version)
	r.GET("/health", s.route(opHealth, authJWT, s.Health))

	r.POST("/bucket", s.route(opBucketCreate, authJWT, s.BucketCreate))
	r.GET("/bucket", s.route(opBucketList, authJWT, s.BucketList))
	r.GET("/bucket/{id}", s.route(opBucketGet, authJWT, s.BucketGet))
	r.PUT("/bucket/{id}", s.route(opBucketUpdate, authJWT, s.BucketUpdate))
	r.DELETE("/bucket/{id}", s.route(opBucketDelete, authJWT, s.BucketDelete))
	r.POST("/bucket/{id}/empty", s.route(opBucketEmpty, authJWT, s.BucketEmpty))

	return r.Handler
}

// notFound answers unmatched routes the way the reference does inside its API scopes: HTTP
// 404 with the usual four-field body.
func (s *Server) notFound(ctx *fasthttp.RequestCtx) {
	s.writeError(ctx, ErrRouteNotFound.with(fmt.Sprintf("Route %s:%s not found", ctx.Method(), ctx.RequestURI())))
}

// panicked turns a handler panic into a logged 500 instead of a dropped connection.
func (s *Server) panicked(ctx *fasthttp.RequestCtx, v any) {
	s.writeError(ctx, &Error{Status: 500, Code: "InternalError", Label: "Internal", Message: "Internal Server Error", HTTPStatus: 500, Cause: fmt.Errorf("panic: %v", v)})
}
