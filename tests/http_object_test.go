package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/blob/file"
	"github.com/pgstorage/storage/blob/s3"
	"github.com/pgstorage/storage/blob/s3/s3test"
)

// The object routes (upload, download, HEAD, info, delete one and many) over real HTTP against
// the real proxy, a real database and a real blob store, pinned to the behavioural contract
// (/work/shared/spec/API.md §1.1, §2.3–§2.6, §6.2–§6.4 and §11 items 26–54, 75–76) and to
// DESIGN.md §4 (bytes and rows never disagree): exact HTTP statuses, bodies, headers and bytes,
// plus the rows, the blob bookkeeping (storage.blob_uploads, storage.blobs_freed) and the
// blobs every request leaves behind. Every case runs once per blob backend, each on its own
// server, database and store. Subtests are named after the §11 item they pin where there is one.

// ---------------------------------------------------------------------------------------------
// Backends.

// objectBackend is a blob store the object routes are tested against.
type objectBackend struct {
	name     string
	newStore func(t *testing.T) blob.Store // a fresh, empty store that lives as long as t
}

// objectBackends are the stores every object test runs against.
var objectBackends = []objectBackend{
	{name: "file", newStore: objFileStore},
	// ----- The S3 backend: this is the one place it is added (a versitygw per test). -----
	{name: "s3", newStore: s3Store},
}

// objFileStore is the file backend in a directory of t's own.
func objFileStore(t *testing.T) blob.Store {
	t.Helper()
	s, err := file.New(t.TempDir())
	require.NoError(t, err)
	return s
}

// s3Store is the S3 backend on a real S3 server (versitygw, started for t and stopped when t
// ends) with a fresh bucket. It fails, never skips, when the server cannot run.
func s3Store(t *testing.T) blob.Store {
	t.Helper()
	s, err := s3.New(context.Background(), s3test.Start(t))
	require.NoError(t, err)
	return s
}

// listBlobs returns every blob the store holds, by key, plus anything a failed write may
// have left behind: files in the file store's temporary directory, unfinished S3 multipart
// uploads (listed as "multipart upload: <key>").
func listBlobs(t *testing.T, s blob.Store) []string {
	t.Helper()
	var keys []string
	switch s := s.(type) {
	case *file.Store:
		root := s.Root()
		require.NoError(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(root, p)
			keys = append(keys, filepath.ToSlash(rel))
			return err
		}))
	case *s3.Store:
		ctx := context.Background()
		bucket, prefix := s.Bucket()
		pages := awss3.NewListObjectsV2Paginator(s.Client(), &awss3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			require.NoError(t, err)
			for _, o := range page.Contents {
				keys = append(keys, strings.TrimPrefix(aws.ToString(o.Key), prefix))
			}
		}
		mp, err := s.Client().ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
		require.NoError(t, err)
		for _, u := range mp.Uploads {
			keys = append(keys, "multipart upload: "+strings.TrimPrefix(aws.ToString(u.Key), prefix))
		}
	default:
		t.Fatalf("listBlobs: unknown store %T", s)
	}
	slices.Sort(keys)
	return keys
}

// blobVersion is the object version a blob key holds: keys end with the version (the proxy
// may shard them under a directory, "ab/abcdef…").
func blobVersion(key string) string { return path.Base(key) }

// ---------------------------------------------------------------------------------------------
// The environment of one case.

// objEnv is one case's server (with its own database and store) and a private bucket "b".
type objEnv struct {
	*httpBundle
}

// run runs fn as a parallel subtest named name on a fresh environment of backend be.
func (be objectBackend) run(t *testing.T, name string, fn func(t *testing.T, o *objEnv), opts ...httpOpt) {
	t.Run(name, func(t *testing.T) {
		t.Parallel()
		fn(t, newObjEnv(t, be, opts...))
	})
}

// forEachObjectBackend runs fn once per backend, as parallel subtests named after them.
func forEachObjectBackend(t *testing.T, fn func(t *testing.T, be objectBackend)) {
	for _, be := range objectBackends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			fn(t, be)
		})
	}
}

func newObjEnv(t *testing.T, be objectBackend, opts ...httpOpt) *objEnv {
	t.Helper()
	o := &objEnv{setupHTTP(t, append([]httpOpt{withBlobStore(be.newStore(t))}, opts...)...)}
	o.mkBucket(t, `{"name":"b"}`)
	return o
}

// mkBucket creates a bucket with the service key.
func (o *objEnv) mkBucket(t *testing.T, body string) {
	t.Helper()
	r := o.do(t, "POST", "/bucket", o.service, body)
	require.Equal(t, http.StatusOK, r.Status, "create bucket %s: %s", body, r)
}

// objPath is /object/{bucket}/{key} with the key escaped only where a URL needs it (space,
// ?, #, %, non-ASCII, controls): the other allowed characters travel verbatim, as storage-js
// sends them.
func objPath(bucket, key string) string {
	return "/object/" + escapeKey(bucket) + "/" + escapeKey(key)
}

