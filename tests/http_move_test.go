package tests

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/blob/file"
)

// POST /object/move (O19) and POST /object/copy (O20) over real HTTP against the real proxy, a
// real database and both blob backends, pinned to the behavioural contract
// (/work/shared/spec/API.md §2.9, §3.5, §3.6 and §11 items 69–74) with one deliberate
// difference: the destination bucket's size and MIME limits apply (§10 item 14 is a gap we
// close). Move and copy are metadata-only here: a moved row keeps its version and a copy
// shares its source's, so not a byte is read or written in the blob store whatever the size
// (MetadataOnly64MiB counts the store before and after), and a blob is queued in
// storage.blobs_freed only when its last row goes (BlobAccounting).

// The errors of this file.
var (
	errMoveExists = apiError{"409", "ResourceAlreadyExists", "Duplicate", "The resource already exists"}
	errRelated    = apiError{"404", "InvalidRequest", "InvalidRequest", "The related resource does not exist"}
)

// moveBody is a move or copy body; extra is appended verbatim (`"copyMetadata":false`, …).
func moveBody(bucket, src, dst, dstBucket string, extra ...string) string {
	m := []string{`"bucketId":` + jsonQuote(bucket), `"sourceKey":` + jsonQuote(src), `"destinationKey":` + jsonQuote(dst)}
	if dstBucket != "" {
		m = append(m, `"destinationBucket":`+jsonQuote(dstBucket))
	}
	return "{" + strings.Join(append(m, extra...), ",") + "}"
}

func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (o *objEnv) move(t *testing.T, token, body string) httpResponse {
	t.Helper()
	return o.do(t, "POST", "/object/move", token, body)
}

func (o *objEnv) copyObject(t *testing.T, token, body string, opts ...reqOpt) httpResponse {
	t.Helper()
	return o.do(t, "POST", "/object/copy", token, body, opts...)
}

// requireMoved asserts item 69's answer: 200 with exactly {"message":"Successfully moved"}.
func requireMoved(t *testing.T, r httpResponse) {
	t.Helper()
	requireOKBodyExact(t, r, `{"message":"Successfully moved"}`)
}

// copyKeys are the keys of a copy's answer, in the order the reference writes them (§2.3 O20).
var copyKeys = []string{"Id", "Key", "name", "bucket_id", "owner", "owner_id", "version", "id", "updated_at",
	"created_at", "last_accessed_at", "metadata", "user_metadata"}

// requireCopied asserts a copy's answer (items 73, §1.3) and returns it decoded: exactly the
// keys of copyKeys in that order, Key "<bucket>/<key>", name, bucket_id, Id = id (a UUID),
// JavaScript timestamps.
func requireCopied(t *testing.T, r httpResponse, bucket, key string) map[string]any {
	t.Helper()
	requireOKJSON(t, r)
	d := json.NewDecoder(strings.NewReader(string(r.Body)))
	tok, err := d.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('{'), tok)
	var order []string
	for d.More() {
		k, err := d.Token()
		require.NoError(t, err)
		order = append(order, k.(string))
		var skip json.RawMessage
		require.NoError(t, d.Decode(&skip))
	}
	require.Equal(t, copyKeys, order, "body: %s", r.Body)
	m := objJSON(t, r.Body).(map[string]any)
	require.Equal(t, bucket+"/"+key, m["Key"], "body: %s", r.Body)
	require.Equal(t, key, m["name"])
	require.Equal(t, bucket, m["bucket_id"])
	require.Regexp(t, uuidPattern, m["Id"])
	require.Equal(t, m["Id"], m["id"], "Id and id are the same")
	for _, k := range []string{"created_at", "updated_at", "last_accessed_at"} {
		require.Regexp(t, jsTimestamp, m[k], k)
	}
	return m
}

// xMetadata is the x-metadata header of a user metadata JSON document.
func xMetadata(doc string) reqOpt {
	return withHeader("x-metadata", base64.StdEncoding.EncodeToString([]byte(doc)))
}

