package tests

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/proxy"
	"github.com/pgstorage/storage/tests/testdb"
)

// Move and copy as SQL callers use them: storage.object_move and storage.object_copy
// (sql/api/object_move_copy.sql), always through the production prelude (asRole) under anon,
// authenticated (userA, userB) or service_role, with the blob bookkeeping of
// sql/005_blob_queue_create.sql. Both are metadata-only: a moved row keeps its version, a copy
// shares the source's version. Every version a statement stops referencing is queued in
// storage.blobs_freed (sql/008: even one another row still shares), and the collector
// (storage_internal.blob_collect_next) hands a blob out for deletion only once no row references it and
// never leaves an unreferenced one behind — also when transactions race (TestSQLMoveConcurrency).
// Unlike the reference (spec §10 item 14), the destination bucket's size and MIME limits
// apply (ST008, ST009).

const (
	mvMoveSQL = `select storage.object_move(bucket_id => $1, source_key => $2, destination_key => $3,
		destination_bucket => $4)`
	mvCopySQL = `select id::text from storage.object_copy(bucket_id => $1, source_key => $2,
		destination_key => $3, destination_bucket => $4, upsert => $5, copy_metadata => $6,
		metadata => $7, user_metadata => $8)`
	// mvCommitSQL overwrites an object as an upsert upload's commit does (service_role only);
	// the version's upload must be in flight (mvUploadBegin).
	mvCommitSQL = `select storage_internal.object_upload_commit(bucket_id => $1, name => $2, version => $3,
		upsert => true, owner_id => null, size => 3, md5 => 'd41d8cd98f00b204e9800998ecf8427e',
		mimetype => 'text/plain', cache_control => 'no-cache', user_metadata => null)`
	mvDeleteSQL = `select storage.object_delete(bucket_id => $1, name => $2)`
)

// mvPNG is the system metadata of the rows mvPut writes: 5 bytes of image/png.
const mvPNG = `{"eTag":"\"5d41402abc4b2a76b9719d911017c592\"","size":5,"mimetype":"image/png",
	"cacheControl":"max-age=60","lastModified":"2026-01-02T03:04:05.678Z","contentLength":5,"httpStatusCode":200}`

// mvDB returns a fresh database with private buckets b and b2, "small" (file_size_limit 10),
// "txt" (text/plain only) and "img" (image/*).
func mvDB(t *testing.T) *testdb.DB {
	t.Helper()
	db := testdb.New(t)
	admin(t, db, `insert into storage.buckets (id, name, file_size_limit, allowed_mime_types) values
		('b', 'b', null, null), ('b2', 'b2', null, null), ('small', 'small', 10, null),
		('txt', 'txt', null, array['text/plain']), ('img', 'img', null, array['image/*'])`)
	return db
}

// mvPut inserts an object row as the tables' owner with mvPNG metadata and user_metadata
// {"u":1}; ownerID "" is NULL. It returns the row's id.
func mvPut(t *testing.T, db *testdb.DB, bucket, name, ownerID, version string) string {
	t.Helper()
	return mvPutMeta(t, db, bucket, name, ownerID, version, mvPNG)
}

// mvPutMeta is mvPut with the given metadata.
func mvPutMeta(t *testing.T, db *testdb.DB, bucket, name, ownerID, version, meta string) string {
	t.Helper()
	var id string
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		`insert into storage.objects (bucket_id, name, owner, owner_id, version, metadata, user_metadata)
		 values ($1, $2, storage_internal.uuid_or_null(nullif($3, '')), nullif($3, ''), $4, $5::jsonb, '{"u":1}')
		 returning id::text`, bucket, name, ownerID, version, meta).Scan(&id))
	return id
}

// mvUploadBegin records the upload of version in flight (storage.blob_uploads), as
// storage_internal.blob_upload_begin does, so that mvCommitSQL may commit it. The tables' owner writes
// the entry itself to keep the test's own version names.
func mvUploadBegin(t *testing.T, db *testdb.DB, bucket, name, version string) {
	t.Helper()
	admin(t, db, `insert into storage.blob_uploads (version, bucket_id, name) values ($1, $2, $3)`, version, bucket, name)
}

// mvRow is a row of storage.objects as the tables' owner reads it.
type mvRow struct {
	ID, Bucket, Name        string
	Owner, OwnerID, Version *string
	Metadata, UserMetadata  *string // jsonb as text
	CreatedAt, UpdatedAt    time.Time
}

func mvGet(t *testing.T, db *testdb.DB, bucket, name string) (mvRow, bool) {
	t.Helper()
	var r mvRow
	err := db.Pool.QueryRow(context.Background(),
		`select id::text, bucket_id, name, owner::text, owner_id, version, metadata::text, user_metadata::text,
		        created_at, updated_at
		 from storage.objects where bucket_id = $1 and name = $2`, bucket, name).
		Scan(&r.ID, &r.Bucket, &r.Name, &r.Owner, &r.OwnerID, &r.Version, &r.Metadata, &r.UserMetadata,
			&r.CreatedAt, &r.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false
	}
	require.NoError(t, err)
	return r, true
}

func mvMust(t *testing.T, db *testdb.DB, bucket, name string) mvRow {
	t.Helper()
	r, ok := mvGet(t, db, bucket, name)
	require.True(t, ok, "row %s/%s", bucket, name)
	return r
}

// mvMove moves as id (committed).
func mvMove(t *testing.T, db *testdb.DB, id proxy.Identity, bucket, src, dst string, dstBucket any) error {
	t.Helper()
	return exec(t, db, id, mvMoveSQL, bucket, src, dst, dstBucket)
}

// mvCopyArgs are object_copy's arguments; nil fields are SQL NULL (the defaults' values).
type mvCopyArgs struct {
	bucket, src, dst string
	dstBucket        any // string or nil
	upsert           bool
	copyMeta         any // bool or nil
	meta, umeta      any // JSON text or nil
}

// mvCopy copies as id (committed) and returns the new row's id.
func mvCopy(t *testing.T, db *testdb.DB, id proxy.Identity, a mvCopyArgs) (string, error) {
	t.Helper()
	got, err := sqlObjQuery(t, db, id, true, mvCopySQL, a.bucket, a.src, a.dst, a.dstBucket, a.upsert, a.copyMeta, a.meta, a.umeta)
	if err != nil {
		return "", err
	}
	require.Len(t, got, 1)
	return got[0], nil
}

// mvJSON returns a jsonb text without the given keys, for comparisons.
func mvJSON(t *testing.T, db *testdb.DB, doc *string, drop ...string) string {
	t.Helper()
	require.NotNil(t, doc)
	var out string
	require.NoError(t, db.Pool.QueryRow(context.Background(), `select ($1::jsonb - $2::text[])::text`, *doc, drop).Scan(&out))
	return out
}

