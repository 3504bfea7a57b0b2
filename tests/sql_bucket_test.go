package tests

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/proxy"
	"github.com/pgstorage/storage/tests/testdb"
)

// The bucket SQL API as SQL callers use it, under each role, always through the production
// prelude: anon and authenticated with and without policies, and service_role.

// requireSQLState asserts err is a PostgreSQL error with the given SQLSTATE (and, when msg is
// not empty, that message).
func requireSQLState(t *testing.T, err error, code, msg string) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "want SQLSTATE %s, got %v", code, err)
	require.Equal(t, code, pgErr.Code, pgErr.Message)
	if msg != "" {
		require.Equal(t, msg, pgErr.Message)
	}
}

// queryStrings runs a query as id (rolled back) and returns the first column of every row.
func queryStrings(t *testing.T, db *testdb.DB, id proxy.Identity, sql string, args ...any) ([]string, error) {
	t.Helper()
	return sqlObjQuery(t, db, id, false, sql, args...)
}

func insertObject(t *testing.T, db *testdb.DB, bucket, name, ownerID string) {
	t.Helper()
	admin(t, db, `insert into storage.objects (bucket_id, name, owner_id) values ($1, $2, nullif($3, ''))`, bucket, name, ownerID)
}

func TestSQLBucketCreate(t *testing.T) {
	t.Parallel()

	t.Run("ServiceRoleCreatesWithDefaults", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		var id string
		require.NoError(t, asRole(t, db, asService, true, func(tx pgx.Tx) error {
			return tx.QueryRow(context.Background(), `select storage.bucket_create(name => 'avatars')`).Scan(&id)
		}))
		require.Equal(t, "avatars", id)
		b, ok := loadStoredBucket(t, db, "avatars")
		require.True(t, ok)
		require.False(t, b.CreatedAt.IsZero())
		b.CreatedAt, b.UpdatedAt = time.Time{}, time.Time{}
		require.Equal(t, storedBucket{ID: "avatars", Name: "avatars", Type: "STANDARD"}, b)
	})

	t.Run("AllArguments", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		require.NoError(t, exec(t, db, asService, `select storage.bucket_create(name => 'Pics', id => 'pics',
			public => true, file_size_limit => '1024KB', allowed_mime_types => array['image/*', '', 'text/plain;charset=utf-8'])`))
		b, _ := loadStoredBucket(t, db, "pics")
		limit := int64(1020000)
		b.CreatedAt, b.UpdatedAt = time.Time{}, time.Time{}
		require.Equal(t, storedBucket{ID: "pics", Name: "Pics", Public: true, FileSizeLimit: &limit,
			AllowedMimeTypes: []string{"image/*", "text/plain;charset=utf-8"}, Type: "STANDARD"}, b)
	})

	t.Run("PlainSQLCallerWithoutPrelude", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		admin(t, db, `select storage.bucket_create(name => 'x')`)
		b, ok := loadStoredBucket(t, db, "x")
		require.True(t, ok)
		require.Nil(t, b.OwnerID)
	})

	t.Run("AnonWithoutPolicyIsRefused", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		err := exec(t, db, asAnon, `select storage.bucket_create(name => 'x')`)
		requireSQLState(t, err, "42501", "")
		_, ok := loadStoredBucket(t, db, "x")
		require.False(t, ok)
	})

	t.Run("OwnerFromSub", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		admin(t, db, `create policy ins on storage.buckets for insert to authenticated with check (true)`)
		require.NoError(t, exec(t, db, userA, `select storage.bucket_create(name => 'a')`))
		b, _ := loadStoredBucket(t, db, "a")
		require.Equal(t, userA.Sub, *b.Owner)
		require.Equal(t, userA.Sub, *b.OwnerID)

		notUUID := proxy.Identity{Role: "authenticated", Sub: "user-42", Claims: `{"role":"authenticated","sub":"user-42"}`}
		require.NoError(t, exec(t, db, notUUID, `select storage.bucket_create(name => 'b')`))
		b, _ = loadStoredBucket(t, db, "b")
		require.Nil(t, b.Owner)
		require.Equal(t, "user-42", *b.OwnerID)
	})

	t.Run("Refusals", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		require.NoError(t, exec(t, db, asService, `select storage.bucket_create(name => 'dup')`))
		cases := []struct{ sql, code, msg string }{
			{`select storage.bucket_create(name => 'dup')`, "ST003", "The resource already exists"},
			{`select storage.bucket_create(name => 'other', id => 'dup')`, "ST003", "The resource already exists"},
			{`select storage.bucket_create(name => 'a/b')`, "ST006", "Bucket name invalid"},
			{`select storage.bucket_create(name => ' lead')`, "ST006", "Bucket name invalid"},
			{`select storage.bucket_create(name => 'trail ')`, "ST006", "Bucket name invalid"},
			{`select storage.bucket_create(name => '')`, "ST006", "Bucket name invalid"},
			{`select storage.bucket_create(name => 'café')`, "ST006", "Bucket name invalid"},
			{`select storage.bucket_create(name => repeat('a', 101))`, "ST006", "Bucket name invalid"},
			{`select storage.bucket_create(name => 'x--table-s3')`, "ST006", "Bucket name invalid"},
			{`select storage.bucket_create(name => 'ok', id => 'a/b')`, "ST006", "Bucket name invalid"},
			{`select storage.bucket_create(name => 'ok', file_size_limit => '1 MB')`, "ST010", "Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B"},
			{`select storage.bucket_create(name => 'ok', file_size_limit => '-1')`, "ST010", "Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B"},
			{`select storage.bucket_create(name => 'ok', allowed_mime_types => array['notamime'])`, "ST009", "mime type notamime is not supported"},
			{`select storage.bucket_create(name => 'ok', type => 'ANALYTICS')`, "ST014", "Bucket type ANALYTICS is not supported by this server"},
		}
		for _, c := range cases {
			requireSQLState(t, exec(t, db, asService, c.sql), c.code, c.msg)
		}
		// Valid edge cases.
		require.NoError(t, exec(t, db, asService, `select storage.bucket_create(name => repeat('a', 100))`))
		require.NoError(t, exec(t, db, asService, `select storage.bucket_create(name => 'a b!-_.*''()&$=@;:+,?')`))
		require.NoError(t, exec(t, db, asService, `select storage.bucket_create(name => 'm', allowed_mime_types => array['foo*', 'application/vnd.api+json'])`))
	})

	t.Run("GlobalLimitFromRequestSetting", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		err := asRole(t, db, asService, true, func(tx pgx.Tx) error {
			_, err := tx.Exec(context.Background(), `select set_config('storage.upload_file_size_limit', '1000000', true)`)
			require.NoError(t, err)
			_, err = tx.Exec(context.Background(), `select storage.bucket_create(name => 'big', file_size_limit => '2MB')`)
			return err
		})
		requireSQLState(t, err, "ST008", "The object exceeded the maximum allowed size")
		require.NoError(t, asRole(t, db, asService, true, func(tx pgx.Tx) error {
			_, err := tx.Exec(context.Background(), `select set_config('storage.upload_file_size_limit', '1000000', true)`)
			require.NoError(t, err)
			_, err = tx.Exec(context.Background(), `select storage.bucket_create(name => 'fits', file_size_limit => '1MB')`)
			return err
		}))
	})
}

