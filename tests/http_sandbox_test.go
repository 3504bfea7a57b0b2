package tests

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHTTPDownloadsRunNoScript: every download (GET and HEAD, on every read route, signed URLs
// and ?download included) forbids MIME sniffing, and every type but PDF comes with a sandbox
// policy, so that stored SVG, XHTML, XML… opened in a browser cannot run script in the storage
// origin (headless Chromium checks the effect in tests/js/browser.test.js).
func TestHTTPDownloadsRunNoScript(t *testing.T) {
	t.Parallel()
	o := &objEnv{setupHTTP(t)}
	o.mkBucket(t, `{"name":"pub","public":true}`)
	for _, tc := range []struct {
		mimetype string
		sandbox  bool
	}{
		{"image/svg+xml", true},
		{"IMAGE/SVG+XML; charset=utf-8", true},
		{"application/xhtml+xml", true},
		{"text/xml", true},
		{"application/xml", true},
		{"application/rss+xml", true},
		{"text/xsl", true},
		{"multipart/x-mixed-replace; boundary=x", true},
		{"text/html", true}, // served as text/plain
		{"text/plain", true},
		{"application/octet-stream", true},
		{"image/png", true},
		{"application/javascript", true},
		{"application/pdf", false},
		{"Application/PDF; x=y", false},
	} {
		t.Run(strings.NewReplacer("/", "_", " ", "", ";", "_").Replace(tc.mimetype), func(t *testing.T) {
			t.Parallel()
			key := "f-" + strings.NewReplacer("/", "_", " ", "", ";", "_", "=", "_").Replace(tc.mimetype)
			content := "<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"
			requireUploaded(t, o.upload(t, "POST", "pub", key, o.service, content, withHeader("Content-Type", tc.mimetype)), "pub/"+key)
			signed := o.signURL(t, "pub", key, o.service, 60)
			for _, req := range []struct{ method, path, token string }{
				{"GET", "/object/pub/" + key, ""},
				{"GET", "/object/pub/" + key, o.service},
				{"GET", "/object/pub/" + key + "?download", o.service},
				{"GET", "/object/authenticated/pub/" + key, o.service},
				{"GET", "/object/public/pub/" + key, ""},
				{"GET", "/object/public/pub/" + key + "?download=x.svg", ""},
				{"GET", signEncodeURI(signed), ""},
				{"HEAD", "/object/pub/" + key, ""},
				{"HEAD", "/object/authenticated/pub/" + key, o.service},
				{"HEAD", "/object/public/pub/" + key, ""},
				{"HEAD", "/object/info/pub/" + key, o.service},
			} {
				what := req.method + " " + req.path
				r := o.do(t, req.method, req.path, req.token, "")
				require.Equal(t, http.StatusOK, r.Status, "%s: %s", what, r)
				require.Equal(t, "nosniff", r.Header.Get("X-Content-Type-Options"), what)
				if tc.sandbox {
					require.Equal(t, "sandbox", r.Header.Get("Content-Security-Policy"), what)
				} else {
					require.Empty(t, r.Header.Values("Content-Security-Policy"), what)
				}
				if req.method == "GET" {
					require.Equal(t, content, string(r.Body), what)
				}
				// A revalidation (304) carries them too.
				if etag := r.Header.Get("ETag"); req.method == "GET" && !strings.Contains(req.path, "token=") {
					r := o.do(t, "GET", req.path, req.token, "", withHeader("If-None-Match", etag))
					require.Equal(t, http.StatusNotModified, r.Status, what)
					require.Equal(t, "nosniff", r.Header.Get("X-Content-Type-Options"), what)
				}
			}
		})
	}
}
