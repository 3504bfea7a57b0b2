package tests

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	awss3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/lifecycle"
	"github.com/pgstorage/storage/proxy"
)

// inlineMax is the inline threshold (STORAGE_INLINE_MAX) of the inline tests' servers.
const inlineMax = 1000

// withInline stores uploads of at most n bytes inline.
func withInline(n int64) httpOpt { return func(c *serverConfig) { c.InlineMax = n } }

// inlineVersions are the versions whose bytes storage.inline_blobs holds, in order.
func (o *objEnv) inlineVersions(t *testing.T) []string {
	t.Helper()
	return o.column(t, `select version from storage.inline_blobs order by version`)
}

// requireInline asserts that bucket/key's bytes are inline (and not in the blob store).
func (o *objEnv) requireInline(t *testing.T, bucket, key string) string {
	t.Helper()
	v := o.version(t, bucket, key)
	require.NotEmpty(t, v, "%s/%s has a row", bucket, key)
	require.Contains(t, o.inlineVersions(t), v, "%s/%s is inline", bucket, key)
	require.NotContains(t, listBlobs(t, o.blobs), blob.VersionKey(v), "%s/%s has no blob", bucket, key)
	return v
}

// TestInlineObjects: uploads up to STORAGE_INLINE_MAX keep their bytes in PostgreSQL, with the
// row, in one transaction; larger ones go to the blob store as before. Callers see no
// difference: the same reply, ETag, Range, conditionals, HEAD and info; copies share the bytes;
// freeing removes them like blobs; reconcile finds nothing missing.
func TestInlineObjects(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newObjEnv(t, be, withInline(inlineMax))
		ctx := context.Background()

		// A raw upload of a known length.
		o.mustUpload(t, "b", "small.txt", "0123456789", withHeader("Content-Type", "text/plain"))
		v := o.requireInline(t, "b", "small.txt")
		sum := md5.Sum([]byte("0123456789"))
		etag := `"` + hex.EncodeToString(sum[:]) + `"`
		info := o.info(t, "b", "small.txt")
		require.Equal(t, json.Number("10"), info["size"])
		require.Equal(t, etag, info["etag"])

		r := o.get(t, "/object/authenticated/b/small.txt", o.service)
		require.Equal(t, http.StatusOK, r.Status, "%s", r)
		require.Equal(t, "0123456789", string(r.Body))
		require.Equal(t, etag, r.Header.Get("ETag"))
		require.Equal(t, "text/plain", r.Header.Get("Content-Type"))
		require.Equal(t, "10", r.Header.Get("Content-Length"))

		r = o.get(t, "/object/authenticated/b/small.txt", o.service, withHeader("Range", "bytes=2-4"))
		require.Equal(t, http.StatusPartialContent, r.Status, "%s", r)
		require.Equal(t, "234", string(r.Body))
		require.Equal(t, "bytes 2-4/10", r.Header.Get("Content-Range"))
		r = o.get(t, "/object/authenticated/b/small.txt", o.service, withHeader("Range", "bytes=20-"))
		require.Equal(t, http.StatusRequestedRangeNotSatisfiable, r.Status, "%s", r)
		require.Equal(t, "bytes */10", r.Header.Get("Content-Range"))
		r = o.get(t, "/object/authenticated/b/small.txt", o.service, withHeader("If-None-Match", etag))
		require.Equal(t, http.StatusNotModified, r.Status, "%s", r)
		require.Empty(t, r.Body)
		r = o.do(t, "HEAD", "/object/authenticated/b/small.txt", o.service, "")
		require.Equal(t, http.StatusOK, r.Status)
		require.Equal(t, "10", r.Header.Get("Content-Length"))
		require.Equal(t, etag, r.Header.Get("ETag"))

		// The threshold: inlineMax bytes are inline, one more goes to the blob store, whether
		// the length is declared or the body is chunked; so does a multipart form's file.
		at := strings.Repeat("a", inlineMax)
		o.mustUpload(t, "b", "at", at)
		o.requireInline(t, "b", "at")
		requireUploaded(t, o.send(t, "POST", "/object/b/at-chunked", o.service, strings.NewReader(at), -1), "b/at-chunked")
		o.requireInline(t, "b", "at-chunked")
		over := at + "b"
		o.mustUpload(t, "b", "over", over)
		requireUploaded(t, o.send(t, "POST", "/object/b/over-chunked", o.service, strings.NewReader(over), -1), "b/over-chunked")
		var form bytes.Buffer
		mw := multipart.NewWriter(&form)
		fw, err := mw.CreateFormFile("file", "f.txt")
		require.NoError(t, err)
		_, err = fw.Write([]byte("form bytes"))
		require.NoError(t, err)
		require.NoError(t, mw.Close())
		requireUploaded(t, o.send(t, "POST", "/object/b/form", o.service, bytes.NewReader(form.Bytes()), int64(form.Len()),
			withHeader("Content-Type", mw.FormDataContentType())), "b/form")
		o.requireInline(t, "b", "form")
		for _, k := range []string{"over", "over-chunked"} {
			require.Contains(t, listBlobs(t, o.blobs), blob.VersionKey(o.version(t, "b", k)), "%s is in the blob store", k)
			require.NotContains(t, o.inlineVersions(t), o.version(t, "b", k))
		}
		require.Equal(t, at, o.content(t, "b", "at"))
		require.Equal(t, at, o.content(t, "b", "at-chunked"))
		require.Equal(t, over, o.content(t, "b", "over"))
		require.Equal(t, over, o.content(t, "b", "over-chunked"))
		require.Equal(t, "form bytes", o.content(t, "b", "form"))

		// An empty object is inline too, and downloads as nothing.
		o.mustUpload(t, "b", "empty", "")
		o.requireInline(t, "b", "empty")
		r = o.get(t, "/object/authenticated/b/empty", o.service)
		require.Equal(t, http.StatusOK, r.Status, "%s", r)
		require.Empty(t, r.Body)

		// A copy shares the bytes; a move keeps them.
		r = o.do(t, "POST", "/object/copy", o.service, `{"bucketId":"b","sourceKey":"small.txt","destinationKey":"copy.txt"}`)
		require.Equal(t, http.StatusOK, r.Status, "%s", r)
		require.Equal(t, v, o.version(t, "b", "copy.txt"))
		r = o.do(t, "POST", "/object/move", o.service, `{"bucketId":"b","sourceKey":"copy.txt","destinationKey":"moved.txt"}`)
		require.Equal(t, http.StatusOK, r.Status, "%s", r)
		require.Equal(t, "0123456789", o.content(t, "b", "moved.txt"))

		// Signed URLs serve inline bytes too.
		r = o.do(t, "POST", "/object/sign/b/moved.txt", o.service, `{"expiresIn":60}`)
		require.Equal(t, http.StatusOK, r.Status, "%s", r)
		signed := objJSON(t, r.Body).(map[string]any)["signedURL"].(string)
		r = o.get(t, signed, "")
		require.Equal(t, http.StatusOK, r.Status, "%s", r)
		require.Equal(t, "0123456789", string(r.Body))

		// An upsert frees the bytes it replaces; deleting both rows frees the shared ones; the
		// collector then removes them from storage.inline_blobs.
		atVersion := o.version(t, "b", "at")
		r = o.upload(t, "PUT", "b", "at", o.service, "new")
		requireUploaded(t, r, "b/at")
		o.requireInline(t, "b", "at")
		r = o.do(t, "DELETE", "/object/b", o.service, `{"prefixes":["small.txt","moved.txt"]}`)
		require.Equal(t, http.StatusOK, r.Status, "%s", r)
		requireInvariants(t, o.httpBundle)
		c := &lifecycle.Collector{DB: o.db.Pool, Blobs: o.blobs}
		st, err := c.RunOnce(ctx)
		require.NoError(t, err)
		require.True(t, st.Leader)
		got := o.inlineVersions(t)
		require.NotContains(t, got, v, "the deleted objects' bytes are gone")
		require.NotContains(t, got, atVersion, "the replaced bytes are gone")
		require.Len(t, got, 4, "at, at-chunked, form, empty")
		requireInvariants(t, o.httpBundle)
	})
}