func escapeKey(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c > ' ' && c < 0x7f && !strings.ContainsRune(`?#%"<>[]{}^|\`+"`", rune(c)) {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// send sends body to path: with a Content-Length when size >= 0, chunked (no Content-Length,
// as storage-js streams) when size < 0.
func (o *objEnv) send(t *testing.T, method, path, token string, body io.Reader, size int64, opts ...reqOpt) httpResponse {
	t.Helper()
	req := o.newRequest(t, method, path, token, body, size, opts...)
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return httpResponse{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

func (o *objEnv) newRequest(t *testing.T, method, path, token string, body io.Reader, size int64, opts ...reqOpt) *http.Request {
	t.Helper()
	switch {
	case size < 0:
		body = struct{ io.Reader }{body} // hides the length: net/http sends it chunked
	case size == 0:
		body = http.NoBody
	}
	req, err := http.NewRequest(method, o.baseURL+path, body)
	require.NoError(t, err)
	if size >= 0 {
		req.ContentLength = size
	} else {
		req.ContentLength = -1
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for _, opt := range opts {
		opt(req)
	}
	return req
}

// sendRaw sends a request on a connection of its own, writing the body from another
// goroutine that ignores write errors, and returns the response the server sent. It is for
// refusals of bodies larger than the socket buffers: the server answers before reading the
// body and then closes the connection under the writer, which net/http's client may report
// as "connection reset" instead of the answer, depending on timing. size < 0 sends the body
// chunked.
func (o *objEnv) sendRaw(t *testing.T, method, path, token string, body io.Reader, size int64, headers ...string) httpResponse {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(o.baseURL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(60*time.Second)))
	var h strings.Builder
	h.WriteString(method + " " + path + " HTTP/1.1\r\nHost: test\r\n")
	if token != "" {
		h.WriteString("Authorization: Bearer " + token + "\r\n")
	}
	if size >= 0 {
		h.WriteString("Content-Length: " + strconv.FormatInt(size, 10) + "\r\n")
	} else {
		h.WriteString("Transfer-Encoding: chunked\r\n")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		h.WriteString(headers[i] + ": " + headers[i+1] + "\r\n")
	}
	h.WriteString("\r\n")
	_, err = io.WriteString(conn, h.String())
	require.NoError(t, err)
	written := make(chan struct{})
	go func() {
		defer close(written)
		if size >= 0 {
			_, _ = io.Copy(conn, body)
			return
		}
		cw := httputil.NewChunkedWriter(conn)
		if _, err := io.Copy(cw, body); err == nil && cw.Close() == nil {
			_, _ = io.WriteString(conn, "\r\n")
		}
	}()
	defer func() { conn.Close(); <-written }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	require.NoError(t, err)
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return httpResponse{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// upload sends content as a raw body with a Content-Length.
func (o *objEnv) upload(t *testing.T, method, bucket, key, token, content string, opts ...reqOpt) httpResponse {
	t.Helper()
	return o.send(t, method, objPath(bucket, key), token, strings.NewReader(content), int64(len(content)), opts...)
}

// mustUpload uploads content to bucket/key with the service key, asserts the reply and returns
// the object's id.
func (o *objEnv) mustUpload(t *testing.T, bucket, key, content string, opts ...reqOpt) string {
	t.Helper()
	return requireUploaded(t, o.upload(t, "POST", bucket, key, o.service, content, opts...), bucket+"/"+key)
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// requireUploaded asserts an upload's reply, exactly {"Id":<uuid>,"Key":<fullKey>} (§11
// item 26), and returns the id.
func requireUploaded(t *testing.T, r httpResponse, fullKey string) string {
	t.Helper()
	requireOKJSON(t, r)
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &m))
	require.Equal(t, []string{"Id", "Key"}, sortedKeys(m), "body: %s", r.Body)
	require.Equal(t, fullKey, m["Key"], "body: %s", r.Body)
	id, _ := m["Id"].(string)
	require.Regexp(t, uuidPattern, id, "body: %s", r.Body)
	return id
}

// requireBytes asserts a 200 download of exactly want.
func requireBytes(t *testing.T, r httpResponse, want string) {
	t.Helper()
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	require.Equal(t, want, string(r.Body))
}

// get downloads path as token (service key unless told otherwise).
func (o *objEnv) get(t *testing.T, path, token string, opts ...reqOpt) httpResponse {
	t.Helper()
	return o.do(t, "GET", path, token, "", opts...)
}

// content returns the bytes of bucket/key, downloaded with the service key.
func (o *objEnv) content(t *testing.T, bucket, key string) string {
	t.Helper()
	r := o.get(t, "/object/authenticated/"+escapeKey(bucket)+"/"+escapeKey(key), o.service)
	require.Equal(t, http.StatusOK, r.Status, "download %s/%s: %s", bucket, key, r)
	return string(r.Body)
}

// info returns GET /object/info/{bucket}/{key} with the service key, decoded.
func (o *objEnv) info(t *testing.T, bucket, key string) map[string]any {
	t.Helper()
	r := o.get(t, "/object/info/"+escapeKey(bucket)+"/"+escapeKey(key), o.service)
	requireOKJSON(t, r)
	m, ok := objJSON(t, r.Body).(map[string]any)
	require.True(t, ok, "info: %s", r.Body)
	return m
}

// objJSON decodes a body keeping numbers exact.
func objJSON(t *testing.T, body []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	require.NoError(t, d.Decode(&v), "body: %s", body)
	return v
}

// column runs sql as the tables' owner (no RLS) and returns the first column as text.
func (o *objEnv) column(t *testing.T, sql string, args ...any) []string {
	t.Helper()
	rows, err := o.db.Pool.Query(context.Background(), sql, args...)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// version returns the version of the row bucket/name ("" when there is no row).
func (o *objEnv) version(t *testing.T, bucket, name string) string {
	t.Helper()
	v := o.column(t, `select coalesce(version, '') from storage.objects where bucket_id = $1 and name = $2`, bucket, name)
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func (o *objEnv) objectNames(t *testing.T) []string {
	t.Helper()
	return o.column(t, `select bucket_id || '/' || name from storage.objects order by 1`)
}

func (o *objEnv) inFlight(t *testing.T) []string {
	t.Helper()
	return o.column(t, `select version from storage.blob_uploads order by version`)
}

// freed returns storage.blobs_freed as "version bucket_id" lines, in queue order.
func (o *objEnv) freed(t *testing.T) []string {
	t.Helper()
	return o.column(t, `select version || ' ' || coalesce(bucket_id, '<null>') from storage.blobs_freed order by id`)
}

func (o *objEnv) freedVersions(t *testing.T) []string {
	t.Helper()
	return o.column(t, `select version from storage.blobs_freed order by id`)
}

// requireNothingStored asserts that a refused request left no row, no upload in flight and no
// blob (not even a temporary file or an unfinished multipart upload) behind: objects lists
// the rows that existed before.
func (o *objEnv) requireNothingStored(t *testing.T, objects ...string) {
	t.Helper()
	require.Equal(t, append([]string{}, objects...), append([]string{}, o.objectNames(t)...), "rows of storage.objects")
	require.Empty(t, o.inFlight(t), "storage.blob_uploads")
	var want []string
	for _, name := range objects {
		b, k, _ := strings.Cut(name, "/")
		want = append(want, o.version(t, b, k))
	}
	var got []string
	for _, k := range listBlobs(t, o.blobs) {
		got = append(got, blobVersion(k))
	}
	slices.Sort(want)
	slices.Sort(got)
	require.Equal(t, append([]string{}, want...), append([]string{}, got...), "blobs in the store (want exactly the rows' versions)")
}

// requireBlobsAccounted asserts DESIGN §4 on the store: no upload in flight, every row's
// version has its blob, and every blob in the store is a row's or is queued in
// storage.blobs_freed (nothing orphaned); the collector would take no referenced version.
func (o *objEnv) requireBlobsAccounted(t *testing.T) {
	t.Helper()
	require.Empty(t, o.inFlight(t), "storage.blob_uploads")
	rowVersions := o.column(t, `select version from storage.objects where version is not null`)
	freed := o.freedVersions(t)
	var inStore []string
	for _, k := range listBlobs(t, o.blobs) {
		v := blobVersion(k)
		inStore = append(inStore, v)
		require.True(t, slices.Contains(rowVersions, v) || slices.Contains(freed, v),
			"blob %s is neither a row's version nor queued in storage.blobs_freed", k)
	}
	for _, v := range rowVersions {
		require.Contains(t, inStore, v, "the blob of a row's version")
	}
	// A row's version may be queued (a deleted row shared its blob with a copy), but the
	// collector must never take it: ask it what it would delete now (rolled back).
	for _, v := range sqlCollectable(t, o.db) {
		require.NotContains(t, rowVersions, v, "the collector would delete the blob of a row")
	}
}

// waitFor polls cond (a database query) until it holds: for states another goroutine's
// request reaches at a moment the test cannot observe otherwise. No fixed sleeps.
func (o *objEnv) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 30*time.Second, 5*time.Millisecond, "waiting for: %s", what)
}

// multipartForm builds a multipart/form-data body laid out as storage-js sends a Blob: the
// string fields first, in order, then (when withFile) the file part under the field name ""
// with filename "blob" and partType as its Content-Type ("" for none).
func multipartForm(t *testing.T, fields [][2]string, withFile bool, partType, content string) (body, contentType string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, f := range fields {
		require.NoError(t, w.WriteField(f[0], f[1]))
	}
	if withFile {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name=""; filename="blob"`)
		if partType != "" {
			h.Set("Content-Type", partType)
		}
		p, err := w.CreatePart(h)
		require.NoError(t, err)
		_, err = io.WriteString(p, content)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	return buf.String(), w.FormDataContentType()
}

// uploadForm sends a multipart body built by multipartForm.
func (o *objEnv) uploadForm(t *testing.T, method, bucket, key, token, body, contentType string, opts ...reqOpt) httpResponse {
	t.Helper()
	opts = append([]reqOpt{withHeader("Content-Type", contentType)}, opts...)
	return o.upload(t, method, bucket, key, token, body, opts...)
}

func quotedMD5(s string) string {
	sum := md5.Sum([]byte(s))
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// The errors of this file.
var (
	errKeyExists    = apiError{"409", "KeyAlreadyExists", "Duplicate", "The resource already exists"}
	errNoSuchKey    = apiError{"404", "NoSuchKey", "not_found", "Object not found"}
	errBlobNotFound = apiError{"404", "NoSuchKey", "Not found", "The resource was not found"}
	errInvalidRange = apiError{"416", "InvalidRange", "invalid_range", "invalid range provided"}
	errDeleteDenied = apiError{"403", "AccessDenied", "Unauthorized", "Access denied"}
	errNoContent    = apiError{"400", "InvalidRequest", "InvalidRequest", "No content provided"}
	errBadCT        = apiError{"415", "InvalidMimeType", "invalid_mime_type", "Invalid Content-Type header"}
	errMetaTooLarge = apiError{"413", "EntityTooLarge", "Payload too large", "The user_metadata exceeded the maximum allowed size"}
)

func errInvalidKey(key string) apiError {
	return apiError{"400", "InvalidKey", "InvalidKey", "Invalid key: " + key}
}

func errMime(mime string) apiError {
	return apiError{"415", "InvalidMimeType", "invalid_mime_type", "mime type " + mime + " is not supported"}
}

// ---------------------------------------------------------------------------------------------
// Upload.

func TestHTTPObjectUpload(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "26_RawUpload", func(t *testing.T, o *objEnv) {
			id := requireUploaded(t, o.upload(t, "POST", "b", "k", o.service, "hello"), "b/k")
			require.Equal(t, "hello", o.content(t, "b", "k"))

			var gotID string
			var owner, ownerID *string
			var meta, userMeta map[string]any
			require.NoError(t, o.db.Pool.QueryRow(context.Background(),
				`select id::text, owner::text, owner_id, metadata, user_metadata from storage.objects where bucket_id = 'b' and name = 'k'`).
				Scan(&gotID, &owner, &ownerID, &meta, &userMeta))
			require.Equal(t, id, gotID)
			require.Nil(t, owner, "a service key has no sub")
			require.Nil(t, ownerID)
			require.Equal(t, map[string]any{}, userMeta, "no metadata sent: user_metadata is {} (§2.4)")
			lm, _ := meta["lastModified"].(string)
			require.Regexp(t, jsTimestamp, lm)
			delete(meta, "lastModified")
			require.Equal(t, map[string]any{"eTag": quotedMD5("hello"), "size": 5.0, "mimetype": "application/octet-stream",
				"cacheControl": "no-cache", "contentLength": 5.0, "httpStatusCode": 200.0}, meta)
			o.requireBlobsAccounted(t)
			require.Empty(t, o.freed(t))
		})

		be.run(t, "27_DuplicateWithoutUpsert", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "first")
			requireAPIError(t, o.upload(t, "POST", "b", "k", o.service, "second"), 400, errKeyExists)
			require.Equal(t, "first", o.content(t, "b", "k"))
			o.requireNothingStored(t, "b/k") // the refused upload wrote no blob
			require.Empty(t, o.freed(t))
		})

		be.run(t, "28_UpsertKeepsIdAndCreatedAt", func(t *testing.T, o *objEnv) {
			id := o.mustUpload(t, "b", "k", "first")
			old := o.version(t, "b", "k")
			var created0, updated0 time.Time
			require.NoError(t, o.db.Pool.QueryRow(context.Background(),
				`select created_at, updated_at from storage.objects where bucket_id = 'b' and name = 'k'`).Scan(&created0, &updated0))

			r := o.upload(t, "POST", "b", "k", o.service, "second version", withHeader("x-upsert", "true"))
			require.Equal(t, id, requireUploaded(t, r, "b/k"), "an upsert keeps the id")
			require.Equal(t, "second version", o.content(t, "b", "k"))

			var created1, updated1 time.Time
			require.NoError(t, o.db.Pool.QueryRow(context.Background(),
				`select created_at, updated_at from storage.objects where bucket_id = 'b' and name = 'k'`).Scan(&created1, &updated1))
			require.True(t, created0.Equal(created1), "created_at unchanged: %s → %s", created0, created1)
			require.True(t, updated1.After(updated0), "updated_at increased: %s → %s", updated0, updated1)
			require.Equal(t, "14", o.info(t, "b", "k")["size"].(json.Number).String())

			// The replaced version is queued, in the same transaction as the row's change.
			require.NotEqual(t, old, o.version(t, "b", "k"))
			require.Equal(t, []string{old + " b"}, o.freed(t))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "29_UpsertOnlyExactTrue", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "first")
			for _, v := range []string{"TRUE", "True", "1", "yes", "false", ""} {
				r := o.upload(t, "POST", "b", "k", o.service, "second", withHeader("x-upsert", v))
				requireAPIError(t, r, 400, errKeyExists)
			}
			require.Equal(t, "first", o.content(t, "b", "k"))
			o.requireNothingStored(t, "b/k")
		})

		be.run(t, "30_PutCreatesAndReplaces", func(t *testing.T, o *objEnv) {
			id := requireUploaded(t, o.upload(t, "PUT", "b", "new-key", o.service, "created"), "b/new-key")
			require.Equal(t, "created", o.content(t, "b", "new-key"))
			old := o.version(t, "b", "new-key")
			// PUT always upserts, whatever x-upsert says.
			r := o.upload(t, "PUT", "b", "new-key", o.service, "replaced", withHeader("x-upsert", "false"))
			require.Equal(t, id, requireUploaded(t, r, "b/new-key"))
			require.Equal(t, "replaced", o.content(t, "b", "new-key"))
			require.Equal(t, []string{old + " b"}, o.freed(t))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "31_MissingBucket", func(t *testing.T, o *objEnv) {
			requireAPIError(t, o.upload(t, "POST", "missing", "k", o.service, "x"), 400, errNoSuchBucket)
			requireAPIError(t, o.upload(t, "PUT", "missing", "k", o.service, "x"), 400, errNoSuchBucket)
			o.requireNothingStored(t)
			require.Empty(t, o.freed(t))
		})

		be.run(t, "AuthorizationRequired", func(t *testing.T, o *objEnv) {
			requireAPIError(t, o.upload(t, "POST", "b", "k", "", "x"), 400, errNoAuthHeader)
			r := o.upload(t, "POST", "b", "k", "", "x", withHeader("Authorization", "Bearer not-a-jwt"))
			requireAPIError(t, r, 400, apiError{"403", "AccessDenied", "Unauthorized", "Invalid Compact JWS"})
			o.requireNothingStored(t)
		})

		be.run(t, "ChunkedBody", func(t *testing.T, o *objEnv) {
			content := strings.Repeat("chunked body, no Content-Length. ", 5000) // > the server's pre-read buffer
			r := o.send(t, "POST", objPath("b", "k"), o.service, strings.NewReader(content), -1, withHeader("Content-Type", "text/plain"))
			requireUploaded(t, r, "b/k")
			require.Equal(t, content, o.content(t, "b", "k"))
			info := o.info(t, "b", "k")
			require.Equal(t, strconv.Itoa(len(content)), info["size"].(json.Number).String())
			require.Equal(t, quotedMD5(content), info["etag"])
			var cl int64
			require.NoError(t, o.db.Pool.QueryRow(context.Background(),
				`select (metadata->>'contentLength')::bigint from storage.objects where name = 'k'`).Scan(&cl))
			require.Equal(t, int64(len(content)), cl)
			o.requireBlobsAccounted(t)
		})

		be.run(t, "MultipartAsStorageJS", func(t *testing.T, o *objEnv) {
			body, ct := multipartForm(t, [][2]string{{"cacheControl", "3600"}, {"contentType", "image/png"}, {"metadata", `{"a":1,"b":"x"}`}},
				true, "text/plain", "multipart content")
			requireUploaded(t, o.uploadForm(t, "POST", "b", "k", o.service, body, ct), "b/k")
			r := o.get(t, objPath("b", "k"), o.service)
			requireBytes(t, r, "multipart content")
			require.Equal(t, "image/png", r.Header.Get("Content-Type"), "the contentType field wins over the part's type")
			require.Equal(t, "max-age=3600", r.Header.Get("Cache-Control"))
			info := o.info(t, "b", "k")
			require.Equal(t, map[string]any{"a": json.Number("1"), "b": "x"}, info["metadata"])
			require.Equal(t, "17", info["size"].(json.Number).String())

			// Without a contentType field the part's own type is the object's.
			body, ct = multipartForm(t, [][2]string{{"cacheControl", "60"}}, true, "text/csv", "a,b\n1,2\n")
			requireUploaded(t, o.uploadForm(t, "POST", "b", "csv", o.service, body, ct), "b/csv")
			r = o.get(t, objPath("b", "csv"), o.service)
			requireBytes(t, r, "a,b\n1,2\n")
			require.Equal(t, "text/csv", r.Header.Get("Content-Type"))
			require.Equal(t, "max-age=60", r.Header.Get("Cache-Control"))
			require.Equal(t, map[string]any{}, o.info(t, "b", "csv")["metadata"])

			// A part without a type, and no fields: application/octet-stream, no-cache.
			body, ct = multipartForm(t, nil, true, "", "raw")
			requireUploaded(t, o.uploadForm(t, "POST", "b", "bare", o.service, body, ct), "b/bare")
			r = o.get(t, objPath("b", "bare"), o.service)
			requireBytes(t, r, "raw")
			require.Equal(t, "application/octet-stream", r.Header.Get("Content-Type"))
			require.Equal(t, "no-cache", r.Header.Get("Cache-Control"))

			// PUT with a multipart body replaces, as storage-js update() does.
			body, ct = multipartForm(t, [][2]string{{"cacheControl", "10"}}, true, "text/plain", "updated")
			requireUploaded(t, o.uploadForm(t, "PUT", "b", "k", o.service, body, ct), "b/k")
			require.Equal(t, "updated", o.content(t, "b", "k"))
			require.Equal(t, map[string]any{}, o.info(t, "b", "k")["metadata"], "an upsert replaces user metadata wholesale")
			o.requireBlobsAccounted(t)
		})

		be.run(t, "MultipartWithoutFilePart", func(t *testing.T, o *objEnv) {
			body, ct := multipartForm(t, [][2]string{{"cacheControl", "3600"}, {"metadata", `{"a":1}`}}, false, "", "")
			requireAPIError(t, o.uploadForm(t, "POST", "b", "k", o.service, body, ct), 400, errNoContent)
			o.requireNothingStored(t)
			require.Empty(t, o.freed(t))
		})

		be.run(t, "MultipartMetadataOver1MiB", func(t *testing.T, o *objEnv) {
			meta := `{"a":"` + strings.Repeat("m", 1<<20) + `"}`
			body, ct := multipartForm(t, [][2]string{{"metadata", meta}}, true, "text/plain", "content")
			requireAPIError(t, o.uploadForm(t, "POST", "b", "k", o.service, body, ct), 400, errMetaTooLarge)
			o.requireNothingStored(t)

			// Exactly 1 MiB is fine.
			meta = `{"a":"` + strings.Repeat("m", 1<<20-8) + `"}`
			require.Len(t, meta, 1<<20)
			body, ct = multipartForm(t, [][2]string{{"metadata", meta}}, true, "text/plain", "content")
			requireUploaded(t, o.uploadForm(t, "POST", "b", "k", o.service, body, ct), "b/k")
		})

		be.run(t, "41_UserMetadata", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "x", "x", withHeader("x-metadata", base64.StdEncoding.EncodeToString([]byte(`{"a":1}`))))
			require.Equal(t, map[string]any{"a": json.Number("1")}, o.info(t, "b", "x")["metadata"])
			require.Equal(t, []string{`{"a": 1}`}, o.column(t, `select user_metadata::text from storage.objects where name = 'x'`))

			body, ct := multipartForm(t, [][2]string{{"metadata", `{"a":1}`}}, true, "text/plain", "m")
			requireUploaded(t, o.uploadForm(t, "POST", "b", "m", o.service, body, ct), "b/m")
			require.Equal(t, map[string]any{"a": json.Number("1")}, o.info(t, "b", "m")["metadata"])

			o.mustUpload(t, "b", "none", "n")
			require.Equal(t, map[string]any{}, o.info(t, "b", "none")["metadata"])

			// Undecodable x-metadata is ignored, not an error.
			o.mustUpload(t, "b", "bad", "n", withHeader("x-metadata", "not base64!"))
			require.Equal(t, map[string]any{}, o.info(t, "b", "bad")["metadata"])

			// An upsert replaces user metadata wholesale.
			o.mustUpload(t, "b", "x", "y", withHeader("x-upsert", "true"),
				withHeader("x-metadata", base64.StdEncoding.EncodeToString([]byte(`{"b":2}`))))
			require.Equal(t, map[string]any{"b": json.Number("2")}, o.info(t, "b", "x")["metadata"])
		})

		be.run(t, "42_CacheControl", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "default", "x")
			require.Equal(t, "no-cache", o.get(t, objPath("b", "default"), o.service).Header.Get("Cache-Control"))
			o.mustUpload(t, "b", "raw", "x", withHeader("Cache-Control", "max-age=60"))
			require.Equal(t, "max-age=60", o.get(t, objPath("b", "raw"), o.service).Header.Get("Cache-Control"))
			body, ct := multipartForm(t, [][2]string{{"cacheControl", "3600"}}, true, "text/plain", "x")
			requireUploaded(t, o.uploadForm(t, "POST", "b", "form", o.service, body, ct), "b/form")
			require.Equal(t, "max-age=3600", o.get(t, objPath("b", "form"), o.service).Header.Get("Cache-Control"))
		})

		be.run(t, "44_XRobotsTag", func(t *testing.T, o *objEnv) {
			r := o.upload(t, "POST", "b", "k", o.service, "x", withHeader("x-robots-tag", "invalidrule"))
			requireAPIError(t, r, 400, apiError{"400", "InvalidRequest", "invalid_x_robots_tag", "Invalid X-Robots-Tag header: invalidrule"})
			o.requireNothingStored(t)

			o.mustUpload(t, "b", "k", "x", withHeader("x-robots-tag", "nofollow"))
			require.Equal(t, "nofollow", o.get(t, objPath("b", "k"), o.service).Header.Get("X-Robots-Tag"))
			o.mustUpload(t, "b", "plain", "x")
			require.Equal(t, "none", o.get(t, objPath("b", "plain"), o.service).Header.Get("X-Robots-Tag"))
		})
	})
}

// ---------------------------------------------------------------------------------------------
// Keys.

// allowedKeyChars are all the characters of a valid key (§6.2) except letters and digits.
const allowedKeyChars = "_/!-.*'() &$=@;:+,?"

func TestHTTPObjectKeys(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "32_InvalidKeys", func(t *testing.T, o *objEnv) {
			// The empty key.
			requireAPIError(t, o.upload(t, "POST", "b", "", o.service, "x"), 400, errInvalidKey(""))
			// Each refused character, alone in a name and percent-encoded in the path.
			bad := []string{"café.txt", "a%b", "a#b", `a\b`, `a"b`, "a<b", "a>b", "a[b", "a]b", "a{b", "a}b",
				"a^b", "a`b", "a|b", "a~b", "a\tb", "a\nb", "a\x01b", "a\x7fb", "日本"}
			for _, k := range bad {
				r := o.send(t, "POST", "/object/b/"+percentEncodeAll(k), o.service, strings.NewReader("x"), 1)
				requireAPIError(t, r, 400, errInvalidKey(k))
			}
			o.requireNothingStored(t)
			// Reads validate the key too.
			requireAPIError(t, o.get(t, "/object/authenticated/b/a%25b", o.service), 400, errInvalidKey("a%b"))
			requireAPIError(t, o.get(t, "/object/info/b/caf%C3%A9.txt", o.service), 400, errInvalidKey("café.txt"))
		})

		be.run(t, "32_InvalidKeyNUL", func(t *testing.T, o *objEnv) {
			// NUL cannot even reach PostgreSQL text: it must be refused as a key, not fail the
			// database call. The message shows the key as sent (percent-encoded).
			r := o.send(t, "POST", "/object/b/a%00b", o.service, strings.NewReader("x"), 1)
			requireAPIError(t, r, 400, errInvalidKey("a%00b"))
			o.requireNothingStored(t)
		})

		be.run(t, "32_InvalidKeyNotUTF8", func(t *testing.T, o *objEnv) {
			r := o.send(t, "POST", "/object/b/a%FFb", o.service, strings.NewReader("x"), 1)
			requireAPIErrorCode(t, r, 400, "400", "InvalidKey")
			o.requireNothingStored(t)
		})

		be.run(t, "33_SpacesAndSpecialCharacters", func(t *testing.T, o *objEnv) {
			key := "folder with space/file @+$,;=?.txt"
			// As storage-js sends it: verbatim but for space and ?.
			require.Equal(t, "/object/b/folder%20with%20space/file%20@+$,;=%3F.txt", objPath("b", key))
			requireUploaded(t, o.upload(t, "POST", "b", key, o.service, "special", withHeader("Content-Type", "text/plain")), "b/"+key)
			require.Equal(t, []string{"b/" + key}, o.objectNames(t))
			requireBytes(t, o.get(t, objPath("b", key), o.service), "special")
			requireBytes(t, o.get(t, "/object/authenticated/b/"+percentEncodeAll(key), o.service), "special")
			info := o.info(t, "b", key)
			require.Equal(t, key, info["name"])
			r := o.do(t, "HEAD", objPath("b", key), o.service, "")
			require.Equal(t, http.StatusOK, r.Status)
			require.Equal(t, "7", r.Header.Get("Content-Length"))
			requireOKJSON(t, o.do(t, "DELETE", objPath("b", key), o.service, ""))
			require.Empty(t, o.objectNames(t))
		})

		be.run(t, "AllAllowedCharacters", func(t *testing.T, o *objEnv) {
			keys := []string{
				"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
				allowedKeyChars,
				"/leading/slash",
				"trailing/slash/",
				".",
				"..",
				"../up",
				"dir/./x",
				"  spaces  ",
			}
			for _, c := range allowedKeyChars {
				keys = append(keys, "one"+string(c)+"char")
			}
			for i, key := range keys {
				content := "content " + strconv.Itoa(i)
				// Both encodings: storage-js style and every byte escaped.
				requireUploaded(t, o.upload(t, "POST", "b", key, o.service, content), "b/"+key)
				requireBytes(t, o.get(t, "/object/b/"+percentEncodeAll(key), o.service), content)
				requireBytes(t, o.get(t, objPath("b", key), o.service), content)
				require.Equal(t, key, o.info(t, "b", key)["name"])
			}
			got := o.column(t, `select name from storage.objects order by name collate "C"`)
			want := slices.Clone(keys)
			slices.Sort(want)
			require.Equal(t, want, got, "keys are stored verbatim")
			o.requireBlobsAccounted(t)
		})

		be.run(t, "34_EmptySegmentsVerbatim", func(t *testing.T, o *objEnv) {
			requireUploaded(t, o.upload(t, "POST", "b", "a///b.txt", o.service, "triple"), "b/a///b.txt")
			requireUploaded(t, o.upload(t, "POST", "b", "a/b.txt", o.service, "single"), "b/a/b.txt")
			require.Equal(t, []string{"b/a///b.txt", "b/a/b.txt"}, o.objectNames(t))
			requireBytes(t, o.get(t, "/object/b/a///b.txt", o.service), "triple")
			requireBytes(t, o.get(t, "/object/b/a/b.txt", o.service), "single")
			require.Equal(t, "a///b.txt", o.info(t, "b", "a///b.txt")["name"])
		})
	})
}

// ---------------------------------------------------------------------------------------------
// Size limits.

// patternReader yields an endless deterministic byte pattern.
type patternReader struct{ n int }

func (p *patternReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte('a' + (p.n+i)%26)
	}
	p.n += len(b)
	return len(b), nil
}

