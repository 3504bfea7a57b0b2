package tests

// Client mistakes and hostile input are refused in the error format, logged at info at most,
// and store nothing: text PostgreSQL cannot take (invalid UTF-8, NUL, \u0000 in jsonb), bodies
// that end early or stall, requests fasthttp cannot parse. No credential reaches the log.

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// withLog sends the server's log, every level, to w.
func withLog(w io.Writer) httpOpt {
	return func(c *serverConfig) {
		c.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

// withReadTimeout sets SERVER_READ_TIMEOUT (how long a request body may stall) and
// SERVER_HEADER_TIMEOUT (which bounds a small body the server reads with the headers).
func withReadTimeout(d time.Duration) httpOpt {
	return func(c *serverConfig) { c.Limits.ReadIdle, c.HeaderTimeout = d, d }
}

// rawRequest writes head (request line and headers, without the blank line) and body on a
// connection of its own and returns the response. halfClose then closes the connection's
// sending side, as a client that stops mid-body does while still reading; without it the
// connection stays open, as a client that stalls.
func rawRequest(t *testing.T, baseURL, head string, body []byte, halfClose bool) httpResponse {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(60*time.Second)))
	// The body goes out from another goroutine: the server may answer (and stop reading)
	// before all of it is written.
	written := make(chan error, 1)
	go func() {
		_, err := conn.Write(append([]byte(head+"\r\n"), body...))
		if err == nil && halfClose {
			err = conn.(*net.TCPConn).CloseWrite()
		}
		written <- err
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "no response")
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	conn.Close()
	<-written
	return httpResponse{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// rawHead is a request head with Host and, when token is set, the bearer token.
func rawHead(method, target, token string, headers ...string) string {
	h := method + " " + target + " HTTP/1.1\r\nHost: test\r\n"
	if token != "" {
		h += "Authorization: Bearer " + token + "\r\n"
	}
	for i := 0; i+1 < len(headers); i += 2 {
		h += headers[i] + ": " + headers[i+1] + "\r\n"
	}
	return h
}

// chunked encodes data as chunks of at most 16 KiB, without the last (empty) chunk.
func chunked(data []byte) []byte {
	var b []byte
	for len(data) > 0 {
		n := min(len(data), 16<<10)
		b = append(b, strconv.FormatInt(int64(n), 16)+"\r\n"...)
		b = append(append(b, data[:n]...), "\r\n"...)
		data = data[n:]
	}
	return b
}

// requireQuietLog asserts that the server logged nothing at warn or error: a client's mistake
// is not the server's trouble.
func requireQuietLog(t *testing.T, logs *cliSyncBuffer) {
	t.Helper()
	for _, line := range strings.Split(logs.String(), "\n") {
		require.NotContains(t, line, "level=ERROR", "a client mistake was logged as an error")
		require.NotContains(t, line, "level=WARN", "a client mistake was logged as a warning")
	}
}

// b64 is base64 (the x-metadata encoding).
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func errNotText(what string) apiError {
	return apiError{"400", "InvalidRequest", "InvalidRequest", what + " must be UTF-8 text without NUL characters"}
}

func errSchemaNotText(where string) apiError {
	return apiError{"400", "InvalidRequest", "Error", where + " must be UTF-8 text without NUL characters"}
}

// TestHTTPTextRefused: every client string that reaches PostgreSQL as text or jsonb (URL,
// query values, JSON body properties, a list cursor, upload metadata and headers, form fields)
// is refused with a 400 when PostgreSQL could not store it, instead of the database's 500.
func TestHTTPTextRefused(t *testing.T) {
	t.Parallel()
	var logs cliSyncBuffer
	o := &objEnv{setupHTTP(t, withLog(&logs))}
	o.mkBucket(t, `{"name":"b"}`)
	o.mustUpload(t, "b", "a", "source")
	svc := o.service
	nulCursor := b64("l:a\x00\no:asc\nc:name")
	badCursor := b64("l:a\xff\no:asc\nc:name")
	form := func(field, value string) (string, string) {
		return multipartForm(t, [][2]string{{field, value}}, true, "text/plain", "bytes")
	}
	mpMetaNul, mpMetaNulCT := form("metadata", `{"a":"\u0000"}`)
	mpMetaFF, mpMetaFFCT := form("metadata", "{\"a\":\"\xff\"}")
	mpTypeNul, mpTypeNulCT := form("contentType", "text/plain\x00")
	mpCacheFF, mpCacheFFCT := form("cacheControl", "60\xff")
	raw := func(method, target string, headers ...string) func() httpResponse {
		return func() httpResponse {
			return rawRequest(t, o.baseURL, rawHead(method, target, svc, headers...), nil, false)
		}
	}
	cases := []struct {
		name string
		do   func() httpResponse
		want apiError
	}{
		// A raw byte that is not UTF-8 in the URL: request.path is text.
		{"URLQuery", raw("GET", "/bucket?x=\xff"), errSchemaNotText("url")},
		{"URLBucket", raw("GET", "/bucket/\xff"), errSchemaNotText("url")},
		{"URLKey", raw("GET", "/object/b/\xff"), errSchemaNotText("url")},
		{"URLSigned", raw("GET", "/object/sign/b/a?token=\xff"), errSchemaNotText("url")},
		// Query values passed on as text, percent-decoded.
		{"QuerySearchFF", func() httpResponse { return o.do(t, "GET", "/bucket?search=%FF", svc, "") }, errSchemaNotText("querystring/search")},
		{"QuerySearchNUL", func() httpResponse { return o.do(t, "GET", "/bucket?search=a%00", svc, "") }, errSchemaNotText("querystring/search")},
		// JSON body properties.
		{"BucketName", func() httpResponse { return o.do(t, "POST", "/bucket", svc, `{"name":"x\u0000"}`) }, errSchemaNotText("body/name")},
		{"BucketID", func() httpResponse { return o.do(t, "POST", "/bucket", svc, `{"name":"x","id":"x\u0000"}`) }, errSchemaNotText("body/id")},
		{"BucketMimeTypes", func() httpResponse {
			return o.do(t, "POST", "/bucket", svc, `{"name":"x","allowed_mime_types":["image/png","a\u0000"]}`)
		}, errSchemaNotText("body/allowed_mime_types")},
		{"BucketSizeLimit", func() httpResponse {
			return o.do(t, "POST", "/bucket", svc, `{"name":"x","file_size_limit":"1\u0000"}`)
		}, errSchemaNotText("body/file_size_limit")},
		{"BucketUpdate", func() httpResponse { return o.do(t, "PUT", "/bucket/b", svc, `{"allowed_mime_types":["\u0000"]}`) }, errSchemaNotText("body/allowed_mime_types")},
		{"ListPrefix", func() httpResponse { return o.do(t, "POST", "/object/list/b", svc, `{"prefix":"a\u0000"}`) }, errSchemaNotText("body/prefix")},
		{"ListSearch", func() httpResponse { return o.do(t, "POST", "/object/list/b", svc, `{"prefix":"","search":"\u0000"}`) }, errSchemaNotText("body/search")},
		{"ListV2Prefix", func() httpResponse { return o.do(t, "POST", "/object/list-v2/b", svc, `{"prefix":"a\u0000"}`) }, errSchemaNotText("body/prefix")},
		{"ListV2CursorNUL", func() httpResponse { return o.do(t, "POST", "/object/list-v2/b", svc, `{"cursor":"`+nulCursor+`"}`) }, errInvalidCursor},
		{"ListV2CursorFF", func() httpResponse { return o.do(t, "POST", "/object/list-v2/b", svc, `{"cursor":"`+badCursor+`"}`) }, errInvalidCursor},
		{"MoveKey", func() httpResponse {
			return o.move(t, svc, `{"bucketId":"b","sourceKey":"a","destinationKey":"c\u0000"}`)
		}, errSchemaNotText("body/destinationKey")},
		{"CopyBucket", func() httpResponse {
			return o.copyObject(t, svc, `{"bucketId":"b","sourceKey":"a","destinationKey":"c","destinationBucket":"\u0000"}`)
		}, errSchemaNotText("body/destinationBucket")},
		{"CopyBodyMetadataNUL", func() httpResponse {
			return o.copyObject(t, svc, `{"bucketId":"b","sourceKey":"a","destinationKey":"c","copyMetadata":false,"metadata":{"k":"\u0000"}}`)
		}, errSchemaNotText("body/metadata")},
		{"CopyBodyMetadataFF", func() httpResponse {
			return o.copyObject(t, svc, "{\"bucketId\":\"b\",\"sourceKey\":\"a\",\"destinationKey\":\"c\",\"copyMetadata\":false,\"metadata\":{\"\xff\":1}}")
		}, errSchemaNotText("body/metadata")},
		{"CopyXMetadata", func() httpResponse {
			return o.copyObject(t, svc, `{"bucketId":"b","sourceKey":"a","destinationKey":"c"}`, withHeader("x-metadata", b64(`{"\u0000":1}`)))
		}, errNotText("metadata")},
		{"DeleteMany", func() httpResponse { return o.do(t, "DELETE", "/object/b", svc, `{"prefixes":["a","\u0000"]}`) }, errSchemaNotText("body/prefixes")},
		{"SignMany", func() httpResponse {
			return o.do(t, "POST", "/object/sign/b", svc, `{"paths":["a\u0000"],"expiresIn":60}`)
		}, errSchemaNotText("body/paths")},
		// Uploads: metadata (jsonb) and the text fields, from headers or form fields.
		{"UploadXMetadataNUL", func() httpResponse {
			return o.upload(t, "POST", "b", "k", svc, "bytes", withHeader("x-metadata", b64(`{"a":"\u0000"}`)))
		}, errNotText("metadata")},
		{"UploadXMetadataFF", func() httpResponse {
			return o.upload(t, "POST", "b", "k", svc, "bytes", withHeader("x-metadata", b64("{\"a\":\"\xff\"}")))
		}, errNotText("metadata")},
		{"UploadCacheControl", func() httpResponse {
			return o.upload(t, "POST", "b", "k", svc, "bytes", withHeader("Cache-Control", "max-age=\xff"))
		}, errNotText("cacheControl")},
		{"UploadRobotsTag", func() httpResponse {
			return o.upload(t, "POST", "b", "k", svc, "bytes", withHeader("x-robots-tag", "bot\xff: noindex"))
		}, errNotText("x-robots-tag")},
		{"UploadContentType", func() httpResponse {
			return o.upload(t, "POST", "b", "k", svc, "bytes", withHeader("Content-Type", "text/plain; a=\"\xff\""))
		}, errBadCT},
		{"FormMetadataNUL", func() httpResponse { return o.uploadForm(t, "POST", "b", "k", svc, mpMetaNul, mpMetaNulCT) }, errNotText("metadata")},
		{"FormMetadataFF", func() httpResponse { return o.uploadForm(t, "POST", "b", "k", svc, mpMetaFF, mpMetaFFCT) }, errNotText("metadata")},
		{"FormContentType", func() httpResponse { return o.uploadForm(t, "POST", "b", "k", svc, mpTypeNul, mpTypeNulCT) }, errNotText("contentType")},
		{"FormCacheControl", func() httpResponse { return o.uploadForm(t, "PUT", "b", "k", svc, mpCacheFF, mpCacheFFCT) }, errNotText("cacheControl")},
		{"SignedUploadXMetadata", func() httpResponse {
			url, _ := o.signUpload(t, "b", "signed", svc)
			return o.putSigned(t, url, "bytes", withHeader("x-metadata", b64(`{"a":["\u0000"]}`)))
		}, errNotText("metadata")},
	}
	t.Run("cases", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				requireAPIError(t, tc.do(), http.StatusBadRequest, tc.want)
			})
		}
	})
	// Nothing was stored: the one object, its blob, no bucket but b, no upload in flight.
	o.requireNothingStored(t, "b/a")
	require.Equal(t, []string{"b"}, o.column(t, `select id from storage.buckets`))
	requireQuietLog(t, &logs)

	// The escape of an escaped backslash is text: "\\u0000" is the six characters \u0000.
	o.mustUpload(t, "b", "k", "bytes", withHeader("x-metadata", b64(`{"a":"\\u0000"}`)))
	require.Equal(t, map[string]any{"a": `\u0000`}, o.info(t, "b", "k")["metadata"])
}