// TestInlineRefusedStoresNothing: an inline upload refused by the bucket, its limits or the
// caller's policies stores neither bytes nor row.
func TestInlineRefusedStoresNothing(t *testing.T) {
	t.Parallel()
	o := newObjEnv(t, objectBackends[0], withInline(inlineMax))
	o.mkBucket(t, `{"name":"tiny","file_size_limit":5,"allowed_mime_types":["text/plain"]}`)
	r := o.upload(t, "POST", "tiny", "k", o.service, "0123456789", withHeader("Content-Type", "text/plain"))
	requireAPIError(t, r, 400, errTooLarge)
	r = o.upload(t, "POST", "tiny", "k", o.service, "0123", withHeader("Content-Type", "image/png"))
	require.Equal(t, http.StatusBadRequest, r.Status, "%s", r)
	require.Contains(t, string(r.Body), "mime type image/png is not supported")
	r = o.send(t, "POST", "/object/b/"+percentEncodeAll("a#b"), o.service, strings.NewReader("0123"), 4)
	requireAPIError(t, r, 400, errInvalidKey("a#b"))
	r = o.upload(t, "POST", "missing", "k", o.service, "0123")
	require.Equal(t, http.StatusBadRequest, r.Status, "%s", r)
	require.Contains(t, string(r.Body), `"statusCode":"404"`)
	// No INSERT policy for authenticated: RLS refuses the row, and the bytes with it.
	r = o.upload(t, "POST", "b", "k", o.userA, "0123")
	require.Equal(t, http.StatusBadRequest, r.Status, "%s", r)
	require.Contains(t, string(r.Body), `"statusCode":"403"`)
	o.mustUpload(t, "b", "dup", "x")
	r = o.upload(t, "POST", "b", "dup", o.service, "y")
	require.Equal(t, http.StatusBadRequest, r.Status, "%s", r)
	require.Contains(t, string(r.Body), `"statusCode":"409"`)
	require.Equal(t, "x", o.content(t, "b", "dup"))
	require.Equal(t, []string{o.version(t, "b", "dup")}, o.inlineVersions(t), "only dup's bytes")
	require.Equal(t, []string{"b/dup"}, o.objectNames(t))
	require.Empty(t, o.inFlight(t), "storage.blob_uploads")
	require.Empty(t, listBlobs(t, o.blobs))
}