func TestHTTPObjectLimits(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "35_BucketLimitContentLength", func(t *testing.T, o *objEnv) {
			o.mkBucket(t, `{"name":"small","file_size_limit":10}`)
			requireAPIError(t, o.upload(t, "POST", "small", "k", o.service, strings.Repeat("x", 20)), 400, errTooLarge)
			// Refused before any byte moved: no row, no upload, no blob, nothing queued.
			o.requireNothingStored(t)
			require.Empty(t, o.freed(t))
			// A large declared body is refused just the same, without reading it.
			r := o.sendRaw(t, "POST", objPath("small", "big"), o.service, io.LimitReader(&patternReader{}, 8<<20), 8<<20)
			requireAPIError(t, r, 400, errTooLarge)
			o.requireNothingStored(t)
			require.Empty(t, o.freed(t))
			// Exactly the limit passes; PUT is limited too.
			requireUploaded(t, o.upload(t, "POST", "small", "k", o.service, strings.Repeat("x", 10)), "small/k")
			requireAPIError(t, o.upload(t, "PUT", "small", "k", o.service, strings.Repeat("y", 11)), 400, errTooLarge)
			require.Equal(t, strings.Repeat("x", 10), o.content(t, "small", "k"))
		})

		be.run(t, "BucketLimitChunked", func(t *testing.T, o *objEnv) {
			o.mkBucket(t, `{"name":"small","file_size_limit":10}`)
			r := o.send(t, "POST", objPath("small", "k"), o.service, strings.NewReader(strings.Repeat("x", 20)), -1)
			requireAPIError(t, r, 400, errTooLarge)
			require.Empty(t, o.objectNames(t))
			require.Empty(t, o.inFlight(t), "storage.blob_uploads")
			require.Empty(t, listBlobs(t, o.blobs), "a refused upload leaves no blob")
			// The upload had begun: its version is queued (it may have reached the store).
			require.Len(t, o.freed(t), 1)
			require.True(t, strings.HasSuffix(o.freed(t)[0], " small"), "%v", o.freed(t))

			// A bigger chunked body is cut while streaming.
			r = o.sendRaw(t, "POST", objPath("small", "k"), o.service, io.LimitReader(&patternReader{}, 4<<20), -1)
			requireAPIError(t, r, 400, errTooLarge)
			require.Empty(t, o.objectNames(t))
			require.Empty(t, o.inFlight(t))
			require.Empty(t, listBlobs(t, o.blobs))

			// Exactly the limit, chunked, passes.
			r = o.send(t, "POST", objPath("small", "k"), o.service, strings.NewReader("0123456789"), -1)
			requireUploaded(t, r, "small/k")
			require.Equal(t, "0123456789", o.content(t, "small", "k"))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "36_BucketLimitMultipart", func(t *testing.T, o *objEnv) {
			o.mkBucket(t, `{"name":"small","file_size_limit":10}`)
			body, ct := multipartForm(t, [][2]string{{"cacheControl", "3600"}}, true, "text/plain", strings.Repeat("x", 20))
			requireAPIError(t, o.uploadForm(t, "POST", "small", "k", o.service, body, ct), 400, errTooLarge)
			require.Empty(t, o.objectNames(t))
			require.Empty(t, o.inFlight(t))
			require.Empty(t, listBlobs(t, o.blobs))
			// The whole request is larger than the limit, the file is not: it passes.
			body, ct = multipartForm(t, [][2]string{{"cacheControl", "3600"}}, true, "text/plain", strings.Repeat("x", 10))
			require.Greater(t, len(body), 10)
			requireUploaded(t, o.uploadForm(t, "POST", "small", "k", o.service, body, ct), "small/k")
			o.requireBlobsAccounted(t)
		})

		be.run(t, "GlobalLimitChunked", func(t *testing.T, o *objEnv) {
			// setupHTTP's UPLOAD_FILE_SIZE_LIMIT is 50 MiB: a 51 MiB chunked body is cut
			// while streaming.
			size := int64(httpUploadLimit + 1<<20)
			r := o.sendRaw(t, "POST", objPath("b", "big"), o.service, io.LimitReader(&patternReader{}, size), -1)
			requireAPIError(t, r, 400, errTooLarge)
			require.Empty(t, o.objectNames(t))
			require.Empty(t, o.inFlight(t))
			require.Empty(t, listBlobs(t, o.blobs), "a refused upload leaves no blob")
			require.Len(t, o.freed(t), 1)
			// A bucket limit above the global one does not raise it.
			o.mkBucket(t, `{"name":"roomy","file_size_limit":50000000}`)
			r = o.sendRaw(t, "POST", objPath("roomy", "big"), o.service, io.LimitReader(&patternReader{}, size), -1)
			requireAPIError(t, r, 400, errTooLarge)
			require.Empty(t, o.objectNames(t))
			require.Empty(t, listBlobs(t, o.blobs))
		})

		be.run(t, "GlobalLimitContentLength", func(t *testing.T, o *objEnv) {
			// Refused from the declared length, before any byte is stored.
			size := int64(httpUploadLimit + 1<<20)
			r := o.sendRaw(t, "POST", objPath("b", "big"), o.service, io.LimitReader(&patternReader{}, size), size)
			requireAPIError(t, r, 400, errTooLarge)
			o.requireNothingStored(t)
			require.Empty(t, o.freed(t))
		})

		be.run(t, "40_EmptyFolderPlaceholder", func(t *testing.T, o *objEnv) {
			o.mkBucket(t, `{"name":"m","allowed_mime_types":["text/plain"]}`)
			requireUploaded(t, o.upload(t, "POST", "m", "nested/.emptyFolderPlaceholder", o.service, ""), "m/nested/.emptyFolderPlaceholder")
			requireUploaded(t, o.upload(t, "POST", "m", ".emptyFolderPlaceholder", o.service, "", withHeader("Content-Type", "image/png")),
				"m/.emptyFolderPlaceholder")
			r := o.get(t, objPath("m", "nested/.emptyFolderPlaceholder"), o.service)
			requireBytes(t, r, "")
			require.Equal(t, "0", r.Header.Get("Content-Length"))
			require.Equal(t, "0", o.info(t, "m", "nested/.emptyFolderPlaceholder")["size"].(json.Number).String())

			requireAPIError(t, o.upload(t, "POST", "m", "other/.emptyFolderPlaceholder", o.service, "x"), 400, errTooLarge)
			r = o.send(t, "POST", objPath("m", "chunked/.emptyFolderPlaceholder"), o.service, strings.NewReader("x"), -1)
			requireAPIError(t, r, 400, errTooLarge)
			require.Equal(t, []string{"m/.emptyFolderPlaceholder", "m/nested/.emptyFolderPlaceholder"}, o.objectNames(t))
			// In a bucket without restrictions the limit is 0 all the same.
			requireAPIError(t, o.upload(t, "POST", "b", "x/.emptyFolderPlaceholder", o.service, "x"), 400, errTooLarge)
			o.requireBlobsAccounted(t)
		})
	})
}

