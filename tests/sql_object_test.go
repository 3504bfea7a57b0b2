package tests

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/proxy"
	"github.com/pgstorage/storage/tests/testdb"
)

// The object SQL API (sql/api/object_*.sql) and the blob bookkeeping of
// sql/005_blob_queue_create.sql as SQL callers use them: every call goes through the production
// prelude (asRole) under anon, authenticated (userA, userB) or service_role; the tables'
// owner (admin) only sets the scene and reads the outcome.

// sqlObjDB returns a fresh database with a private bucket "priv", a public bucket "pub" and a
// bucket "lim" limited to 10 bytes of text/plain.
func sqlObjDB(t *testing.T) *testdb.DB {
	t.Helper()
	db := testdb.New(t)
	admin(t, db, `insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types) values
		('priv', 'priv', false, null, null),
		('pub', 'pub', true, null, null),
		('lim', 'lim', false, 10, array['text/plain'])`)
	return db
}

// sqlObjInsert inserts an object row as the tables' owner. ownerID "" is NULL.
func sqlObjInsert(t *testing.T, db *testdb.DB, bucket, name, ownerID, version string) {
	t.Helper()
	admin(t, db, `insert into storage.objects (bucket_id, name, owner, owner_id, version, metadata, user_metadata)
		values ($1, $2, nullif($3, '')::uuid, nullif($3, ''), nullif($4, ''), '{"size":1}', '{}')`, bucket, name, ownerID, version)
}

// sqlObjCol runs a query as the tables' owner and returns the first column as text.
func sqlObjCol(t *testing.T, db *testdb.DB, sql string, args ...any) []string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), sql, args...)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return append([]string{}, out...)
}

// sqlObjFreed is storage.blobs_freed as "version bucket_id" lines in queue order.
func sqlObjFreed(t *testing.T, db *testdb.DB) []string {
	t.Helper()
	return sqlObjCol(t, db, `select version || ' ' || coalesce(bucket_id, '<null>') from storage.blobs_freed order by id`)
}

// sqlCollectable is what the collector would delete now: the versions
// storage_internal.blob_collect_next returns with no retention, sorted. It runs as the tables' owner in a
// transaction rolled back, so the queue is left as it was (blob_collect_next drops the entries
// of versions a row still references).
func sqlCollectable(t *testing.T, db *testdb.DB) []string {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // rolled back on purpose
	rows, err := tx.Query(ctx, `select v from storage_internal.blob_collect_next(interval '0', 1000000) v order by v collate "C"`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return append([]string{}, out...)
}

func sqlObjNames(t *testing.T, db *testdb.DB) []string {
	t.Helper()
	return sqlObjCol(t, db, `select bucket_id || '/' || name from storage.objects order by bucket_id || '/' || name collate "C"`)
}

// sqlObjQuery runs a query as id (rolled back unless commit) and returns the first column of
// every row as text.
func sqlObjQuery(t *testing.T, db *testdb.DB, id proxy.Identity, commit bool, sql string, args ...any) ([]string, error) {
	t.Helper()
	var out []string
	err := asRole(t, db, id, commit, func(tx pgx.Tx) error {
		rows, err := tx.Query(context.Background(), sql, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	return out, err
}

func TestSQLObjectInfo(t *testing.T) {
	t.Parallel()
	const q = `select name from storage.object_info(bucket_id => $1, name => $2, public_only => $3)`

	t.Run("PrivateBucketUnderRLS", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "k", userA.Sub, "v1")
		for _, id := range []proxy.Identity{asAnon, userA} {
			_, err := sqlObjQuery(t, db, id, false, q, "priv", "k", false)
			requireSQLState(t, err, "ST002", "Object not found")
		}
		got, err := sqlObjQuery(t, db, asService, false, q, "priv", "k", false)
		require.NoError(t, err)
		require.Equal(t, []string{"k"}, got)

		admin(t, db, `create policy own on storage.objects for select to authenticated using (owner_id = (select auth.uid())::text)`)
		got, err = sqlObjQuery(t, db, userA, false, q, "priv", "k", false)
		require.NoError(t, err)
		require.Equal(t, []string{"k"}, got)
		_, err = sqlObjQuery(t, db, userB, false, q, "priv", "k", false)
		requireSQLState(t, err, "ST002", "Object not found")
		_, err = sqlObjQuery(t, db, asAnon, false, q, "priv", "k", false)
		requireSQLState(t, err, "ST002", "Object not found")
	})

	t.Run("PublicBucketWithoutRLS", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "pub", "k", "", "v1")
		for _, id := range []proxy.Identity{asAnon, userA, asService} {
			for _, publicOnly := range []bool{false, true} {
				got, err := sqlObjQuery(t, db, id, false, q, "pub", "k", publicOnly)
				require.NoError(t, err, "%s public_only=%v", id.Role, publicOnly)
				require.Equal(t, []string{"k"}, got)
			}
		}
		_, err := sqlObjQuery(t, db, asAnon, false, q, "pub", "missing", true)
		requireSQLState(t, err, "ST002", "Object not found")
	})

	t.Run("PublicOnlyRefusesPrivateBuckets", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "k", "", "v1")
		for _, id := range []proxy.Identity{asAnon, userA, asService} {
			_, err := sqlObjQuery(t, db, id, false, q, "priv", "k", true)
			requireSQLState(t, err, "ST001", "Bucket not found")
		}
		// The default is public_only => false.
		got, err := sqlObjQuery(t, db, asService, false, `select name from storage.object_info('priv', 'k')`)
		require.NoError(t, err)
		require.Equal(t, []string{"k"}, got)
	})

	t.Run("MissingBucketAndInvalidKey", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		for _, id := range []proxy.Identity{asAnon, asService} {
			_, err := sqlObjQuery(t, db, id, false, q, "nobucket", "k", false)
			requireSQLState(t, err, "ST001", "Bucket not found")
			_, err = sqlObjQuery(t, db, id, false, q, "priv", "a%b", false)
			requireSQLState(t, err, "ST007", "Invalid key: a%b")
			_, err = sqlObjQuery(t, db, id, false, q, "pub", "", false)
			requireSQLState(t, err, "ST007", "Invalid key: ")
			_, err = sqlObjQuery(t, db, id, false, q, "priv", "missing", false)
			requireSQLState(t, err, "ST002", "Object not found")
		}
	})
}