func TestSQLSizeParse(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	cases := map[string]int64{
		"0": 0, "1048576": 1048576, "1024KB": 1020000, "1MB": 1000000, "1mb": 1000000, "20GB": 20000000000,
		"30KB": 30000, "3B": 3, "1.5GB": 1500000000, "12345B": 12300, "0.5KB": 500, "999.9MB": 1000000000,
	}
	for in, want := range cases {
		var got int64
		require.NoError(t, db.Pool.QueryRow(context.Background(), `select storage_internal.size_parse($1)`, in).Scan(&got))
		require.Equal(t, want, got, in)
	}
}

func TestSQLBucketGetAndList(t *testing.T) {
	t.Parallel()

	setup := func(t *testing.T) *testdb.DB {
		db := testdb.New(t)
		for _, n := range []string{"alpha", "Beta", "gamma", "del_ta"} {
			admin(t, db, `select storage.bucket_create(name => $1)`, n)
		}
		return db
	}

	t.Run("AnonWithoutPolicySeesNothing", func(t *testing.T) {
		t.Parallel()
		db := setup(t)
		// Canary: a table owner bypasses RLS; through the prelude anon must see no row at all.
		ids, err := queryStrings(t, db, asAnon, `select id from storage.buckets`)
		require.NoError(t, err)
		require.Empty(t, ids)
		ids, err = queryStrings(t, db, asAnon, `select id from storage.bucket_list()`)
		require.NoError(t, err)
		require.Empty(t, ids)
		_, err = queryStrings(t, db, asAnon, `select id from storage.bucket_get(id => 'alpha')`)
		requireSQLState(t, err, "ST001", "Bucket not found")
	})

	t.Run("ServiceRoleSeesAll", func(t *testing.T) {
		t.Parallel()
		db := setup(t)
		ids, err := queryStrings(t, db, asService, `select id from storage.bucket_list()`)
		require.NoError(t, err)
		require.Equal(t, []string{"Beta", "alpha", "del_ta", "gamma"}, ids) // name order, bytewise
		ids, err = queryStrings(t, db, asService, `select name from storage.bucket_get(id => 'alpha')`)
		require.NoError(t, err)
		require.Equal(t, []string{"alpha"}, ids)
		_, err = queryStrings(t, db, asService, `select id from storage.bucket_get(id => 'missing')`)
		requireSQLState(t, err, "ST001", "Bucket not found")
	})

	t.Run("ListArguments", func(t *testing.T) {
		t.Parallel()
		db := setup(t)
		cases := []struct {
			sql  string
			want []string
		}{
			{`select id from storage.bucket_list(sort_column => 'id', sort_order => 'desc')`, []string{"gamma", "del_ta", "alpha", "Beta"}},
			{`select id from storage.bucket_list(limits => 2, offsets => 1)`, []string{"alpha", "del_ta"}},
			{`select id from storage.bucket_list(search => 'BET')`, []string{"Beta"}},
			{`select id from storage.bucket_list(search => '%')`, []string{}}, // literal: no name holds a %
			{`select id from storage.bucket_list(search => '_')`, []string{"del_ta"}},
			{`select id from storage.bucket_list(search => 'zzz')`, []string{}},
		}
		for _, c := range cases {
			ids, err := queryStrings(t, db, asService, c.sql)
			require.NoError(t, err, c.sql)
			require.Equal(t, c.want, ids, c.sql)
		}
		_, err := queryStrings(t, db, asService, `select id from storage.bucket_list(sort_column => 'owner')`)
		requireSQLState(t, err, "ST012", "Invalid Parameter sort_column")
		_, err = queryStrings(t, db, asService, `select id from storage.bucket_list(sort_order => 'sideways')`)
		requireSQLState(t, err, "ST012", "Invalid Parameter sort_order")
	})

	t.Run("SelectPolicyFiltersPerUser", func(t *testing.T) {
		t.Parallel()
		db := setup(t)
		admin(t, db, `create policy own on storage.buckets for select to authenticated using (owner_id = (select auth.uid())::text)`)
		admin(t, db, `create policy ins on storage.buckets for insert to authenticated with check (true)`)
		require.NoError(t, exec(t, db, userA, `select storage.bucket_create(name => 'a-only')`))
		require.NoError(t, exec(t, db, userB, `select storage.bucket_create(name => 'b-only')`))
		ids, err := queryStrings(t, db, userA, `select id from storage.bucket_list()`)
		require.NoError(t, err)
		require.Equal(t, []string{"a-only"}, ids)
		_, err = queryStrings(t, db, userA, `select id from storage.bucket_get(id => 'b-only')`)
		requireSQLState(t, err, "ST001", "Bucket not found")
		// anon has no policy at all.
		ids, err = queryStrings(t, db, asAnon, `select id from storage.bucket_list()`)
		require.NoError(t, err)
		require.Empty(t, ids)
	})
}