// storeUsage counts what the blob store holds (listBlobs: blobs, temporary files, unfinished
// multipart uploads) and the bytes of its blobs and files.
func storeUsage(t *testing.T, s blob.Store) (n int, size int64) {
	t.Helper()
	for _, k := range listBlobs(t, s) {
		n++
		if strings.HasPrefix(k, "multipart upload: ") {
			continue
		}
		if fs, ok := s.(*file.Store); ok { // temporary files are not blobs: stat them
			fi, err := os.Stat(filepath.Join(fs.Root(), filepath.FromSlash(k)))
			require.NoError(t, err)
			size += fi.Size()
			continue
		}
		sz, err := s.Size(context.Background(), k)
		require.NoError(t, err)
		size += sz
	}
	return n, size
}

func (o *objEnv) downloadSHA256(t *testing.T, bucket, key string) (int64, string) {
	t.Helper()
	resp, err := httpClient.Do(o.newRequest(t, "GET", "/object/authenticated/"+escapeKey(bucket)+"/"+escapeKey(key), o.service, nil, 0))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "download %s/%s", bucket, key)
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	require.NoError(t, err)
	return n, hex.EncodeToString(h.Sum(nil))
}

// row returns columns of bucket/name as text ("" for NULL), read as the tables' owner.
func (o *objEnv) row(t *testing.T, bucket, name, cols string) string {
	t.Helper()
	v := o.column(t, `select `+cols+` from storage.objects where bucket_id = $1 and name = $2`, bucket, name)
	require.Len(t, v, 1, "row %s/%s", bucket, name)
	return v[0]
}

const rowIdentity = `id::text || ' ' || coalesce(version, '-') || ' ' || coalesce(owner_id, '-') || ' ' || coalesce(owner::text, '-') || ' ' ||
	coalesce(metadata::text, '-') || ' ' || coalesce(user_metadata::text, '-') || ' ' || created_at::text`

