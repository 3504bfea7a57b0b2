package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/blob/blobtest"
	"github.com/pgstorage/storage/lifecycle"
	"github.com/pgstorage/storage/proxy"
	"github.com/pgstorage/storage/tus"
)

// Resumable uploads (TUS 1.0.0): the assertions of spec/TUS.md §18, on both backends, plus what
// the reference leaves open (interrupted PATCHes, expiry and collection, races between servers).

// tusMD builds Upload-Metadata from key, value pairs (values base64-encoded).
func tusMD(kv ...string) string {
	var parts []string
	for i := 0; i < len(kv); i += 2 {
		parts = append(parts, kv[i]+" "+base64.StdEncoding.EncodeToString([]byte(kv[i+1])))
	}
	return strings.Join(parts, ",")
}

// tusHeaders are request headers as name, value pairs; a value "-" removes the header.
type tusHeaders []string

// tusDo sends a TUS request: Tus-Resumable: 1.0.0 unless h says otherwise, Authorization when
// token is set, the body as is (with its Content-Length).
func (o *objEnv) tusDo(t *testing.T, method, path, token string, body []byte, h ...string) httpResponse {
	t.Helper()
	u := path
	if !strings.HasPrefix(u, "http") {
		u = o.baseURL + path
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	require.NoError(t, err)
	req.Header.Set("Tus-Resumable", "1.0.0")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i < len(h); i += 2 {
		if h[i+1] == "-" {
			req.Header.Del(h[i])
		} else {
			req.Header.Set(h[i], h[i+1])
		}
	}
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return httpResponse{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// tusCreate creates an upload of length bytes for bucket/name with the service key (extra
// headers and metadata pairs appended) and returns its Location.
func (o *objEnv) tusCreate(t *testing.T, token, bucket, name string, length int, h ...string) string {
	t.Helper()
	r := o.tusDo(t, "POST", "/upload/resumable", token, nil,
		append([]string{"Upload-Length", strconv.Itoa(length), "Upload-Metadata", tusMD("bucketName", bucket, "objectName", name)}, h...)...)
	require.Equal(t, 201, r.Status, "create: %s", r)
	return r.Header.Get("Location")
}

// tusPatch appends body at offset to the upload at loc.
func (o *objEnv) tusPatch(t *testing.T, loc, token string, offset int, body []byte, h ...string) httpResponse {
	t.Helper()
	return o.tusDo(t, "PATCH", loc, token, body, append([]string{"Content-Type", "application/offset+octet-stream",
		"Upload-Offset", strconv.Itoa(offset)}, h...)...)
}

// lastSegment is the upload id of a Location.
func lastSegment(loc string) string { return loc[strings.LastIndexByte(loc, '/')+1:] }

// requireTUS asserts a plain-text TUS answer: status, body, and the Tus-Resumable header.
func requireTUS(t *testing.T, r httpResponse, status int, body string) {
	t.Helper()
	require.Equal(t, status, r.Status, "%s", r)
	require.Equal(t, body, string(r.Body))
	require.Equal(t, "1.0.0", r.Header.Get("Tus-Resumable"))
	if body != "" {
		require.Equal(t, "text/plain;charset=UTF-8", r.Header.Get("Content-Type"))
	}
}

// tusState is what the database holds about resumable uploads and uploads in flight.
func (o *objEnv) tusState(t *testing.T) (resumable, inFlight int) {
	t.Helper()
	require.NoError(t, o.db.Pool.QueryRow(context.Background(),
		`select (select count(*) from storage.resumable_uploads), (select count(*) from storage.blob_uploads)`).Scan(&resumable, &inFlight))
	return resumable, inFlight
}

func TestTUSProtocol(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		// §18.1–3: capability discovery, without auth.
		be.run(t, "options", func(t *testing.T, o *objEnv) {
			for _, p := range []string{"/upload/resumable", "/upload/resumable/sign", "/storage/v1/upload/resumable/x"} {
				req, err := http.NewRequest("OPTIONS", o.baseURL+p, nil)
				require.NoError(t, err)
				resp, err := httpClient.Do(req)
				require.NoError(t, err)
				resp.Body.Close()
				require.Equal(t, 204, resp.StatusCode, p)
				h := resp.Header
				require.Equal(t, "1.0.0", h.Get("Tus-Version"))
				require.Equal(t, "1.0.0", h.Get("Tus-Resumable"))
				require.Equal(t, "creation,creation-with-upload,creation-defer-length,termination,expiration", h.Get("Tus-Extension"))
				require.Equal(t, strconv.Itoa(httpUploadLimit), h.Get("Tus-Max-Size"))
				require.Equal(t, "POST, HEAD, PATCH, OPTIONS, DELETE", h.Get("Access-Control-Allow-Methods"))
				require.Equal(t, "86400", h.Get("Access-Control-Max-Age"))
				require.Equal(t, "*", h.Get("Access-Control-Allow-Origin"))
				for _, want := range []string{"Upload-Metadata", "Upload-Offset", "X-Upsert", "ApiKey", "x-signature"} {
					require.Contains(t, h.Get("Access-Control-Allow-Headers"), want)
				}
			}
		})

		// §18.4–7, 26, 28–30: refusals before anything is stored.
		be.run(t, "refusals before create", func(t *testing.T, o *objEnv) {
			md := tusMD("bucketName", "b", "objectName", "f.txt")
			r := o.tusDo(t, "POST", "/upload/resumable", "", nil, "Upload-Length", "5", "Upload-Metadata", md)
			require.Equal(t, 400, r.Status)
			require.Equal(t, apiError{"403", "AccessDenied", "Unauthorized", "Invalid Compact JWS"}, requireErrorShape(t, r))
			require.Equal(t, "*", r.Header.Get("Access-Control-Allow-Origin"), "browsers must be able to read it")

			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Tus-Resumable", "-", "Upload-Length", "5", "Upload-Metadata", md),
				412, "Tus-Resumable Required\n")
			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Tus-Resumable", "0.2.2", "Upload-Length", "5", "Upload-Metadata", md),
				400, "Invalid tus-resumable\n")
			for _, bad := range []string{"-1", "05", "+5", "1e3"} {
				requireTUS(t, o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Length", bad, "Upload-Metadata", md),
					400, "Invalid upload-length\n")
			}
			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Tus-Resumable", "2", "Upload-Length", "x", "Upload-Metadata", md),
				400, "Invalid tus-resumable upload-length\n")
			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Length", "5", "Upload-Metadata", "bucketName YQ"),
				400, "Invalid upload-metadata\n")
			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Length", "5", "Upload-Metadata", tusMD("bucketName", "b")),
				400, "Invalid key: ")
			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Length", "5"),
				400, "Metadata header is required")
			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Length", "5", "Upload-Defer-Length", "1", "Upload-Metadata", md),
				400, "Upload-Length or Upload-Defer-Length header required\n")
			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Metadata", md),
				400, "Upload-Length or Upload-Defer-Length header required\n")
			r = o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Length", "5", "Upload-Concat", "partial", "Upload-Metadata", md)
			require.Equal(t, 501, r.Status, "%s", r)
			resumable, inFlight := o.tusState(t)
			require.Equal(t, [2]int{0, 0}, [2]int{resumable, inFlight})
			require.Empty(t, listBlobs(t, o.blobs))
		})

		// §18.8–13: create, HEAD, PATCH in two pieces, a conflicting PATCH, completion.
		be.run(t, "upload in two patches", func(t *testing.T, o *objEnv) {
			r := o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Length", "5",
				"Upload-Metadata", tusMD("bucketName", "b", "objectName", "f.txt", "contentType", "text/plain", "cacheControl", "60"))
			requireTUS(t, r, 201, "")
			loc := r.Header.Get("Location")
			require.True(t, strings.HasPrefix(loc, o.baseURL+"/upload/resumable/"), loc)
			raw, err := base64.RawURLEncoding.DecodeString(lastSegment(loc))
			require.NoError(t, err)
			parts := strings.Split(string(raw), "/")
			require.Len(t, parts, 3)
			require.Equal(t, []string{"b", "f.txt"}, parts[:2])
			version := parts[2]
			require.Empty(t, r.Header.Get("Upload-Offset"))
			require.Contains(t, r.Header.Get("Access-Control-Expose-Headers"), "Location")
			require.Contains(t, r.Header.Get("Access-Control-Expose-Headers"), "Upload-Offset")
			expires, err := http.ParseTime(r.Header.Get("Upload-Expires"))
			require.NoError(t, err, "Upload-Expires on both backends")
			require.WithinDuration(t, time.Now().Add(tus.DefaultExpiry), expires, time.Minute)

			r = o.tusDo(t, "HEAD", loc, o.service, nil)
			require.Equal(t, 200, r.Status)
			require.Equal(t, "0", r.Header.Get("Upload-Offset"))
			require.Equal(t, "5", r.Header.Get("Upload-Length"))
			require.Equal(t, "no-store", r.Header.Get("Cache-Control"))
			require.Contains(t, r.Header.Get("Upload-Metadata"), "cacheControl "+base64.StdEncoding.EncodeToString([]byte("max-age=60")))

			r = o.tusPatch(t, loc, o.service, 0, []byte("he"))
			requireTUS(t, r, 204, "")
			require.Equal(t, "2", r.Header.Get("Upload-Offset"))
			require.Empty(t, r.Header.Get("Tus-Complete"))

			requireTUS(t, o.tusPatch(t, loc, o.service, 0, []byte("llo")), 409, "Upload-Offset conflict\n")
			require.Equal(t, "2", o.tusDo(t, "HEAD", loc, o.service, nil).Header.Get("Upload-Offset"))
			r = o.do(t, "GET", objPath("b", "f.txt"), o.service, "")
			require.Equal(t, 400, r.Status, "no object before the last byte: %s", r)

			r = o.tusPatch(t, loc, o.service, 2, []byte("llo"))
			requireTUS(t, r, 204, "")
			require.Equal(t, "5", r.Header.Get("Upload-Offset"))
			require.Equal(t, "1", r.Header.Get("Tus-Complete"))
			r = o.do(t, "GET", "/object/authenticated/b/f.txt", o.service, "")
			require.Equal(t, 200, r.Status, "%s", r)
			require.Equal(t, "hello", string(r.Body))
			require.Equal(t, "max-age=60", r.Header.Get("Cache-Control"))
			require.Equal(t, "text/plain", r.Header.Get("Content-Type"))
			require.Equal(t, `"5d41402abc4b2a76b9719d911017c592"`, r.Header.Get("ETag"), "the MD5 of the bytes, hashed across PATCHes")

			var (
				gotVersion             string
				owner, ownerID         *string
				userMetadata           *string
				size                   int64
				mimetype, cacheControl string
			)
			require.NoError(t, o.db.Pool.QueryRow(context.Background(), `select version, owner::text, owner_id, user_metadata::text,
				(metadata->>'size')::bigint, metadata->>'mimetype', metadata->>'cacheControl'
				from storage.objects where bucket_id = 'b' and name = 'f.txt'`).
				Scan(&gotVersion, &owner, &ownerID, &userMetadata, &size, &mimetype, &cacheControl))
			require.Equal(t, version, gotVersion)
			require.Nil(t, owner)
			require.Nil(t, ownerID)
			require.Nil(t, userMetadata)
			require.Equal(t, int64(5), size)
			require.Equal(t, "text/plain", mimetype)
			require.Equal(t, "max-age=60", cacheControl)
			require.Equal(t, []string{blob.VersionKey(version)}, listBlobs(t, o.blobs), "the object's blob and nothing else")

			// HEAD after completion reports the whole length; PATCH past it has no room.
			r = o.tusDo(t, "HEAD", loc, o.service, nil)
			require.Equal(t, 200, r.Status)
			require.Equal(t, "5", r.Header.Get("Upload-Offset"))
			requireTUS(t, o.tusPatch(t, loc, o.service, 5, []byte("x"), "x-upsert", "true"), 413, "upload's size exceeded\n")
		})

		// §18.14–16.
		be.run(t, "patch refusals", func(t *testing.T, o *objEnv) {
			loc := o.tusCreate(t, o.service, "b", "g.txt", 5)
			requireTUS(t, o.tusDo(t, "PATCH", loc, o.service, []byte("he"), "Content-Type", "application/offset+octet-stream"),
				403, "Upload-Offset header required\n")
			requireTUS(t, o.tusDo(t, "PATCH", loc, o.service, []byte("he"), "Upload-Offset", "0"),
				403, "Content-Type header required\n")
			requireTUS(t, o.tusPatch(t, loc, o.service, 0, []byte("he"), "Content-Type", "application/json"),
				400, "Invalid content-type\n")
			requireTUS(t, o.tusPatch(t, loc, o.service, 0, []byte("hello!")), 413, "upload's size exceeded\n")
			require.Equal(t, "0", o.tusDo(t, "HEAD", loc, o.service, nil).Header.Get("Upload-Offset"))
			requireTUS(t, o.tusDo(t, "PUT", loc, o.service, []byte("x")), 404, "Not found\n")
			r := o.tusDo(t, "GET", loc, o.service, nil)
			require.Equal(t, 404, r.Status)
			require.Empty(t, r.Header.Get("Tus-Resumable"))
		})

		// §18.17–18: cacheControl rewriting, user metadata.
		be.run(t, "metadata", func(t *testing.T, o *objEnv) {
			loc := o.tusCreate(t, o.service, "b", "m.txt", 2, "Upload-Metadata",
				tusMD("bucketName", "b", "objectName", "m.txt", "cacheControl", "max-age=3600", "metadata", `{"a":1}`, "filename", "m.txt"))
			md := o.tusDo(t, "HEAD", loc, o.service, nil).Header.Get("Upload-Metadata")
			require.Contains(t, md, "cacheControl "+base64.StdEncoding.EncodeToString([]byte("no-cache")))
			require.Contains(t, md, "filename "+base64.StdEncoding.EncodeToString([]byte("m.txt")))
			requireTUS(t, o.tusPatch(t, loc, o.service, 0, []byte("ok")), 204, "")
			var um string
			require.NoError(t, o.db.Pool.QueryRow(context.Background(),
				`select user_metadata::text from storage.objects where name = 'm.txt'`).Scan(&um))
			require.JSONEq(t, `{"a":1}`, um)
		})

		// §18.19–25, 27: refusals by the SQL API's checks store nothing.
		be.run(t, "checks at create", func(t *testing.T, o *objEnv) {
			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Length", "5",
				"Upload-Metadata", tusMD("bucketName", "nosuch", "objectName", "f.txt")), 404, "Bucket not found")
			o.mkBucket(t, `{"name":"lim","file_size_limit":1}`)
			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Length", "2",
				"Upload-Metadata", tusMD("bucketName", "lim", "objectName", "f.txt")), 413, "Maximum size exceeded\n")
			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Length", strconv.Itoa(httpUploadLimit+1),
				"Upload-Metadata", tusMD("bucketName", "b", "objectName", "f.txt")), 413, "Maximum size exceeded\n")
			o.mkBucket(t, `{"name":"img","allowed_mime_types":["image/png"]}`)
			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Length", "2",
				"Upload-Metadata", tusMD("bucketName", "img", "objectName", "f", "contentType", "text/plain")), 415, "mime type text/plain is not supported")
			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable", o.anon, nil, "Upload-Length", "2",
				"Upload-Metadata", tusMD("bucketName", "b", "objectName", "f")), 403, "new row violates row-level security policy")
			resumable, inFlight := o.tusState(t)
			require.Equal(t, [2]int{0, 0}, [2]int{resumable, inFlight}, "refused creates record nothing")
			require.Empty(t, listBlobs(t, o.blobs))
			o.tusCreate(t, o.service, "img", "f.png", 2, "Upload-Metadata", tusMD("bucketName", "img", "objectName", "f.png", "contentType", "image/png"))

			require.Equal(t, 200, o.upload(t, "POST", "b", "f.txt", o.service, "x").Status)
			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Length", "2",
				"Upload-Metadata", tusMD("bucketName", "b", "objectName", "f.txt")), 409, "The resource already exists")
			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Length", "2", "x-upsert", "TRUE",
				"Upload-Metadata", tusMD("bucketName", "b", "objectName", "f.txt")), 409, "The resource already exists")
			o.tusCreate(t, o.service, "b", "f.txt", 2, "x-upsert", "true")
		})

		// §18.31–32: creation-with-upload.
		be.run(t, "creation with upload", func(t *testing.T, o *objEnv) {
			r := o.tusDo(t, "POST", "/upload/resumable", o.service, []byte("hello"), "Upload-Length", "11",
				"Content-Type", "application/offset+octet-stream", "Upload-Metadata", tusMD("bucketName", "b", "objectName", "c1"))
			requireTUS(t, r, 201, "")
			require.Equal(t, "5", r.Header.Get("Upload-Offset"))
			require.Equal(t, "5", o.tusDo(t, "HEAD", r.Header.Get("Location"), o.service, nil).Header.Get("Upload-Offset"))

			r = o.tusDo(t, "POST", "/upload/resumable", o.service, []byte("hello"), "Upload-Length", "5",
				"Content-Type", "application/offset+octet-stream", "Upload-Metadata", tusMD("bucketName", "b", "objectName", "c2"))
			requireTUS(t, r, 201, "")
			require.Equal(t, "5", r.Header.Get("Upload-Offset"))
			require.Equal(t, "1", r.Header.Get("Tus-Complete"))
			require.Empty(t, r.Header.Get("Upload-Expires"))
			r = o.do(t, "GET", "/object/authenticated/b/c2", o.service, "")
			require.Equal(t, "hello", string(r.Body), "%s", r)

			// A zero-length upload completes at creation (the reference's S3 store does not).
			r = o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Length", "0",
				"Upload-Metadata", tusMD("bucketName", "b", "objectName", "empty"))
			requireTUS(t, r, 201, "")
			require.Equal(t, "1", r.Header.Get("Tus-Complete"))
			r = o.do(t, "GET", "/object/authenticated/b/empty", o.service, "")
			require.Equal(t, 200, r.Status, "%s", r)
			require.Empty(t, r.Body)
			require.Equal(t, `"d41d8cd98f00b204e9800998ecf8427e"`, r.Header.Get("ETag"))
		})

		// §18.33–37: ids, termination.
		be.run(t, "ids and termination", func(t *testing.T, o *objEnv) {
			b64 := base64.RawURLEncoding.EncodeToString
			requireTUS(t, o.tusDo(t, "HEAD", "/upload/resumable/"+b64([]byte("b/never/missing-version")), o.service, nil), 404, "")
			requireTUS(t, o.tusDo(t, "PATCH", "/upload/resumable/"+b64([]byte("b/never/missing-version")), o.service, nil,
				"Upload-Offset", "0", "Content-Type", "application/offset+octet-stream"), 404, "The file for this url was not found\n")
			requireTUS(t, o.tusDo(t, "PATCH", "/upload/resumable/"+b64([]byte("b")), o.service, nil,
				"Upload-Offset", "0", "Content-Type", "application/offset+octet-stream"), 400, "Invalid upload id")

			loc := o.tusCreate(t, o.service, "b", "t.txt", 10)
			requireTUS(t, o.tusPatch(t, loc, o.service, 0, []byte("abc")), 204, "")
			// Another user holding the URL sees no upload.
			requireTUS(t, o.tusPatch(t, loc, o.userA, 3, []byte("def")), 404, "The file for this url was not found\n")
			requireTUS(t, o.tusDo(t, "DELETE", loc, o.service, nil), 204, "")
			require.Equal(t, 404, o.tusDo(t, "HEAD", loc, o.service, nil).Status)
			resumable, inFlight := o.tusState(t)
			require.Equal(t, [2]int{0, 0}, [2]int{resumable, inFlight})
			require.Empty(t, listBlobs(t, o.blobs), "a terminated upload leaves nothing behind")

			loc = o.tusCreate(t, o.service, "b", "done.txt", 2)
			requireTUS(t, o.tusPatch(t, loc, o.service, 0, []byte("ok")), 204, "")
			requireTUS(t, o.tusDo(t, "DELETE", loc, o.service, nil, "x-upsert", "true"), 400, "Cannot terminate an already completed upload")
			requireTUS(t, o.tusDo(t, "DELETE", loc, o.service, nil), 409, "The resource already exists")
			require.Equal(t, 200, o.do(t, "GET", "/object/authenticated/b/done.txt", o.service, "").Status)
		})

		// §18.38–44: signed uploads.
		be.run(t, "signed", func(t *testing.T, o *objEnv) {
			token := func(path string, extra ...reqOpt) string {
				r := o.do(t, "POST", path, o.userA, "", extra...)
				var v struct {
					Token     string `json:"token"`
					SignedURL string `json:"signedURL"`
				}
				require.Equal(t, 200, r.Status, "%s", r)
				require.NoError(t, json.Unmarshal(r.Body, &v))
				if v.Token == "" {
					u, err := url.Parse(v.SignedURL)
					require.NoError(t, err)
					v.Token = u.Query().Get("token")
				}
				return v.Token
			}
			// userA may upload to b (policy below); the token carries userA as signer.
			ownerSQL(t, o.db, `create policy ins on storage.objects for insert to authenticated with check (bucket_id = 'b')`)
			ownerSQL(t, o.db, `create policy sel on storage.objects for select to authenticated using (bucket_id = 'b')`)
			ownerSQL(t, o.db, `create policy upd on storage.objects for update to authenticated using (bucket_id = 'b')`)
			tok := token("/object/upload/sign/b/s.txt", withHeader("x-upsert", "true"))
			md := tusMD("bucketName", "b", "objectName", "s.txt")
			r := o.tusDo(t, "POST", "/upload/resumable/sign", "", nil, "x-signature", tok, "Upload-Length", "3", "Upload-Metadata", md)
			requireTUS(t, r, 201, "")
			loc := r.Header.Get("Location")
			require.Contains(t, loc, "/upload/resumable/sign/")
			r = o.tusPatch(t, loc, "", 0, []byte("abc"), "x-signature", tok)
			requireTUS(t, r, 204, "")
			require.Equal(t, "1", r.Header.Get("Tus-Complete"))
			var ownerID string
			require.NoError(t, o.db.Pool.QueryRow(context.Background(),
				`select owner_id from storage.objects where name = 's.txt'`).Scan(&ownerID))
			require.Equal(t, userA.Sub, ownerID)

			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable/sign", "", nil, "Upload-Length", "3", "Upload-Metadata", md),
				400, "Missing x-signature header")
			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable/sign", "", nil, "x-signature", "invalid-token", "Upload-Length", "3", "Upload-Metadata", md),
				400, "Invalid Compact JWS")
			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable/sign", "", nil, "x-signature", tok, "Upload-Length", "3",
				"Upload-Metadata", tusMD("bucketName", "b", "objectName", "other.txt")), 400, "Invalid signature")
			download := token("/object/sign/b/s.txt", func(r *http.Request) {
				r.Header.Set("Content-Type", "application/json")
				r.Body = io.NopCloser(strings.NewReader(`{"expiresIn":60}`))
				r.ContentLength = int64(len(`{"expiresIn":60}`))
			})
			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable/sign", "", nil, "x-signature", download, "Upload-Length", "3", "Upload-Metadata", md),
				400, "Token is not scoped for upload")
			expired := signJWT(t, jwt.SigningMethodHS256, []byte(httpJWTSecret), jwt.MapClaims{"url": "b/s.txt", "scope": "upload", "upsert": true,
				"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()})
			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable/sign", "", nil, "x-signature", expired, "Upload-Length", "3", "Upload-Metadata", md),
				400, `"exp" claim timestamp check failed`)
		})

		// §18.45: deferred length.
		be.run(t, "deferred length", func(t *testing.T, o *objEnv) {
			r := o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Defer-Length", "1",
				"Upload-Metadata", tusMD("bucketName", "b", "objectName", "d.txt"))
			requireTUS(t, r, 201, "")
			loc := r.Header.Get("Location")
			r = o.tusDo(t, "HEAD", loc, o.service, nil)
			require.Equal(t, "1", r.Header.Get("Upload-Defer-Length"))
			require.Empty(t, r.Header.Get("Upload-Length"))
			requireTUS(t, o.tusPatch(t, loc, o.service, 0, []byte("ab")), 204, "")
			r = o.tusPatch(t, loc, o.service, 2, []byte("c"), "Upload-Length", "3")
			requireTUS(t, r, 204, "")
			require.Equal(t, "1", r.Header.Get("Tus-Complete"))
			require.Equal(t, "abc", string(o.do(t, "GET", "/object/authenticated/b/d.txt", o.service, "").Body))
		})

		// §18.47: two uploads of one new key without upsert: the first to complete wins.
		be.run(t, "same key twice", func(t *testing.T, o *objEnv) {
			first := o.tusCreate(t, o.service, "b", "k", 2)
			second := o.tusCreate(t, o.service, "b", "k", 2)
			requireTUS(t, o.tusPatch(t, second, o.service, 0, []byte("2")), 204, "")
			requireTUS(t, o.tusPatch(t, first, o.service, 0, []byte("11")), 204, "")
			requireTUS(t, o.tusPatch(t, second, o.service, 1, []byte("2")), 409, "The resource already exists")
			require.Equal(t, "11", string(o.do(t, "GET", "/object/authenticated/b/k", o.service, "").Body))
		})

		// RLS decides at every step, as the caller: at create, at every PATCH (the policy in
		// force now, not the one at create), and at the commit.
		be.run(t, "rls", func(t *testing.T, o *objEnv) {
			ownerSQL(t, o.db, `create policy ins on storage.objects for insert to authenticated
				with check (bucket_id = 'b' and (storage.foldername(name))[1] = auth.uid()::text)`)
			requireTUS(t, o.tusDo(t, "POST", "/upload/resumable", o.userA, nil, "Upload-Length", "4",
				"Upload-Metadata", tusMD("bucketName", "b", "objectName", userB.Sub+"/x")), 403, "new row violates row-level security policy")
			loc := o.tusCreate(t, o.userA, "b", userA.Sub+"/x", 4)
			requireTUS(t, o.tusPatch(t, loc, o.userA, 0, []byte("ab")), 204, "")
			requireTUS(t, o.tusDo(t, "HEAD", loc, o.userB, nil), 404, "")
			ownerSQL(t, o.db, `drop policy ins on storage.objects`)
			requireTUS(t, o.tusPatch(t, loc, o.userA, 2, []byte("cd")), 403, "new row violates row-level security policy")
			require.Equal(t, "2", o.tusDo(t, "HEAD", loc, o.userA, nil).Header.Get("Upload-Offset"), "a refused PATCH stores nothing")
			ownerSQL(t, o.db, `create policy ins on storage.objects for insert to authenticated
				with check (bucket_id = 'b' and (storage.foldername(name))[1] = auth.uid()::text)`)
			r := o.tusPatch(t, loc, o.userA, 2, []byte("cd"))
			requireTUS(t, r, 204, "")
			require.Equal(t, "1", r.Header.Get("Tus-Complete"))
			var owner, ownerID string
			require.NoError(t, o.db.Pool.QueryRow(context.Background(),
				`select owner::text, owner_id from storage.objects where name = $1`, userA.Sub+"/x").Scan(&owner, &ownerID))
			require.Equal(t, [2]string{userA.Sub, userA.Sub}, [2]string{owner, ownerID})
		})

		// The prefix supabase-js uses, and Location behind a proxy.
		be.run(t, "location", func(t *testing.T, o *objEnv) {
			r := o.tusDo(t, "POST", "/storage/v1/upload/resumable", o.service, nil, "Upload-Length", "1",
				"Upload-Metadata", tusMD("bucketName", "b", "objectName", "l"))
			requireTUS(t, r, 201, "")
			require.True(t, strings.HasPrefix(r.Header.Get("Location"), o.baseURL+"/storage/v1/upload/resumable/"), r.Header.Get("Location"))
			requireTUS(t, o.tusPatch(t, r.Header.Get("Location"), o.service, 0, []byte("x")), 204, "")

			r = o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Length", "1",
				"Upload-Metadata", tusMD("bucketName", "b", "objectName", "l2"), "X-Forwarded-Host", "files.example.com",
				"X-Forwarded-Proto", "https")
			require.True(t, strings.HasPrefix(r.Header.Get("Location"), "https://files.example.com/upload/resumable/"), r.Header.Get("Location"))
			r = o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Length", "1",
				"Upload-Metadata", tusMD("bucketName", "b", "objectName", "l3"), "Forwarded", `for=1.2.3.4;host=h.example:8443;proto=https`)
			require.True(t, strings.HasPrefix(r.Header.Get("Location"), "https://h.example:8443/upload/resumable/"), r.Header.Get("Location"))
		})
	})
}