func TestSQLObjectDelete(t *testing.T) {
	t.Parallel()
	const del = `select storage.object_delete(bucket_id => $1, name => $2)::text`

	t.Run("NotFoundVersusAccessDenied", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "k", userA.Sub, "v1")
		for _, id := range []proxy.Identity{asAnon, userA, asService} {
			_, err := sqlObjQuery(t, db, id, true, del, "priv", "missing")
			requireSQLState(t, err, "ST002", "Object not found")
			_, err = sqlObjQuery(t, db, id, true, del, "nobucket", "k")
			requireSQLState(t, err, "ST002", "Object not found")
		}
		for _, id := range []proxy.Identity{asAnon, userA} {
			_, err := sqlObjQuery(t, db, id, true, del, "priv", "k")
			requireSQLState(t, err, "ST011", "Access denied")
		}
		// DELETE alone is not enough: the row must be visible (DELETE + SELECT).
		admin(t, db, `create policy del on storage.objects for delete to authenticated using (owner_id = (select auth.uid())::text)`)
		_, err := sqlObjQuery(t, db, userA, true, del, "priv", "k")
		requireSQLState(t, err, "ST011", "Access denied")
		admin(t, db, `create policy sel on storage.objects for select to authenticated using (true)`)
		_, err = sqlObjQuery(t, db, userB, true, del, "priv", "k")
		requireSQLState(t, err, "ST011", "Access denied")
		require.Equal(t, []string{"priv/k"}, sqlObjNames(t, db))
		require.Empty(t, sqlObjFreed(t, db))

		_, err = sqlObjQuery(t, db, userA, true, del, "priv", "k")
		require.NoError(t, err)
		require.Empty(t, sqlObjNames(t, db))
		require.Equal(t, []string{"v1 priv"}, sqlObjFreed(t, db), "the deleted version is queued")
	})

	t.Run("ServiceRole", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "k", "", "v1")
		sqlObjInsert(t, db, "priv", "other", "", "v2")
		_, err := sqlObjQuery(t, db, asService, true, del, "priv", "k")
		require.NoError(t, err)
		require.Equal(t, []string{"priv/other"}, sqlObjNames(t, db))
		require.Equal(t, []string{"v1 priv"}, sqlObjFreed(t, db))
	})

	t.Run("RolledBackDeleteQueuesNothing", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "k", "", "v1")
		_, err := sqlObjQuery(t, db, asService, false, del, "priv", "k")
		require.NoError(t, err)
		require.Equal(t, []string{"priv/k"}, sqlObjNames(t, db))
		require.Empty(t, sqlObjFreed(t, db), "the queue entry belongs to the delete's transaction")
	})
}