func TestSQLBucketUpdate(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	admin(t, db, `select storage.bucket_create(name => 'u', file_size_limit => '100', allowed_mime_types => array['image/png'])`)

	require.NoError(t, exec(t, db, asService, `select storage.bucket_update(id => 'u', public => true)`))
	b, _ := loadStoredBucket(t, db, "u")
	require.True(t, b.Public)
	require.Equal(t, int64(100), *b.FileSizeLimit, "NULL arguments leave settings unchanged")
	require.Equal(t, []string{"image/png"}, b.AllowedMimeTypes)

	require.NoError(t, exec(t, db, asService, `select storage.bucket_update(id => 'u', file_size_limit => '2KB', allowed_mime_types => array['text/*'])`))
	b, _ = loadStoredBucket(t, db, "u")
	require.Equal(t, int64(2000), *b.FileSizeLimit)
	require.Equal(t, []string{"text/*"}, b.AllowedMimeTypes)
	require.True(t, b.Public)

	require.NoError(t, exec(t, db, asService, `select storage.bucket_update(id => 'u', clear_file_size_limit => true, clear_allowed_mime_types => true)`))
	b, _ = loadStoredBucket(t, db, "u")
	require.Nil(t, b.FileSizeLimit)
	require.Nil(t, b.AllowedMimeTypes)

	requireSQLState(t, exec(t, db, asService, `select storage.bucket_update(id => 'u')`), "ST010", "No bucket setting to change was given")
	requireSQLState(t, exec(t, db, asService, `select storage.bucket_update(id => 'missing', public => true)`), "ST001", "Bucket not found")
	requireSQLState(t, exec(t, db, asService, `select storage.bucket_update(id => 'u', allowed_mime_types => array['nope'])`), "ST009", "mime type nope is not supported")
	// RLS: invisible to anon, so "not found", and nothing changes.
	requireSQLState(t, exec(t, db, asAnon, `select storage.bucket_update(id => 'u', public => false)`), "ST001", "Bucket not found")
	b, _ = loadStoredBucket(t, db, "u")
	require.True(t, b.Public)
	// With SELECT but no UPDATE policy the row is still not updatable.
	admin(t, db, `create policy sel on storage.buckets for select to anon using (true)`)
	requireSQLState(t, exec(t, db, asAnon, `select storage.bucket_update(id => 'u', public => false)`), "ST001", "Bucket not found")
	admin(t, db, `create policy upd on storage.buckets for update to anon using (true) with check (public)`)
	requireSQLState(t, exec(t, db, asAnon, `select storage.bucket_update(id => 'u', public => false)`), "42501", "")
	require.NoError(t, exec(t, db, asAnon, `select storage.bucket_update(id => 'u', public => true)`))
}