// TestTUSExpiry: an unfinished upload expires after its configured idle time (both backends):
// HEAD answers 410, and the collector leaves nothing of it behind.
func TestTUSExpiry(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newObjEnv(t, be, func(c *serverConfig) { c.TUS.Expiry = 2 * time.Second })
		r := o.tusDo(t, "POST", "/upload/resumable", o.service, []byte("abc"), "Upload-Length", "10",
			"Content-Type", "application/offset+octet-stream", "Upload-Metadata", tusMD("bucketName", "b", "objectName", "x"))
		requireTUS(t, r, 201, "")
		expires, err := http.ParseTime(r.Header.Get("Upload-Expires"))
		require.NoError(t, err)
		require.WithinDuration(t, time.Now().Add(2*time.Second), expires, 2*time.Second)
		require.NotEmpty(t, listBlobs(t, o.blobs), "the partial blob")
		loc := r.Header.Get("Location")
		deadline := time.Now().Add(30 * time.Second)
		for {
			r = o.tusDo(t, "HEAD", loc, o.service, nil)
			if r.Status == 410 || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		require.Equal(t, 410, r.Status)
		requireTUS(t, o.tusPatch(t, loc, o.service, 3, []byte("d")), 410, "The file for this url no longer exists\n")

		c := &lifecycle.Collector{DB: o.db.Pool, Blobs: o.blobs, LeftoverGrace: time.Nanosecond}
		st, err := c.RunOnce(context.Background())
		require.NoError(t, err)
		require.True(t, st.Leader)
		require.Equal(t, 1, st.Expired)
		resumable, inFlight := o.tusState(t)
		require.Equal(t, [2]int{0, 0}, [2]int{resumable, inFlight})
		require.Empty(t, listBlobs(t, o.blobs), "an expired upload leaves nothing behind")
		require.Equal(t, 404, o.tusDo(t, "HEAD", loc, o.service, nil).Status)
	})
}

