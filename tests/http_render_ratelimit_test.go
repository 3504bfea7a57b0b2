package tests

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/proxy"
)

// TestRenderRateLimit: spec RENDER.md §13 assertion 40. With 1 request per second allowed,
// the 5th request to one path from one address within the 4-second window is refused, before
// any other work; another path, or another address, is still served.
func TestRenderRateLimit(t *testing.T) {
	t.Parallel()
	o := newObjEnv(t, objectBackends[0], withRender(func(c *proxy.RenderConfig) { c.RateLimit = 1 }))
	o.mkBucket(t, `{"name":"pb","public":true}`)
	o.mustUpload(t, "pb", "a.png", redBluePNG(t, 40, 20), withHeader("Content-Type", "image/png"))
	o.mustUpload(t, "pb", "b.png", redBluePNG(t, 40, 20), withHeader("Content-Type", "image/png"))
	for i := range 4 {
		r := o.get(t, "/render/image/public/pb/a.png?width="+string(rune('1'+i)), "")
		require.Equal(t, http.StatusOK, r.Status, "request %d: %s", i+1, r)
	}
	r := o.get(t, "/render/image/public/pb/a.png?width=9", "")
	require.Equal(t, http.StatusTooManyRequests, r.Status)
	require.JSONEq(t, `{"statusCode":"429","error":"Too Many Requests","code":"SlowDown","message":"Rate limit exceeded, retry in 4 seconds"}`, string(r.Body))
	require.Empty(t, r.Header.Get("Retry-After"))

	require.Equal(t, http.StatusOK, o.get(t, "/render/image/public/pb/b.png?width=1", "").Status, "another path")
	require.Equal(t, http.StatusOK, o.get(t, "/render/image/public/pb/a.png?width=1", "", withHeader("X-Real-IP", "10.1.2.3")).Status,
		"another address")
	require.Equal(t, http.StatusOK, o.get(t, "/object/public/pb/a.png", "").Status, "downloads are not limited")
}

// TestObjectReadsEchoTransformations: spec RENDER.md §11. The object HEAD and info routes take
// the transformation query (validated the same way), transform nothing, and echo it.
func TestObjectReadsEchoTransformations(t *testing.T) {
	t.Parallel()
	o := newObjEnv(t, objectBackends[0])
	o.mkBucket(t, `{"name":"pb","public":true}`)
	o.mustUpload(t, "pb", "a.png", "not even an image", withHeader("Content-Type", "image/jpeg"))
	for _, path := range []string{"/object/public/pb/a.png", "/object/pb/a.png", "/object/authenticated/pb/a.png"} {
		r := o.do(t, "HEAD", path+"?width=100&height=5000&quality=50", o.service, "")
		require.Equal(t, http.StatusOK, r.Status, path)
		require.Equal(t, "height:2000,width:100,resizing_type:fill,quality:50", r.Header.Get("X-Transformations"), path)
		require.Equal(t, "17", r.Header.Get("Content-Length"), "nothing transformed: %s", path)
	}
	r := o.get(t, "/object/info/public/pb/a.png?format=webp", "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r)
	require.Equal(t, "format:webp", r.Header.Get("X-Transformations"))
	r = o.get(t, "/object/info/pb/a.png", o.service)
	require.Equal(t, http.StatusOK, r.Status, "%s", r)
	require.Empty(t, r.Header.Values("X-Transformations"))

	r = o.get(t, "/object/info/public/pb/a.png?format=avif%0Axyz", "")
	require.Equal(t, http.StatusBadRequest, r.Status)
	require.JSONEq(t, `{"statusCode":"400","code":"InvalidRequest","error":"Error","message":"querystring/format must be equal to one of the allowed values"}`, string(r.Body))
	r = o.do(t, "HEAD", "/object/public/pb/a.png?width=-1", "", "")
	require.Equal(t, http.StatusBadRequest, r.Status)
}
