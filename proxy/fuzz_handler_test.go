package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/render"
)

// FuzzHandler sends arbitrary requests through the whole REST handler (router, CORS,
// Content-Type check, authentication, every route's parsing) of a server whose database
// cannot be reached: a request either is refused before the database, with a 4xx in the
// reference's error shape, or gets as far as its database call, which fails as unavailable
// (503). Nothing answers 500: every input a route parses is the client's to get wrong.
func FuzzHandler(f *testing.F) {
	var log bytes.Buffer // the request's log line: the cause of a failure
	h := unreachableServer(f, &log).Handler()

	service := "Bearer " + sign(hs256Header, `{"role":"service_role","exp":4102444800}`)
	user := "Bearer " + sign(hs256Header, `{"role":"authenticated","sub":"u1","exp":4102444800}`)
	download := sign(hs256Header, `{"url":"b/k","scope":"download","exp":4102444800}`)
	upload := sign(hs256Header, `{"url":"b/k","scope":"upload","owner":"u1","upsert":false,"exp":4102444800}`)
	renderToken := sign(hs256Header, `{"url":"b/k.png","scope":"download","transformations":"width:100,resize:undefined,gravity:fp:0.5:2","exp":4102444800}`)
	form := "--XX\r\nContent-Disposition: form-data; name=\"cacheControl\"\r\n\r\n60\r\n--XX\r\n" +
		"Content-Disposition: form-data; name=\"metadata\"\r\n\r\n{\"a\":1}\r\n--XX\r\n" +
		"Content-Disposition: form-data; name=\"\"; filename=\"a\"\r\nContent-Type: text/plain\r\n\r\nDATA\r\n--XX--\r\n"
	for _, c := range []struct {
		method        byte
		uri, auth, ct string
		header, value string
		body          string
	}{
		{0, "/status", "", "", "", "", ""},
		{0, "/bucket?limit=1&offset=0&sortColumn=name&sortOrder=desc&search=a", service, "", "", "", ""},
		{1, "/bucket", service, "application/json", "", "", `{"name":"b","public":true,"file_size_limit":"1MB","allowed_mime_types":["image/*"]}`},
		{2, "/bucket/b", service, "application/json", "", "", `{"public":false,"file_size_limit":null}`},
		{3, "/bucket/b", service, "application/json", "", "", ``},
		{1, "/bucket/b/empty", service, "", "", "", ""},
		{1, "/object/list/b", user, "application/json", "", "", `{"prefix":"f/","limit":10,"sortBy":{"column":"name","order":"asc"}}`},
		{1, "/object/list-v2/b", user, "application/json", "", "", `{"prefix":"f","with_delimiter":true,"cursor":"bDphCm86YXNjCmM6bmFtZQ=="}`},
		{1, "/object/move", user, "application/json", "", "", `{"bucketId":"b","sourceKey":"a","destinationKey":"c"}`},
		{1, "/object/copy", user, "application/json", "x-metadata", "eyJhIjoxfQ==", `{"bucketId":"b","sourceKey":"a","destinationKey":"c","metadata":{"k":1}}`},
		{1, "/object/b/k.txt", user, "text/plain", "x-robots-tag", "noindex", "hello"},
		{2, "/storage/v1/object/b/dir/k.txt", user, "multipart/form-data; boundary=XX", "x-upsert", "true", form},
		{0, "/object/b/k.txt", "", "", "Range", "bytes=0-1", ""},
		{0, "/object/authenticated/b/k", user, "", "If-None-Match", `"x"`, ""},
		{4, "/object/public/b/k", "", "", "If-Match", "*", ""},
		{0, "/object/info/b/k?width=10", user, "", "", "", ""},
		{3, "/object/b/k", user, "", "", "", ""},
		{3, "/object/b", user, "application/json", "", "", `{"prefixes":["a","b"]}`},
		{1, "/object/sign/b/k", user, "application/json", "", "", `{"expiresIn":60,"transform":{"width":100}}`},
		{1, "/object/sign/b", user, "application/json", "", "", `{"expiresIn":"60","paths":["a","b"]}`},
		{0, "/object/sign/b/k?token=" + download + "&download=a%20b", "", "", "", "", ""},
		{1, "/object/upload/sign/b/k", user, "", "x-upsert", "true", ""},
		{2, "/object/upload/sign/b/k?token=" + upload, "", "text/plain", "", "", "data"},
		{0, "/render/image/public/b/k.png?width=100&height=100&resize=cover&quality=80&format=origin", "", "", "Accept", "image/webp", ""},
		{0, "/render/image/authenticated/b/k.png?gravity=fp&x_offset=0.5&y_offset=0.5", user, "", "", "", ""},
		{0, "/render/image/sign/b/k.png?token=" + renderToken, "", "", "", "", ""},
		{5, "/object/b/k", "", "", "Origin", "https://example.com", ""},
		{0, "/object/%ff/%00", user, "", "", "", ""},
		{1, "/bucket", "Bearer not-a-jwt", "thisisnotarealmimetype", "", "", "{"},
	} {
		f.Add(c.method, c.uri, c.auth, c.ct, c.header, c.value, c.body)
	}
	methods := []string{fasthttp.MethodGet, fasthttp.MethodPost, fasthttp.MethodPut, fasthttp.MethodDelete,
		fasthttp.MethodHead, fasthttp.MethodOptions}
	f.Fuzz(func(t *testing.T, method byte, uri, auth, contentType, header, value, body string) {
		var req fasthttp.Request
		req.Header.SetMethod(methods[int(method)%len(methods)])
		req.SetRequestURI(uri)
		if auth != "" {
			req.Header.Set(fasthttp.HeaderAuthorization, auth)
		}
		if contentType != "" {
			req.Header.SetContentType(contentType)
		}
		if header != "" {
			req.Header.Set(header, value)
		}
		if body != "" {
			req.SetBodyString(body)
		}
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, nil, nil) // as a server would: the ctx is the calls' context
		log.Reset()
		h(&ctx)

		r := &ctx.Response
		status := r.StatusCode()
		unavailable := status == 503 && (ctx.IsHead() || strings.Contains(string(r.Body()), ErrDatabaseUnavailable.Message))
		require.True(t, status < 500 || unavailable, "HTTP %d for %s %q\n%s\n%s", status, ctx.Method(), uri, r.Body(), log.String())
		if status < 400 || ctx.IsHead() {
			return
		}
		var e map[string]any
		require.NoError(t, json.Unmarshal(r.Body(), &e), "%s", r.Body())
		require.Len(t, e, 4, "%s", r.Body())
		for _, k := range []string{"statusCode", "code", "error", "message"} {
			require.IsType(t, "", e[k], "%s in %s", k, r.Body())
		}
	})
}

// unreachableServer is a server whose database connections all fail at once (a socket
// directory that does not exist), with image transformation on: every route runs up to its
// database call.
func unreachableServer(tb testing.TB, log io.Writer) *Server {
	cfg, err := pgxpool.ParseConfig("host=/nonexistent/fuzz user=fuzz dbname=fuzz connect_timeout=1")
	require.NoError(tb, err)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(tb, err)
	tb.Cleanup(pool.Close)
	return New(Config{
		JWTSecret: testSecret,
		Version:   "9.9.9-fuzz",
		Logger:    slog.New(slog.NewTextHandler(log, nil)),
		Render:    RenderConfig{Engine: noEngine{}},
	}, pool)
}

// noEngine is a renderer that is never reached: sources are read from the database first.
type noEngine struct{}

func (noEngine) Render([]byte, render.Options, render.Format) ([]byte, error) {
	panic("render reached without a source")
}