// tusRawPatch starts a PATCH of a declared size on a connection of its own and sends only
// first (the rest never comes): the caller closes the connection, or lets the server time
// out.
func tusRawPatch(t *testing.T, base, loc, token string, offset, declared int, first []byte) net.Conn {
	t.Helper()
	u, err := url.Parse(loc)
	require.NoError(t, err)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	require.NoError(t, err)
	_, err = fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nTus-Resumable: 1.0.0\r\n"+
		"Content-Type: application/offset+octet-stream\r\nUpload-Offset: %d\r\nContent-Length: %d\r\n\r\n",
		u.RequestURI(), u.Host, token, offset, declared)
	require.NoError(t, err)
	_, err = conn.Write(first)
	require.NoError(t, err)
	return conn
}

// tusWaitOffset polls HEAD until the upload reports want (the server records a cut PATCH's
// bytes when it sees the connection end).
func (o *objEnv) tusWaitOffset(t *testing.T, loc string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := o.tusDo(t, "HEAD", loc, o.service, nil)
		require.Equal(t, 200, r.Status, "%s", r)
		if r.Header.Get("Upload-Offset") == strconv.Itoa(want) {
			return
		}
		require.True(t, time.Now().Before(deadline), "Upload-Offset is %s, want %d", r.Header.Get("Upload-Offset"), want)
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTUSInterruptedPatch: a PATCH whose client goes away mid-body keeps every byte that
// reached the server; HEAD reports exactly that offset, and resuming from it makes the
// object's bytes equal the source.
func TestTUSInterruptedPatch(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newObjEnv(t, be)
		src := blobtestBytes(12<<20+12345, 7)
		loc := o.tusCreate(t, o.service, "b", "cut.bin", len(src))
		r := o.tusPatch(t, loc, o.service, 0, src[:6<<20])
		requireTUS(t, r, 204, "")
		// 2.5 MiB of a 6 MiB chunk, then the connection is cut.
		cut := 6<<20 + 5<<19
		conn := tusRawPatch(t, o.baseURL, loc, o.service, 6<<20, 6<<20, src[6<<20:cut])
		require.NoError(t, conn.Close())
		o.tusWaitOffset(t, loc, cut)
		requireTUS(t, o.tusPatch(t, loc, o.service, 6<<20, src[6<<20:]), 409, "Upload-Offset conflict\n")
		r = o.tusPatch(t, loc, o.service, cut, src[cut:])
		requireTUS(t, r, 204, "")
		require.Equal(t, "1", r.Header.Get("Tus-Complete"))
		r = o.do(t, "GET", "/object/authenticated/b/cut.bin", o.service, "")
		require.Equal(t, 200, r.Status)
		require.True(t, bytes.Equal(src, r.Body), "the object's bytes are the source's")
		resumable, inFlight := o.tusState(t)
		require.Equal(t, [2]int{1, 0}, [2]int{resumable, inFlight}, "completed: the record stays until expiry, nothing in flight")
	})
}