func TestSQLBucketDelete(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	for _, n := range []string{"empty", "full", "guarded"} {
		admin(t, db, `select storage.bucket_create(name => $1)`, n)
	}
	insertObject(t, db, "full", "hidden.txt", "")

	requireSQLState(t, exec(t, db, asService, `select storage.bucket_delete(id => 'missing')`), "ST001", "Bucket not found")
	requireSQLState(t, exec(t, db, asService, `select storage.bucket_delete(id => 'full')`), "ST005", "The bucket you tried to delete is not empty")
	// Emptiness is checked whatever the caller may see: anon with a DELETE policy on buckets
	// but no SELECT on objects still may not delete a bucket holding objects.
	admin(t, db, `create policy sel on storage.buckets for select to anon using (true)`)
	admin(t, db, `create policy del on storage.buckets for delete to anon using (id <> 'guarded')`)
	requireSQLState(t, exec(t, db, asAnon, `select storage.bucket_delete(id => 'full')`), "ST005", "The bucket you tried to delete is not empty")
	// RLS: a bucket the caller may not delete is "not found".
	requireSQLState(t, exec(t, db, asAnon, `select storage.bucket_delete(id => 'guarded')`), "ST001", "Bucket not found")
	_, ok := loadStoredBucket(t, db, "guarded")
	require.True(t, ok)

	require.NoError(t, exec(t, db, asAnon, `select storage.bucket_delete(id => 'empty')`))
	_, ok = loadStoredBucket(t, db, "empty")
	require.False(t, ok)
}