// mvPolicies creates policies as the tables' owner.
func mvPolicies(t *testing.T, db *testdb.DB, policies ...string) {
	t.Helper()
	for _, p := range policies {
		admin(t, db, p)
	}
}

func TestSQLMoveObject(t *testing.T) {
	t.Parallel()

	t.Run("WithinBucketKeepsRow", func(t *testing.T) {
		t.Parallel()
		db := mvDB(t)
		mvPut(t, db, "b", "k", userA.Sub, "v1")
		before := mvMust(t, db, "b", "k")
		require.NoError(t, mvMove(t, db, asService, "b", "k", "dir/m", nil))
		_, ok := mvGet(t, db, "b", "k")
		require.False(t, ok, "the source name is gone")
		after := mvMust(t, db, "b", "dir/m")
		require.Equal(t, before.ID, after.ID, "id kept")
		require.Equal(t, before.Version, after.Version, "version (the blob) kept")
		require.JSONEq(t, *before.Metadata, *after.Metadata, "metadata kept")
		require.JSONEq(t, *before.UserMetadata, *after.UserMetadata, "user_metadata kept")
		require.Equal(t, before.CreatedAt, after.CreatedAt, "created_at kept")
		require.False(t, after.UpdatedAt.Before(before.UpdatedAt))
		require.Equal(t, userA.Sub, *after.Owner, "a service caller (no sub) leaves the owner")
		require.Equal(t, userA.Sub, *after.OwnerID)
		require.Equal(t, []string{"b/dir/m"}, sqlObjNames(t, db))
		require.Empty(t, sqlObjFreed(t, db), "a move queues no blob")
		// path_tokens follow the new name.
		require.Equal(t, []string{"{dir,m}"}, sqlObjCol(t, db, `select path_tokens::text from storage.objects`))
	})

	t.Run("AcrossBuckets", func(t *testing.T) {
		t.Parallel()
		db := mvDB(t)
		id := mvPut(t, db, "b", "k", "", "v1")
		require.NoError(t, mvMove(t, db, asService, "b", "k", "k2", "b2"))
		r := mvMust(t, db, "b2", "k2")
		require.Equal(t, id, r.ID)
		require.Equal(t, "v1", *r.Version)
		require.Nil(t, r.Owner)
		require.Nil(t, r.OwnerID)
		require.Equal(t, []string{"b2/k2"}, sqlObjNames(t, db))
		// Back again, to the same name in the first bucket.
		require.NoError(t, mvMove(t, db, asService, "b2", "k2", "k", "b"))
		require.Equal(t, id, mvMust(t, db, "b", "k").ID)
		require.Empty(t, sqlObjFreed(t, db))
	})

	t.Run("OntoItselfIsNoOp", func(t *testing.T) {
		t.Parallel()
		db := mvDB(t)
		mvPut(t, db, "b", "k", userA.Sub, "v1")
		before := mvMust(t, db, "b", "k")
		require.NoError(t, mvMove(t, db, asService, "b", "k", "k", nil))
		require.NoError(t, mvMove(t, db, asService, "b", "k", "k", "b"))
		// The source is looked up first: a caller who cannot see it gets "not found".
		requireSQLState(t, mvMove(t, db, userB, "b", "k", "k", nil), "ST002", "Object not found")
		requireSQLState(t, mvMove(t, db, asService, "b", "missing", "missing", nil), "ST002", "Object not found")
		require.Equal(t, before, mvMust(t, db, "b", "k"), "nothing changed, not even updated_at")
		require.Empty(t, sqlObjFreed(t, db))
	})

	t.Run("OwnerBecomesMover", func(t *testing.T) {
		t.Parallel()
		db := mvDB(t)
		mvPolicies(t, db,
			`create policy sel on storage.objects for select to authenticated using (true)`,
			`create policy upd on storage.objects for update to authenticated using (true)`)
		mvPut(t, db, "b", "k", "", "v1")
		require.NoError(t, mvMove(t, db, userA, "b", "k", "m", nil))
		r := mvMust(t, db, "b", "m")
		require.Equal(t, userA.Sub, *r.Owner)
		require.Equal(t, userA.Sub, *r.OwnerID)
		require.NoError(t, mvMove(t, db, userB, "b", "m", "n", "b2"))
		r = mvMust(t, db, "b2", "n")
		require.Equal(t, userB.Sub, *r.Owner)
		require.Equal(t, userB.Sub, *r.OwnerID)
		notUUID := proxy.Identity{Role: "authenticated", Sub: "user-42", Claims: `{"role":"authenticated","sub":"user-42"}`}
		require.NoError(t, mvMove(t, db, notUUID, "b2", "n", "o", nil))
		r = mvMust(t, db, "b2", "o")
		require.Nil(t, r.Owner, "owner is the sub only when it is a UUID")
		require.Equal(t, "user-42", *r.OwnerID)
		// A service caller keeps whatever owner there is.
		require.NoError(t, mvMove(t, db, asService, "b2", "o", "p", nil))
		require.Equal(t, "user-42", *mvMust(t, db, "b2", "p").OwnerID)
		require.Equal(t, "v1", *mvMust(t, db, "b2", "p").Version)
		require.Empty(t, sqlObjFreed(t, db))
	})

	t.Run("Refusals", func(t *testing.T) {
		t.Parallel()
		db := mvDB(t)
		mvPut(t, db, "b", "k", "", "v1")
		mvPut(t, db, "b", "other", "", "v2")
		mvPutMeta(t, db, "b", "big", "", "v3", `{"size":11,"mimetype":"text/plain"}`)
		want := []string{"b/big", "b/k", "b/other"}
		before := mvMust(t, db, "b", "k")
		cases := []struct {
			name, bucket, src, dst string
			dstBucket              any
			code, msg              string
		}{
			{"missing source", "b", "missing", "m", nil, "ST002", "Object not found"},
			{"missing source bucket", "nobucket", "k", "m", "b", "ST002", "Object not found"},
			{"destination exists", "b", "k", "other", nil, "23505", ""},
			{"destination bucket missing", "b", "k", "m", "nobucket", "23503", "The related resource does not exist"},
			{"invalid destination key", "b", "k", "a%b", nil, "ST007", "Invalid key: a%b"},
			{"empty destination key", "b", "k", "", nil, "ST007", "Invalid key: "},
			{"non-ASCII destination key", "b", "k", "café", nil, "ST007", "Invalid key: café"},
			{"invalid source bucket", "a/b", "k", "m", "b", "ST006", "Bucket name invalid"},
			{"invalid destination bucket", "b", "k", "m", "a/b", "ST006", "Bucket name invalid"},
			{"destination size limit", "b", "big", "big", "small", "ST008", "The object exceeded the maximum allowed size"},
			{"destination MIME", "b", "k", "k", "txt", "ST009", "mime type image/png is not supported"},
		}
		for _, c := range cases {
			err := mvMove(t, db, asService, c.bucket, c.src, c.dst, c.dstBucket)
			require.Error(t, err, c.name)
			requireSQLState(t, err, c.code, c.msg)
			require.Equal(t, want, sqlObjNames(t, db), "%s: rows unchanged", c.name)
		}
		require.Equal(t, before, mvMust(t, db, "b", "k"), "the source is unchanged")
		require.Equal(t, "v2", *mvMust(t, db, "b", "other").Version, "the existing destination is unchanged")
		require.Empty(t, sqlObjFreed(t, db))
	})

	t.Run("DestinationLimitsPass", func(t *testing.T) {
		t.Parallel()
		db := mvDB(t)
		mvPutMeta(t, db, "b", "t", "", "v1", `{"size":10,"mimetype":"text/plain"}`)
		mvPut(t, db, "b", "p", "", "v2")
		require.NoError(t, mvMove(t, db, asService, "b", "t", "t", "small"), "exactly the limit")
		require.NoError(t, mvMove(t, db, asService, "small", "t", "t", "txt"))
		require.NoError(t, mvMove(t, db, asService, "b", "p", "p", "img"), "image/* takes image/png")
		require.Equal(t, []string{"img/p", "txt/t"}, sqlObjNames(t, db))
		// Metadata without a mimetype counts as application/octet-stream.
		mvPutMeta(t, db, "b", "nomime", "", "v3", `{"size":1}`)
		err := mvMove(t, db, asService, "b", "nomime", "nomime", "txt")
		requireSQLState(t, err, "ST009", "")
		require.NoError(t, mvMove(t, db, asService, "b", "nomime", "nomime", "small"))
	})

	t.Run("EmptyFolderPlaceholder", func(t *testing.T) {
		t.Parallel()
		db := mvDB(t)
		mvPutMeta(t, db, "b", "e", "", "v1", `{"size":0,"mimetype":"image/png"}`)
		mvPutMeta(t, db, "b", "one", "", "v2", `{"size":1,"mimetype":"text/plain"}`)
		require.NoError(t, mvMove(t, db, asService, "b", "e", "x/.emptyFolderPlaceholder", "txt"), "placeholders skip the MIME check")
		err := mvMove(t, db, asService, "b", "one", "y/.emptyFolderPlaceholder", nil)
		requireSQLState(t, err, "ST008", "The object exceeded the maximum allowed size")
		require.Equal(t, []string{"b/one", "txt/x/.emptyFolderPlaceholder"}, sqlObjNames(t, db))
	})

	t.Run("RLSNeedsSelectAndUpdate", func(t *testing.T) {
		t.Parallel()
		db := mvDB(t)
		mvPut(t, db, "b", "open/a", userA.Sub, "v1")
		mvPut(t, db, "b", "closed/c", userA.Sub, "v2")
		want := []string{"b/closed/c", "b/open/a"}
		// No policy: the source is hidden, as for a missing key.
		for _, id := range []proxy.Identity{asAnon, userA} {
			requireSQLState(t, mvMove(t, db, id, "b", "open/a", "open/b", nil), "ST002", "Object not found")
		}
		// SELECT alone: the UPDATE matches no row.
		mvPolicies(t, db, `create policy sel on storage.objects for select to authenticated using (true)`)
		requireSQLState(t, mvMove(t, db, userA, "b", "open/a", "open/b", nil), "ST002", "Object not found")
		// UPDATE alone: the source is not visible.
		admin(t, db, `drop policy sel on storage.objects`)
		mvPolicies(t, db, `create policy upd on storage.objects for update to authenticated
			using ((storage.foldername(name))[1] = 'open')`)
		requireSQLState(t, mvMove(t, db, userA, "b", "open/a", "open/b", nil), "ST002", "Object not found")
		require.Equal(t, want, sqlObjNames(t, db))

		// SELECT + UPDATE limited to folder open/: USING sees the old row, and without a
		// WITH CHECK it also checks the new row, so moving out of open/ is refused.
		mvPolicies(t, db, `create policy sel on storage.objects for select to authenticated using (true)`)
		require.NoError(t, mvMove(t, db, userA, "b", "open/a", "open/b", nil))
		want = []string{"b/closed/c", "b/open/b"}
		require.Equal(t, want, sqlObjNames(t, db))
		requireSQLState(t, mvMove(t, db, userA, "b", "open/b", "closed/b", nil), "42501", "")
		requireSQLState(t, mvMove(t, db, userA, "b", "open/b", "closed/b", "b2"), "42501", "")
		// The policy does not look at the bucket: another bucket's open/ is fine.
		require.NoError(t, mvMove(t, db, userA, "b", "open/b", "open/b", "b2"))
		require.NoError(t, mvMove(t, db, userA, "b2", "open/b", "open/b", "b"))
		// The old row fails USING: not found (the update matches nothing).
		requireSQLState(t, mvMove(t, db, userA, "b", "closed/c", "open/c", nil), "ST002", "Object not found")
		require.Equal(t, want, sqlObjNames(t, db))

		// WITH CHECK (true): leaving open/ is allowed, the new row is what it checks.
		admin(t, db, `drop policy upd on storage.objects`)
		mvPolicies(t, db, `create policy upd on storage.objects for update to authenticated
			using ((storage.foldername(name))[1] = 'open') with check (true)`)
		require.NoError(t, mvMove(t, db, userA, "b", "open/b", "closed/b", nil))
		require.Equal(t, []string{"b/closed/b", "b/closed/c"}, sqlObjNames(t, db))
		// The service role bypasses RLS.
		require.NoError(t, mvMove(t, db, asService, "b", "closed/b", "open/z", nil))
		require.Empty(t, sqlObjFreed(t, db))
	})
}