// TestTUSFinishNotRecorded: a server died after the last PATCH had made the upload's blob and
// before it recorded the completion. The upload's offset is still the one recorded before, so
// the client resumes from there (here 0) and sends the bytes again: the blob already under the
// upload's key is replaced by what this PATCH sent, and the upload completes.
func TestTUSFinishNotRecorded(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newObjEnv(t, be)
		src := blobtestBytes(3000, 11)
		loc := o.tusCreate(t, o.service, "b", "again.bin", len(src))
		var version string
		require.NoError(t, o.db.Pool.QueryRow(context.Background(), `select version from storage.resumable_uploads`).Scan(&version))
		earlier := blobtestBytes(len(src), 12)
		require.NoError(t, o.blobs.Put(context.Background(), blob.VersionKey(version), bytes.NewReader(earlier), int64(len(earlier))))

		r := o.tusPatch(t, loc, o.service, 0, src)
		requireTUS(t, r, 204, "")
		require.Equal(t, "1", r.Header.Get("Tus-Complete"))
		got := o.do(t, "GET", "/object/authenticated/b/again.bin", o.service, "")
		require.Equal(t, 200, got.Status)
		require.True(t, bytes.Equal(src, got.Body), "the object's bytes are the ones this PATCH sent")
		require.Equal(t, []string{blob.VersionKey(version)}, listBlobs(t, o.blobs))
	})
}