func TestHTTPMove(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "69_Move", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "hello")
			requireMoved(t, o.move(t, o.service, moveBody("b", "k", "m", "")))
			requireAPIError(t, o.get(t, objPath("b", "k"), o.service), 400, errNoSuchKey)
			requireBytes(t, o.get(t, objPath("b", "m"), o.service), "hello")
			require.Equal(t, []string{"b/m"}, o.objectNames(t))
			require.Empty(t, o.freed(t), "a move queues no blob")
			o.requireBlobsAccounted(t)
		})

		be.run(t, "WithinAndAcrossBucketsKeepsRow", func(t *testing.T, o *objEnv) {
			o.mkBucket(t, `{"name":"b2"}`)
			id := o.mustUpload(t, "b", "k", "hello", withHeader("Content-Type", "text/plain"),
				withHeader("Cache-Control", "max-age=60"), xMetadata(`{"m":1}`))
			before := o.row(t, "b", "k", rowIdentity)
			infoBefore := o.info(t, "b", "k")
			blobsBefore := listBlobs(t, o.blobs)

			requireMoved(t, o.move(t, o.service, moveBody("b", "k", "dir/sub/m", "")))
			require.Equal(t, before, o.row(t, "b", "dir/sub/m", rowIdentity),
				"id, version, owner, metadata, user_metadata and created_at are kept")
			requireMoved(t, o.move(t, o.service, moveBody("b", "dir/sub/m", "x y.txt", "b2")))
			require.Equal(t, before, o.row(t, "b2", "x y.txt", rowIdentity))
			require.Equal(t, []string{"b2/x y.txt"}, o.objectNames(t))

			info := o.info(t, "b2", "x y.txt")
			require.Equal(t, id, info["id"])
			require.Equal(t, "x y.txt", info["name"])
			require.Equal(t, "b2", info["bucket_id"])
			for _, k := range []string{"version", "size", "content_type", "cache_control", "etag", "metadata", "created_at"} {
				require.Equal(t, infoBefore[k], info[k], k)
			}
			require.Equal(t, map[string]any{"m": json.Number("1")}, info["metadata"])
			r := o.get(t, objPath("b2", "x y.txt"), o.service)
			requireBytes(t, r, "hello")
			require.Equal(t, "text/plain", r.Header.Get("Content-Type"))
			require.Equal(t, "max-age=60", r.Header.Get("Cache-Control"))
			require.Equal(t, blobsBefore, listBlobs(t, o.blobs), "the blob store is untouched")
			require.Empty(t, o.freed(t))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "OntoItselfIsNoOp", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "hello")
			before := o.row(t, "b", "k", rowIdentity+` || ' ' || updated_at::text`)
			requireMoved(t, o.move(t, o.service, moveBody("b", "k", "k", "")))
			requireMoved(t, o.move(t, o.service, moveBody("b", "k", "k", "b")))
			require.Equal(t, before, o.row(t, "b", "k", rowIdentity+` || ' ' || updated_at::text`), "not even updated_at moves")
			requireBytes(t, o.get(t, objPath("b", "k"), o.service), "hello")
			require.Empty(t, o.freed(t))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "MissingSource", func(t *testing.T, o *objEnv) {
			requireAPIError(t, o.move(t, o.service, moveBody("b", "missing", "m", "")), 400, errNoSuchKey)
			requireAPIError(t, o.move(t, o.service, moveBody("nobucket", "k", "m", "b")), 400, errNoSuchKey)
			requireAPIError(t, o.move(t, o.service, moveBody("b", "missing", "missing", "")), 400, errNoSuchKey)
			o.requireNothingStored(t)
		})

		be.run(t, "70_DestinationExists", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "source")
			o.mustUpload(t, "b", "m", "destination")
			src, dst := o.row(t, "b", "k", rowIdentity), o.row(t, "b", "m", rowIdentity)
			requireAPIError(t, o.move(t, o.service, moveBody("b", "k", "m", "")), 400, errMoveExists)
			require.Equal(t, src, o.row(t, "b", "k", rowIdentity), "the source is unchanged")
			require.Equal(t, dst, o.row(t, "b", "m", rowIdentity), "the destination is unchanged")
			require.Equal(t, "source", o.content(t, "b", "k"))
			require.Equal(t, "destination", o.content(t, "b", "m"))
			// Across buckets too.
			o.mkBucket(t, `{"name":"b2"}`)
			o.mustUpload(t, "b2", "m", "other")
			requireAPIError(t, o.move(t, o.service, moveBody("b", "k", "m", "b2")), 400, errMoveExists)
			require.Equal(t, "source", o.content(t, "b", "k"))
			require.Empty(t, o.freed(t))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "71_DestinationBucketMissing", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "hello")
			before := o.row(t, "b", "k", rowIdentity)
			r := o.move(t, o.service, moveBody("b", "k", "k", "nobucket"))
			requireAPIError(t, r, 400, errRelated)
			require.Equal(t, `{"statusCode":"404","code":"InvalidRequest","error":"InvalidRequest","message":"The related resource does not exist"}`, string(r.Body))
			require.Equal(t, before, o.row(t, "b", "k", rowIdentity))
			require.Equal(t, "hello", o.content(t, "b", "k"))
			o.requireNothingStored(t, "b/k")
		})

		be.run(t, "DestinationLimits", func(t *testing.T, o *objEnv) {
			o.mkBucket(t, `{"name":"small","file_size_limit":10}`)
			o.mkBucket(t, `{"name":"txt","allowed_mime_types":["text/plain"]}`)
			o.mustUpload(t, "b", "big", strings.Repeat("x", 20), withHeader("Content-Type", "text/plain"))
			o.mustUpload(t, "b", "png", "x", withHeader("Content-Type", "image/png"))
			o.mustUpload(t, "b", "ten", strings.Repeat("y", 10), withHeader("Content-Type", "text/plain"))
			requireAPIError(t, o.move(t, o.service, moveBody("b", "big", "big", "small")), 400, errTooLarge)
			requireAPIError(t, o.move(t, o.service, moveBody("b", "png", "png", "txt")), 400, errMime("image/png"))
			o.requireNothingStored(t, "b/big", "b/png", "b/ten")
			// Within the limits: exactly the size limit, an allowed type.
			requireMoved(t, o.move(t, o.service, moveBody("b", "ten", "ten", "small")))
			requireMoved(t, o.move(t, o.service, moveBody("small", "ten", "ten", "txt")))
			require.Equal(t, strings.Repeat("y", 10), o.content(t, "txt", "ten"))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "Validation", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "hello")
			requireAPIError(t, o.move(t, o.service, moveBody("b", "k", "a%b", "")), 400, errInvalidKey("a%b"))
			requireAPIError(t, o.move(t, o.service, moveBody("b", "k", "", "")), 400, errInvalidKey(""))
			requireAPIError(t, o.move(t, o.service, moveBody("b", "k", "k", "a/b")), 400, errBadName)
			requireAPIError(t, o.move(t, o.service, `{"bucketId":"b","sourceKey":"k"}`), 400,
				apiError{"400", "InvalidRequest", "Error", "body must have required property 'destinationKey'"})
			requireAPIError(t, o.move(t, o.service, `{}`), 400,
				apiError{"400", "InvalidRequest", "Error", "body must have required property 'bucketId'"})
			requireAPIError(t, o.move(t, "", moveBody("b", "k", "m", "")), 400, errNoAuthHeader)
			o.requireNothingStored(t, "b/k")
		})

		be.run(t, "OwnerIsMover", func(t *testing.T, o *objEnv) {
			admin(t, o.db, `create policy sel on storage.objects for select to authenticated using (true);
				create policy upd on storage.objects for update to authenticated using (true)`)
			o.mustUpload(t, "b", "k", "hello")
			require.Equal(t, "- -", o.row(t, "b", "k", `coalesce(owner_id, '-') || ' ' || coalesce(owner::text, '-')`))
			requireMoved(t, o.move(t, o.userA, moveBody("b", "k", "a", "")))
			require.Equal(t, userA.Sub+" "+userA.Sub, o.row(t, "b", "a", `owner_id || ' ' || owner::text`), "owner becomes the mover's sub")
			requireMoved(t, o.move(t, o.userB, moveBody("b", "a", "bb", "")))
			require.Equal(t, userB.Sub+" "+userB.Sub, o.row(t, "b", "bb", `owner_id || ' ' || owner::text`))
			requireMoved(t, o.move(t, o.service, moveBody("b", "bb", "s", "")))
			require.Equal(t, userB.Sub+" "+userB.Sub, o.row(t, "b", "s", `owner_id || ' ' || owner::text`), "a service key (no sub) keeps the owner")
			requireBytes(t, o.get(t, objPath("b", "s"), o.service), "hello")
			o.requireBlobsAccounted(t)
		})

		be.run(t, "RLSNeedsSelectAndUpdate", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "open/a", "A")
			o.mustUpload(t, "b", "closed/c", "C")
			names := []string{"b/closed/c", "b/open/a"}
			// No policy: the source is hidden (not found, never 403).
			requireAPIError(t, o.move(t, o.userA, moveBody("b", "open/a", "open/b", "")), 400, errNoSuchKey)
			requireAPIError(t, o.move(t, o.anon, moveBody("b", "open/a", "open/b", "")), 400, errNoSuchKey)
			// SELECT without UPDATE: the update matches nothing.
			admin(t, o.db, `create policy sel on storage.objects for select to authenticated using (true)`)
			requireAPIError(t, o.move(t, o.userA, moveBody("b", "open/a", "open/b", "")), 400, errNoSuchKey)
			require.Equal(t, names, o.objectNames(t))

			// UPDATE only inside open/: USING sees the old row, the implicit WITH CHECK the new
			// one, so moving out of open/ is refused with 403.
			admin(t, o.db, `create policy upd on storage.objects for update to authenticated
				using ((storage.foldername(name))[1] = 'open')`)
			requireMoved(t, o.move(t, o.userA, moveBody("b", "open/a", "open/b", "")))
			names = []string{"b/closed/c", "b/open/b"}
			requireAPIError(t, o.move(t, o.userA, moveBody("b", "open/b", "closed/b", "")), 400, errRLSInsert)
			require.Equal(t, names, o.objectNames(t), "the source is unchanged")
			requireAPIError(t, o.move(t, o.userA, moveBody("b", "closed/c", "open/c", "")), 400, errNoSuchKey)
			require.Equal(t, names, o.objectNames(t))
			require.Equal(t, "A", o.content(t, "b", "open/b"))
			// The service key bypasses RLS.
			requireMoved(t, o.move(t, o.service, moveBody("b", "open/b", "closed/b", "")))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "MetadataOnly64MiB", func(t *testing.T, o *objEnv) {
			const size = 64 << 20
			o.mkBucket(t, `{"name":"b2"}`)
			up := sha256.New()
			body := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{7}), size), up)
			requireUploaded(t, o.send(t, "POST", objPath("b", "big.bin"), o.service, body, size), "b/big.bin")
			sum := hex.EncodeToString(up.Sum(nil))
			version := o.version(t, "b", "big.bin")
			n0, bytes0 := storeUsage(t, o.blobs)
			require.Equal(t, 1, n0, "one blob: %v", listBlobs(t, o.blobs))
			require.Equal(t, int64(size), bytes0)

			requireCopied(t, o.copyObject(t, o.service, moveBody("b", "big.bin", "copy.bin", "")), "b", "copy.bin")
			requireCopied(t, o.copyObject(t, o.service, moveBody("b", "big.bin", "copy2.bin", "b2")), "b2", "copy2.bin")
			requireMoved(t, o.move(t, o.service, moveBody("b", "copy.bin", "moved.bin", "b2")))
			requireMoved(t, o.move(t, o.service, moveBody("b", "big.bin", "big-moved.bin", "")))
			n1, bytes1 := storeUsage(t, o.blobs)
			require.Equal(t, n0, n1, "copy and move wrote no blob")
			require.Equal(t, bytes0, bytes1, "copy and move wrote no byte")
			require.Equal(t, []string{version, version, version}, o.column(t, `select version from storage.objects order by name`),
				"every row shares the source's version")
			for _, k := range [][2]string{{"b", "big-moved.bin"}, {"b2", "moved.bin"}, {"b2", "copy2.bin"}} {
				n, got := o.downloadSHA256(t, k[0], k[1])
				require.Equal(t, int64(size), n, "%s/%s", k[0], k[1])
				require.Equal(t, sum, got, "%s/%s: downloaded bytes differ from the uploaded ones", k[0], k[1])
			}
			require.Equal(t, strconv.Itoa(size), o.info(t, "b2", "copy2.bin")["size"].(json.Number).String())
			require.Empty(t, o.freed(t))
			o.requireBlobsAccounted(t)
		}, withUploadLimit(128<<20))
	})
}