// TestHTTPBodyEndsEarly: a request body that ends before its end (Content-Length larger than
// what the client sends before it stops, a chunked body without its last chunk or with a
// broken one, a multipart body cut short) is refused with a 400, and one that stalls past the
// read timeout with a 408, in the error format, whether the server had read it all before the
// handler (small bodies) or was streaming it (large ones); nothing is stored and nothing is
// logged above info.
func TestHTTPBodyEndsEarly(t *testing.T) {
	t.Parallel()
	errIncomplete := apiError{"400", "InvalidRequest", "InvalidRequest", "Request body is incomplete or malformed"}
	errTimeout := errRequestTimeout
	const readTimeout = 2 * time.Second // the stalled cases wait this long

	big := []byte(strings.Repeat("0123456789abcdef", 16<<10)) // 256 KiB, beyond the 64 KiB read before the handler
	small := []byte("small body")
	formBody := func(content []byte) (string, string) {
		return multipartForm(t, [][2]string{{"metadata", `{"a":1}`}}, true, "text/plain", string(content))
	}
	type request struct {
		head      string
		body      []byte
		halfClose bool
	}
	// upload is a raw upload of the first part of content, announced whole.
	upload := func(o *objEnv, content []byte, sent int, halfClose bool) request {
		return request{rawHead("POST", "/object/b/k", o.service, "Content-Type", "text/plain",
			"Content-Length", strconv.Itoa(len(content))), content[:sent], halfClose}
	}
	chunkedUpload := func(o *objEnv, body []byte) request {
		return request{rawHead("POST", "/object/b/k", o.service, "Content-Type", "text/plain",
			"Transfer-Encoding", "chunked"), body, true}
	}
	// form is a multipart upload of content whose last cut bytes are not sent. whole: the
	// Content-Length announces the whole form (otherwise what is sent: a complete body whose
	// form has no end).
	form := func(o *objEnv, content []byte, cut int, whole, halfClose bool) request {
		body, ct := formBody(content)
		sent := body[:len(body)-cut]
		cl := len(sent)
		if whole {
			cl = len(body)
		}
		return request{rawHead("POST", "/object/b/k", o.service, "Content-Type", ct, "Content-Length", strconv.Itoa(cl)), []byte(sent), halfClose}
	}
	cases := []struct {
		name string
		req  func(o *objEnv) request
		want apiError
		http int
	}{
		{"RawSmallShort", func(o *objEnv) request { return upload(o, small, 5, true) }, errIncomplete, 400},
		{"RawLargeShort", func(o *objEnv) request { return upload(o, big, 200<<10, true) }, errIncomplete, 400},
		{"ChunkedSmallNoLastChunk", func(o *objEnv) request { return chunkedUpload(o, chunked(small)) }, errIncomplete, 400},
		{"ChunkedLargeNoLastChunk", func(o *objEnv) request { return chunkedUpload(o, chunked(big)) }, errIncomplete, 400},
		{"ChunkedLargeCutInAChunk", func(o *objEnv) request { return chunkedUpload(o, chunked(big)[:100<<10]) }, errIncomplete, 400},
		{"ChunkedLargeBrokenChunk", func(o *objEnv) request { return chunkedUpload(o, append(chunked(big), "zz\r\n"...)) }, errIncomplete, 400},
		{"FormSmallShort", func(o *objEnv) request { return form(o, small, 20, true, true) }, errIncomplete, 400},
		{"FormLargeShort", func(o *objEnv) request { return form(o, big, 100<<10, true, true) }, errIncomplete, 400},
		{"FormLargeUnterminated", func(o *objEnv) request { return form(o, big, 30, false, true) }, errIncomplete, 400},
		{"SignedUploadLargeShort", func(o *objEnv) request {
			url, _ := o.signUpload(t, "b", "k", o.service)
			return request{rawHead("PUT", signEncodeURI(url), "", "Content-Type", "text/plain",
				"Content-Length", strconv.Itoa(len(big))), big[:100<<10], true}
		}, errIncomplete, 400},
		{"JSONSmallShort", func(o *objEnv) request {
			return request{rawHead("POST", "/bucket", o.service, "Content-Type", "application/json", "Content-Length", "100"), []byte(`{"name":`), true}
		}, errIncomplete, 400},
		{"JSONLargeShort", func(o *objEnv) request {
			body := `{"prefixes":["` + strings.Repeat("x", 200<<10) + `"]}`
			return request{rawHead("DELETE", "/object/b", o.service, "Content-Type", "application/json",
				"Content-Length", strconv.Itoa(len(body))), []byte(body[:100<<10]), true}
		}, errIncomplete, 400},
		{"RawSmallStalls", func(o *objEnv) request { return upload(o, small, 5, false) }, errTimeout, 408},
		{"RawLargeStalls", func(o *objEnv) request { return upload(o, big, 200<<10, false) }, errTimeout, 408},
		{"FormLargeStalls", func(o *objEnv) request { return form(o, big, 100<<10, true, false) }, errTimeout, 408},
	}
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		// Small uploads are read whole before their one call when they are stored inline.
		for _, inline := range []int64{0, 64 << 10} {
			t.Run(fmt.Sprintf("inline-max-%d", inline), func(t *testing.T) {
				t.Parallel()
				var logs cliSyncBuffer
				o := newObjEnv(t, be, withLog(&logs), withReadTimeout(readTimeout), withInline(inline))
				t.Run("cases", func(t *testing.T) {
					for _, tc := range cases {
						t.Run(tc.name, func(t *testing.T) {
							t.Parallel()
							req := tc.req(o)
							requireAPIError(t, rawRequest(t, o.baseURL, req.head, req.body, req.halfClose), tc.http, tc.want)
						})
					}
				})
				// Each refused upload ended its upload in flight and left nothing in the store
				// (its version is queued for the collector, which finds nothing to delete).
				o.requireNothingStored(t)
				require.Empty(t, o.inlineVersions(t))
				requireQuietLog(t, &logs)
				// Each refusal's line says why (the body that could not be read), at info.
				require.Regexp(t, `level=INFO msg=request request_id=\S+ method=\S+ path=\S+ operation=\S+ protocol=rest status=\d+ .* error_code=\S+ error=`, logs.String())
			})
		}
	})
}