// TestTUSTwoServers: two servers on one database and one blob store exclude each other from an
// upload. A PATCH that finds the upload locked asks its holder, on the other server, to let go
// (a release request through PostgreSQL): the holder cuts its body after a drain delay, keeps
// and records what arrived, and answers that offset with Connection: close. A waiter whose
// lock timeout is shorter than that gets 503 (the client retries); a waiter that gets the lock
// goes on if its offset is the one now stored, else 409.
func TestTUSTwoServers(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newObjEnv(t, be, func(c *serverConfig) { c.TUS.LockTimeout = 20 * time.Second })
		other := o.secondServer(t, func(c *serverConfig) { c.TUS.LockTimeout = time.Second })
		src := blobtestBytes(3<<20, 9)
		loc := o.tusCreate(t, o.service, "b", "race.bin", len(src))
		otherLoc := other + strings.TrimPrefix(loc, o.baseURL)
		response := func(conn net.Conn) *http.Response {
			t.Helper()
			require.NoError(t, conn.SetReadDeadline(time.Now().Add(time.Minute)))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			require.NoError(t, err)
			resp.Body.Close()
			return resp
		}

		// Through the first server, 1 of 2 MiB, then the client stalls.
		conn := tusRawPatch(t, o.baseURL, loc, o.service, 0, 2<<20, src[:1<<20])
		defer conn.Close()
		o.waitAdvisoryLock(t)
		requireTUS(t, o.tusPatch(t, otherLoc, o.service, 0, src[:1<<20]), 503, "acquiring lock timeout")
		resp := response(conn)
		require.Equal(t, 204, resp.StatusCode)
		require.Equal(t, strconv.Itoa(1<<20), resp.Header.Get("Upload-Offset"), "the bytes that arrived")
		require.True(t, resp.Close, "Connection: close: the client was sending more")
		requireTUS(t, o.tusPatch(t, otherLoc, o.service, 0, src[:1<<20]), 409, "Upload-Offset conflict\n")
		require.Equal(t, strconv.Itoa(1<<20), o.tusDo(t, "HEAD", otherLoc, o.service, nil).Header.Get("Upload-Offset"))

		// Through the second server, 1 more MiB of 2, stalled; the first server's PATCH waits
		// long enough for the release and goes on from the offset the holder stored.
		conn2 := tusRawPatch(t, other, otherLoc, o.service, 1<<20, 2<<20, src[1<<20:2<<20])
		defer conn2.Close()
		o.waitAdvisoryLock(t)
		r := o.tusPatch(t, loc, o.service, 2<<20, src[2<<20:])
		requireTUS(t, r, 204, "")
		require.Equal(t, "1", r.Header.Get("Tus-Complete"))
		resp = response(conn2)
		require.Equal(t, 204, resp.StatusCode)
		require.Equal(t, strconv.Itoa(2<<20), resp.Header.Get("Upload-Offset"))
		require.True(t, bytes.Equal(src, o.do(t, "GET", "/object/authenticated/b/race.bin", o.service, "").Body))
	})
}

