package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/blob/file"
	"github.com/pgstorage/storage/proxy"
)

// FuzzServe sends arbitrary S3 requests, each signed here with the door's key pair (so that
// every one reaches dispatch and its operation), through the whole handler of a server whose
// database cannot be reached: every request is refused with a 4xx and S3's XML error document,
// or gets as far as its database call, which fails as unavailable (503). Nothing answers 500.
func FuzzServe(f *testing.F) {
	var log bytes.Buffer
	h, auth := unreachableS3(f, &log)
	for _, c := range []struct {
		method           byte
		path, query      string
		header, value    string
		contentSHA, body string
	}{
		{0, "/s3", "", "", "", "", ""},
		{0, "/s3/b", "list-type=2&prefix=a/&delimiter=/&max-keys=10&encoding-type=url&continuation-token=bDpi", "", "", "", ""},
		{0, "/s3/b", "uploads&max-uploads=5", "", "", "", ""},
		{0, "/s3/b", "location", "", "", "", ""},
		{1, "/s3/b", "", "", "", "", `<CreateBucketConfiguration><LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>`},
		{4, "/s3/b", "", "", "", "", ""},
		{3, "/s3/b", "delete", "Content-MD5", "", "", `<Delete><Object><Key>a</Key></Object><Quiet>true</Quiet></Delete>`},
		{1, "/storage/v1/s3/b/dir/k.txt", "", "x-amz-meta-a", "1", sha256Hex("hello"), "hello"},
		{1, "/s3/b/k", "", "x-amz-copy-source", "/b/src%20x", "", ""},
		{1, "/s3/b/k", "partNumber=1&uploadId=v1", "x-amz-copy-source-range", "bytes=0-9", "", "part"},
		{2, "/s3/b/k", "uploads", "Content-Type", "text/plain", "", ""},
		{2, "/s3/b/k", "uploadId=v1", "", "", "", `<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"x"</ETag></Part></CompleteMultipartUpload>`},
		{0, "/s3/b/k", "uploadId=v1&max-parts=2&part-number-marker=1", "", "", "", ""},
		{0, "/s3/b/k", "", "Range", "bytes=0-1", "", ""},
		{4, "/s3/b/k", "", "If-None-Match", `"x"`, "", ""},
		{0, "/s3/b/k", "tagging", "", "", "", ""},
		{3, "/s3/b/k", "uploadId=v1", "", "", "", ""},
		{1, "/s3/b/k", "", "x-amz-decoded-content-length", "5", "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "5\r\nhello\r\n0\r\n\r\n"},
		{1, "/s3/b/k", "", "x-amz-checksum-crc32", "NhCmhg==", "", "hello"},
		{0, "/s3/%ff/%00", "", "", "", "", ""},
		{2, "/s3/b", "", "Content-Type", "multipart/form-data; boundary=XX", "", "--XX\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--XX--\r\n"},
	} {
		f.Add(c.method, c.path, c.query, c.header, c.value, c.contentSHA, c.body)
	}
	f.Fuzz(func(t *testing.T, method byte, path, query, header, value, contentSHA, body string) {
		var req fasthttp.Request
		req.Header.SetMethod(fuzzMethods[int(method)%len(fuzzMethods)])
		req.SetRequestURI(path)
		req.URI().SetQueryString(query)
		req.Header.SetHost("s3.example.com")
		if header != "" {
			req.Header.Set(header, value)
		}
		if contentSHA == "" {
			contentSHA = unsignedPayload
		}
		req.Header.Set("X-Amz-Content-Sha256", contentSHA)
		req.Header.Set("X-Amz-Date", testNow.Format(amzDateLayout))
		if body != "" {
			req.SetBodyString(body)
		}
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, nil, nil)
		// Signed as a client would: the canonical request of what was built.
		sr := sigRequest{signedHeaders: []string{"host", "x-amz-content-sha256", "x-amz-date"}, payload: contentSHA}
		sum := sha256.Sum256([]byte(canonicalRequest(&ctx, auth, &sr, parseQuery(ctx.URI().QueryString()))))
		sig := hex.EncodeToString(fuzzHMAC(fuzzKey(), sigAlgorithm+"\n"+testNow.Format(amzDateLayout)+"\n"+fuzzScope+"\n"+hex.EncodeToString(sum[:])))
		ctx.Request.Header.Set("Authorization", sigAlgorithm+" Credential="+testAK+"/"+fuzzScope+
			", SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="+sig)
		log.Reset()
		h(&ctx)

		r := &ctx.Response
		status := r.StatusCode()
		var doc struct {
			Code, Message string
		}
		// Paths outside /s3 fall through to the REST routes, whose errors are JSON.
		if status >= 400 && len(r.Body()) > 0 && strings.HasPrefix(string(r.Header.ContentType()), "application/xml") {
			require.NoError(t, xml.Unmarshal(r.Body(), &doc), "%s", r.Body())
			require.NotEmpty(t, doc.Code, "%s", r.Body())
		}
		unavailable := status == 503 && (ctx.IsHead() || doc.Message == proxy.ErrDatabaseUnavailable.Message)
		require.True(t, status < 500 || unavailable || status == 501 && doc.Code == errNotImplemented.Code,
			"HTTP %d for %s %q ? %q\n%s\n%s", status, ctx.Method(), path, query, r.Body(), log.String())
	})
}

// unreachableS3 is the S3 door mounted on a server whose database connections all fail at
// once, with a file blob store, and its verification settings (the test clock and keys).
func unreachableS3(tb testing.TB, log io.Writer) (fasthttp.RequestHandler, *authConfig) {
	cfg, err := pgxpool.ParseConfig("host=/nonexistent/fuzz user=fuzz dbname=fuzz connect_timeout=1")
	require.NoError(tb, err)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(tb, err)
	tb.Cleanup(pool.Close)
	logger := slog.New(slog.NewTextHandler(log, nil))
	blobs, err := file.New(tb.TempDir())
	require.NoError(tb, err)
	p := proxy.New(proxy.Config{JWTSecret: "fuzz-secret-fuzz-secret-fuzz-secret!!", Logger: logger, Blobs: blobs}, pool)
	s, err := New(p, blobs, Config{AccessKeyID: testAK, SecretKey: testSK, Region: "us-east-1", Logger: logger})
	require.NoError(tb, err)
	s.auth.Now = func() time.Time { return testNow }
	p.Mount(s)
	return p.Handler(), &s.auth
}
