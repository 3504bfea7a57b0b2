package proxy

import (
	"fmt"

	"github.com/fasthttp/router"
	"github.com/valyala/fasthttp"
)

// gatewayPrefix is where Supabase's API gateway serves storage, so where supabase-js sends
// it (createClient(url).storage calls <url>/storage/v1/…). Every route answers there too.
const gatewayPrefix = "/storage/v1"

// Handler returns the router with every route of the server, wrapped in CORS (which answers
// every preflight, whatever the path).
func (s *Server) Handler() fasthttp.RequestHandler {
	return s.observe(s.handler())
}

func (s *Server) handler() fasthttp.RequestHandler {
	h := s.router().Handler
	var owners []Prefixed
	for _, d := range s.doors {
		if p, ok := d.(Prefixed); ok {
			owners = append(owners, p)
		}
	}
	if len(owners) == 0 {
		return s.cors(h)
	}
	return s.cors(func(ctx *fasthttp.RequestCtx) {
		path := ctx.Request.URI().PathOriginal()
		if len(path) > len(gatewayPrefix) && string(path[:len(gatewayPrefix)]) == gatewayPrefix && path[len(gatewayPrefix)] == '/' {
			path = path[len(gatewayPrefix):]
		}
		for _, o := range owners {
			p := o.Prefix()
			if len(path) >= len(p) && string(path[:len(p)]) == p && (len(path) == len(p) || path[len(p)] == '/') &&
				o.ServePrefix(ctx, path[len(p):]) {
				return
			}
		}
		h(ctx)
	})
}

// Routes lists the registered paths by method, each route at both shapes, for tests and tools
// that check every route is reachable.
func (s *Server) Routes() map[string][]string {
	return s.router().List()
}

// router builds the router. This is the only place routes are registered: each line names
// method, path, operation id, authentication and handler, and mounts the route at /… and at
// /storage/v1/….
func (s *Server) router() *router.Router {
	rt := router.New()
	// The reference neither redirects nor answers 405: anything unmatched is its 404.
	rt.RedirectTrailingSlash = false
	rt.RedirectFixedPath = false
	rt.HandleMethodNotAllowed = false
	rt.HandleOPTIONS = false
	rt.NotFound = s.notFound
	rt.PanicHandler = s.panicked
	r := bothShapes{rt}

	r.GET("/status", s.probe(opStatus, s.Status))
	r.GET("/version", s.probe(opVersion, s.Version))
	if s.cfg.ServeMetrics {
		r.GET("/metrics", s.metricsHandler())
	}
	r.GET("/health", s.route(opHealth, authJWT, s.Health))

	r.POST("/bucket", s.route(opBucketCreate, authJWT, s.BucketCreate))
	r.GET("/bucket", s.route(opBucketList, authJWT, s.BucketList))
	r.GET("/bucket/{id}", s.route(opBucketGet, authJWT, s.BucketGet))
	r.PUT("/bucket/{id}", s.route(opBucketUpdate, authJWT, s.BucketUpdate))
	r.DELETE("/bucket/{id}", s.route(opBucketDelete, authJWT, s.BucketDelete))
	r.POST("/bucket/{id}/empty", s.route(opBucketEmpty, authJWT, s.BucketEmpty))

	// Literal segments win over /object/{bucket}/…, so a bucket named "list" is unreachable
	// by the short routes (as in the reference).
	r.POST("/object/move", s.route(opObjectMove, authJWT, s.ObjectMove))
	r.POST("/object/copy", s.route(opObjectCopy, authJWT, s.ObjectCopy))
	r.POST("/object/list/{bucket}", s.route(opObjectList, authJWT, s.ObjectList))
	r.POST("/object/list-v2/{bucket}", s.route(opObjectListV2, authBearer, s.ObjectListV2))
	r.POST("/object/{bucket}/{key:*}", s.route(opObjectUpload, authJWT, s.ObjectUpload))
	r.PUT("/object/{bucket}/{key:*}", s.route(opObjectUploadUpdate, authJWT, s.ObjectUpload))
	r.GET("/object/authenticated/{bucket}/{key:*}", s.route(opObjectGetAuthenticated, authJWT, s.ObjectGet(readAuthenticated)))
	r.GET("/object/public/{bucket}/{key:*}", s.route(opObjectGetPublic, authNone, s.ObjectGet(readPublic)))
	r.GET("/object/{bucket}/{key:*}", s.route(opObjectGetAuthenticated, authOptional, s.ObjectGet(readOptional)))
	r.HEAD("/object/authenticated/{bucket}/{key:*}", s.route(opObjectHeadInfo, authJWT, s.ObjectHead(readAuthenticated)))
	r.HEAD("/object/public/{bucket}/{key:*}", s.route(opObjectInfoPublic, authNone, s.ObjectHead(readPublic)))
	r.HEAD("/object/{bucket}/{key:*}", s.route(opObjectHeadInfo, authOptional, s.ObjectHead(readOptional)))
	r.GET("/object/info/authenticated/{bucket}/{key:*}", s.route(opObjectInfoAuth, authJWT, s.ObjectInfo(readAuthenticated)))
	r.GET("/object/info/public/{bucket}/{key:*}", s.route(opObjectInfoPublic, authNone, s.ObjectInfo(readPublic)))
	r.GET("/object/info/{bucket}/{key:*}", s.route(opObjectInfoAuth, authOptional, s.ObjectInfo(readOptional)))
	r.HEAD("/object/info/{bucket}/{key:*}", s.route(opObjectHeadInfo, authOptional, s.ObjectHead(readOptional)))
	r.DELETE("/object/{bucket}/{key:*}", s.route(opObjectDelete, authJWT, s.ObjectDelete))
	r.DELETE("/object/{bucket}", s.route(opObjectDeleteMany, authJWT, s.ObjectDeleteMany))

	r.POST("/object/sign/{bucket}/{key:*}", s.route(opObjectSign, authJWT, s.ObjectSign))
	r.POST("/object/sign/{bucket}", s.route(opObjectSignMany, authJWT, s.ObjectSignMany))
	r.GET("/object/sign/{bucket}/{key:*}", s.route(opObjectGetSigned, authNone, s.ObjectGetSigned))
	r.POST("/object/upload/sign/{bucket}/{key:*}", s.route(opObjectSignUploadURL, authJWT, s.ObjectSignUpload))
	r.PUT("/object/upload/sign/{bucket}/{key:*}", s.route(opObjectUploadSigned, authNone, s.ObjectUploadSigned))

	if s.cfg.Render.Engine != nil {
		for _, m := range []string{fasthttp.MethodGet, fasthttp.MethodHead} {
			r.handle(m, "/render/image/public/{bucket}/{key:*}", s.rateLimited(opRenderPublic, s.route(opRenderPublic, authNone, s.RenderImage(readPublic))))
			r.handle(m, "/render/image/authenticated/{bucket}/{key:*}", s.rateLimited(opRenderAuthenticated, s.route(opRenderAuthenticated, authBearer, s.RenderImage(readAuthenticated))))
			r.handle(m, "/render/image/sign/{bucket}/{key:*}", s.rateLimited(opRenderSigned, s.route(opRenderSigned, authNone, s.RenderImageSigned)))
		}
	}

	for _, d := range s.doors {
		for _, rt := range d.Routes() {
			r.handle(rt.Method, rt.Path, rt.Handler)
		}
	}

	return rt
}