func TestSQLObjectDeleteMany(t *testing.T) {
	t.Parallel()
	const delMany = `select name from storage.object_delete_many(bucket_id => $1, names => $2)`

	t.Run("ReturnsDeletedRowsSkipsHidden", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		admin(t, db, `create policy sel on storage.objects for select to authenticated using (owner_id = (select auth.uid())::text);
			create policy del on storage.objects for delete to authenticated using (owner_id = (select auth.uid())::text)`)
		sqlObjInsert(t, db, "priv", "a1", userA.Sub, "va1")
		sqlObjInsert(t, db, "priv", "a2", userA.Sub, "va2")
		sqlObjInsert(t, db, "priv", "b1", userB.Sub, "vb1")
		sqlObjInsert(t, db, "priv", "folder/x", userA.Sub, "vx")

		got, err := sqlObjQuery(t, db, userA, true, delMany, "priv", []string{"a1", "b1", "missing", "folder"})
		require.NoError(t, err)
		require.Equal(t, []string{"a1"}, got, "b1 is hidden, missing does not exist, folder is not a prefix")
		require.Equal(t, []string{"priv/a2", "priv/b1", "priv/folder/x"}, sqlObjNames(t, db))
		require.Equal(t, []string{"va1 priv"}, sqlObjFreed(t, db))

		// Whole rows come back.
		var bucket, version, ownerID string
		require.NoError(t, asRole(t, db, userA, true, func(tx pgx.Tx) error {
			return tx.QueryRow(context.Background(),
				`select bucket_id, version, owner_id from storage.object_delete_many('priv', array['a2'])`).Scan(&bucket, &version, &ownerID)
		}))
		require.Equal(t, []string{"priv", "va2", userA.Sub}, []string{bucket, version, ownerID})

		// anon sees nothing, deletes nothing, and is not told why.
		got, err = sqlObjQuery(t, db, asAnon, true, delMany, "priv", []string{"b1", "folder/x"})
		require.NoError(t, err)
		require.Empty(t, got)
		require.Equal(t, []string{"priv/b1", "priv/folder/x"}, sqlObjNames(t, db))
	})

	t.Run("MissingBucketAndServiceRole", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "k", "", "v1")
		sqlObjInsert(t, db, "pub", "k", "", "v2")
		got, err := sqlObjQuery(t, db, asService, true, delMany, "nobucket", []string{"k"})
		require.NoError(t, err)
		require.Empty(t, got)
		got, err = sqlObjQuery(t, db, asService, true, delMany, "priv", []string{"k", "k"})
		require.NoError(t, err)
		require.Equal(t, []string{"k"}, got)
		require.Equal(t, []string{"pub/k"}, sqlObjNames(t, db))
		require.Equal(t, []string{"v1 priv"}, sqlObjFreed(t, db))
	})
}

// sqlPrepareSQL is the server's first upload step.
const sqlPrepareSQL = `select version, coalesce(size_limit::text, '<null>') from storage_internal.object_upload_prepare(
	bucket_id => $1, name => $2, upsert => $3, mimetype => $4, content_length => $5, user_metadata => '{}')`

// sqlPrep runs storage_internal.object_upload_prepare as id and commits it; it returns the
// version and the size limit ('<null>' when none).
func sqlPrep(t *testing.T, db *testdb.DB, id proxy.Identity, bucket, name string, upsert bool, mime string, length *int64) (string, string, error) {
	t.Helper()
	var version, limit string
	err := asRole(t, db, id, true, func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(), sqlPrepareSQL, bucket, name, upsert, mime, length).Scan(&version, &limit)
	})
	return version, limit, err
}

// sqlCommitSQL is the server's last upload step, for a 5-byte text/plain object.
const sqlCommitSQL = `select storage_internal.object_upload_commit(bucket_id => $1, name => $2, version => $3, upsert => $4,
	owner_id => $5, size => 5, md5 => '5d41402abc4b2a76b9719d911017c592', mimetype => 'text/plain',
	cache_control => 'no-cache', user_metadata => '{}')::text`