// secondServer starts another proxy (with the TUS door) on o's database and blob store and
// returns its base URL.
func (o *objEnv) secondServer(t *testing.T, opts ...httpOpt) string {
	t.Helper()
	sc := serverConfig{Config: proxy.Config{JWTSecret: httpJWTSecret, Version: httpVersion, UploadFileSizeLimit: httpUploadLimit,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Blobs: o.blobs}}
	for _, opt := range opts {
		opt(&sc)
	}
	return serveHTTP(t, o.db.Pool, sc)
}

// blobtestBytes is n deterministic pseudo-random bytes.
func blobtestBytes(n int, seed uint64) []byte { return blobtest.Bytes(int64(n), seed) }

// TestTUSReconcile: `storage reconcile` counts unfinished resumable uploads and, even with no
// grace period and --apply, leaves them whole: their partial blobs are no leftovers.
func TestTUSReconcile(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newObjEnv(t, be)
		loc := o.tusCreate(t, o.service, "b", "r.bin", 6)
		requireTUS(t, o.tusPatch(t, loc, o.service, 0, []byte("abc")), 204, "")
		var out strings.Builder
		rep, err := lifecycle.Reconcile(context.Background(), o.db.Pool, o.blobs, lifecycle.ReconcileOptions{Apply: true, Out: &out})
		require.NoError(t, err)
		require.Equal(t, lifecycle.Report{Resumable: 1, ResumableBytes: 3}, rep, out.String())
		require.Contains(t, out.String(), "resumable     b/r.bin version ")
		require.Contains(t, rep.Summary(true), "; 1 resumable upload in progress (3 bytes; they expire on their own)")
		requireTUS(t, o.tusPatch(t, loc, o.service, 3, []byte("def")), 204, "")
		require.Equal(t, "abcdef", string(o.do(t, "GET", "/object/authenticated/b/r.bin", o.service, "").Body))
	})
}