// bothShapes registers each route twice in one tree: at its path, as the reference serves it,
// and under gatewayPrefix, as clients address it through Supabase's gateway. Registering
// (rather than stripping the prefix before routing) keeps matching on the path the client
// sent, literal segments first in both shapes, and leaves the request untouched: its
// RequestURI (404 messages, logs) is what was sent; request.path drops the prefix (settings).
type bothShapes struct{ rt *router.Router }

func (b bothShapes) handle(method, path string, h fasthttp.RequestHandler) {
	b.rt.Handle(method, path, h)
	b.rt.Handle(method, gatewayPrefix+path, h)
}

func (b bothShapes) GET(path string, h fasthttp.RequestHandler) {
	b.handle(fasthttp.MethodGet, path, h)
}
func (b bothShapes) HEAD(path string, h fasthttp.RequestHandler) {
	b.handle(fasthttp.MethodHead, path, h)
}
func (b bothShapes) POST(path string, h fasthttp.RequestHandler) {
	b.handle(fasthttp.MethodPost, path, h)
}
func (b bothShapes) PUT(path string, h fasthttp.RequestHandler) {
	b.handle(fasthttp.MethodPut, path, h)
}
func (b bothShapes) DELETE(path string, h fasthttp.RequestHandler) {
	b.handle(fasthttp.MethodDelete, path, h)
}

// requestPath is what request.path holds: the request URI (query included) without the
// gateway prefix, so a policy sees one path whichever shape the client used, as the
// reference does behind Supabase's gateway (which strips the prefix before storage sees the
// request). Only a route under the prefix can match a URI that starts with it.
func requestPath(ctx *fasthttp.RequestCtx) string {
	uri := ctx.RequestURI()
	if len(uri) > len(gatewayPrefix) && uri[len(gatewayPrefix)] == '/' && string(uri[:len(gatewayPrefix)]) == gatewayPrefix {
		return string(uri[len(gatewayPrefix):])
	}
	return string(uri)
}

// notFound answers unmatched routes the way the reference does inside its API scopes: HTTP
// 404 with the usual four-field body.
func (s *Server) notFound(ctx *fasthttp.RequestCtx) {
	s.writeError(ctx, ErrRouteNotFound.with(fmt.Sprintf("Route %s:%s not found", ctx.Method(), ctx.RequestURI())))
}

// panicked turns a handler panic into a logged 500 instead of a dropped connection.
func (s *Server) panicked(ctx *fasthttp.RequestCtx, v any) {
	s.writeError(ctx, internalError(fmt.Errorf("panic: %v", v)))
}