// TestHTTPNoCredentialsInLog: requests fasthttp cannot parse are logged (at info) without the
// bearer token, apikey, signed-URL token or any other credential they carry, and so are
// refused uploads.
func TestHTTPNoCredentialsInLog(t *testing.T) {
	t.Parallel()
	var logs cliSyncBuffer
	o := &objEnv{setupHTTP(t, withLog(&logs))}
	o.mkBucket(t, `{"name":"b"}`)
	o.mustUpload(t, "b", "k", "bytes")
	signed := o.signURL(t, "b", "k", o.service, 60)
	token := signTokenOf(t, signed)
	const apikey = "sb_secret_0123456789abcdef" // an API key that is not a JWT
	secrets := []string{o.service, o.anon, token, apikey, "s3cr3t-cookie"}
	errBadHTTP := apiError{"400", "InvalidRequest", "InvalidRequest", "The request could not be parsed as HTTP"}
	for _, tc := range []struct {
		name string
		head string
	}{
		// fasthttp refuses these while reading the request: its lines quoted request lines,
		// URIs and headers.
		{"BadHeaderValue", rawHead("GET", "/bucket", o.service, "apikey", o.anon, "Cookie", "s3cr3t-cookie", "X-Bad", "a\x00b")},
		{"BadAuthorizationValue", rawHead("GET", "/bucket", "", "Authorization", "Bearer "+o.service+"\x00")},
		{"BadApikeyValue", rawHead("GET", "/bucket", "", "apikey", apikey+"\x00")},
		{"BadURIWithToken", rawHead("GET", "/object/sign/b/k?token="+token+"\x00", "", "apikey", apikey)},
		{"BadContentLength", rawHead("PUT", "/object/upload/sign/b/k?token="+token, o.service, "apikey", apikey, "Content-Length", "abc")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			requireAPIError(t, rawRequest(t, o.baseURL, tc.head, nil, false), http.StatusBadRequest, errBadHTTP)
		})
	}
	// fasthttp's own line about each connection (at debug: the refusal has its line at info)
	// comes once the connection is closed, after the answer: wait for all five.
	require.Eventually(t, func() bool {
		return strings.Count(logs.String(), "level=DEBUG msg=\"error when serving connection") == 5
	},
		30*time.Second, 10*time.Millisecond, "fasthttp's lines about the connections:\n%s", logs.String())

	// A refused upload (its body's chunked encoding breaks) as the owner of a token.
	r := rawRequest(t, o.baseURL, rawHead("POST", "/object/b/up?token="+token, o.service, "apikey", apikey,
		"Content-Type", "text/plain", "Transfer-Encoding", "chunked"), append(chunked([]byte(strings.Repeat("x", 100<<10))), "zz\r\n"...), true)
	requireAPIErrorCode(t, r, http.StatusBadRequest, "400", "InvalidRequest")

	out := logs.String()
	require.Regexp(t, `level=INFO msg=request request_id=\S+ method=POST path=/object/b/up operation=storage.object.upload protocol=rest status=400 .* error_code=InvalidRequest error=`, out)
	require.Len(t, regexp.MustCompile(`level=INFO msg=request request_id=\S+ operation=storage.unreadable status=400 `).FindAllString(out, -1), 5, out)
	require.Contains(t, out, "[REDACTED]", "the lines that quoted a credential say so")
	for _, s := range secrets {
		require.NotContains(t, out, s, "a credential reached the log:\n%s", out)
	}
	requireQuietLog(t, &logs)
}