// TestSQLObjectBlobQueue pins DESIGN §4 for SQL callers: whatever stops referencing a blob
// queues it in storage.blobs_freed, in the same transaction, and nothing else does.
func TestSQLObjectBlobQueue(t *testing.T) {
	t.Parallel()

	t.Run("PlainDeleteQueues", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "x/1", userA.Sub, "v1")
		sqlObjInsert(t, db, "priv", "x/2", userA.Sub, "v2")
		sqlObjInsert(t, db, "priv", "y", userA.Sub, "v3")
		sqlObjInsert(t, db, "pub", "z", "", "v4")
		sqlObjInsert(t, db, "pub", "w", "", "v5")

		// A request role under its policies.
		admin(t, db, `create policy sel on storage.objects for select to authenticated using (owner_id = (select auth.uid())::text);
			create policy del on storage.objects for delete to authenticated using (owner_id = (select auth.uid())::text)`)
		require.NoError(t, exec(t, db, userA, `delete from storage.objects where bucket_id = 'priv' and name like 'x/%'`))
		require.ElementsMatch(t, []string{"v1 priv", "v2 priv"}, sqlObjFreed(t, db))

		// service_role.
		require.NoError(t, exec(t, db, asService, `delete from storage.objects where name = 'z'`))
		// The tables' owner, without any prelude.
		admin(t, db, `delete from storage.objects where name = 'w'`)
		freed := sqlObjFreed(t, db)
		require.Len(t, freed, 4)
		require.Equal(t, []string{"v4 pub", "v5 pub"}, freed[2:])
		require.Equal(t, []string{"priv/y"}, sqlObjNames(t, db))

		// A delete RLS filters to nothing queues nothing.
		require.NoError(t, exec(t, db, userB, `delete from storage.objects`))
		require.Len(t, sqlObjFreed(t, db), 4)
		require.Equal(t, []string{"priv/y"}, sqlObjNames(t, db))
	})

	// Every delete queues the versions it removes, even one another row still shares (no lock,
	// no check at delete time: sql/008); the collector drops such an entry instead of deleting
	// the blob, so a shared blob is deleted only once its last row is gone.
	t.Run("SharedVersionCollectedOnlyAfterItsLastRow", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "a", "", "shared")
		sqlObjInsert(t, db, "pub", "b", "", "shared")
		sqlObjInsert(t, db, "priv", "nover", "", "")
		require.NoError(t, exec(t, db, asService, `delete from storage.objects where name = 'a'`))
		require.Equal(t, []string{"shared priv"}, sqlObjFreed(t, db))
		require.Empty(t, sqlCollectable(t, db), "another row still references the blob")
		require.NoError(t, exec(t, db, asService, `delete from storage.objects where name in ('b', 'nover')`))
		require.Equal(t, []string{"shared priv", "shared pub"}, sqlObjFreed(t, db), "a NULL version queues nothing")
		require.Equal(t, []string{"shared"}, sqlCollectable(t, db), "the last row went: the blob may go")

		// Two rows of one version deleted by one statement: queued once.
		sqlObjInsert(t, db, "priv", "c", "", "twice")
		sqlObjInsert(t, db, "priv", "d", "", "twice")
		require.NoError(t, exec(t, db, asService, `delete from storage.objects where version = 'twice'`))
		require.Equal(t, []string{"shared priv", "shared pub", "twice priv"}, sqlObjFreed(t, db))
		require.Equal(t, []string{"shared", "twice"}, sqlCollectable(t, db))
	})

	t.Run("UpdateOfVersionQueuesTheOldOne", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "k", userA.Sub, "v1")
		sqlObjInsert(t, db, "priv", "other", userA.Sub, "v9")
		// Versions are the tables' owner's to set by hand (request roles: see
		// TestSQLObjectVersionGuard).
		admin(t, db, `update storage.objects set version = 'v2' where name = 'k'`)
		require.Equal(t, []string{"v1 priv"}, sqlObjFreed(t, db))

		// A request role with policies, through an upload it commits (upsert).
		admin(t, db, `create policy sel on storage.objects for select to authenticated using (owner_id = (select auth.uid())::text);
			create policy ins on storage.objects for insert to authenticated with check (owner_id = (select auth.uid())::text);
			create policy upd on storage.objects for update to authenticated using (owner_id = (select auth.uid())::text)`)
		v3, _, err := sqlPrep(t, db, userA, "priv", "k", true, "text/plain", nil)
		require.NoError(t, err)
		_, err = sqlObjQuery(t, db, userA, true, sqlCommitSQL, "priv", "k", v3, true, userA.Sub)
		require.NoError(t, err)
		require.Equal(t, []string{"v1 priv", "v2 priv"}, sqlObjFreed(t, db))

		// Pointing a row at a version another row keeps: the old one is still referenced.
		admin(t, db, `update storage.objects set version = $1 where name = 'other'`, v3)
		require.Equal(t, []string{"v1 priv", "v2 priv", "v9 priv"}, sqlObjFreed(t, db))
		admin(t, db, `update storage.objects set version = 'v4' where name = 'k'`)
		require.Equal(t, []string{"v1 priv", "v2 priv", "v9 priv", v3 + " priv"}, sqlObjFreed(t, db),
			"v3 left the statement's rows: queued, the collector re-checks")
		require.Equal(t, []string{"v1", "v2", "v9"}, sqlCollectable(t, db), "v3 is still the version of 'other'")
	})

	t.Run("UpdateKeepingVersionQueuesNothing", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "k", "", "v1")
		admin(t, db, `update storage.objects set metadata = '{"size":2}' where name = 'k'`) // the owner's to change
		for _, stmt := range []string{
			`update storage.objects set user_metadata = '{"a":1}' where name = 'k'`,
			`update storage.objects set name = 'renamed' where name = 'k'`,
			`update storage.objects set bucket_id = 'pub' where name = 'renamed'`,
			`update storage.objects set version = version`,
		} {
			require.NoError(t, exec(t, db, asService, stmt), stmt)
		}
		require.Empty(t, sqlObjFreed(t, db))
		require.Equal(t, []string{"pub/renamed"}, sqlObjNames(t, db))
	})

	t.Run("TruncateCannotOrphanBlobs", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "k", userA.Sub, "v1")
		sqlObjInsert(t, db, "pub", "p", "", "v2")
		// TRUNCATE bypasses RLS and the delete triggers: a request role must not be able to
		// run it at all.
		for _, id := range []proxy.Identity{asAnon, userA} {
			err := exec(t, db, id, `truncate storage.objects`)
			require.Equal(t, []string{"priv/k", "pub/p"}, sqlObjNames(t, db), "%s truncated storage.objects, past RLS", id.Role)
			requireSQLState(t, err, "42501", "")
		}
		// The service role: refused, or every blob queued.
		if err := exec(t, db, asService, `truncate storage.objects`); err != nil {
			requireSQLState(t, err, "42501", "")
			require.Equal(t, []string{"priv/k", "pub/p"}, sqlObjNames(t, db))
		} else {
			require.ElementsMatch(t, []string{"v1 priv", "v2 pub"}, sqlObjFreed(t, db), "TRUNCATE orphaned the blobs")
		}
	})

	t.Run("QueueTablesHiddenFromRequestRoles", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "k", "", "v1")
		admin(t, db, `delete from storage.objects`)
		admin(t, db, `insert into storage.blob_uploads (version, bucket_id, name) values ('up1', 'priv', 'k')`)
		for _, id := range []proxy.Identity{asAnon, userA, asService} {
			for _, stmt := range []string{
				`select version from storage.blob_uploads`,
				`select version from storage.blobs_freed`,
				`delete from storage.blobs_freed`,
				`delete from storage.blob_uploads`,
				`insert into storage.blobs_freed (version) values ('x')`,
				`insert into storage.blob_uploads (version, bucket_id, name) values ('x', 'priv', 'x')`,
			} {
				_, err := sqlObjQuery(t, db, id, true, stmt)
				requireSQLState(t, err, "42501", "")
			}
		}
		require.Equal(t, []string{"v1 priv"}, sqlObjFreed(t, db))
		require.Equal(t, []string{"up1"}, sqlObjCol(t, db, `select version from storage.blob_uploads`))
	})
}