// TestTUSStateIsTheServers: the blob store's state of a partial blob names pieces the store
// reads and deletes, so no request role may record it: only the servers' role can.
func TestTUSStateIsTheServers(t *testing.T) {
	t.Parallel()
	o := newObjEnv(t, objectBackends[0])
	o.tusCreate(t, o.service, "b", "s", 4)
	var version string
	require.NoError(t, o.db.Pool.QueryRow(context.Background(), `select version from storage.resumable_uploads`).Scan(&version))
	for _, id := range []proxy.Identity{asAnon, userA, asService} {
		err := exec(t, o.db, id, `select storage_internal.resumable_advance($1, 0, 4, null, 'tails/elsewhere', null, '1 hour')`, version)
		requireSQLState(t, err, "42501", "permission denied for function resumable_advance")
	}
}

// TestTUSDotSegments: keys follow the REST rules on both backends: bytes are stored under the
// object's version, never under its key, so ".." segments reach nothing outside the store
// (the reference's file backend refuses them, §18.27: a deliberate difference).
func TestTUSDotSegments(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newObjEnv(t, be)
		r := o.tusDo(t, "POST", "/upload/resumable", o.service, []byte("dots"), "Upload-Length", "4",
			"Content-Type", "application/offset+octet-stream", "Upload-Metadata", tusMD("bucketName", "b", "objectName", "../../x"))
		requireTUS(t, r, 201, "")
		require.Equal(t, "1", r.Header.Get("Tus-Complete"))
		var version string
		require.NoError(t, o.db.Pool.QueryRow(context.Background(),
			`select version from storage.objects where bucket_id = 'b' and name = '../../x'`).Scan(&version))
		require.Equal(t, []string{blob.VersionKey(version)}, listBlobs(t, o.blobs))
	})
}