// ---------------------------------------------------------------------------------------------
// MIME.

func TestHTTPObjectMime(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "37_ExactType", func(t *testing.T, o *objEnv) {
			o.mkBucket(t, `{"name":"txt","allowed_mime_types":["text/plain"]}`)
			r := o.upload(t, "POST", "txt", "k", o.service, "x", withHeader("Content-Type", "image/png"))
			requireAPIError(t, r, 400, errMime("image/png"))
			r = o.upload(t, "POST", "txt", "k", o.service, "x", withHeader("Content-Type", "text/plain;charset=UTF-8"))
			requireAPIError(t, r, 400, errMime("text/plain;charset=UTF-8"))
			r = o.upload(t, "POST", "txt", "k", o.service, "x") // application/octet-stream
			requireAPIError(t, r, 400, errMime("application/octet-stream"))
			body, ct := multipartForm(t, nil, true, "image/png", "x")
			requireAPIError(t, o.uploadForm(t, "POST", "txt", "k", o.service, body, ct), 400, errMime("image/png"))
			o.requireNothingStored(t)

			requireUploaded(t, o.upload(t, "POST", "txt", "k", o.service, "x", withHeader("Content-Type", "text/plain")), "txt/k")
			require.Equal(t, "text/plain", o.get(t, objPath("txt", "k"), o.service).Header.Get("Content-Type"))
		})

		be.run(t, "38_Wildcards", func(t *testing.T, o *objEnv) {
			o.mkBucket(t, `{"name":"img","allowed_mime_types":["image/*"]}`)
			requireUploaded(t, o.upload(t, "POST", "img", "a.webp", o.service, "x", withHeader("Content-Type", "image/webp")), "img/a.webp")
			requireAPIError(t, o.upload(t, "POST", "img", "a.txt", o.service, "x", withHeader("Content-Type", "text/plain")), 400, errMime("text/plain"))

			o.mkBucket(t, `{"name":"star","allowed_mime_types":["*"]}`)
			requireAPIError(t, o.upload(t, "POST", "star", "a.png", o.service, "x", withHeader("Content-Type", "image/png")), 400, errMime("image/png"))
			o.mkBucket(t, `{"name":"starstar","allowed_mime_types":["*/*"]}`)
			requireAPIError(t, o.upload(t, "POST", "starstar", "a.png", o.service, "x", withHeader("Content-Type", "image/png")), 400, errMime("image/png"))
			o.requireNothingStored(t, "img/a.webp")
		})

		be.run(t, "39_UnparsableContentType", func(t *testing.T, o *objEnv) {
			for _, ct := range []string{"thisisnotarealmimetype", "text/plain\tx"} {
				r := o.upload(t, "POST", "b", "k", o.service, "x", withHeader("Content-Type", ct))
				requireAPIError(t, r, 400, errBadCT)
			}
			o.requireNothingStored(t)
		})

		be.run(t, "StoredVerbatim", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "x", withHeader("Content-Type", "text/plain; charset=ISO-8859-1"))
			r := o.get(t, objPath("b", "k"), o.service)
			require.Equal(t, "text/plain; charset=ISO-8859-1", r.Header.Get("Content-Type"))
			require.Equal(t, "text/plain; charset=ISO-8859-1", o.info(t, "b", "k")["content_type"])
		})
	})
}

