package tus

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/blob/file"
	"github.com/pgstorage/storage/proxy"
)

const fuzzSecret = "fuzz-secret-fuzz-secret-fuzz-secret!!"

// fuzzToken is an HS256 token with payload, signed with the server's secret.
func fuzzToken(payload string) string {
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(payload))
	mac := hmac.New(sha256.New, []byte(fuzzSecret))
	mac.Write([]byte(input))
	return input + "." + enc.EncodeToString(mac.Sum(nil))
}

// FuzzServe sends arbitrary TUS requests through the whole handler of a server whose database
// cannot be reached: each is refused with a 4xx (in the TUS format, or the REST one for a bad
// JWT), or gets as far as its database call, which fails as unavailable (503). Nothing answers
// 500; the one 501 is the unsupported concatenation extension.
func FuzzServe(f *testing.F) {
	var log bytes.Buffer
	h := unreachableTUS(f, &log)
	user := "Bearer " + fuzzToken(`{"role":"authenticated","sub":"u1","exp":4102444800}`)
	upload := fuzzToken(`{"url":"b/dir/a.txt","scope":"upload","owner":"u1","upsert":true,"exp":4102444800}`)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	meta := "bucketName " + b64("b") + ",objectName " + b64("dir/a.txt") + ",contentType " + b64("text/plain") +
		",cacheControl " + b64("3600") + ",metadata " + b64(`{"a":1}`)
	id := uploadID{Bucket: "b", Name: "dir/a.txt", Version: "0b6e5a1c-1111-2222-3333-444455556666"}.String()
	for _, c := range []struct {
		method                   byte
		path, auth, meta, length string
		header, value, body      string
	}{
		{0, "/upload/resumable", user, meta, "5", "", "", ""},
		{0, "/storage/v1/upload/resumable", user, meta, "5", "Content-Type", offsetOctetStream, "hello"},
		{0, "/upload/resumable", user, meta, "", "Upload-Defer-Length", "1", ""},
		{0, "/upload/resumable", user, meta, "0", "", "", ""},
		{0, "/upload/resumable/sign", "", meta, "5", "x-signature", upload, ""},
		{0, "/upload/resumable", user, meta, "5", "Upload-Concat", "final;/a /b", ""},
		{1, "/upload/resumable/" + id, user, "", "", "", "", ""},
		{2, "/upload/resumable/" + id, user, "", "", "Upload-Offset", "0", "hello"},
		{2, "/upload/resumable/sign/" + id, "", "", "", "x-signature", upload, "hello"},
		{3, "/upload/resumable/" + id, user, "", "", "", "", ""},
		{4, "/upload/resumable/" + id, user, "", "", "", "", ""},
		{5, "/upload/resumable/" + id, "", "", "", "Origin", "https://example.com", ""},
		{1, "/upload/resumable/!!!", user, "", "", "", "", ""},
		{0, "/upload/resumable", "Bearer nope", meta, "-1", "", "", ""},
	} {
		f.Add(c.method, c.path, c.auth, c.meta, c.length, c.header, c.value, c.body)
	}
	methods := []string{fasthttp.MethodPost, fasthttp.MethodHead, fasthttp.MethodPatch, fasthttp.MethodDelete,
		fasthttp.MethodPut, fasthttp.MethodOptions}
	f.Fuzz(func(t *testing.T, method byte, path, auth, metadata, length, header, value, body string) {
		var req fasthttp.Request
		m := methods[int(method)%len(methods)]
		req.Header.SetMethod(m)
		req.SetRequestURI(path)
		req.Header.Set("Tus-Resumable", "1.0.0")
		for name, v := range map[string]string{"Authorization": auth, "Upload-Metadata": metadata, "Upload-Length": length} {
			if v != "" {
				req.Header.Set(name, v)
			}
		}
		if header != "" {
			req.Header.Set(header, value)
		}
		if m == fasthttp.MethodPatch && len(req.Header.ContentType()) == 0 {
			req.Header.SetContentType(offsetOctetStream)
		}
		if body != "" {
			req.SetBodyString(body)
		}
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, nil, nil)
		log.Reset()
		h(&ctx)

		status := ctx.Response.StatusCode()
		unavailable := status == 503 && (m == fasthttp.MethodHead || bytes.Contains(ctx.Response.Body(), []byte(proxy.ErrDatabaseUnavailable.Message)))
		require.True(t, status < 500 || unavailable || status == 501 && bytes.Equal(ctx.Response.Body(), []byte(errConcat.Body)),
			"HTTP %d for %s %q\n%s\n%s", status, m, path, ctx.Response.Body(), log.String())
	})
}

// unreachableTUS is the TUS door mounted on a server whose database connections all fail at
// once, with a file blob store.
func unreachableTUS(tb testing.TB, log io.Writer) fasthttp.RequestHandler {
	cfg, err := pgxpool.ParseConfig("host=/nonexistent/fuzz user=fuzz dbname=fuzz connect_timeout=1")
	require.NoError(tb, err)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(tb, err)
	tb.Cleanup(pool.Close)
	logger := slog.New(slog.NewTextHandler(log, nil))
	blobs, err := file.New(tb.TempDir())
	require.NoError(tb, err)
	p := proxy.New(proxy.Config{JWTSecret: fuzzSecret, Logger: logger, Blobs: blobs}, pool)
	s, err := New(p, blobs, Config{Logger: logger})
	require.NoError(tb, err)
	tb.Cleanup(s.Close)
	p.Mount(s)
	return p.Handler()
}