func TestSQLMoveCopy(t *testing.T) {
	t.Parallel()

	t.Run("SharesTheBlob", func(t *testing.T) {
		t.Parallel()
		db := mvDB(t)
		srcID := mvPut(t, db, "b", "k", userA.Sub, "v1")
		src := mvMust(t, db, "b", "k")
		id, err := mvCopy(t, db, asService, mvCopyArgs{bucket: "b", src: "k", dst: "dir/c"})
		require.NoError(t, err)
		require.NotEqual(t, srcID, id, "a copy is a new object")
		c := mvMust(t, db, "b", "dir/c")
		require.Equal(t, id, c.ID)
		require.Equal(t, "v1", *c.Version, "the copy shares the source's version (its blob)")
		require.Equal(t, mvJSON(t, db, src.Metadata, "lastModified"), mvJSON(t, db, c.Metadata, "lastModified"))
		lm := sqlObjCol(t, db, `select metadata->>'lastModified' from storage.objects where id = $1`, id)
		require.Regexp(t, jsTimestamp, lm[0])
		require.NotEqual(t, "2026-01-02T03:04:05.678Z", lm[0], "lastModified is the copy's")
		require.JSONEq(t, `{"u":1}`, *c.UserMetadata)
		require.Nil(t, c.Owner, "owner is the copier's sub: none for a service key")
		require.Nil(t, c.OwnerID)
		require.Equal(t, src, mvMust(t, db, "b", "k"), "the source is unchanged")
		require.Empty(t, sqlObjFreed(t, db))
	})

	t.Run("AcrossBucketsOwnerIsCopier", func(t *testing.T) {
		t.Parallel()
		db := mvDB(t)
		mvPolicies(t, db,
			`create policy sel on storage.objects for select to authenticated using (true)`,
			`create policy ins on storage.objects for insert to authenticated with check (true)`)
		mvPut(t, db, "b", "k", userB.Sub, "v1")
		_, err := mvCopy(t, db, userA, mvCopyArgs{bucket: "b", src: "k", dst: "c", dstBucket: "b2"})
		require.NoError(t, err)
		c := mvMust(t, db, "b2", "c")
		require.Equal(t, userA.Sub, *c.Owner)
		require.Equal(t, userA.Sub, *c.OwnerID)
		require.Equal(t, "v1", *c.Version)
		require.Equal(t, userB.Sub, *mvMust(t, db, "b", "k").OwnerID)
	})

	t.Run("CopyMetadataFalse", func(t *testing.T) {
		t.Parallel()
		db := mvDB(t)
		mvPut(t, db, "b", "k", "", "v1")
		src := mvMust(t, db, "b", "k")
		srcMeta := mvJSON(t, db, src.Metadata, "lastModified")

		_, err := mvCopy(t, db, asService, mvCopyArgs{bucket: "b", src: "k", dst: "c1", copyMeta: false,
			meta: `{"cacheControl":"max-age=77","size":999,"eTag":"x"}`, umeta: `{"a":1}`})
		require.NoError(t, err)
		c := mvMust(t, db, "b", "c1")
		var want string
		require.NoError(t, db.Pool.QueryRow(context.Background(),
			`select ($1::jsonb || '{"cacheControl":"max-age=77"}')::text`, srcMeta).Scan(&want))
		require.JSONEq(t, want, mvJSON(t, db, c.Metadata, "lastModified"), "only cacheControl and mimetype are taken")
		require.JSONEq(t, `{"a":1}`, *c.UserMetadata)

		_, err = mvCopy(t, db, asService, mvCopyArgs{bucket: "b", src: "k", dst: "c2", copyMeta: false,
			meta: `{"mimetype":"text/plain"}`})
		require.NoError(t, err)
		c = mvMust(t, db, "b", "c2")
		require.NoError(t, db.Pool.QueryRow(context.Background(),
			`select ($1::jsonb || '{"mimetype":"text/plain"}')::text`, srcMeta).Scan(&want))
		require.JSONEq(t, want, mvJSON(t, db, c.Metadata, "lastModified"), "cacheControl kept when not given")
		require.Nil(t, c.UserMetadata, "no user metadata given: NULL")

		// copy_metadata true (and its default) ignores both.
		for i, cm := range []any{true, nil} {
			dst := fmt.Sprintf("c3-%d", i)
			_, err = mvCopy(t, db, asService, mvCopyArgs{bucket: "b", src: "k", dst: dst, copyMeta: cm,
				meta: `{"cacheControl":"max-age=77"}`, umeta: `{"a":1}`})
			require.NoError(t, err)
			c = mvMust(t, db, "b", dst)
			require.JSONEq(t, srcMeta, mvJSON(t, db, c.Metadata, "lastModified"))
			require.JSONEq(t, `{"u":1}`, *c.UserMetadata)
		}
		require.Len(t, sqlObjCol(t, db, `select id::text from storage.objects where version = 'v1'`), 5)
	})

	t.Run("ExistingDestination", func(t *testing.T) {
		t.Parallel()
		db := mvDB(t)
		mvPut(t, db, "b", "k", "", "v1")
		dstID := mvPutMeta(t, db, "b", "d", userB.Sub, "v-old", `{"size":3,"mimetype":"text/plain"}`)
		dst := mvMust(t, db, "b", "d")
		_, err := mvCopy(t, db, asService, mvCopyArgs{bucket: "b", src: "k", dst: "d"})
		requireSQLState(t, err, "ST004", "The resource already exists")
		require.Equal(t, dst, mvMust(t, db, "b", "d"), "destination unchanged")
		require.Empty(t, sqlObjFreed(t, db))

		id, err := mvCopy(t, db, asService, mvCopyArgs{bucket: "b", src: "k", dst: "d", upsert: true})
		require.NoError(t, err)
		require.Equal(t, dstID, id, "an upsert keeps the destination's id")
		got := mvMust(t, db, "b", "d")
		require.Equal(t, dstID, got.ID)
		require.Equal(t, "v1", *got.Version)
		require.Equal(t, dst.CreatedAt, got.CreatedAt)
		require.Equal(t, "image/png", sqlObjCol(t, db, `select metadata->>'mimetype' from storage.objects where id = $1`, id)[0])
		require.Equal(t, []string{"v-old b"}, sqlObjFreed(t, db), "the replaced, now unreferenced, version is queued")
	})

	t.Run("UpsertOntoItself", func(t *testing.T) {
		t.Parallel()
		db := mvDB(t)
		id := mvPut(t, db, "b", "k", "", "v1")
		_, err := mvCopy(t, db, asService, mvCopyArgs{bucket: "b", src: "k", dst: "k"})
		requireSQLState(t, err, "ST004", "The resource already exists")
		got, err := mvCopy(t, db, asService, mvCopyArgs{bucket: "b", src: "k", dst: "k", upsert: true})
		require.NoError(t, err)
		require.Equal(t, id, got)
		require.Equal(t, "v1", *mvMust(t, db, "b", "k").Version)
		require.Empty(t, sqlObjFreed(t, db), "the blob of the object itself must not be queued")
	})

	t.Run("Refusals", func(t *testing.T) {
		t.Parallel()
		db := mvDB(t)
		mvPut(t, db, "b", "k", "", "v1")
		mvPutMeta(t, db, "b", "big", "", "v2", `{"size":11,"mimetype":"text/plain"}`)
		want := []string{"b/big", "b/k"}
		cases := []struct {
			name string
			a    mvCopyArgs
			code string
			msg  string
		}{
			{"missing source", mvCopyArgs{bucket: "b", src: "missing", dst: "c"}, "ST002", "Object not found"},
			{"missing source bucket", mvCopyArgs{bucket: "nobucket", src: "k", dst: "c", dstBucket: "b"}, "ST002", "Object not found"},
			{"destination bucket missing", mvCopyArgs{bucket: "b", src: "k", dst: "c", dstBucket: "nobucket"}, "23503", "The related resource does not exist"},
			{"invalid destination key", mvCopyArgs{bucket: "b", src: "k", dst: "a#b"}, "ST007", "Invalid key: a#b"},
			{"invalid source bucket", mvCopyArgs{bucket: "", src: "k", dst: "c", dstBucket: "b"}, "ST006", "Bucket name invalid"},
			{"invalid destination bucket", mvCopyArgs{bucket: "b", src: "k", dst: "c", dstBucket: "é"}, "ST006", "Bucket name invalid"},
			{"destination size limit", mvCopyArgs{bucket: "b", src: "big", dst: "c", dstBucket: "small"}, "ST008", "The object exceeded the maximum allowed size"},
			{"destination MIME", mvCopyArgs{bucket: "b", src: "k", dst: "c", dstBucket: "txt"}, "ST009", "mime type image/png is not supported"},
			{"destination MIME, upsert", mvCopyArgs{bucket: "b", src: "k", dst: "c", dstBucket: "txt", upsert: true}, "ST009", "mime type image/png is not supported"},
			{"overridden MIME", mvCopyArgs{bucket: "b", src: "big", dst: "c", dstBucket: "txt", copyMeta: false, meta: `{"mimetype":"text/html"}`}, "ST009", "mime type text/html is not supported"},
		}
		for _, c := range cases {
			_, err := mvCopy(t, db, asService, c.a)
			require.Error(t, err, c.name)
			requireSQLState(t, err, c.code, c.msg)
			require.Equal(t, want, sqlObjNames(t, db), "%s: rows unchanged", c.name)
		}
		// The limits apply to the metadata the copy ends up with.
		_, err := mvCopy(t, db, asService, mvCopyArgs{bucket: "b", src: "k", dst: "c", dstBucket: "txt", copyMeta: false, meta: `{"mimetype":"text/plain"}`})
		require.NoError(t, err)
		require.Empty(t, sqlObjFreed(t, db))
	})

	t.Run("RLSNeedsSelectAndInsert", func(t *testing.T) {
		t.Parallel()
		db := mvDB(t)
		mvPut(t, db, "b", "src/k", "", "v1")
		mvPut(t, db, "b", "open/exists", "", "v2")
		want := []string{"b/open/exists", "b/src/k"}
		for _, id := range []proxy.Identity{asAnon, userA} {
			_, err := mvCopy(t, db, id, mvCopyArgs{bucket: "b", src: "src/k", dst: "open/c"})
			requireSQLState(t, err, "ST002", "Object not found")
		}
		// SELECT alone: the INSERT is refused.
		mvPolicies(t, db, `create policy sel on storage.objects for select to authenticated using (true)`)
		_, err := mvCopy(t, db, userA, mvCopyArgs{bucket: "b", src: "src/k", dst: "open/c"})
		requireSQLState(t, err, "42501", "")
		// INSERT into open/ only.
		mvPolicies(t, db, `create policy ins on storage.objects for insert to authenticated
			with check ((storage.foldername(name))[1] = 'open')`)
		_, err = mvCopy(t, db, userA, mvCopyArgs{bucket: "b", src: "src/k", dst: "closed/c"})
		requireSQLState(t, err, "42501", "")
		require.Equal(t, want, sqlObjNames(t, db))
		_, err = mvCopy(t, db, userA, mvCopyArgs{bucket: "b", src: "src/k", dst: "open/c"})
		require.NoError(t, err)
		want = []string{"b/open/c", "b/open/exists", "b/src/k"}
		// Upsert over an existing object needs UPDATE as well.
		_, err = mvCopy(t, db, userA, mvCopyArgs{bucket: "b", src: "src/k", dst: "open/exists", upsert: true})
		requireSQLState(t, err, "42501", "")
		require.Equal(t, "v2", *mvMust(t, db, "b", "open/exists").Version)
		mvPolicies(t, db, `create policy upd on storage.objects for update to authenticated using (true)`)
		_, err = mvCopy(t, db, userA, mvCopyArgs{bucket: "b", src: "src/k", dst: "open/exists", upsert: true})
		require.NoError(t, err)
		require.Equal(t, "v1", *mvMust(t, db, "b", "open/exists").Version)
		require.Equal(t, want, sqlObjNames(t, db))
		require.Equal(t, []string{"v2 b"}, sqlObjFreed(t, db))
		// SELECT limited to src/: the source must be visible; the destination must be too
		// (INSERT … RETURNING applies SELECT policies to the new row).
		admin(t, db, `drop policy sel on storage.objects`)
		mvPolicies(t, db, `create policy sel on storage.objects for select to authenticated
			using ((storage.foldername(name))[1] in ('src', 'open'))`)
		_, err = mvCopy(t, db, userA, mvCopyArgs{bucket: "b", src: "src/k", dst: "open/d"})
		require.NoError(t, err)
	})

	t.Run("BlobAccounting", func(t *testing.T) {
		t.Parallel()
		db := mvDB(t)
		mvPut(t, db, "b", "a", "", "v1")
		for _, dst := range []string{"b", "c"} {
			_, err := mvCopy(t, db, asService, mvCopyArgs{bucket: "b", src: "a", dst: dst})
			require.NoError(t, err)
		}
		// Deleting the source of copies queues v1, but the collector keeps the blob: they hold it.
		require.NoError(t, exec(t, db, asService, mvDeleteSQL, "b", "a"))
		require.Equal(t, []string{"v1 b"}, sqlObjFreed(t, db))
		require.Empty(t, sqlCollectable(t, db))
		// Overwriting a copy (an upsert's commit) queues the replaced v1 again; another row
		// still holds it.
		mvUploadBegin(t, db, "b", "b", "v2")
		require.NoError(t, exec(t, db, asService, mvCommitSQL, "b", "b", "v2"))
		require.Equal(t, []string{"v1 b", "v1 b"}, sqlObjFreed(t, db))
		require.Empty(t, sqlCollectable(t, db))
		// A move queues nothing.
		require.NoError(t, mvMove(t, db, asService, "b", "c", "c2", "b2"))
		require.Equal(t, []string{"v1 b", "v1 b"}, sqlObjFreed(t, db))
		require.Empty(t, sqlCollectable(t, db))
		// The last row of v1 goes: v1 may be collected.
		require.NoError(t, exec(t, db, asService, mvDeleteSQL, "b2", "c2"))
		require.Equal(t, []string{"v1 b", "v1 b", "v1 b2"}, sqlObjFreed(t, db))
		require.Equal(t, []string{"v1"}, sqlCollectable(t, db))
		require.NoError(t, exec(t, db, asService, mvDeleteSQL, "b", "b"))
		require.Equal(t, []string{"v1 b", "v1 b", "v1 b2", "v2 b"}, sqlObjFreed(t, db))
		require.Equal(t, []string{"v1", "v2"}, sqlCollectable(t, db))

		// Several rows of one version deleted in one statement: queued once.
		mvPut(t, db, "b", "x", "", "v3")
		for _, dst := range []string{"y", "z"} {
			_, err := mvCopy(t, db, asService, mvCopyArgs{bucket: "b", src: "x", dst: dst})
			require.NoError(t, err)
		}
		_, err := sqlObjQuery(t, db, asService, true, `select name from storage.object_delete_many('b', array['x', 'y'])`)
		require.NoError(t, err)
		require.Equal(t, []string{"v1 b", "v1 b", "v1 b2", "v2 b", "v3 b"}, sqlObjFreed(t, db))
		require.Equal(t, []string{"v1", "v2"}, sqlCollectable(t, db), "z still holds v3")
		_, err = sqlObjQuery(t, db, asService, true, `select name from storage.object_delete_many('b', array['z'])`)
		require.NoError(t, err)
		require.Equal(t, []string{"v1 b", "v1 b", "v1 b2", "v2 b", "v3 b", "v3 b"}, sqlObjFreed(t, db))
		require.Equal(t, []string{"v1", "v2", "v3"}, sqlCollectable(t, db))
		require.Empty(t, sqlObjNames(t, db))
	})
}