// ---------------------------------------------------------------------------------------------
// RLS on uploads.

// folderPolicies are spec §5.5's folder-per-user policies on bucket avatars.
const folderPolicies = `
create policy avatars_owner_read on storage.objects for select to authenticated
  using (bucket_id = 'avatars' and (storage.foldername(name))[1] = (select auth.uid())::text);
create policy avatars_owner_insert on storage.objects for insert to authenticated
  with check (bucket_id = 'avatars' and (storage.foldername(name))[1] = (select auth.uid())::text);
create policy avatars_owner_update on storage.objects for update to authenticated
  using (owner_id = (select auth.uid())::text);
create policy avatars_owner_delete on storage.objects for delete to authenticated
  using (owner_id = (select auth.uid())::text);`

func TestHTTPObjectRLS(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "43_NoInsertPolicy", func(t *testing.T, o *objEnv) {
			requireAPIError(t, o.upload(t, "POST", "b", "k", o.anon, "x"), 400, errRLSInsert)
			requireAPIError(t, o.upload(t, "POST", "b", "k", o.userA, "x"), 400, errRLSInsert)
			requireAPIError(t, o.upload(t, "PUT", "b", "k", o.userA, "x"), 400, errRLSInsert)
			// A big body is refused as cheaply: nothing was written.
			r := o.sendRaw(t, "POST", objPath("b", "big"), o.anon, io.LimitReader(&patternReader{}, 4<<20), -1)
			requireAPIError(t, r, 400, errRLSInsert)
			o.requireNothingStored(t)
			require.Empty(t, o.freed(t))
		})

		be.run(t, "FolderPerUser", func(t *testing.T, o *objEnv) {
			o.mkBucket(t, `{"name":"avatars"}`)
			admin(t, o.db, folderPolicies)
			keyA, keyB := userA.Sub+"/a.png", userB.Sub+"/b.png"

			requireUploaded(t, o.upload(t, "POST", "avatars", keyA, o.userA, "A", withHeader("Content-Type", "image/png")), "avatars/"+keyA)
			requireAPIError(t, o.upload(t, "POST", "avatars", userB.Sub+"/intruder.png", o.userA, "A"), 400, errRLSInsert)
			requireAPIError(t, o.upload(t, "POST", "avatars", "top-level.png", o.userA, "A"), 400, errRLSInsert)
			requireUploaded(t, o.upload(t, "POST", "avatars", keyB, o.userB, "B"), "avatars/"+keyB)
			require.Equal(t, []string{"avatars/" + keyB, "avatars/" + keyA}, sortByC(o.objectNames(t)))
			require.Equal(t, []string{userA.Sub + " " + userA.Sub}, o.column(t,
				`select owner::text || ' ' || owner_id from storage.objects where name = $1`, keyA), "owner and owner_id are the uploader's sub")

			// Reads of a private bucket go through RLS: hidden is "not found", never 403.
			requireBytes(t, o.get(t, objPath("avatars", keyA), o.userA), "A")
			requireBytes(t, o.get(t, "/object/authenticated/avatars/"+keyA, o.userA), "A")
			requireAPIError(t, o.get(t, "/object/authenticated/avatars/"+keyB, o.userA), 400, errNoSuchKey)
			requireAPIError(t, o.get(t, "/object/info/avatars/"+keyB, o.userA), 400, errNoSuchKey)
			requireAPIError(t, o.get(t, objPath("avatars", keyA), ""), 400, errNoSuchBucket)

			// userA may replace its own object (INSERT + UPDATE + SELECT), not userB's.
			requireUploaded(t, o.upload(t, "PUT", "avatars", keyA, o.userA, "A2"), "avatars/"+keyA)
			require.Equal(t, "A2", o.content(t, "avatars", keyA))
			requireAPIError(t, o.upload(t, "PUT", "avatars", keyB, o.userA, "A"), 400, errRLSInsert)
			require.Equal(t, "B", o.content(t, "avatars", keyB))

			// Delete: own objects only.
			requireAPIError(t, o.do(t, "DELETE", "/object/avatars/"+keyB, o.userA, ""), 400, errDeleteDenied)
			requireOKJSON(t, o.do(t, "DELETE", "/object/avatars/"+keyA, o.userA, ""))
			require.Equal(t, []string{"avatars/" + keyB}, o.objectNames(t))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "UpsertNeedsInsertUpdateSelect", func(t *testing.T, o *objEnv) {
			admin(t, o.db, `create policy ins on storage.objects for insert to authenticated with check (bucket_id = 'b')`)
			requireUploaded(t, o.upload(t, "POST", "b", "k", o.userA, "v1"), "b/k")
			requireAPIError(t, o.upload(t, "POST", "b", "k", o.userA, "v2"), 400, errKeyExists)
			requireAPIError(t, o.upload(t, "POST", "b", "k", o.userA, "v2", withHeader("x-upsert", "true")), 400, errRLSInsert)

			admin(t, o.db, `create policy upd on storage.objects for update to authenticated using (bucket_id = 'b')`)
			requireAPIError(t, o.upload(t, "POST", "b", "k", o.userA, "v2", withHeader("x-upsert", "true")), 400, errRLSInsert)
			requireAPIError(t, o.upload(t, "PUT", "b", "k", o.userA, "v2"), 400, errRLSInsert)
			require.Equal(t, "v1", o.content(t, "b", "k"))

			admin(t, o.db, `drop policy upd on storage.objects`)
			admin(t, o.db, `create policy sel on storage.objects for select to authenticated using (bucket_id = 'b')`)
			requireAPIError(t, o.upload(t, "POST", "b", "k", o.userA, "v2", withHeader("x-upsert", "true")), 400, errRLSInsert)
			require.Equal(t, "v1", o.content(t, "b", "k"))

			admin(t, o.db, `create policy upd on storage.objects for update to authenticated using (bucket_id = 'b')`)
			requireUploaded(t, o.upload(t, "POST", "b", "k", o.userA, "v2", withHeader("x-upsert", "true")), "b/k")
			require.Equal(t, "v2", o.content(t, "b", "k"))
			requireUploaded(t, o.upload(t, "PUT", "b", "k", o.userB, "v3"), "b/k")
			require.Equal(t, "v3", o.content(t, "b", "k"))
			require.Equal(t, []string{userB.Sub}, o.column(t, `select owner_id from storage.objects where name = 'k'`),
				"an upsert by a user with a sub takes ownership")
			// A service key (no sub) keeps the owner.
			o.mustUpload(t, "b", "k", "v4", withHeader("x-upsert", "true"))
			require.Equal(t, []string{userB.Sub + " " + userB.Sub}, o.column(t, `select owner::text || ' ' || owner_id from storage.objects where name = 'k'`))
			o.requireBlobsAccounted(t)
		})
	})
}