// TestInlineRLS: request roles read storage.inline_blobs exactly where the download routes
// would serve them: a version an object row they may read holds, or one of a public bucket;
// nobody but object_upload_inline writes them.
func TestInlineRLS(t *testing.T) {
	t.Parallel()
	o := newObjEnv(t, objectBackends[0], withInline(inlineMax))
	o.mkBucket(t, `{"name":"pub","public":true}`)
	o.mustUpload(t, "b", "private", "secret")
	o.mustUpload(t, "pub", "open", "for all")
	admin(t, o.db, `create policy own_read on storage.objects for select to authenticated using (name = 'mine')`)
	o.mustUpload(t, "b", "mine", "userA's")
	ctx := context.Background()
	readable := func(id proxy.Identity) []string {
		var got []string
		require.NoError(t, asRole(t, o.db, id, false, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `select convert_from(data, 'UTF8') from storage.inline_blobs order by 1`)
			if err != nil {
				return err
			}
			got, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		}))
		return got
	}
	require.Equal(t, []string{"for all"}, readable(asAnon))
	require.Equal(t, []string{"for all", "userA's"}, readable(userA))
	require.Equal(t, []string{"for all", "secret", "userA's"}, readable(asService))

	// Over HTTP: the public route serves the public one to anyone; userA reads its own.
	r := o.get(t, "/object/public/pub/open", "")
	require.Equal(t, http.StatusOK, r.Status, "%s", r)
	require.Equal(t, "for all", string(r.Body))
	r = o.get(t, "/object/authenticated/b/mine", o.userA)
	require.Equal(t, http.StatusOK, r.Status, "%s", r)
	require.Equal(t, "userA's", string(r.Body))
	r = o.get(t, "/object/authenticated/b/private", o.userA)
	require.Equal(t, http.StatusBadRequest, r.Status, "%s", r)

	v := o.version(t, "b", "private")
	for _, id := range []proxy.Identity{asAnon, userA, asService} {
		err := exec(t, o.db, id, `select storage_internal.inline_blob_put('0123456789abcdef0123456789abcdef', 'x')`)
		requireSQLState(t, err, "42501", "storage_internal.inline_blob_put may only be called by storage_internal.object_upload_inline")
		err = exec(t, o.db, id, `update storage.inline_blobs set data = 'x' where version = $1`, v)
		requireSQLState(t, err, "42501", "permission denied for table inline_blobs")
	}
	require.Equal(t, "secret", o.content(t, "b", "private"))
}