func TestSQLBucketEmpty(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	admin(t, db, `select storage.bucket_create(name => 'e')`)
	admin(t, db, `select storage.bucket_create(name => 'keep')`)
	insertObject(t, db, "e", "a/1.txt", userA.Sub)
	insertObject(t, db, "e", "b/2.txt", userB.Sub)
	insertObject(t, db, "keep", "k.txt", "")

	countObjects := func(bucket string) (n int) {
		require.NoError(t, db.Pool.QueryRow(context.Background(), `select count(*) from storage.objects where bucket_id = $1`, bucket).Scan(&n))
		return n
	}
	// empty queues the job as id and returns its id (nil for SQL NULL).
	empty := func(id proxy.Identity) (*int64, error) {
		var job *int64
		err := asRole(t, db, id, true, func(tx pgx.Tx) error {
			return tx.QueryRow(context.Background(), `select storage.bucket_empty(id => 'e')`).Scan(&job)
		})
		return job, err
	}

	_, err := empty(asAnon)
	requireSQLState(t, err, "ST001", "Bucket not found")
	requireSQLState(t, exec(t, db, asService, `select storage.bucket_empty(id => 'missing')`), "ST001", "Bucket not found")

	// Under RLS a user empties only what it may delete. The call only queues the job; the
	// server works it (storage_internal.bucket_empty_work as the tables' owner) under the caller's
	// identity.
	admin(t, db, `create policy sel on storage.buckets for select to authenticated using (true)`)
	admin(t, db, `create policy osel on storage.objects for select to authenticated using (owner_id = (select auth.uid())::text)`)
	admin(t, db, `create policy odel on storage.objects for delete to authenticated using (owner_id = (select auth.uid())::text)`)
	jobA, err := empty(userA)
	require.NoError(t, err)
	require.NotNil(t, jobA)
	require.Equal(t, 2, countObjects("e"), "nothing is deleted before the job is worked")
	require.Equal(t, []emptyWork{{JobID: *jobA, Deleted: 1, Done: true}}, emptyDrain(t, db, 1000))
	require.Equal(t, 1, countObjects("e"))
	j := emptyJobGet(t, db, *jobA)
	require.Equal(t, int64(1), j.Deleted)
	require.NotNil(t, j.FinishedAt)
	require.Nil(t, j.Error)
	// userA sees nothing left to empty: no job.
	again, err := empty(userA)
	require.NoError(t, err)
	require.Nil(t, again)

	jobS, err := empty(asService)
	require.NoError(t, err)
	require.NotNil(t, jobS)
	require.Equal(t, []emptyWork{{JobID: *jobS, Deleted: 1, Done: true}}, emptyDrain(t, db, 1000))
	require.Equal(t, 0, countObjects("e"))
	require.Equal(t, 1, countObjects("keep"))
}

func TestSQLPolicyHelpers(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	one := func(id proxy.Identity, op, sql string) string {
		var out string
		require.NoError(t, asRole(t, db, id, false, func(tx pgx.Tx) error {
			_, err := tx.Exec(context.Background(), `select set_config('storage.operation', $1, true)`, op)
			require.NoError(t, err)
			return tx.QueryRow(context.Background(), sql).Scan(&out)
		}), sql)
		return out
	}
	cases := []struct{ sql, want string }{
		{`select storage.foldername('a/b/c.png')::text`, "{a,b}"},
		{`select storage.foldername('c.png')::text`, "{}"},
		{`select storage.filename('a/b/c.png')`, "c.png"},
		{`select storage.filename('a/b/')`, ""},
		{`select storage.extension('a/b/c.tar.gz')`, "gz"},
		{`select storage.extension('README')`, "README"},
		{`select storage.operation()`, "storage.object.upload"},
		{`select storage.allow_only_operation('object.upload')::text`, "true"},
		{`select storage.allow_only_operation('storage.object.upload')::text`, "true"},
		{`select storage.allow_only_operation('object.move')::text`, "false"},
		{`select storage.allow_only_operation('')::text`, "false"},
		{`select coalesce(storage.allow_only_operation(null)::text, 'null')`, "false"},
		{`select storage.allow_any_operation(array['object.move', 'storage.object.upload'])::text`, "true"},
		{`select storage.allow_any_operation(array['object.move'])::text`, "false"},
		{`select storage.allow_any_operation('{}')::text`, "false"},
		{`select auth.uid()::text`, userA.Sub},
		{`select auth.role()`, "authenticated"},
		{`select auth.jwt() ->> 'sub'`, userA.Sub},
		{`select current_user::text`, "authenticated"},
	}
	for _, c := range cases {
		require.Equal(t, c.want, one(userA, "storage.object.upload", c.sql), c.sql)
	}
	require.Equal(t, "anon", one(asAnon, "", `select current_user::text`))
	require.Equal(t, "null", one(asAnon, "", `select coalesce(auth.uid()::text, 'null')`))
}

// The prelude's settings are transaction-local: they must not leak into the next
// transaction on the same pooled connection.
func TestSQLPreludeIsTransactionLocal(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	conn, err := db.Pool.Acquire(context.Background())
	require.NoError(t, err)
	defer conn.Release()
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	sql, args := proxy.Prelude(userA, "storage.bucket.get")
	_, err = tx.Exec(ctx, sql, args...)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	var user, sub string
	require.NoError(t, conn.QueryRow(ctx, `select current_user::text, coalesce(current_setting('request.jwt.claim.sub', true), '')`).Scan(&user, &sub))
	require.False(t, strings.EqualFold(user, "authenticated"))
	require.Equal(t, "", sub)
}