func sortByC(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// ---------------------------------------------------------------------------------------------
// Download.

func TestHTTPObjectDownload(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "45_Headers", func(t *testing.T, o *objEnv) {
			content := "hello world"
			o.mustUpload(t, "b", "dir/k.txt", content, withHeader("Content-Type", "text/plain"), withHeader("Cache-Control", "max-age=300"))
			for _, p := range []string{"/object/authenticated/b/dir/k.txt", "/object/b/dir/k.txt"} {
				r := o.get(t, p, o.service)
				requireBytes(t, r, content)
				h := r.Header
				require.Equal(t, "text/plain", h.Get("Content-Type"))
				require.Equal(t, "11", h.Get("Content-Length"))
				require.Equal(t, quotedMD5(content), h.Get("ETag"))
				lm, err := http.ParseTime(h.Get("Last-Modified"))
				require.NoError(t, err, "Last-Modified %q", h.Get("Last-Modified"))
				require.WithinDuration(t, time.Now(), lm, time.Minute)
				require.Regexp(t, `^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$`, h.Get("Last-Modified"))
				require.Equal(t, "bytes", h.Get("Accept-Ranges"))
				require.Equal(t, "max-age=300", h.Get("Cache-Control"))
				require.Equal(t, "none", h.Get("X-Robots-Tag"))
				require.Empty(t, h.Values("Content-Disposition"))
				require.Empty(t, h.Values("Content-Range"))
			}
		})

		be.run(t, "46_DownloadDisposition", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "x")
			r := o.get(t, "/object/b/k?download", o.service)
			requireBytes(t, r, "x")
			require.Equal(t, "attachment;", r.Header.Get("Content-Disposition"))
			r = o.get(t, "/object/b/k?download=", o.service)
			require.Equal(t, "attachment;", r.Header.Get("Content-Disposition"))
			r = o.get(t, "/object/authenticated/b/k?download=a%20b.png", o.service)
			requireBytes(t, r, "x")
			require.Equal(t, "attachment; filename=a%20b.png; filename*=UTF-8''a%20b.png", r.Header.Get("Content-Disposition"))
			r = o.get(t, "/object/b/k?download=caf%C3%A9+%26(1).txt", o.service)
			require.Equal(t, "attachment; filename=caf%C3%A9%20%26(1).txt; filename*=UTF-8''caf%C3%A9%20%26(1).txt", r.Header.Get("Content-Disposition"))
		})

		be.run(t, "47_IfNoneMatch", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "cached")
			etag := o.get(t, objPath("b", "k"), o.service).Header.Get("ETag")
			require.Equal(t, quotedMD5("cached"), etag)
			for _, inm := range []string{etag, "W/" + etag, `"other", ` + etag, "*"} {
				r := o.get(t, objPath("b", "k"), o.service, withHeader("If-None-Match", inm))
				require.Equal(t, http.StatusNotModified, r.Status, "If-None-Match %s", inm)
				require.Empty(t, r.Body)
				require.Equal(t, etag, r.Header.Get("ETag"))
			}
			r := o.get(t, objPath("b", "k"), o.service, withHeader("If-None-Match", `"stale"`))
			requireBytes(t, r, "cached")
			require.Equal(t, "no-cache, stale-while-revalidate=30", r.Header.Get("Cache-Control"))
		})

		be.run(t, "IfModifiedSince", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "dated")
			lm := o.get(t, objPath("b", "k"), o.service).Header.Get("Last-Modified")
			r := o.get(t, objPath("b", "k"), o.service, withHeader("If-Modified-Since", lm))
			require.Equal(t, http.StatusNotModified, r.Status)
			require.Empty(t, r.Body)
			later := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
			require.Equal(t, http.StatusNotModified, o.get(t, objPath("b", "k"), o.service, withHeader("If-Modified-Since", later)).Status)
			earlier := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
			requireBytes(t, o.get(t, objPath("b", "k"), o.service, withHeader("If-Modified-Since", earlier)), "dated")
		})

		be.run(t, "48_Range", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "0123456789", withHeader("Content-Type", "text/plain"))
			for _, c := range []struct{ rng, body, contentRange string }{
				{"bytes=0-3", "0123", "bytes 0-3/10"},
				{"bytes=5-", "56789", "bytes 5-9/10"},
				{"bytes=-3", "789", "bytes 7-9/10"},
				{"bytes=9-9", "9", "bytes 9-9/10"},
				{"bytes=-1", "9", "bytes 9-9/10"},
				{"bytes=0-0", "0", "bytes 0-0/10"},
				{"bytes=5-100", "56789", "bytes 5-9/10"},
				{"bytes=-20", "0123456789", "bytes 0-9/10"},
			} {
				r := o.get(t, objPath("b", "k"), o.service, withHeader("Range", c.rng))
				require.Equal(t, http.StatusPartialContent, r.Status, "%s: %s", c.rng, r)
				require.Equal(t, c.body, string(r.Body), c.rng)
				require.Equal(t, c.contentRange, r.Header.Get("Content-Range"), c.rng)
				require.Equal(t, strconv.Itoa(len(c.body)), r.Header.Get("Content-Length"), c.rng)
				require.Equal(t, "text/plain", r.Header.Get("Content-Type"), c.rng)
			}
		})

		be.run(t, "RangeNotSatisfiable", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "0123456789")
			for _, rng := range []string{"bytes=10-", "bytes=10-20", "bytes=100-"} {
				r := o.get(t, objPath("b", "k"), o.service, withHeader("Range", rng))
				requireAPIError(t, r, http.StatusRequestedRangeNotSatisfiable, errInvalidRange)
			}
		})

		be.run(t, "49_HTMLServedAsText", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "x.html", "<script>alert(1)</script>", withHeader("Content-Type", "text/html"))
			o.mustUpload(t, "b", "y.html", "<b>", withHeader("Content-Type", "text/html; charset=utf-8"))
			r := o.get(t, objPath("b", "x.html"), o.service)
			requireBytes(t, r, "<script>alert(1)</script>")
			require.Equal(t, "text/plain", r.Header.Get("Content-Type"))
			require.Equal(t, "text/plain", o.get(t, objPath("b", "y.html"), o.service).Header.Get("Content-Type"))
			require.Equal(t, "text/plain", o.do(t, "HEAD", objPath("b", "x.html"), o.service, "").Header.Get("Content-Type"))
			require.Equal(t, "text/html", o.info(t, "b", "x.html")["content_type"], "info reports what is stored")
		})

		be.run(t, "50_Missing", func(t *testing.T, o *objEnv) {
			requireAPIError(t, o.get(t, "/object/authenticated/b/missing", o.service), 400, errNoSuchKey)
			requireAPIError(t, o.get(t, "/object/b/missing", o.service), 400, errNoSuchKey)
			requireAPIError(t, o.get(t, "/object/authenticated/nobucket/missing", o.service), 400, errNoSuchBucket)
			requireAPIError(t, o.get(t, "/object/authenticated/b/k", ""), 400, errNoAuthHeader)
		})

		be.run(t, "52_PrivateBucketWithoutAuth", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "secret")
			requireAPIError(t, o.get(t, "/object/b/k", ""), 400, errNoSuchBucket)
			requireAPIError(t, o.get(t, "/object/b/k", "", withHeader("Authorization", "Bearer not-a-jwt")), 400, errNoSuchBucket)
			requireAPIError(t, o.get(t, "/object/public/b/k", ""), 400, errNoSuchBucket)
			requireAPIError(t, o.get(t, "/object/public/b/k", o.service), 400, errNoSuchBucket)
			requireAPIError(t, o.get(t, "/object/info/public/b/k", ""), 400, errNoSuchBucket)
			requireAPIError(t, o.get(t, "/object/info/b/k", ""), 400, errNoSuchBucket)
			// An anon key is a caller: RLS (no policy) hides the row.
			requireAPIError(t, o.get(t, "/object/b/k", o.anon), 400, errNoSuchKey)
			requireAPIError(t, o.get(t, "/object/authenticated/b/k", o.anon), 400, errNoSuchKey)
			// With a SELECT policy it is served.
			admin(t, o.db, `create policy sel on storage.objects for select to anon using (bucket_id = 'b')`)
			requireBytes(t, o.get(t, "/object/b/k", o.anon), "secret")
		})

		be.run(t, "53_PublicBucket", func(t *testing.T, o *objEnv) {
			o.mkBucket(t, `{"name":"pb","public":true}`)
			o.mustUpload(t, "pb", "dir/k.txt", "public bytes", withHeader("Content-Type", "text/plain"))
			for _, p := range []string{"/object/public/pb/dir/k.txt", "/object/pb/dir/k.txt"} {
				r := o.get(t, p, "")
				requireBytes(t, r, "public bytes")
				require.Equal(t, "text/plain", r.Header.Get("Content-Type"))
				require.Equal(t, quotedMD5("public bytes"), r.Header.Get("ETag"))
			}
			// No RLS for public buckets: any caller reads through the service role.
			requireBytes(t, o.get(t, "/object/authenticated/pb/dir/k.txt", o.anon), "public bytes")
			requireBytes(t, o.get(t, "/object/pb/dir/k.txt", o.userA), "public bytes")
			requireBytes(t, o.get(t, "/object/pb/dir/k.txt", "", withHeader("Authorization", "Bearer not-a-jwt")), "public bytes")
			r := o.get(t, "/object/info/public/pb/dir/k.txt", "")
			requireOKJSON(t, r)
			require.Equal(t, "dir/k.txt", objJSON(t, r.Body).(map[string]any)["name"])
			requireOKJSON(t, o.get(t, "/object/info/pb/dir/k.txt", ""))
			requireOKJSON(t, o.get(t, "/object/info/authenticated/pb/dir/k.txt", o.anon))
			require.Equal(t, http.StatusOK, o.do(t, "HEAD", "/object/public/pb/dir/k.txt", "", "").Status)
			requireAPIError(t, o.get(t, "/object/public/pb/missing", ""), 400, errNoSuchKey)
			requireAPIError(t, o.get(t, "/object/public/nobucket/k", ""), 400, errNoSuchBucket)
			// Public means readable, not writable.
			requireAPIError(t, o.upload(t, "POST", "pb", "new", o.anon, "x"), 400, errRLSInsert)
		})

		be.run(t, "BlobMissingBehindTheServersBack", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "gone soon")
			blobs := listBlobs(t, o.blobs)
			require.Len(t, blobs, 1)
			require.Equal(t, o.version(t, "b", "k"), blobVersion(blobs[0]))
			require.NoError(t, o.blobs.Delete(context.Background(), blobs[0]))
			r := o.get(t, objPath("b", "k"), o.service)
			requireAPIError(t, r, 400, errBlobNotFound)
			require.Equal(t, "no-store", r.Header.Get("Cache-Control"))
			// HEAD and info answer from the row.
			require.Equal(t, http.StatusOK, o.do(t, "HEAD", objPath("b", "k"), o.service, "").Status)
			require.Equal(t, "k", o.info(t, "b", "k")["name"])
		})
	})
}