func TestSQLObjectUpload(t *testing.T) {
	t.Parallel()
	n := func(v int64) *int64 { return &v }

	t.Run("Refusals", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		admin(t, db, `create policy ins on storage.objects for insert to authenticated with check (true)`)
		sqlObjInsert(t, db, "priv", "exists", "", "v1")

		_, _, err := sqlPrep(t, db, userA, "nobucket", "k", false, "text/plain", nil)
		requireSQLState(t, err, "ST001", "Bucket not found")
		_, _, err = sqlPrep(t, db, asAnon, "nobucket", "k", false, "text/plain", nil)
		requireSQLState(t, err, "ST001", "Bucket not found")
		_, _, err = sqlPrep(t, db, userA, "priv", "exists", false, "text/plain", nil)
		requireSQLState(t, err, "ST004", "The resource already exists")
		_, _, err = sqlPrep(t, db, userA, "priv", "a%b", false, "text/plain", nil)
		requireSQLState(t, err, "ST007", "Invalid key: a%b")
		_, _, err = sqlPrep(t, db, userA, "priv", "", false, "text/plain", nil)
		requireSQLState(t, err, "ST007", "Invalid key: ")
		_, _, err = sqlPrep(t, db, userA, "a/b", "k", false, "text/plain", nil)
		requireSQLState(t, err, "ST006", "Bucket name invalid")
		requireSQLState(t, exec(t, db, asService, `select storage.object_delete(bucket_id => 'a%b', name => 'k')`), "ST006", "Bucket name invalid")
		requireSQLState(t, exec(t, db, asService, `select * from storage.object_delete_many(bucket_id => 'a%b', names => array['k'])`), "ST006", "Bucket name invalid")
		_, _, err = sqlPrep(t, db, userA, "lim", "k", false, "text/plain", n(11))
		requireSQLState(t, err, "ST008", "The object exceeded the maximum allowed size")
		_, _, err = sqlPrep(t, db, userA, "priv", "x/.emptyFolderPlaceholder", false, "text/plain", n(1))
		requireSQLState(t, err, "ST008", "The object exceeded the maximum allowed size")
		_, _, err = sqlPrep(t, db, userA, "lim", "k", false, "image/png", n(1))
		requireSQLState(t, err, "ST009", "mime type image/png is not supported")
		_, _, err = sqlPrep(t, db, userA, "lim", "k", false, "text/plain;charset=UTF-8", nil)
		requireSQLState(t, err, "ST009", "mime type text/plain;charset=UTF-8 is not supported")
		// No INSERT policy for anon; upsert needs UPDATE and SELECT policies too.
		_, _, err = sqlPrep(t, db, asAnon, "priv", "k", false, "text/plain", nil)
		requireSQLState(t, err, "42501", "")
		_, _, err = sqlPrep(t, db, userA, "priv", "k", true, "text/plain", nil)
		requireSQLState(t, err, "42501", "")
		_, _, err = sqlPrep(t, db, userA, "priv", "exists", true, "text/plain", nil)
		requireSQLState(t, err, "42501", "")

		require.Empty(t, sqlObjCol(t, db, `select version from storage.blob_uploads`), "a refused upload begins nothing")
		require.Equal(t, []string{"priv/exists"}, sqlObjNames(t, db))
	})

	t.Run("PrepareThenCommit", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		admin(t, db, `create policy ins on storage.objects for insert to authenticated
			with check (bucket_id = 'lim' and owner_id = (select auth.uid())::text and metadata->>'mimetype' = 'text/plain')`)
		version, limit, err := sqlPrep(t, db, userA, "lim", "k", false, "text/plain", n(5))
		require.NoError(t, err)
		require.Regexp(t, `^[0-9a-f]{32}$`, version)
		require.Equal(t, "10", limit)
		require.Equal(t, []string{version + " lim k"}, sqlObjCol(t, db, `select version || ' ' || bucket_id || ' ' || name from storage.blob_uploads`))
		require.Empty(t, sqlObjNames(t, db), "the dry-run row is rolled back")

		// The commit runs as the uploader: the policies decide on the row again. anon has no
		// INSERT policy (refused, and the upload stays in flight); userA's passes.
		_, err = sqlObjQuery(t, db, asAnon, true, sqlCommitSQL, "lim", "k", version, false, userA.Sub)
		requireSQLState(t, err, "42501", `new row violates row-level security policy for table "objects"`)
		require.Equal(t, []string{version}, sqlObjCol(t, db, `select version from storage.blob_uploads`))
		got, err := sqlObjQuery(t, db, userA, true, sqlCommitSQL, "lim", "k", version, false, userA.Sub)
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Regexp(t, uuidPattern, got[0])
		require.Equal(t, []string{"lim/k"}, sqlObjNames(t, db))
		require.Equal(t, []string{version + " " + userA.Sub + " " + userA.Sub},
			sqlObjCol(t, db, `select version || ' ' || owner::text || ' ' || owner_id from storage.objects`))
		require.Empty(t, sqlObjCol(t, db, `select version from storage.blob_uploads`), "the commit ends the upload")
		require.Empty(t, sqlObjFreed(t, db))

		// Limits: the bucket's, the server's (storage.upload_file_size_limit), the smaller
		// wins; placeholders get 0; none at all is NULL.
		_, limit, err = sqlPrep(t, db, asService, "priv", "free", false, "text/plain", nil)
		require.NoError(t, err)
		require.Equal(t, "<null>", limit)
		_, limit, err = sqlPrep(t, db, asService, "priv", "x/.emptyFolderPlaceholder", false, "image/png", n(0))
		require.NoError(t, err)
		require.Equal(t, "0", limit)
		var lim2 string
		require.NoError(t, asRole(t, db, asService, false, func(tx pgx.Tx) error {
			if _, err := tx.Exec(context.Background(), `select set_config('storage.upload_file_size_limit', '7', true)`); err != nil {
				return err
			}
			return tx.QueryRow(context.Background(), `select size_limit::text from storage_internal.object_upload_prepare('lim', 'k2', false, 'text/plain', null, null)`).Scan(&lim2)
		}))
		require.Equal(t, "7", lim2)
	})

	t.Run("DuplicateCheckedAtomicallyAtCommit", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		// Two uploads of one key both pass prepare (neither has a row yet)…
		v1, _, err := sqlPrep(t, db, asService, "priv", "k", false, "text/plain", nil)
		require.NoError(t, err)
		v2, _, err := sqlPrep(t, db, asService, "priv", "k", false, "text/plain", nil)
		require.NoError(t, err)
		require.NotEqual(t, v1, v2)
		// …exactly one commits.
		_, err = sqlObjQuery(t, db, asService, true, sqlCommitSQL, "priv", "k", v1, false, nil)
		require.NoError(t, err)
		_, err = sqlObjQuery(t, db, asService, true, sqlCommitSQL, "priv", "k", v2, false, nil)
		requireSQLState(t, err, "ST004", "The resource already exists")
		require.Equal(t, []string{v2}, sqlObjCol(t, db, `select version from storage.blob_uploads`), "the loser is still in flight until aborted")
		// The server aborts the loser: its blob is queued.
		require.NoError(t, exec(t, db, asService, `select storage_internal.object_upload_abort(version => $1)`, v2))
		require.Empty(t, sqlObjCol(t, db, `select version from storage.blob_uploads`))
		require.Equal(t, []string{v2 + " priv"}, sqlObjFreed(t, db))
		// Aborting twice, or a committed upload, queues nothing more.
		require.NoError(t, exec(t, db, asService, `select storage_internal.object_upload_abort(version => $1)`, v2))
		require.NoError(t, exec(t, db, asService, `select storage_internal.object_upload_abort(version => $1)`, v1))
		require.Equal(t, []string{v2 + " priv"}, sqlObjFreed(t, db))
		require.Equal(t, []string{v1}, sqlObjCol(t, db, `select version from storage.objects`))
	})

	t.Run("UpsertCommitQueuesReplacedVersion", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "k", userB.Sub, "old")
		id := sqlObjCol(t, db, `select id::text from storage.objects`)[0]
		v, _, err := sqlPrep(t, db, asService, "priv", "k", true, "text/plain", nil)
		require.NoError(t, err)
		got, err := sqlObjQuery(t, db, asService, true, sqlCommitSQL, "priv", "k", v, true, nil)
		require.NoError(t, err)
		require.Equal(t, []string{id}, got, "an upsert keeps the id")
		require.Equal(t, []string{v + " " + userB.Sub}, sqlObjCol(t, db, `select version || ' ' || owner_id from storage.objects`),
			"no owner given: the owner stays")
		require.Equal(t, []string{"old priv"}, sqlObjFreed(t, db))
	})
}