// ---------------------------------------------------------------------------------------------
// Concurrency: whatever the interleaving of two transactions, the collector never hands out
// the blob of a version a row references (data loss), and a version no row references is
// always queued (else its blob leaks). Each transaction runs in its own connection through the
// prelude as service_role, as the server's requests do; the collector (storage_internal.blob_collect_next
// as the tables' owner, mvCollect) runs between the transactions' commits and after them.

// mvPool is a pool of the test database large enough for every racing transaction to hold
// its own connection.
func mvPool(t *testing.T, db *testdb.DB, n int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(db.URL)
	require.NoError(t, err)
	cfg.MaxConns = n
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// mvStmt is one racing transaction's statement.
type mvStmt struct {
	sql  string
	args []any
}

// mvRace runs each statement in a transaction of its own (own connection, prelude as
// service_role), all started together once every transaction is open, and commits those that
// succeed. It returns each statement's error.
func mvRace(ctx context.Context, pool *pgxpool.Pool, stmts []mvStmt) []error {
	errs := make([]error, len(stmts))
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i, s := range stmts {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			isReady := false
			defer func() {
				if !isReady {
					ready.Done()
				}
			}()
			errs[i] = func() error {
				conn, err := pool.Acquire(ctx)
				if err != nil {
					return err
				}
				defer conn.Release()
				tx, err := conn.Begin(ctx)
				if err != nil {
					return err
				}
				defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit it is a no-op
				psql, pargs := proxy.Prelude(asService, "race")
				if _, err := tx.Exec(ctx, psql, pargs...); err != nil {
					return err
				}
				isReady = true
				ready.Done()
				select {
				case <-start:
				case <-ctx.Done():
					return ctx.Err()
				}
				if _, err := tx.Exec(ctx, s.sql, s.args...); err != nil {
					return err
				}
				return tx.Commit(ctx)
			}()
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return errs
}

// mvCollectTable creates public.mv_collected, where mvCollect records what the collector
// handed out.
func mvCollectTable(t *testing.T, db *testdb.DB) {
	t.Helper()
	admin(t, db, `create table public.mv_collected (version text not null, at timestamptz not null default clock_timestamp())`)
}

// mvCollect runs one pass of the collector as the server's does (storage_internal.blob_collect_next as
// the tables' owner, committed: it drops the entries of versions a row still references) and
// records the versions it hands out in public.mv_collected. Like a collector whose blob
// deletes have not finished yet, it does not report them done: their entries stay queued.
func mvCollect(t *testing.T, db *testdb.DB) {
	t.Helper()
	admin(t, db, `insert into public.mv_collected (version)
		select v from storage_internal.blob_collect_next(interval '0', 1000000) v`)
}

// mvViolations checks the blob bookkeeping for the given versions (each referenced by some row
// at some point) after a last collector pass (mvCollect): collected lists those a row
// references yet the collector handed out (their blob would be deleted under a live object:
// data loss); leaked lists those no row references that are not queued (a blob nobody will
// ever delete).
func mvViolations(t *testing.T, db *testdb.DB, versions []string) (collected, leaked []string) {
	t.Helper()
	mvCollect(t, db)
	collected = sqlObjCol(t, db, `select distinct c.version from public.mv_collected c
		where c.version = any ($1) and exists (select from storage.objects o where o.version = c.version)
		order by 1`, versions)
	leaked = sqlObjCol(t, db, `select v from unnest($1::text[]) v
		where not exists (select from storage.objects o where o.version = v)
		  and not exists (select from storage.blobs_freed f where f.version = v)
		order by 1`, versions)
	return collected, leaked
}

func mvSQLState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// mvScenario is one race of TestSQLMoveConcurrency/Races: its rows, its two statements, the
// errors each statement may end with besides success.
type mvScenario struct {
	name  string
	setup func(t *testing.T, db *testdb.DB, p, v string) // p: key prefix, v: version
	stmts func(p, v string) [2]mvStmt
	may   [2]string // a SQLSTATE the statement may end with ("" = must succeed)
	// overwrites: the scenario writes version v+"-new" too.
	overwrites bool
}

var mvScenarios = []mvScenario{
	{
		name: "copy A→B vs delete A",
		setup: func(t *testing.T, db *testdb.DB, p, v string) {
			mvPut(t, db, "c", p+"A", "", v)
		},
		stmts: func(p, v string) [2]mvStmt {
			return [2]mvStmt{
				{mvCopySQL, []any{"c", p + "A", p + "B", nil, false, nil, nil, nil}},
				{mvDeleteSQL, []any{"c", p + "A"}},
			}
		},
		may: [2]string{"ST002", ""},
	},
	{
		name: "overwrite A vs copy A→B",
		setup: func(t *testing.T, db *testdb.DB, p, v string) {
			mvPut(t, db, "c", p+"A", "", v)
			mvUploadBegin(t, db, "c", p+"A", v+"-new")
		},
		stmts: func(p, v string) [2]mvStmt {
			return [2]mvStmt{
				{mvCommitSQL, []any{"c", p + "A", v + "-new"}},
				{mvCopySQL, []any{"c", p + "A", p + "B", nil, false, nil, nil, nil}},
			}
		},
		overwrites: true,
	},
	{
		name: "delete B vs delete A (B a copy of A)",
		setup: func(t *testing.T, db *testdb.DB, p, v string) {
			mvPut(t, db, "c", p+"A", "", v)
			mvPut(t, db, "c", p+"B", "", v)
		},
		stmts: func(p, v string) [2]mvStmt {
			return [2]mvStmt{
				{mvDeleteSQL, []any{"c", p + "B"}},
				{mvDeleteSQL, []any{"c", p + "A"}},
			}
		},
	},
	{
		name: "move A→M vs copy A→B",
		setup: func(t *testing.T, db *testdb.DB, p, v string) {
			mvPut(t, db, "c", p+"A", "", v)
		},
		stmts: func(p, v string) [2]mvStmt {
			return [2]mvStmt{
				{mvMoveSQL, []any{"c", p + "A", p + "M", nil}},
				{mvCopySQL, []any{"c", p + "A", p + "B", nil, false, nil, nil, nil}},
			}
		},
		may: [2]string{"", "ST002"},
	},
	{
		name: "overwrite B vs delete A (B a copy of A)",
		setup: func(t *testing.T, db *testdb.DB, p, v string) {
			mvPut(t, db, "c", p+"A", "", v)
			mvPut(t, db, "c", p+"B", "", v)
			mvUploadBegin(t, db, "c", p+"B", v+"-new")
		},
		stmts: func(p, v string) [2]mvStmt {
			return [2]mvStmt{
				{mvCommitSQL, []any{"c", p + "B", v + "-new"}},
				{mvDeleteSQL, []any{"c", p + "A"}},
			}
		},
		overwrites: true,
	},
}

func TestSQLMoveConcurrency(t *testing.T) {
	t.Parallel()

	t.Run("Races", func(t *testing.T) {
		t.Parallel()
		const rounds = 50
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		db := testdb.New(t)
		admin(t, db, `insert into storage.buckets (id, name) values ('c', 'c')`)
		mvCollectTable(t, db)
		pool := mvPool(t, db, int32(2*len(mvScenarios)))

		type tally struct {
			collected, leaked int
			example           string
			outcomes          map[string]int
		}
		tallies := make([]tally, len(mvScenarios))
		for i := range tallies {
			tallies[i].outcomes = map[string]int{}
		}
		for r := range rounds {
			var stmts []mvStmt
			for i, sc := range mvScenarios {
				p, v := fmt.Sprintf("r%02d/s%d/", r, i), fmt.Sprintf("r%02d-s%d", r, i)
				sc.setup(t, db, p, v)
				s := sc.stmts(p, v)
				stmts = append(stmts, s[0], s[1])
			}
			errs := mvRace(ctx, pool, stmts)
			require.NoError(t, ctx.Err(), "round %d did not finish in time", r)
			for i, sc := range mvScenarios {
				v := fmt.Sprintf("r%02d-s%d", r, i)
				outcome := mvSQLState(errs[2*i]) + "/" + mvSQLState(errs[2*i+1])
				tallies[i].outcomes[outcome]++
				for j := range 2 {
					if err := errs[2*i+j]; err != nil && mvSQLState(err) != sc.may[j] {
						t.Errorf("round %d, %s: statement %d failed: %v", r, sc.name, j+1, err)
					}
				}
				versions := []string{v}
				if sc.overwrites {
					versions = append(versions, v+"-new")
				}
				collected, leaked := mvViolations(t, db, versions)
				if len(collected) > 0 {
					tallies[i].collected++
				}
				if len(leaked) > 0 {
					tallies[i].leaked++
				}
				if (len(collected) > 0 || len(leaked) > 0) && tallies[i].example == "" {
					tallies[i].example = fmt.Sprintf("round %d (outcome %s): referenced yet collected %v, unreferenced yet not queued %v; rows %v",
						r, outcome, collected, leaked, sqlObjCol(t, db, `select name || '@' || version from storage.objects where name like $1 order by 1`, fmt.Sprintf("r%02d/s%d/%%", r, i)))
				}
			}
		}
		for i, sc := range mvScenarios {
			var outs []string
			for o, n := range tallies[i].outcomes {
				outs = append(outs, fmt.Sprintf("%s×%d", o, n))
			}
			sort.Strings(outs)
			t.Logf("%s: outcomes %s", sc.name, strings.Join(outs, " "))
			if tallies[i].collected > 0 || tallies[i].leaked > 0 {
				t.Errorf("%s: in %d of %d rounds the collector handed out a version still referenced by a row (its blob would be deleted under a live object); in %d rounds a version no row references was never queued (leaked blob). First: %s",
					sc.name, tallies[i].collected, rounds, tallies[i].leaked, tallies[i].example)
			}
		}
	})

	// Interleavings: the same races, with the order of the two transactions' steps forced.
	// A step that must wait for the other transaction's lock is seen waiting in
	// pg_stat_activity before the test goes on.
	t.Run("Interleavings", func(t *testing.T) {
		t.Parallel()
		cases := []struct {
			name  string
			setup func(t *testing.T, db *testdb.DB)
			stmts [2]mvStmt
			// Statement 0 runs first, then statement 1 (which may wait for 0's locks); when
			// it does not wait, transaction commitFirst commits first.
			commitFirst int
			versions    []string
			check       func(t *testing.T, db *testdb.DB, errs [2]error)
		}{
			{
				name:  "CopyThenDelete",
				setup: func(t *testing.T, db *testdb.DB) { mvPut(t, db, "c", "A", "", "v1") },
				stmts: [2]mvStmt{
					{mvCopySQL, []any{"c", "A", "B", nil, false, nil, nil, nil}},
					{mvDeleteSQL, []any{"c", "A"}},
				},
				commitFirst: 0, versions: []string{"v1"},
				check: func(t *testing.T, db *testdb.DB, errs [2]error) {
					require.NoError(t, errs[0])
					require.NoError(t, errs[1])
					require.Equal(t, []string{"c/B"}, sqlObjNames(t, db))
					require.Equal(t, "v1", *mvMust(t, db, "c", "B").Version)
				},
			},
			{
				name:  "DeleteThenCopy",
				setup: func(t *testing.T, db *testdb.DB) { mvPut(t, db, "c", "A", "", "v1") },
				stmts: [2]mvStmt{
					{mvDeleteSQL, []any{"c", "A"}},
					{mvCopySQL, []any{"c", "A", "B", nil, false, nil, nil, nil}},
				},
				commitFirst: 0, versions: []string{"v1"},
				check: func(t *testing.T, db *testdb.DB, errs [2]error) {
					require.NoError(t, errs[0])
					requireSQLState(t, errs[1], "ST002", "Object not found")
					require.Empty(t, sqlObjNames(t, db))
					require.Equal(t, []string{"v1 c"}, sqlObjFreed(t, db))
				},
			},
			{
				name: "CopyThenOverwrite",
				setup: func(t *testing.T, db *testdb.DB) {
					mvPut(t, db, "c", "A", "", "v1")
					mvUploadBegin(t, db, "c", "A", "v2")
				},
				stmts: [2]mvStmt{
					{mvCopySQL, []any{"c", "A", "B", nil, false, nil, nil, nil}},
					{mvCommitSQL, []any{"c", "A", "v2"}},
				},
				commitFirst: 1, versions: []string{"v1", "v2"},
				check: func(t *testing.T, db *testdb.DB, errs [2]error) {
					require.NoError(t, errs[0])
					require.NoError(t, errs[1])
					require.Equal(t, "v2", *mvMust(t, db, "c", "A").Version)
					require.Equal(t, "v1", *mvMust(t, db, "c", "B").Version, "the copy took the version it read")
				},
			},
			{
				name: "OverwriteThenCopy",
				setup: func(t *testing.T, db *testdb.DB) {
					mvPut(t, db, "c", "A", "", "v1")
					mvUploadBegin(t, db, "c", "A", "v2")
				},
				stmts: [2]mvStmt{
					{mvCommitSQL, []any{"c", "A", "v2"}},
					{mvCopySQL, []any{"c", "A", "B", nil, false, nil, nil, nil}},
				},
				commitFirst: 0, versions: []string{"v1", "v2"},
				check: func(t *testing.T, db *testdb.DB, errs [2]error) {
					require.NoError(t, errs[0])
					require.NoError(t, errs[1])
					require.Equal(t, "v2", *mvMust(t, db, "c", "A").Version)
					// Whichever version the copy took, its metadata is that version's: v1 was
					// 5 bytes of image/png (mvPNG), v2 3 bytes of text/plain (mvCommitSQL).
					b := mvMust(t, db, "c", "B")
					want := map[string]string{"v1": "5 image/png", "v2": "3 text/plain"}[*b.Version]
					require.Equal(t, want, sqlObjCol(t, db, `select (metadata->>'size') || ' ' || (metadata->>'mimetype') from storage.objects where name = 'B'`)[0],
						"the copy's metadata belongs to the version it references (%s)", *b.Version)
				},
			},
			{
				name: "DeleteBothCopies",
				setup: func(t *testing.T, db *testdb.DB) {
					mvPut(t, db, "c", "A", "", "v1")
					mvPut(t, db, "c", "B", "", "v1")
				},
				stmts: [2]mvStmt{
					{mvDeleteSQL, []any{"c", "A"}},
					{mvDeleteSQL, []any{"c", "B"}},
				},
				commitFirst: 0, versions: []string{"v1"},
				check: func(t *testing.T, db *testdb.DB, errs [2]error) {
					require.NoError(t, errs[0])
					require.NoError(t, errs[1])
					require.Empty(t, sqlObjNames(t, db))
					require.Equal(t, []string{"v1 c"}, sqlObjFreed(t, db), "the last row of v1 went: v1 is queued once")
				},
			},
			{
				name: "OverwriteCopyThenDeleteSource",
				setup: func(t *testing.T, db *testdb.DB) {
					mvPut(t, db, "c", "A", "", "v1")
					mvPut(t, db, "c", "B", "", "v1")
					mvUploadBegin(t, db, "c", "B", "v2")
				},
				stmts: [2]mvStmt{
					{mvCommitSQL, []any{"c", "B", "v2"}},
					{mvDeleteSQL, []any{"c", "A"}},
				},
				commitFirst: 0, versions: []string{"v1", "v2"},
				check: func(t *testing.T, db *testdb.DB, errs [2]error) {
					require.NoError(t, errs[0])
					require.NoError(t, errs[1])
					require.Equal(t, []string{"c/B"}, sqlObjNames(t, db))
					require.Equal(t, []string{"v1 c"}, sqlObjFreed(t, db), "no row references v1 any more")
				},
			},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				db := testdb.New(t)
				admin(t, db, `insert into storage.buckets (id, name) values ('c', 'c')`)
				mvCollectTable(t, db)
				c.setup(t, db)
				pool := mvPool(t, db, 2)
				txs := [2]*mvTxStep{mvBegin(t, pool), mvBegin(t, pool)}
				var errs [2]error
				first, second := 0, 1
				errs[first] = <-txs[first].run(c.stmts[first])
				require.NoError(t, errs[first], "the first statement runs unhindered")
				ch := txs[second].run(c.stmts[second])
				var blocked bool
				errs[second], blocked = mvAwait(t, db, txs[second], ch)
				// The collector runs between the two commits too: whatever the first committed
				// is queued then, while the second is still in flight.
				if blocked {
					// The second waits for the first's lock: commit the first, then it goes on.
					require.NoError(t, txs[first].finish(nil))
					errs[second] = <-ch
					mvCollect(t, db)
					require.NoError(t, txs[second].finish(errs[second]))
				} else {
					other := 1 - c.commitFirst
					require.NoError(t, txs[c.commitFirst].finish(errs[c.commitFirst]))
					mvCollect(t, db)
					require.NoError(t, txs[other].finish(errs[other]))
				}
				t.Logf("second statement waited for the first's lock: %v; outcomes %s/%s", blocked, mvSQLState(errs[0]), mvSQLState(errs[1]))
				collected, leaked := mvViolations(t, db, c.versions)
				require.Empty(t, collected, "the collector handed out versions a row references (rows: %v, queue: %v)",
					sqlObjCol(t, db, `select name || '@' || version from storage.objects order by 1`), sqlObjFreed(t, db))
				require.Empty(t, leaked, "versions no row references are not queued (rows: %v, queue: %v)",
					sqlObjCol(t, db, `select name || '@' || version from storage.objects order by 1`), sqlObjFreed(t, db))
				c.check(t, db, errs)
			})
		}
	})
}