// TestInlineS3: the S3 door reads inline objects (GetObject, ranges, UploadPartCopy from one)
// and stores small PutObjects inline.
func TestInlineS3(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newObjEnv(t, be, withInline(inlineMax))
		ctx := context.Background()
		c := o.s3Service()
		_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("s3.txt"), Body: strings.NewReader("via s3 put")})
		require.NoError(t, err)
		o.requireInline(t, "b", "s3.txt")
		out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("s3.txt")})
		require.NoError(t, err)
		body, err := io.ReadAll(out.Body)
		require.NoError(t, err)
		require.Equal(t, "via s3 put", string(body))
		sum := md5.Sum([]byte("via s3 put"))
		require.Equal(t, `"`+hex.EncodeToString(sum[:])+`"`, aws.ToString(out.ETag))
		out, err = c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("s3.txt"), Range: aws.String("bytes=4-5")})
		require.NoError(t, err)
		body, err = io.ReadAll(out.Body)
		require.NoError(t, err)
		require.Equal(t, "s3", string(body))
		require.Equal(t, "bytes 4-5/10", aws.ToString(out.ContentRange))

		// A multipart upload whose part is copied from an inline object.
		mp, err := c.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String("b"), Key: aws.String("assembled")})
		require.NoError(t, err)
		pc, err := c.UploadPartCopy(ctx, &awss3.UploadPartCopyInput{Bucket: aws.String("b"), Key: aws.String("assembled"),
			UploadId: mp.UploadId, PartNumber: aws.Int32(1), CopySource: aws.String("b/s3.txt"), CopySourceRange: aws.String("bytes=0-5")})
		require.NoError(t, err)
		part := md5.Sum([]byte("via s3"))
		require.Equal(t, `"`+hex.EncodeToString(part[:])+`"`, aws.ToString(pc.CopyPartResult.ETag))
		_, err = c.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{Bucket: aws.String("b"), Key: aws.String("assembled"),
			UploadId: mp.UploadId, MultipartUpload: &awss3types.CompletedMultipartUpload{Parts: []awss3types.CompletedPart{
				{PartNumber: aws.Int32(1), ETag: pc.CopyPartResult.ETag}}}})
		require.NoError(t, err)
		require.Equal(t, "via s3", o.content(t, "b", "assembled"))
		requireInvariants(t, o.httpBundle)
	})
}

// TestInlineReconcile: inline bytes no row holds and no queue entry waits for (rows deleted
// with the freeing triggers off) are orphans to reconcile: reported, and deleted with --apply;
// those a row holds or the queue waits for are left alone.
func TestInlineReconcile(t *testing.T) {
	t.Parallel()
	o := newObjEnv(t, objectBackends[0], withInline(inlineMax))
	ctx := context.Background()
	o.mustUpload(t, "b", "kept", "kept bytes")
	o.mustUpload(t, "b", "queued", "queued bytes")
	o.mustUpload(t, "b", "lost", "lost bytes")
	kept, queued, lost := o.version(t, "b", "kept"), o.version(t, "b", "queued"), o.version(t, "b", "lost")
	requireOKJSON(t, o.do(t, "DELETE", "/object/b/queued", o.service, ""))
	admin(t, o.db, `alter table storage.objects disable trigger objects_free_blobs_on_delete`)
	admin(t, o.db, `delete from storage.objects where name = 'lost'`)
	admin(t, o.db, `alter table storage.objects enable trigger objects_free_blobs_on_delete`)

	var out strings.Builder
	r, err := lifecycle.Reconcile(ctx, o.db.Pool, o.blobs, lifecycle.ReconcileOptions{Out: &out})
	require.NoError(t, err)
	require.Equal(t, lifecycle.Report{Orphans: 1, OrphanBytes: 10}, r, out.String())
	require.Equal(t, "orphan inline version "+lost+" 10 bytes, which no row holds\n", out.String())
	require.ElementsMatch(t, []string{kept, queued, lost}, o.inlineVersions(t), "a report deletes nothing")

	out.Reset()
	r, err = lifecycle.Reconcile(ctx, o.db.Pool, o.blobs, lifecycle.ReconcileOptions{Apply: true, Out: &out})
	require.NoError(t, err)
	require.Equal(t, lifecycle.Report{Orphans: 1, OrphanBytes: 10}, r, out.String())
	require.Equal(t, "orphan inline version "+lost+" 10 bytes, which no row holds — deleted\n", out.String())
	require.ElementsMatch(t, []string{kept, queued}, o.inlineVersions(t))
	r, err = lifecycle.Reconcile(ctx, o.db.Pool, o.blobs, lifecycle.ReconcileOptions{Apply: true})
	require.NoError(t, err)
	require.Equal(t, lifecycle.Report{}, r)
	require.Equal(t, "kept bytes", o.content(t, "b", "kept"))
}