// TestTUSDeferredOverLimit: an upload whose length is not declared yet is bounded by the size
// limit while its bytes stream: a chunked PATCH past it is cut with 413, and no object exists.
func TestTUSDeferredOverLimit(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newObjEnv(t, be)
		o.mkBucket(t, `{"name":"small","file_size_limit":10}`)
		r := o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Defer-Length", "1",
			"Upload-Metadata", tusMD("bucketName", "small", "objectName", "d"))
		requireTUS(t, r, 201, "")
		loc := r.Header.Get("Location")
		requireTUS(t, o.tusPatch(t, loc, o.service, 0, bytes.Repeat([]byte("x"), 11)), 413, "upload's size exceeded\n")
		r = o.send(t, "PATCH", strings.TrimPrefix(loc, o.baseURL), o.service, bytes.NewReader(bytes.Repeat([]byte("y"), 20)), -1,
			withHeader("Tus-Resumable", "1.0.0"), withHeader("Content-Type", "application/offset+octet-stream"), withHeader("Upload-Offset", "0"))
		requireTUS(t, r, 413, "Maximum size exceeded\n")
		// The bytes that arrived within the limit are kept, as in the reference.
		require.Equal(t, "10", o.tusDo(t, "HEAD", loc, o.service, nil).Header.Get("Upload-Offset"))
		requireTUS(t, o.tusPatch(t, loc, o.service, 10, []byte("z"), "Upload-Length", "11"), 413, "Maximum size exceeded\n")
		var n int
		require.NoError(t, o.db.Pool.QueryRow(context.Background(), `select count(*) from storage.objects`).Scan(&n))
		require.Zero(t, n)
	})
}

// TestTUSConcurrencyCap: PATCHes hold a database connection of the TUS door's own pool while
// they stream, at most TUS_MAX_CONCURRENT_UPLOADS of them: past it a PATCH is refused at once
// (503, Retry-After), and the server's other requests never wait for those connections.
func TestTUSConcurrencyCap(t *testing.T) {
	t.Parallel()
	o := newObjEnv(t, objectBackends[0], func(c *serverConfig) { c.TUS.MaxConcurrent = 1 })
	src := blobtestBytes(1<<20, 5)
	first := o.tusCreate(t, o.service, "b", "one", len(src))
	second := o.tusCreate(t, o.service, "b", "two", 4)
	// More than the server reads before its handler runs (64 KiB), less than all.
	conn := tusRawPatch(t, o.baseURL, first, o.service, 0, len(src), src[:256<<10])
	defer conn.Close()
	o.waitAdvisoryLock(t)
	r := o.tusPatch(t, second, o.service, 0, []byte("wxyz"))
	requireTUS(t, r, 503, "Too many uploads in progress; retry later")
	require.Equal(t, "1", r.Header.Get("Retry-After"))
	require.Equal(t, 200, o.do(t, "GET", "/bucket", o.service, "").Status, "other requests go on")
	require.Equal(t, 200, o.tusDo(t, "HEAD", second, o.service, nil).Status, "HEAD holds no lock")

	_, err := conn.Write(src[256<<10:])
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(time.Minute)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 204, resp.StatusCode)
	requireTUS(t, o.tusPatch(t, second, o.service, 0, []byte("wxyz")), 204, "")
}

// TestTUSLocationConfig: TUS_URL_PATH, STORAGE_PUBLIC_URL and REQUEST_ALLOW_X_FORWARDED_PATH
// shape Location as documented.
func TestTUSLocationConfig(t *testing.T) {
	t.Parallel()
	public, err := url.Parse("https://files.example.com:8443/ignored")
	require.NoError(t, err)
	o := newObjEnv(t, objectBackends[0], func(c *serverConfig) {
		c.TUS.URLPath, c.TUS.PublicURL, c.TUS.AllowForwardedPath = "/storage/v1/upload/resumable", public, true
	})
	r := o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Length", "1",
		"Upload-Metadata", tusMD("bucketName", "b", "objectName", "x"), "X-Forwarded-Prefix", "/gw/",
		"X-Forwarded-Host", "other.example.com")
	requireTUS(t, r, 201, "")
	loc := r.Header.Get("Location")
	require.True(t, strings.HasPrefix(loc, "https://files.example.com:8443/gw/storage/v1/upload/resumable/"), loc)
	raw, err := base64.RawURLEncoding.DecodeString(lastSegment(loc))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(raw), "b/x/"), string(raw))
}

// waitAdvisoryLock waits until a request holds an advisory lock (an upload's) in o's database.
func (o *objEnv) waitAdvisoryLock(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		require.NoError(t, o.db.Pool.QueryRow(context.Background(), `select count(*) from pg_locks where locktype = 'advisory'
			and granted and database = (select oid from pg_database where datname = current_database())`).Scan(&n))
		if n > 0 {
			return
		}
		require.True(t, time.Now().Before(deadline), "no request took an upload's lock within 30 s")
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTUSMetadataNotStorable: user metadata (Upload-Metadata's metadata) that is JSON but that
// jsonb cannot store (a lone UTF-16 surrogate escape, the \u0000 escape) is refused before
// the upload exists, as the REST uploads refuse it, not answered 500 by the database's refusal;
// the REST door refuses the same document the same way. Nothing is stored.
func TestTUSMetadataNotStorable(t *testing.T) {
	t.Parallel()
	o := newObjEnv(t, signFileBackend(t))
	for _, meta := range []string{`{"a":"\ud800"}`, `{"\udc00":1}`, `{"a":"\u0000"}`} {
		r := o.tusDo(t, "POST", "/upload/resumable", o.service, nil, "Upload-Length", "5",
			"Upload-Metadata", tusMD("bucketName", "b", "objectName", "m.txt", "metadata", meta))
		requireTUS(t, r, 400, "metadata must be UTF-8 text without NUL characters")

		r = o.upload(t, "POST", "b", "m.txt", o.service, "hello", withHeader("x-metadata", base64.StdEncoding.EncodeToString([]byte(meta))))
		require.Equal(t, 400, r.Status)
		require.Equal(t, apiError{"400", "InvalidRequest", "InvalidRequest", "metadata must be UTF-8 text without NUL characters"}, requireErrorShape(t, r), meta)
	}
	resumable, inFlight := o.tusState(t)
	require.Equal(t, [2]int{0, 0}, [2]int{resumable, inFlight})
	require.Empty(t, listBlobs(t, o.blobs))
}