// ---------------------------------------------------------------------------------------------
// HEAD and info.

// headRaw sends HEAD path and then, pipelined on the same connection, GET /version: the
// second response parses only if the HEAD response carried no body bytes at all.
func (o *objEnv) headRaw(t *testing.T, path, token string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(o.baseURL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	auth := ""
	if token != "" {
		auth = "Authorization: Bearer " + token + "\r\n"
	}
	_, err = io.WriteString(conn, "HEAD "+path+" HTTP/1.1\r\nHost: test\r\n"+auth+"\r\n"+
		"GET /version HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	head, err := http.ReadResponse(br, &http.Request{Method: "HEAD"})
	require.NoError(t, err)
	next, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	require.NoError(t, err, "the HEAD response was followed by body bytes")
	body, err := io.ReadAll(next.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, next.StatusCode)
	require.Equal(t, httpVersion, string(body), "the HEAD response was followed by body bytes")
	return head
}

func TestHTTPObjectHeadInfo(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "51_Head", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "0123456789", withHeader("Content-Type", "text/plain"), withHeader("Cache-Control", "max-age=5"),
				withHeader("x-robots-tag", "noindex"))
			get := o.get(t, objPath("b", "k"), o.service)
			for _, p := range []string{"/object/b/k", "/object/authenticated/b/k", "/object/info/b/k"} {
				h := o.headRaw(t, p, o.service)
				require.Equal(t, http.StatusOK, h.StatusCode, p)
				require.Equal(t, int64(10), h.ContentLength, p)
				for _, name := range []string{"Content-Type", "ETag", "Last-Modified", "Cache-Control", "Accept-Ranges", "X-Robots-Tag"} {
					require.Equal(t, get.Header.Get(name), h.Header.Get(name), "%s %s", p, name)
				}
				require.Equal(t, quotedMD5("0123456789"), h.Header.Get("ETag"))
				require.Equal(t, "noindex", h.Header.Get("X-Robots-Tag"))
			}
			r := o.do(t, "HEAD", "/object/b/k", o.service, "")
			require.Equal(t, http.StatusOK, r.Status)
			require.Equal(t, "10", r.Header.Get("Content-Length"))
			require.Empty(t, r.Body)

			for _, c := range []struct {
				path, token string
			}{
				{"/object/b/missing", o.service},
				{"/object/authenticated/b/missing", o.service},
				{"/object/authenticated/b/k", ""},     // no Authorization
				{"/object/b/k", ""},                   // private bucket, anonymous
				{"/object/public/b/k", ""},            // private bucket
				{"/object/nobucket/k", o.service},     // missing bucket
				{"/object/info/b/missing", o.service}, // HEAD of the info route
			} {
				h := o.headRaw(t, c.path, c.token)
				require.Equal(t, http.StatusBadRequest, h.StatusCode, c.path)
			}
		})

		be.run(t, "54_Info", func(t *testing.T, o *objEnv) {
			id := o.mustUpload(t, "b", "dir/k.txt", "info!", withHeader("Content-Type", "text/plain"), withHeader("Cache-Control", "max-age=9"),
				withHeader("x-metadata", base64.StdEncoding.EncodeToString([]byte(`{"owner":"me","n":[1,2]}`))))
			for _, p := range []string{"/object/info/b/dir/k.txt", "/object/info/authenticated/b/dir/k.txt"} {
				r := o.get(t, p, o.service)
				requireOKJSON(t, r)
				info := objJSON(t, r.Body).(map[string]any)
				require.Equal(t, []string{"bucket_id", "cache_control", "content_type", "created_at", "etag", "id", "last_modified",
					"metadata", "name", "size", "version"}, sortedKeys(info), "info keys (§11 item 54): %s", r.Body)
				require.Equal(t, id, info["id"])
				require.Equal(t, "dir/k.txt", info["name"])
				require.Equal(t, o.version(t, "b", "dir/k.txt"), info["version"])
				require.Equal(t, "b", info["bucket_id"])
				require.Equal(t, json.Number("5"), info["size"])
				require.Equal(t, "text/plain", info["content_type"])
				require.Equal(t, "max-age=9", info["cache_control"])
				require.Equal(t, quotedMD5("info!"), info["etag"])
				require.Equal(t, map[string]any{"owner": "me", "n": []any{json.Number("1"), json.Number("2")}}, info["metadata"])
				require.Regexp(t, jsTimestamp, info["last_modified"])
				require.Regexp(t, jsTimestamp, info["created_at"])
				require.Equal(t, quotedMD5("info!"), r.Header.Get("ETag"))
				require.Equal(t, "max-age=9", r.Header.Get("Cache-Control"))
				_, err := http.ParseTime(r.Header.Get("Last-Modified"))
				require.NoError(t, err)
			}
			requireAPIError(t, o.get(t, "/object/info/b/missing", o.service), 400, errNoSuchKey)
			requireAPIError(t, o.get(t, "/object/info/authenticated/b/missing", o.service), 400, errNoSuchKey)
			requireAPIError(t, o.get(t, "/object/info/authenticated/b/dir/k.txt", ""), 400, errNoAuthHeader)
			requireAPIError(t, o.get(t, "/object/info/nobucket/k", o.service), 400, errNoSuchBucket)
			requireAPIError(t, o.get(t, "/object/info/b/dir/k.txt", o.userA), 400, errNoSuchKey) // RLS, no policy
		})
	})
}

// ---------------------------------------------------------------------------------------------
// Delete.

func TestHTTPObjectDelete(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "75_DeleteOne", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "x")
			o.mustUpload(t, "b", "other", "y")
			v := o.version(t, "b", "k")
			requireOKBodyExact(t, o.do(t, "DELETE", "/object/b/k", o.service, ""), `{"message":"Successfully deleted"}`)
			requireAPIError(t, o.do(t, "DELETE", "/object/b/k", o.service, ""), 400, errNoSuchKey)
			requireAPIError(t, o.get(t, "/object/b/k", o.service), 400, errNoSuchKey)
			require.Equal(t, []string{"b/other"}, o.objectNames(t))
			require.Equal(t, []string{v + " b"}, o.freed(t), "the deleted version is queued")
			o.requireBlobsAccounted(t)
			// Missing key in a missing bucket: still "object not found".
			requireAPIError(t, o.do(t, "DELETE", "/object/nobucket/k", o.service, ""), 400, errNoSuchKey)
			requireAPIError(t, o.do(t, "DELETE", "/object/b/k", "", ""), 400, errNoAuthHeader)
		})

		be.run(t, "DeleteWithoutDeletePolicy", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "x")
			requireAPIError(t, o.do(t, "DELETE", "/object/b/k", o.userA, ""), 400, errDeleteDenied)
			requireAPIError(t, o.do(t, "DELETE", "/object/b/k", o.anon, ""), 400, errDeleteDenied)
			admin(t, o.db, `create policy sel on storage.objects for select to authenticated using (true)`)
			requireAPIError(t, o.do(t, "DELETE", "/object/b/k", o.userA, ""), 400, errDeleteDenied)
			require.Equal(t, "[]", string(okBody(t, o.do(t, "DELETE", "/object/b", o.userA, `{"prefixes":["k"]}`))))
			require.Equal(t, []string{"b/k"}, o.objectNames(t))
			require.Empty(t, o.freed(t))
			admin(t, o.db, `create policy del on storage.objects for delete to authenticated using (true)`)
			requireOKBodyExact(t, o.do(t, "DELETE", "/object/b/k", o.userA, ""), `{"message":"Successfully deleted"}`)
			require.Empty(t, o.objectNames(t))
		})

		be.run(t, "76_DeleteMany", func(t *testing.T, o *objEnv) {
			id := o.mustUpload(t, "b", "k1", "1", withHeader("Content-Type", "text/plain"))
			o.mustUpload(t, "b", "folder/x", "x")
			o.mustUpload(t, "b", "k2", "2")
			v1 := o.version(t, "b", "k1")

			r := o.do(t, "DELETE", "/object/b", o.service, `{"prefixes":["k1","missing"]}`)
			arr, ok := objJSON(t, okBody(t, r)).([]any)
			require.True(t, ok, "body: %s", r.Body)
			require.Len(t, arr, 1, "body: %s", r.Body)
			row := arr[0].(map[string]any)
			require.Equal(t, []string{"bucket_id", "created_at", "id", "last_accessed_at", "metadata", "name", "owner", "owner_id",
				"updated_at", "user_metadata", "version"}, sortedKeys(row), "body: %s", r.Body)
			require.Equal(t, "k1", row["name"])
			require.Equal(t, "b", row["bucket_id"])
			require.Equal(t, id, row["id"])
			require.Equal(t, v1, row["version"])
			require.Equal(t, "", row["owner"], "a null owner renders as \"\" (§1.3)")
			require.Equal(t, "", row["owner_id"])
			require.Equal(t, map[string]any{}, row["user_metadata"])
			for _, k := range []string{"created_at", "updated_at", "last_accessed_at"} {
				require.Regexp(t, jsTimestamp, row[k], k)
			}
			meta := row["metadata"].(map[string]any)
			require.Equal(t, json.Number("1"), meta["size"])
			require.Equal(t, "text/plain", meta["mimetype"])
			require.Equal(t, quotedMD5("1"), meta["eTag"])

			// Exact names, not prefixes.
			r = o.do(t, "DELETE", "/object/b", o.service, `{"prefixes":["folder","folder/"]}`)
			require.Equal(t, "[]", string(okBody(t, r)))
			require.Equal(t, []string{"b/folder/x", "b/k2"}, o.objectNames(t))
			// A missing bucket deletes nothing.
			require.Equal(t, "[]", string(okBody(t, o.do(t, "DELETE", "/object/nobucket", o.service, `{"prefixes":["k2"]}`))))
			// Several at once, duplicates included.
			r = o.do(t, "DELETE", "/object/b", o.service, `{"prefixes":["folder/x","k2","k2"]}`)
			arr = objJSON(t, okBody(t, r)).([]any)
			var got []string
			for _, e := range arr {
				got = append(got, e.(map[string]any)["name"].(string))
			}
			require.ElementsMatch(t, []string{"folder/x", "k2"}, got)
			require.Empty(t, o.objectNames(t))
			require.Len(t, o.freed(t), 3)
			require.Equal(t, v1+" b", o.freed(t)[0])
			o.requireBlobsAccounted(t)

			// Schema errors.
			requireAPIErrorCode(t, o.do(t, "DELETE", "/object/b", o.service, `{"prefixes":[]}`), 400, "400", "InvalidRequest")
			requireAPIErrorCode(t, o.do(t, "DELETE", "/object/b", o.service, `{}`), 400, "400", "InvalidRequest")
			requireAPIError(t, o.do(t, "DELETE", "/object/b", "", `{"prefixes":["k"]}`), 400, errNoAuthHeader)
		})
	})
}