// mvTxStep is a transaction driven step by step from the test: its own connection, opened
// with the prelude as service_role.
type mvTxStep struct {
	t    *testing.T
	conn *pgxpool.Conn
	tx   pgx.Tx
	pid  uint32
}

func mvBegin(t *testing.T, pool *pgxpool.Pool) *mvTxStep {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	t.Cleanup(conn.Release)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	psql, pargs := proxy.Prelude(asService, "step")
	_, err = tx.Exec(ctx, psql, pargs...)
	require.NoError(t, err)
	return &mvTxStep{t: t, conn: conn, tx: tx, pid: conn.Conn().PgConn().PID()}
}

// run executes s in the transaction from another goroutine; its error arrives on the channel.
func (x *mvTxStep) run(s mvStmt) <-chan error {
	ch := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := x.tx.Exec(ctx, s.sql, s.args...)
		ch <- err
	}()
	return ch
}

// finish commits after a successful statement and rolls back after a failed one.
func (x *mvTxStep) finish(stmtErr error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if stmtErr != nil {
		return x.tx.Rollback(ctx)
	}
	return x.tx.Commit(ctx)
}

// mvAwait waits until the statement behind ch ends (its error, false) or its backend waits
// for a lock (nil, true), polling pg_stat_activity; bounded by 10 seconds.
func mvAwait(t *testing.T, db *testdb.DB, x *mvTxStep, ch <-chan error) (error, bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-ch:
			return err, false
		case <-deadline:
			t.Fatalf("statement of backend %d neither ended nor waited for a lock within 10 s", x.pid)
		case <-tick.C:
			var waiting bool
			require.NoError(t, db.Pool.QueryRow(context.Background(),
				`select coalesce(wait_event_type = 'Lock', false) from pg_stat_activity where pid = $1`, int(x.pid)).Scan(&waiting))
			if waiting {
				// It may have been granted the lock meanwhile: prefer its result if it is there.
				select {
				case err := <-ch:
					return err, false
				default:
					return nil, true
				}
			}
		}
	}
}