func TestHTTPMoveCopy(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "73_Copy", func(t *testing.T, o *objEnv) {
			srcID := o.mustUpload(t, "b", "k", "hello", withHeader("Content-Type", "text/plain"), xMetadata(`{"m":1}`))
			srcRow := o.row(t, "b", "k", rowIdentity)
			m := requireCopied(t, o.copyObject(t, o.service, moveBody("b", "k", "dir/c", "")), "b", "dir/c")
			require.NotEqual(t, srcID, m["id"], "a copy is a new object")
			require.Equal(t, o.version(t, "b", "k"), m["version"], "the copy shares the source's version")
			require.Equal(t, "", m["owner"], "no sub (service key): owner renders as \"\" (§1.3)")
			require.Equal(t, "", m["owner_id"])
			require.Equal(t, map[string]any{"m": json.Number("1")}, m["user_metadata"])
			meta := m["metadata"].(map[string]any)
			require.Equal(t, "text/plain", meta["mimetype"])
			require.Equal(t, json.Number("5"), meta["size"])
			require.Equal(t, quotedMD5("hello"), meta["eTag"])
			require.Regexp(t, jsTimestamp, meta["lastModified"])
			require.Equal(t, m["id"], o.row(t, "b", "dir/c", "id::text"))
			requireBytes(t, o.get(t, objPath("b", "dir/c"), o.service), "hello")
			require.Equal(t, srcRow, o.row(t, "b", "k", rowIdentity), "the source is unchanged")
			requireBytes(t, o.get(t, objPath("b", "k"), o.service), "hello")

			// Across buckets.
			o.mkBucket(t, `{"name":"b2"}`)
			m = requireCopied(t, o.copyObject(t, o.service, moveBody("b", "k", "k", "b2")), "b2", "k")
			require.Equal(t, o.version(t, "b", "k"), m["version"])
			requireBytes(t, o.get(t, objPath("b2", "k"), o.service), "hello")
			require.Equal(t, []string{"b/dir/c", "b/k", "b2/k"}, o.objectNames(t))
			require.Empty(t, o.freed(t))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "OwnerIsCopier", func(t *testing.T, o *objEnv) {
			admin(t, o.db, `create policy sel on storage.objects for select to authenticated using (true);
				create policy ins on storage.objects for insert to authenticated with check (true)`)
			o.mustUpload(t, "b", "k", "hello")
			m := requireCopied(t, o.copyObject(t, o.userA, moveBody("b", "k", "c", "")), "b", "c")
			require.Equal(t, userA.Sub, m["owner"])
			require.Equal(t, userA.Sub, m["owner_id"])
			require.Equal(t, userA.Sub+" "+userA.Sub, o.row(t, "b", "c", `owner_id || ' ' || owner::text`))
			require.Equal(t, "- -", o.row(t, "b", "k", `coalesce(owner_id, '-') || ' ' || coalesce(owner::text, '-')`))
		})

		be.run(t, "72_DestinationExists", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "source")
			o.mustUpload(t, "b", "d", "destination")
			dst := o.row(t, "b", "d", rowIdentity)
			requireAPIError(t, o.copyObject(t, o.service, moveBody("b", "k", "d", "")), 400, errKeyExists)
			requireAPIError(t, o.copyObject(t, o.service, moveBody("b", "k", "d", ""), withHeader("x-upsert", "TRUE")), 400, errKeyExists)
			require.Equal(t, dst, o.row(t, "b", "d", rowIdentity), "the destination is unchanged")
			require.Equal(t, "destination", o.content(t, "b", "d"))
			require.Empty(t, o.freed(t))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "UpsertKeepsDestinationID", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "source", withHeader("Content-Type", "text/plain"))
			dstID := o.mustUpload(t, "b", "d", "destination", withHeader("Content-Type", "image/png"))
			created := o.row(t, "b", "d", "created_at::text")
			oldVersion := o.version(t, "b", "d")
			m := requireCopied(t, o.copyObject(t, o.service, moveBody("b", "k", "d", ""), withHeader("x-upsert", "true")), "b", "d")
			require.Equal(t, dstID, m["id"], "an upsert keeps the destination's id")
			require.Equal(t, dstID, m["Id"])
			require.Equal(t, o.version(t, "b", "k"), m["version"])
			require.Equal(t, created, o.row(t, "b", "d", "created_at::text"))
			r := o.get(t, objPath("b", "d"), o.service)
			requireBytes(t, r, "source")
			require.Equal(t, "text/plain", r.Header.Get("Content-Type"))
			require.Equal(t, []string{oldVersion + " b"}, o.freed(t), "the replaced blob is queued")
			// Onto itself with upsert: the object stays whole.
			m = requireCopied(t, o.copyObject(t, o.service, moveBody("b", "k", "k", ""), withHeader("x-upsert", "true")), "b", "k")
			require.Equal(t, o.version(t, "b", "k"), m["version"])
			requireBytes(t, o.get(t, objPath("b", "k"), o.service), "source")
			require.Equal(t, []string{oldVersion + " b"}, o.freed(t), "the shared blob is not queued")
			o.requireBlobsAccounted(t)
		})

		be.run(t, "74_CopyMetadataFalse", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "hello", withHeader("Content-Type", "image/png"),
				withHeader("Cache-Control", "max-age=3600"), xMetadata(`{"src":1}`))
			body := moveBody("b", "k", "c1", "", `"copyMetadata":false`, `"metadata":{"cacheControl":"max-age=77"}`)
			m := requireCopied(t, o.copyObject(t, o.service, body, xMetadata(`{"a":1}`)), "b", "c1")
			require.Equal(t, map[string]any{"a": json.Number("1")}, m["user_metadata"])
			r := o.get(t, objPath("b", "c1"), o.service)
			requireBytes(t, r, "hello")
			require.Equal(t, "max-age=77", r.Header.Get("Cache-Control"))
			require.Equal(t, "image/png", r.Header.Get("Content-Type"), "the source's content type")
			require.Equal(t, map[string]any{"a": json.Number("1")}, o.info(t, "b", "c1")["metadata"])

			// Without x-metadata: no user metadata.
			m = requireCopied(t, o.copyObject(t, o.service, moveBody("b", "k", "c2", "", `"copyMetadata":false`,
				`"metadata":{"cacheControl":"max-age=77"}`)), "b", "c2")
			require.Nil(t, m["user_metadata"])
			require.Nil(t, o.info(t, "b", "c2")["metadata"])

			// mimetype alone: cacheControl stays the source's.
			requireCopied(t, o.copyObject(t, o.service, moveBody("b", "k", "c3", "", `"copyMetadata":false`,
				`"metadata":{"mimetype":"text/plain"}`)), "b", "c3")
			r = o.get(t, objPath("b", "c3"), o.service)
			require.Equal(t, "text/plain", r.Header.Get("Content-Type"))
			require.Equal(t, "max-age=3600", r.Header.Get("Cache-Control"))

			// copyMetadata true (or absent): body metadata and x-metadata are ignored.
			for i, cm := range []string{`"copyMetadata":true`, `"copyMetadata":null`, ``} {
				key := fmt.Sprintf("c4-%d", i)
				extra := []string{`"metadata":{"cacheControl":"max-age=77","mimetype":"text/plain"}`}
				if cm != "" {
					extra = append(extra, cm)
				}
				m = requireCopied(t, o.copyObject(t, o.service, moveBody("b", "k", key, "", extra...), xMetadata(`{"a":1}`)), "b", key)
				require.Equal(t, map[string]any{"src": json.Number("1")}, m["user_metadata"])
				r = o.get(t, objPath("b", key), o.service)
				require.Equal(t, "max-age=3600", r.Header.Get("Cache-Control"))
				require.Equal(t, "image/png", r.Header.Get("Content-Type"))
			}
			require.Empty(t, o.freed(t))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "MissingSourceAndDestinationBucket", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "hello")
			requireAPIError(t, o.copyObject(t, o.service, moveBody("b", "missing", "c", "")), 400, errNoSuchKey)
			requireAPIError(t, o.copyObject(t, o.service, moveBody("nobucket", "k", "c", "b")), 400, errNoSuchKey)
			r := o.copyObject(t, o.service, moveBody("b", "k", "c", "nobucket"))
			requireAPIError(t, r, 400, errRelated)
			requireAPIError(t, o.copyObject(t, o.service, moveBody("b", "k", "a%b", "")), 400, errInvalidKey("a%b"))
			requireAPIError(t, o.copyObject(t, o.service, moveBody("b", "k", "c", "a/b")), 400, errBadName)
			requireAPIError(t, o.copyObject(t, o.service, moveBody("b", "k", "c", "", `"metadata":"x"`)), 400,
				apiError{"400", "InvalidRequest", "Error", "body/metadata must be object"})
			requireAPIError(t, o.copyObject(t, "", moveBody("b", "k", "c", "")), 400, errNoAuthHeader)
			o.requireNothingStored(t, "b/k")
		})

		be.run(t, "DestinationLimits", func(t *testing.T, o *objEnv) {
			o.mkBucket(t, `{"name":"small","file_size_limit":10}`)
			o.mkBucket(t, `{"name":"txt","allowed_mime_types":["text/plain"]}`)
			o.mustUpload(t, "b", "big", strings.Repeat("x", 20), withHeader("Content-Type", "text/plain"))
			o.mustUpload(t, "b", "png", "x", withHeader("Content-Type", "image/png"))
			requireAPIError(t, o.copyObject(t, o.service, moveBody("b", "big", "big", "small")), 400, errTooLarge)
			requireAPIError(t, o.copyObject(t, o.service, moveBody("b", "png", "png", "txt")), 400, errMime("image/png"))
			requireAPIError(t, o.copyObject(t, o.service, moveBody("b", "png", "png", "txt"), withHeader("x-upsert", "true")), 400, errMime("image/png"))
			// The limits see the metadata the copy ends up with.
			requireAPIError(t, o.copyObject(t, o.service, moveBody("b", "big", "c", "txt", `"copyMetadata":false`,
				`"metadata":{"mimetype":"text/html"}`)), 400, errMime("text/html"))
			o.requireNothingStored(t, "b/big", "b/png")
			requireCopied(t, o.copyObject(t, o.service, moveBody("b", "png", "png", "txt", `"copyMetadata":false`,
				`"metadata":{"mimetype":"text/plain"}`)), "txt", "png")
			require.Equal(t, "text/plain", o.get(t, objPath("txt", "png"), o.service).Header.Get("Content-Type"))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "RLSNeedsSelectAndInsert", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "src/k", "hello")
			requireAPIError(t, o.copyObject(t, o.userA, moveBody("b", "src/k", "open/c", "")), 400, errNoSuchKey)
			requireAPIError(t, o.copyObject(t, o.anon, moveBody("b", "src/k", "open/c", "")), 400, errNoSuchKey)
			admin(t, o.db, `create policy sel on storage.objects for select to authenticated using (true)`)
			requireAPIError(t, o.copyObject(t, o.userA, moveBody("b", "src/k", "open/c", "")), 400, errRLSInsert)
			admin(t, o.db, `create policy ins on storage.objects for insert to authenticated
				with check ((storage.foldername(name))[1] = 'open')`)
			requireAPIError(t, o.copyObject(t, o.userA, moveBody("b", "src/k", "closed/c", "")), 400, errRLSInsert)
			o.requireNothingStored(t, "b/src/k")
			requireCopied(t, o.copyObject(t, o.userA, moveBody("b", "src/k", "open/c", "")), "b", "open/c")
			requireBytes(t, o.get(t, objPath("b", "open/c"), o.userA), "hello")
			// Upsert over an existing object needs UPDATE too.
			requireAPIError(t, o.copyObject(t, o.userA, moveBody("b", "src/k", "open/c", ""), withHeader("x-upsert", "true")), 400, errRLSInsert)
			admin(t, o.db, `create policy upd on storage.objects for update to authenticated using (true)`)
			requireCopied(t, o.copyObject(t, o.userA, moveBody("b", "src/k", "open/c", ""), withHeader("x-upsert", "true")), "b", "open/c")
			require.Empty(t, o.freed(t), "the replaced version is the source's, still referenced")
			o.requireBlobsAccounted(t)
		})

		be.run(t, "BlobAccounting", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "a", "one")
			v1 := o.version(t, "b", "a")
			requireCopied(t, o.copyObject(t, o.service, moveBody("b", "a", "c1", "")), "b", "c1")
			requireCopied(t, o.copyObject(t, o.service, moveBody("b", "a", "c2", "")), "b", "c2")

			// Deleting the source of copies queues its version (the trigger does not look
			// whether other rows share it), but the collector keeps the blob: copies reference it.
			requireOKBodyExact(t, o.do(t, "DELETE", "/object/b/a", o.service, ""), `{"message":"Successfully deleted"}`)
			require.Equal(t, []string{v1 + " b"}, o.freed(t))
			requireBytes(t, o.get(t, objPath("b", "c1"), o.service), "one")
			o.requireBlobsAccounted(t)

			// Overwriting a copy (upsert) queues v1 again, still referenced by c2.
			requireUploaded(t, o.upload(t, "PUT", "b", "c1", o.service, "two"), "b/c1")
			v2 := o.version(t, "b", "c1")
			require.NotEqual(t, v1, v2)
			require.Equal(t, []string{v1 + " b", v1 + " b"}, o.freed(t))
			requireBytes(t, o.get(t, objPath("b", "c2"), o.service), "one")
			o.requireBlobsAccounted(t)

			// Two rows of one version deleted in one request: queued once.
			requireCopied(t, o.copyObject(t, o.service, moveBody("b", "c1", "c3", "")), "b", "c3")
			requireOKJSON(t, o.do(t, "DELETE", "/object/b", o.service, `{"prefixes":["c1","c3"]}`))
			require.Equal(t, []string{v1 + " b", v1 + " b", v2 + " b"}, o.freed(t))
			o.requireBlobsAccounted(t)

			// A collector with no retention deletes v2 only; v1 goes once its last row does.
			require.Equal(t, 1, collect(t, o.newCollector(0)).Deleted)
			requireBytes(t, o.get(t, objPath("b", "c2"), o.service), "one")
			requireOKJSON(t, o.do(t, "DELETE", "/object/b/c2", o.service, ""))
			require.Equal(t, 1, collect(t, o.newCollector(0)).Deleted)
			require.Empty(t, o.objectNames(t))
			require.Empty(t, o.freed(t))
			require.Empty(t, listBlobs(t, o.blobs))
		})
	})
}
