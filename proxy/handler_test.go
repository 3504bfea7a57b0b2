package proxy

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

// The router and the checks that run before any database call, exercised on a RequestCtx
// without a network or a database (the test server has no pool: reaching it would panic and
// come back as a 500).

type handlerCase struct {
	method, uri string
	headers     map[string]string
	body        string
}

func serve(t *testing.T, s *Server, c handlerCase) *fasthttp.Response {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(c.method)
	ctx.Request.SetRequestURI(c.uri)
	for k, v := range c.headers {
		ctx.Request.Header.Set(k, v)
	}
	if c.body != "" {
		ctx.Request.SetBodyString(c.body)
	}
	s.Handler()(&ctx)
	return &ctx.Response
}

func TestHandlerWithoutDatabase(t *testing.T) {
	t.Parallel()
	s := testServer()
	bearer := func(role string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + mint(t, jwt.SigningMethodHS256, []byte(testSecret),
			jwt.MapClaims{"role": role, "exp": time.Now().Add(time.Hour).Unix()})}
	}

	t.Run("Status", func(t *testing.T) {
		t.Parallel()
		r := serve(t, s, handlerCase{method: "GET", uri: "/status"})
		require.Equal(t, 200, r.StatusCode())
		require.Empty(t, r.Body())
	})

	t.Run("Version", func(t *testing.T) {
		t.Parallel()
		r := serve(t, s, handlerCase{method: "GET", uri: "/version"})
		require.Equal(t, 200, r.StatusCode())
		require.Equal(t, "text/plain; charset=utf-8", string(r.Header.ContentType()))
		require.Equal(t, "9.9.9-unit", string(r.Body()))
	})

	for _, tc := range []struct {
		name string
		c    handlerCase
		http int
		body string
	}{
		{"NotFound", handlerCase{method: "GET", uri: "/object/does-not-route"}, 404,
			body("404", "InvalidRequest", "Not Found", `"Route GET:/object/does-not-route not found"`)},
		{"NotFoundWithQuery", handlerCase{method: "GET", uri: "/nope?x=1"}, 404,
			body("404", "InvalidRequest", "Not Found", `"Route GET:/nope?x=1 not found"`)},
		{"MethodNotRouted", handlerCase{method: "PATCH", uri: "/bucket"}, 404,
			body("404", "InvalidRequest", "Not Found", `"Route PATCH:/bucket not found"`)},
		{"NoTrailingSlashRedirect", handlerCase{method: "GET", uri: "/status/"}, 404,
			body("404", "InvalidRequest", "Not Found", `"Route GET:/status/ not found"`)},
		{"HealthNeedsAuthorization", handlerCase{method: "GET", uri: "/health"}, 400,
			body("400", "InvalidRequest", "Error", `"headers must have required property 'authorization'"`)},
		{"BucketsNeedAuthorization", handlerCase{method: "GET", uri: "/bucket", headers: map[string]string{"apikey": "x"}}, 400,
			body("400", "InvalidRequest", "Error", `"headers must have required property 'authorization'"`)},
		{"MalformedJWT", handlerCase{method: "GET", uri: "/bucket", headers: map[string]string{"Authorization": "Bearer not-a-jwt"}}, 400,
			body("403", "AccessDenied", "Unauthorized", `"Invalid Compact JWS"`)},
		{"InvalidContentType", handlerCase{method: "POST", uri: "/bucket", headers: map[string]string{"Content-Type": "thisisnotarealmimetype"}, body: `{"name":"x"}`}, 400,
			body("415", "InvalidMimeType", "invalid_mime_type", `"Invalid Content-Type header"`)},
		// A role outside the allow-list is refused before the database (this server has none:
		// reaching it would be a 500), on optional-auth routes too.
		{"RoleNotAllowed", handlerCase{method: "GET", uri: "/bucket", headers: bearer("postgres")}, 403,
			body("403", "AccessDenied", "Unauthorized", `"Access denied: role \"postgres\" is not allowed"`)},
		{"RoleNotAllowedOptionalAuth", handlerCase{method: "GET", uri: "/object/b/k", headers: bearer("none")}, 403,
			body("403", "AccessDenied", "Unauthorized", `"Access denied: role \"none\" is not allowed"`)},
		{"EmptyRequiresServiceRole", handlerCase{method: "POST", uri: "/bucket/b/empty", headers: bearer("authenticated")}, 403,
			body("403", "AccessDenied", "Unauthorized", `"Access denied: Invalid role"`)},
		{"CreateNeedsName", handlerCase{method: "POST", uri: "/bucket", headers: withJSON(bearer("service_role")), body: `{"public":true}`}, 400,
			body("400", "InvalidRequest", "Error", `"body must have required property 'name'"`)},
		{"ListLimit", handlerCase{method: "GET", uri: "/bucket?limit=0", headers: bearer("service_role")}, 400,
			body("400", "InvalidRequest", "Error", `"querystring/limit must be >= 1"`)},
		{"ListOffset", handlerCase{method: "GET", uri: "/bucket?offset=-1", headers: bearer("service_role")}, 400,
			body("400", "InvalidRequest", "Error", `"querystring/offset must be >= 0"`)},
		{"ListSortColumn", handlerCase{method: "GET", uri: "/bucket?sortColumn=owner", headers: bearer("service_role")}, 400,
			body("400", "InvalidRequest", "Error", `"querystring/sortColumn must be equal to one of the allowed values"`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := serve(t, s, tc.c)
			require.Equal(t, tc.http, r.StatusCode())
			require.Equal(t, "application/json; charset=utf-8", string(r.Header.ContentType()))
			require.Equal(t, tc.body, string(r.Body()))
		})
	}

	t.Run("PanicIsA500", func(t *testing.T) {
		t.Parallel()
		var ctx fasthttp.RequestCtx
		ctx.Response.SetBodyString("partial")
		s.panicked(&ctx, "boom")
		require.Equal(t, 500, ctx.Response.StatusCode())
		require.Equal(t, body("500", "InternalError", "Internal", `"Internal Server Error"`), string(ctx.Response.Body()))
	})
}

func withJSON(h map[string]string) map[string]string {
	h["Content-Type"] = "application/json"
	return h
}

func TestLegacyPythonClient(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ua, info string
		legacy   bool
	}{
		{"", "", false},
		{"supabase-py/storage3 v0.12.0", "", true},
		{"supabase-py/storage3 v0.11.99", "", true},
		{"supabase-py/storage3 v0.12.1", "", false},
		{"supabase-py/storage3 v0.13.0", "", false},
		{"supabase-py/storage3 v1.0.0", "", false},
		{"python-httpx/0.27 supabase-py/storage3 v0.5.4", "", true},
		{"", "supabase-py/2.17.9", true},
		{"", " supabase-py/2.17.9 ", true},
		{"", "supabase-py/1.99.0", true},
		{"", "supabase-py/2.18.0", false},
		{"", "supabase-py/2.18.1", false},
		{"", "supabase-py/10.0.0", false},
		{"", "storage-js/2.119.0", false},
		{"supabase-py/storage3 v0.12.1", "supabase-py/2.17.9", true},
	} {
		require.Equal(t, tc.legacy, legacyPythonClient(tc.ua, tc.info), "ua %q, x-client-info %q", tc.ua, tc.info)
	}
}
