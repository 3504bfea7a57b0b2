package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCORS(t *testing.T) {
	t.Parallel()

	t.Run("PreflightAnyRoute", func(t *testing.T) {
		t.Parallel()
		s := testServer()
		for _, uri := range []string{"/object/b/folder/k.png", "/bucket", "/object/sign/b/k", "/nowhere"} {
			resp := serve(t, s, handlerCase{method: "OPTIONS", uri: uri, headers: map[string]string{
				"Origin":                         "http://app.example",
				"Access-Control-Request-Method":  "POST",
				"Access-Control-Request-Headers": "authorization, x-client-info, content-type, x-upsert",
			}})
			require.Equal(t, 204, resp.StatusCode(), uri)
			require.Empty(t, resp.Body())
			require.Equal(t, "*", string(resp.Header.Peek("Access-Control-Allow-Origin")))
			require.Equal(t, "authorization, x-client-info, content-type, x-upsert", string(resp.Header.Peek("Access-Control-Allow-Headers")))
			require.Equal(t, "GET, HEAD, POST, PUT, DELETE, OPTIONS", string(resp.Header.Peek("Access-Control-Allow-Methods")))
			require.Equal(t, corsExposeHeaders, string(resp.Header.Peek("Access-Control-Expose-Headers")))
		}
	})

	t.Run("PreflightWithoutRequestedHeadersListsOurs", func(t *testing.T) {
		t.Parallel()
		resp := serve(t, testServer(), handlerCase{method: "OPTIONS", uri: "/bucket", headers: map[string]string{"Origin": "http://a"}})
		require.Equal(t, corsAllowHeaders, string(resp.Header.Peek("Access-Control-Allow-Headers")))
		for _, h := range []string{"authorization", "apikey", "x-client-info", "content-type", "cache-control", "x-upsert", "x-metadata", "range", "if-none-match", "if-match", "if-unmodified-since"} {
			require.Contains(t, corsAllowHeaders, h)
		}
		for _, h := range []string{"etag", "content-length", "content-range", "content-disposition"} {
			require.Contains(t, corsExposeHeaders, h)
		}
	})

	t.Run("ResponsesCarryAllowOrigin", func(t *testing.T) {
		t.Parallel()
		resp := serve(t, testServer(), handlerCase{method: "GET", uri: "/status", headers: map[string]string{"Origin": "http://a"}})
		require.Equal(t, 200, resp.StatusCode())
		require.Equal(t, "*", string(resp.Header.Peek("Access-Control-Allow-Origin")))
		// Errors too: the client must be able to read the error body.
		resp = serve(t, testServer(), handlerCase{method: "GET", uri: "/bucket", headers: map[string]string{"Origin": "http://a"}})
		require.Equal(t, 400, resp.StatusCode())
		require.Equal(t, "*", string(resp.Header.Peek("Access-Control-Allow-Origin")))
	})

	t.Run("ConfiguredOrigins", func(t *testing.T) {
		t.Parallel()
		s := testServer()
		s.cfg.CORSAllowedOrigins = []string{"http://app.example", "https://other.example"}
		resp := serve(t, s, handlerCase{method: "GET", uri: "/status", headers: map[string]string{"Origin": "https://other.example"}})
		require.Equal(t, "https://other.example", string(resp.Header.Peek("Access-Control-Allow-Origin")))
		require.Equal(t, "Origin", string(resp.Header.Peek("Vary")))

		resp = serve(t, s, handlerCase{method: "GET", uri: "/status", headers: map[string]string{"Origin": "http://evil.example"}})
		require.Equal(t, 200, resp.StatusCode())
		require.Empty(t, resp.Header.Peek("Access-Control-Allow-Origin"))
		resp = serve(t, s, handlerCase{method: "OPTIONS", uri: "/bucket", headers: map[string]string{"Origin": "http://evil.example"}})
		require.Equal(t, 204, resp.StatusCode())
		require.Empty(t, resp.Header.Peek("Access-Control-Allow-Origin"))
		require.Empty(t, resp.Header.Peek("Access-Control-Allow-Methods"))
	})
}