// okBody asserts a 200 JSON response and returns its body.
func okBody(t *testing.T, r httpResponse) []byte {
	t.Helper()
	requireOKJSON(t, r)
	return r.Body
}

// requireOKBodyExact asserts a 200 JSON response with exactly this body (byte for byte).
func requireOKBodyExact(t *testing.T, r httpResponse, want string) {
	t.Helper()
	require.Equal(t, want, string(okBody(t, r)))
}

// ---------------------------------------------------------------------------------------------
// Bytes and rows never disagree (DESIGN §4).

func TestHTTPObjectConsistency(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "ConcurrentUploadsOneWinner", func(t *testing.T, o *objEnv) {
			const n = 8
			content := func(i int) string { return strings.Repeat(fmt.Sprintf("writer %d. ", i), 10000) } // > pre-read buffer
			statuses := make([]httpResponse, n)
			reqs := make([]*http.Request, n)
			for i := range n {
				reqs[i] = o.newRequest(t, "POST", objPath("b", "k"), o.service, strings.NewReader(content(i)), int64(len(content(i))))
			}
			var start, done sync.WaitGroup
			start.Add(1)
			for i, req := range reqs {
				done.Add(1)
				go func() {
					defer done.Done()
					start.Wait()
					resp, err := httpClient.Do(req)
					if err != nil {
						statuses[i] = httpResponse{Status: -1, Body: []byte(err.Error())}
						return
					}
					defer resp.Body.Close()
					body, _ := io.ReadAll(resp.Body)
					statuses[i] = httpResponse{Status: resp.StatusCode, Header: resp.Header, Body: body}
				}()
			}
			start.Done()
			done.Wait()
			winner := -1
			for i, r := range statuses {
				if r.Status == http.StatusOK {
					require.Equal(t, -1, winner, "two uploads of one key without upsert succeeded: %d and %d", winner, i)
					winner = i
					requireUploaded(t, r, "b/k")
					continue
				}
				requireAPIError(t, r, 400, errKeyExists)
			}
			require.NotEqual(t, -1, winner, "no upload succeeded")
			require.Equal(t, content(winner), o.content(t, "b", "k"))
			require.Equal(t, []string{"b/k"}, o.objectNames(t))
			// The losers that got as far as writing a blob had it queued.
			t.Logf("%d of %d losers were refused at commit (after writing their blob)", len(o.freed(t)), n-1)
			require.NotContains(t, o.freedVersions(t), o.version(t, "b", "k"))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "DuplicateDetectedAtCommit", func(t *testing.T, o *objEnv) {
			// Upload A passes its checks and streams; meanwhile B uploads the same key and
			// commits. A's commit must then refuse the duplicate (the check is atomic at
			// commit, not only before) and queue the blob A wrote.
			pr, pw := io.Pipe()
			resA := make(chan httpResponse, 1)
			reqA := o.newRequest(t, "POST", objPath("b", "k"), o.service, pr, -1)
			go func() {
				resp, err := httpClient.Do(reqA)
				if err != nil {
					resA <- httpResponse{Status: -1, Body: []byte(err.Error())}
					return
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				resA <- httpResponse{Status: resp.StatusCode, Header: resp.Header, Body: body}
			}()
			_, err := pw.Write([]byte(strings.Repeat("A", 100<<10)))
			require.NoError(t, err)
			o.waitFor(t, "upload A in flight", func() bool { return len(o.inFlight(t)) == 1 })
			versionA := o.inFlight(t)[0]

			o.mustUpload(t, "b", "k", "B wins")
			_, err = pw.Write([]byte(strings.Repeat("A", 100<<10)))
			require.NoError(t, err)
			require.NoError(t, pw.Close())
			requireAPIError(t, <-resA, 400, errKeyExists)

			require.Equal(t, "B wins", o.content(t, "b", "k"))
			require.Equal(t, []string{versionA + " b"}, o.freed(t), "the loser's blob is queued")
			o.requireBlobsAccounted(t)
		})

		be.run(t, "ClientGoneMidUpload", func(t *testing.T, o *objEnv) {
			// A client that disconnects mid-body leaves no row, no upload in flight and no
			// blob: its version is queued.
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			req := o.newRequest(t, "POST", objPath("b", "k"), o.service, pr, 10<<20) // promises 10 MiB
			go func() {
				resp, err := httpClient.Do(req)
				if err == nil {
					resp.Body.Close()
					err = fmt.Errorf("unexpected response %d", resp.StatusCode)
				}
				done <- err
			}()
			_, err := pw.Write([]byte(strings.Repeat("x", 1<<20)))
			require.NoError(t, err)
			o.waitFor(t, "upload in flight", func() bool { return len(o.inFlight(t)) == 1 })
			version := o.inFlight(t)[0]
			pw.CloseWithError(fmt.Errorf("client gone"))
			require.Error(t, <-done)
			o.waitFor(t, "upload aborted", func() bool { return len(o.inFlight(t)) == 0 })
			require.Empty(t, o.objectNames(t))
			require.Equal(t, []string{version + " b"}, o.freed(t))
			require.Empty(t, listBlobs(t, o.blobs))
		})

		be.run(t, "ConcurrentUpserts", func(t *testing.T, o *objEnv) {
			const n = 6
			var wg sync.WaitGroup
			results := make([]httpResponse, n)
			reqs := make([]*http.Request, n)
			for i := range n {
				c := fmt.Sprint("upsert ", i)
				reqs[i] = o.newRequest(t, "PUT", objPath("b", "k"), o.service, strings.NewReader(c), int64(len(c)))
			}
			for i, req := range reqs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := httpClient.Do(req)
					if err != nil {
						results[i] = httpResponse{Status: -1, Body: []byte(err.Error())}
						return
					}
					defer resp.Body.Close()
					body, _ := io.ReadAll(resp.Body)
					results[i] = httpResponse{Status: resp.StatusCode, Header: resp.Header, Body: body}
				}()
			}
			wg.Wait()
			var ids []string
			for i, r := range results {
				require.Equal(t, http.StatusOK, r.Status, "upsert %d: %s", i, r)
				ids = append(ids, requireUploaded(t, r, "b/k"))
			}
			for _, id := range ids {
				require.Equal(t, ids[0], id, "every upsert of one key reports the same id")
			}
			require.Regexp(t, `^upsert [0-5]$`, o.content(t, "b", "k"))
			require.Len(t, o.freed(t), n-1, "every replaced version is queued")
			o.requireBlobsAccounted(t)
		})

		be.run(t, "DeleteThenReuploadNewVersion", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "one")
			v1 := o.version(t, "b", "k")
			requireOKJSON(t, o.do(t, "DELETE", "/object/b/k", o.service, ""))
			o.mustUpload(t, "b", "k", "two")
			v2 := o.version(t, "b", "k")
			require.NotEqual(t, v1, v2, "a blob key is written once: a new upload gets a new version")
			require.Equal(t, "two", o.content(t, "b", "k"))
			require.Equal(t, []string{v1 + " b"}, o.freed(t))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "LargeUpload64MiB", func(t *testing.T, o *objEnv) {
			const size = 64 << 20
			seed := [32]byte{1, 2, 3}
			up := sha256.New()
			body := io.TeeReader(io.LimitReader(rand.NewChaCha8(seed), size), up)
			r := o.send(t, "POST", objPath("b", "big.bin"), o.service, body, size)
			requireUploaded(t, r, "b/big.bin")
			require.Equal(t, strconv.Itoa(size), o.info(t, "b", "big.bin")["size"].(json.Number).String())

			resp, err := httpClient.Do(o.newRequest(t, "GET", objPath("b", "big.bin"), o.service, nil, 0))
			require.NoError(t, err)
			defer resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, int64(size), resp.ContentLength)
			down := sha256.New()
			n, err := io.Copy(down, resp.Body)
			require.NoError(t, err)
			require.Equal(t, int64(size), n)
			require.Equal(t, hex.EncodeToString(up.Sum(nil)), hex.EncodeToString(down.Sum(nil)), "downloaded bytes differ from the uploaded ones")

			// A range deep inside the blob matches the generator.
			want := make([]byte, 1<<20)
			g := rand.NewChaCha8(seed)
			_, err = io.CopyN(io.Discard, g, 40<<20)
			require.NoError(t, err)
			_, err = io.ReadFull(g, want)
			require.NoError(t, err)
			rr := o.get(t, objPath("b", "big.bin"), o.service, withHeader("Range", fmt.Sprintf("bytes=%d-%d", 40<<20, 41<<20-1)))
			require.Equal(t, http.StatusPartialContent, rr.Status)
			require.True(t, bytes.Equal(want, rr.Body), "range bytes differ")
			o.requireBlobsAccounted(t)
		}, withUploadLimit(128<<20))
	})
}
