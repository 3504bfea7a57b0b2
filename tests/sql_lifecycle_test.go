package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/proxy"
	"github.com/pgstorage/storage/tests/testdb"
)

// The blob lifecycle of sql/008_blob_lifecycle_create.sql and the functions around it, as SQL
// callers use them: the freeing triggers (every version a statement stops referencing is
// queued, without locks), storage.object_delete_prefix, the durable bucket-empty jobs
// (storage.bucket_empty → storage_internal.bucket_empty_work), the collector's queue functions
// (storage_internal.blob_collect_next, _done, _failed) and storage_internal.blob_upload_expire. Request roles go
// through the production prelude (asRole, exec); the server's background work (the collector,
// the job worker) runs as the tables' owner, as the server does.

// lcCommitSQL commits an upsert upload as the server does (service_role only).
const lcCommitSQL = `select storage_internal.object_upload_commit(bucket_id => $1, name => $2, version => $3,
	upsert => $4, owner_id => null, size => 3, md5 => 'd41d8cd98f00b204e9800998ecf8427e',
	mimetype => 'text/plain', cache_control => 'no-cache', user_metadata => null)`

// lcCount runs a counting query as the tables' owner.
func lcCount(t *testing.T, db *testdb.DB, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// lcCollectNext calls storage_internal.blob_collect_next as the tables' owner (committed, as the
// collector does) and returns the versions sorted.
func lcCollectNext(t *testing.T, db *testdb.DB, retention string, maxCount int) []string {
	t.Helper()
	got := sqlObjCol(t, db, `select v from storage_internal.blob_collect_next($1::interval, $2) v`, retention, maxCount)
	sort.Strings(got)
	return got
}

// lcUploadBegin records an upload in flight as storage_internal.blob_upload_begin does for the server
// and returns its fresh version.
func lcUploadBegin(t *testing.T, db *testdb.DB, bucket, name string) string {
	t.Helper()
	var v string
	require.NoError(t, db.Pool.QueryRow(context.Background(), `select version from storage_internal.object_upload_prepare($1, $2, upsert => true)`, bucket, name).Scan(&v))
	return v
}

// emptyWork is a row of storage_internal.bucket_empty_work.
type emptyWork struct {
	JobID   int64
	Deleted int64
	Done    bool
	Error   *string
}

// emptyWorkOnce calls storage_internal.bucket_empty_work(batchSize) once as the tables' owner, as the
// server's worker does, and returns its row, or false when no job is pending.
func emptyWorkOnce(t *testing.T, db *testdb.DB, batchSize int) (emptyWork, bool) {
	t.Helper()
	var w emptyWork
	err := db.Pool.QueryRow(context.Background(),
		`select job_id, deleted, done, error from storage_internal.bucket_empty_work($1)`, batchSize).
		Scan(&w.JobID, &w.Deleted, &w.Done, &w.Error)
	if errors.Is(err, pgx.ErrNoRows) {
		return w, false
	}
	require.NoError(t, err)
	return w, true
}

// emptyDrain works the pending jobs until none is left and returns every row it got.
func emptyDrain(t *testing.T, db *testdb.DB, batchSize int) []emptyWork {
	t.Helper()
	var out []emptyWork
	for range 1000 {
		w, ok := emptyWorkOnce(t, db, batchSize)
		if !ok {
			return out
		}
		out = append(out, w)
	}
	t.Fatalf("bucket_empty_work still had work after 1000 calls: %v", out[len(out)-3:])
	return nil
}

// emptyJob is a row of storage.bucket_empty_jobs.
type emptyJob struct {
	ID                    int64
	BucketID, Role        string
	Settings              map[string]string
	CreatedBefore         time.Time
	RequestedAt           time.Time
	StartedAt, FinishedAt *time.Time
	Deleted               int64
	LastName              *string
	Attempts              int
	Error                 *string
	SettingsText          string
}

func emptyJobGet(t *testing.T, db *testdb.DB, id int64) emptyJob {
	t.Helper()
	var j emptyJob
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		`select id, bucket_id, role, settings::text, created_before, requested_at, started_at, finished_at,
		        deleted, last_name, attempts, error
		 from storage.bucket_empty_jobs where id = $1`, id).
		Scan(&j.ID, &j.BucketID, &j.Role, &j.SettingsText, &j.CreatedBefore, &j.RequestedAt, &j.StartedAt,
			&j.FinishedAt, &j.Deleted, &j.LastName, &j.Attempts, &j.Error))
	require.NoError(t, json.Unmarshal([]byte(j.SettingsText), &j.Settings))
	return j
}

// emptyQueue calls storage.bucket_empty(bucket) as id (committed) and returns the job id, nil
// for NULL.
func emptyQueue(t *testing.T, db *testdb.DB, id proxy.Identity, bucket string) (*int64, error) {
	t.Helper()
	var job *int64
	err := asRole(t, db, id, true, func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(), `select storage.bucket_empty(id => $1)`, bucket).Scan(&job)
	})
	return job, err
}

// lcOwnPolicies lets authenticated users see every bucket and select and delete their own
// objects.
func lcOwnPolicies(t *testing.T, db *testdb.DB) {
	t.Helper()
	admin(t, db, `create policy bsel on storage.buckets for select to authenticated using (true);
		create policy osel on storage.objects for select to authenticated using (owner_id = (select auth.uid())::text);
		create policy odel on storage.objects for delete to authenticated using (owner_id = (select auth.uid())::text)`)
}

func TestSQLLifecycleTriggers(t *testing.T) {
	t.Parallel()

	// The regression for the lock-table bug: the triggers of sql/005 took one advisory lock
	// per version, and one DELETE of more than ~10 000 rows failed with "out of shared memory".
	t.Run("LargeDeleteQueuesEveryVersion", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		const n = 30000
		admin(t, db, `insert into storage.objects (bucket_id, name, version)
			select 'priv', 'f/' || g, 'v' || g from generate_series(1, $1::int) g`, n)
		tag, err := db.Pool.Exec(context.Background(), `delete from storage.objects`)
		require.NoError(t, err)
		require.Equal(t, int64(n), tag.RowsAffected())
		require.Equal(t, int64(n), lcCount(t, db, `select count(*) from storage.blobs_freed`))
		require.Equal(t, int64(n), lcCount(t, db, `select count(distinct version) from storage.blobs_freed where bucket_id = 'priv'`))
		require.Equal(t, int64(0), lcCount(t, db, `select count(*) from generate_series(1, $1::int) g
			where not exists (select from storage.blobs_freed f where f.version = 'v' || g)`, n))
		require.Empty(t, sqlObjNames(t, db))
	})

	t.Run("UpsertOverwriteQueuesOnlyTheOldVersion", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "k", "", "old")
		sqlObjInsert(t, db, "priv", "other", "", "kept")
		v := lcUploadBegin(t, db, "priv", "k")
		require.NoError(t, exec(t, db, asService, lcCommitSQL, "priv", "k", v, true))
		require.Equal(t, []string{"old priv"}, sqlObjFreed(t, db))
		require.Equal(t, []string{"k " + v, "other kept"}, sqlObjCol(t, db, `select name || ' ' || version from storage.objects order by name`))
		require.Empty(t, sqlObjCol(t, db, `select version from storage.blob_uploads`))
	})

	t.Run("RenameMoveAndMetadataQueueNothing", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "a", "", "va")
		sqlObjInsert(t, db, "priv", "b", "", "vb")
		for _, stmt := range []string{
			`update storage.objects set name = 'renamed' where name = 'a'`,
			`update storage.objects set name = 'x/' || name`,
			`update storage.objects set bucket_id = 'pub' where name = 'x/b'`,
			`update storage.objects set user_metadata = '{"u":2}'`,
		} {
			require.NoError(t, exec(t, db, asService, stmt), stmt)
		}
		// Metadata and versions are the tables' owner's to set by hand (TestSQLObjectVersionGuard).
		admin(t, db, `update storage.objects set metadata = '{"size":9}'`)
		// Versions swapped between rows in one statement: both stay referenced.
		admin(t, db, `update storage.objects set version = case version when 'va' then 'vb' else 'va' end`)
		require.Empty(t, sqlObjFreed(t, db))
		require.Equal(t, []string{"priv/x/renamed vb", "pub/x/b va"},
			sqlObjCol(t, db, `select bucket_id || '/' || name || ' ' || version from storage.objects order by 1`))
	})

	t.Run("UpdateOfVersionQueuesTheOldOne", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "a", "", "v1")
		sqlObjInsert(t, db, "pub", "b", "", "v2")
		admin(t, db, `update storage.objects set version = 'v3' where name = 'a'`)
		require.Equal(t, []string{"v1 priv"}, sqlObjFreed(t, db))
		admin(t, db, `update storage.objects set version = 'v4'`)
		require.ElementsMatch(t, []string{"v1 priv", "v3 priv", "v2 pub"}, sqlObjFreed(t, db))
		require.Equal(t, []string{"v1", "v2", "v3"}, sqlCollectable(t, db))
	})

	t.Run("DeleteOfOneSharedRowQueuesCollectorDropsIt", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "a", "", "s")
		sqlObjInsert(t, db, "pub", "b", "", "s")
		require.NoError(t, exec(t, db, asService, `delete from storage.objects where name = 'a'`))
		require.Equal(t, []string{"s priv"}, sqlObjFreed(t, db), "queued although b still shares it")
		require.Empty(t, lcCollectNext(t, db, "0", 10), "a row references s: the collector keeps the blob")
		require.Empty(t, sqlObjFreed(t, db), "and drops the entry")
		require.NoError(t, exec(t, db, asService, `delete from storage.objects where name = 'b'`))
		require.Equal(t, []string{"s pub"}, sqlObjFreed(t, db))
		require.Equal(t, []string{"s"}, lcCollectNext(t, db, "0", 10))
		require.Equal(t, []string{"s pub"}, sqlObjFreed(t, db), "the entry stays until the blob is reported gone")
	})

	t.Run("TruncateQueuesAll", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "a", "", "v1")
		sqlObjInsert(t, db, "pub", "b", "", "v2")
		sqlObjInsert(t, db, "priv", "c", "", "s")
		sqlObjInsert(t, db, "priv", "d", "", "s")
		sqlObjInsert(t, db, "priv", "e", "", "")
		admin(t, db, `truncate storage.objects`)
		require.Empty(t, sqlObjNames(t, db))
		require.ElementsMatch(t, []string{"v1 priv", "v2 pub", "s priv"}, sqlObjFreed(t, db))
	})
}

func TestSQLObjectDeletePrefix(t *testing.T) {
	t.Parallel()
	// del calls storage.object_delete_prefix as id (committed); max nil is the default.
	del := func(t *testing.T, db *testdb.DB, id proxy.Identity, bucket string, prefix, max any) (int64, error) {
		t.Helper()
		var n int64
		err := asRole(t, db, id, true, func(tx pgx.Tx) error {
			return tx.QueryRow(context.Background(),
				`select storage.object_delete_prefix(bucket_id => $1, prefix => $2, max_count => $3)`, bucket, prefix, max).Scan(&n)
		})
		return n, err
	}

	t.Run("DeletesExactlyTheFolder", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		for i, name := range []string{"photos", "photos/a.jpg", "photos/b/c.jpg", "photos2/x", "photos.jpg",
			"photos0", "other/photos/y", "Photos/z", "photos/b/d", "photos/bc", "a_b/1", "axb/1"} {
			sqlObjInsert(t, db, "priv", name, "", fmt.Sprintf("v%02d", i))
		}
		sqlObjInsert(t, db, "pub", "photos/p", "", "vpub")

		n, err := del(t, db, asService, "priv", "photos/b/", nil)
		require.NoError(t, err)
		require.Equal(t, int64(2), n)
		require.ElementsMatch(t, []string{"v02 priv", "v08 priv"}, sqlObjFreed(t, db))

		n, err = del(t, db, asService, "priv", "photos", nil)
		require.NoError(t, err)
		require.Equal(t, int64(2), n, "photos/a.jpg and photos/bc")
		require.ElementsMatch(t, []string{"v02 priv", "v08 priv", "v01 priv", "v09 priv"}, sqlObjFreed(t, db), "the deleted versions, and only those")

		// '_' and '%' are not patterns.
		n, err = del(t, db, asService, "priv", "a_b", nil)
		require.NoError(t, err)
		require.Equal(t, int64(1), n)
		for _, prefix := range []string{"%", "_", "nothing", "photos/a.jpg"} {
			n, err = del(t, db, asService, "priv", prefix, nil)
			require.NoError(t, err)
			require.Equal(t, int64(0), n, prefix)
		}
		require.Equal(t, []string{"priv/Photos/z", "priv/axb/1", "priv/other/photos/y", "priv/photos", "priv/photos.jpg",
			"priv/photos0", "priv/photos2/x", "pub/photos/p"}, sqlObjNames(t, db))
		require.Len(t, sqlObjFreed(t, db), 5)
	})

	t.Run("ManyBatches", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		admin(t, db, `insert into storage.objects (bucket_id, name, version)
			select 'priv', 'big/' || lpad(g::text, 4, '0'), 'b' || g from generate_series(1, 2500) g`)
		sqlObjInsert(t, db, "priv", "big0", "", "x1")
		sqlObjInsert(t, db, "priv", "bia/z", "", "x2")
		n, err := del(t, db, asService, "priv", "big", nil)
		require.NoError(t, err)
		require.Equal(t, int64(2500), n)
		require.Equal(t, []string{"priv/bia/z", "priv/big0"}, sqlObjNames(t, db))
		require.Equal(t, int64(2500), lcCount(t, db, `select count(*) from storage.blobs_freed`))
		require.Equal(t, int64(0), lcCount(t, db, `select count(*) from generate_series(1, 2500) g
			where not exists (select from storage.blobs_freed f where f.version = 'b' || g and f.bucket_id = 'priv')`))
	})

	t.Run("MaxCountStopsAndRepeatedCallsFinish", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		admin(t, db, `insert into storage.objects (bucket_id, name, version)
			select 'priv', 'big/' || lpad(g::text, 4, '0'), 'b' || g from generate_series(1, 2500) g`)
		remaining := func() int64 { return lcCount(t, db, `select count(*) from storage.objects`) }
		first := func() string {
			return sqlObjCol(t, db, `select name from storage.objects order by name collate "C" limit 1`)[0]
		}
		n, err := del(t, db, asService, "priv", "big", int64(0))
		require.NoError(t, err)
		require.Equal(t, int64(0), n)
		require.Equal(t, int64(2500), remaining())
		for _, want := range []struct {
			n     int64
			first string
		}{{1200, "big/1201"}, {1200, "big/2401"}, {100, ""}, {0, ""}} {
			n, err := del(t, db, asService, "priv", "big", int64(1200))
			require.NoError(t, err)
			require.Equal(t, want.n, n)
			if want.first != "" {
				require.Equal(t, want.first, first(), "deleted in name order")
			}
		}
		require.Equal(t, int64(0), remaining())
		require.Equal(t, int64(2500), lcCount(t, db, `select count(distinct version) from storage.blobs_freed`))
		require.Equal(t, int64(2500), lcCount(t, db, `select count(*) from storage.blobs_freed`))
	})

	t.Run("RLSOwnObjectsOnly", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		lcOwnPolicies(t, db)
		sqlObjInsert(t, db, "priv", "f/a1", userA.Sub, "va1")
		sqlObjInsert(t, db, "priv", "f/b1", userB.Sub, "vb1")
		sqlObjInsert(t, db, "priv", "f/a2", userA.Sub, "va2")
		sqlObjInsert(t, db, "priv", "f/n", "", "vn")
		sqlObjInsert(t, db, "priv", "f/sub/a3", userA.Sub, "va3")
		sqlObjInsert(t, db, "priv", "g/a4", userA.Sub, "va4")

		n, err := del(t, db, userA, "priv", "f", nil)
		require.NoError(t, err)
		require.Equal(t, int64(3), n)
		require.Equal(t, []string{"priv/f/b1", "priv/f/n", "priv/g/a4"}, sqlObjNames(t, db))
		require.ElementsMatch(t, []string{"va1 priv", "va2 priv", "va3 priv"}, sqlObjFreed(t, db))
		n, err = del(t, db, userA, "priv", "f", nil)
		require.NoError(t, err)
		require.Equal(t, int64(0), n)

		n, err = del(t, db, userB, "priv", "f/", nil)
		require.NoError(t, err)
		require.Equal(t, int64(1), n)
		require.Equal(t, []string{"priv/f/n", "priv/g/a4"}, sqlObjNames(t, db))

		// anon sees no bucket at all.
		_, err = del(t, db, asAnon, "priv", "f", nil)
		requireSQLState(t, err, "ST001", "Bucket not found")
	})

	// Rows the caller sees but may not delete are stepped over, across batches, and counted
	// out: the call ends, and says how many it deleted.
	t.Run("VisibleButNotDeletable", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		admin(t, db, `create policy bsel on storage.buckets for select to authenticated using (true);
			create policy osel on storage.objects for select to authenticated using (true);
			create policy odel on storage.objects for delete to authenticated using (owner_id = (select auth.uid())::text)`)
		admin(t, db, `insert into storage.objects (bucket_id, name, owner_id, version)
			select 'priv', 'f/b' || lpad(g::text, 4, '0'), $1, 'vb' || g from generate_series(1, 1500) g`, userB.Sub)
		for _, name := range []string{"f/a", "f/b0750x", "f/c"} {
			sqlObjInsert(t, db, "priv", name, userA.Sub, "v-"+name)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		call := func(max any) int64 {
			var n int64
			require.NoError(t, asRole(t, db, userA, true, func(tx pgx.Tx) error {
				return tx.QueryRow(ctx, `select storage.object_delete_prefix('priv', 'f', $1)`, max).Scan(&n)
			}))
			return n
		}
		require.Equal(t, int64(2), call(int64(2)))
		require.Equal(t, int64(1), call(int64(2)))
		require.Equal(t, int64(0), call(int64(2)))
		require.Equal(t, int64(0), call(nil))
		require.Equal(t, int64(1500), lcCount(t, db, `select count(*) from storage.objects`))
		require.ElementsMatch(t, []string{"v-f/a priv", "v-f/b0750x priv", "v-f/c priv"}, sqlObjFreed(t, db))
	})

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "x/1", "", "v1")
		const folder = "prefix must name a folder (use storage.bucket_empty for a whole bucket)"
		cases := []struct {
			id          proxy.Identity
			bucket      string
			prefix, max any
			code, msg   string
		}{
			{asService, "a/b", "x", nil, "ST006", "Bucket name invalid"},
			{asService, "", "x", nil, "ST006", "Bucket name invalid"},
			{asService, "missing", "x", nil, "ST001", "Bucket not found"},
			{asAnon, "priv", "x", nil, "ST001", "Bucket not found"},
			{asService, "priv", "", nil, "ST012", folder},
			{asService, "priv", "/", nil, "ST012", folder},
			{asService, "priv", nil, nil, "ST012", folder},
			{asService, "priv", "x", int64(-1), "ST012", "max_count must not be negative"},
		}
		for _, c := range cases {
			_, err := del(t, db, c.id, c.bucket, c.prefix, c.max)
			requireSQLState(t, err, c.code, c.msg)
		}
		require.Equal(t, []string{"priv/x/1"}, sqlObjNames(t, db))
		require.Empty(t, sqlObjFreed(t, db))
	})
}

func TestSQLBucketEmptyJob(t *testing.T) {
	t.Parallel()

	t.Run("NothingVisibleNoJob", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		lcOwnPolicies(t, db)
		sqlObjInsert(t, db, "priv", "b", userB.Sub, "vb")
		job, err := emptyQueue(t, db, userA, "priv")
		require.NoError(t, err)
		require.Nil(t, job, "userA sees no object of priv")
		job, err = emptyQueue(t, db, asService, "pub")
		require.NoError(t, err)
		require.Nil(t, job, "pub is empty")
		require.Equal(t, int64(0), lcCount(t, db, `select count(*) from storage.bucket_empty_jobs`))
		_, ok := emptyWorkOnce(t, db, 10)
		require.False(t, ok)
	})

	t.Run("JobRecordsTheCallersIdentity", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		lcOwnPolicies(t, db)
		sqlObjInsert(t, db, "priv", "a", userA.Sub, "va")
		const token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ.c2lnbmF0dXJl"
		caller := userA
		caller.Token = token
		var job int64
		var now time.Time
		require.NoError(t, asRole(t, db, caller, true, func(tx pgx.Tx) error {
			ctx := context.Background()
			if _, err := tx.Exec(ctx, `select set_config('request.headers', $1, true)`, `{"authorization":"Bearer `+token+`"}`); err != nil {
				return err
			}
			return tx.QueryRow(ctx, `select storage.bucket_empty(id => 'priv'), now()`).Scan(&job, &now)
		}))
		j := emptyJobGet(t, db, job)
		require.Equal(t, "priv", j.BucketID)
		require.Equal(t, "authenticated", j.Role)
		require.Equal(t, map[string]string{
			"request.jwt.claim.role":     "authenticated",
			"request.jwt.claim.sub":      userA.Sub,
			"request.jwt.claims":         userA.Claims,
			"request.method":             "POST",
			"request.path":               "/",
			"storage.operation":          "test",
			"storage.allow_delete_query": "true",
		}, j.Settings)
		require.NotContains(t, j.Settings, "request.jwt")
		require.NotContains(t, j.Settings, "request.headers")
		require.NotContains(t, j.SettingsText, token, "the raw token is a credential: not kept")
		require.True(t, j.CreatedBefore.Equal(now), "created_before is the call's now(): %v vs %v", j.CreatedBefore, now)
		require.True(t, j.RequestedAt.Equal(now))
		require.Nil(t, j.StartedAt)
		require.Nil(t, j.FinishedAt)
		require.Equal(t, int64(0), j.Deleted)
		require.Nil(t, j.LastName)
		require.Equal(t, 0, j.Attempts)
		require.Nil(t, j.Error)
		require.Equal(t, []string{"priv/a"}, sqlObjNames(t, db), "nothing is deleted before the job is worked")
	})

	t.Run("WorkedAsTheCallerInBatches", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		lcOwnPolicies(t, db)
		for _, o := range []struct{ name, owner string }{
			{"a1", userA.Sub}, {"a2", userA.Sub}, {"b1", userB.Sub}, {"c3", userA.Sub}, {"c4", userA.Sub},
			{"d2", userB.Sub}, {"e5", userA.Sub}, {"z", ""},
		} {
			sqlObjInsert(t, db, "priv", o.name, o.owner, "v-"+o.name)
		}
		sqlObjInsert(t, db, "pub", "a9", userA.Sub, "v-pub")
		job, err := emptyQueue(t, db, userA, "priv")
		require.NoError(t, err)
		require.NotNil(t, job)
		steps := []struct {
			deleted  int64
			done     bool
			lastName string
			left     []string
		}{
			{2, false, "a2", []string{"b1", "c3", "c4", "d2", "e5", "z"}},
			{4, false, "c4", []string{"b1", "d2", "e5", "z"}},
			{5, true, "e5", []string{"b1", "d2", "z"}},
		}
		for i, s := range steps {
			w, ok := emptyWorkOnce(t, db, 2)
			require.True(t, ok, "step %d", i)
			require.Equal(t, emptyWork{JobID: *job, Deleted: s.deleted, Done: s.done}, w, "step %d", i)
			j := emptyJobGet(t, db, *job)
			require.Equal(t, s.deleted, j.Deleted)
			require.Equal(t, s.lastName, *j.LastName)
			require.NotNil(t, j.StartedAt)
			require.Equal(t, s.done, j.FinishedAt != nil)
			require.Equal(t, s.left, sqlObjCol(t, db, `select name from storage.objects where bucket_id = 'priv' order by name`))
		}
		_, ok := emptyWorkOnce(t, db, 2)
		require.False(t, ok, "no job pending")
		require.ElementsMatch(t, []string{"v-a1 priv", "v-a2 priv", "v-c3 priv", "v-c4 priv", "v-e5 priv"}, sqlObjFreed(t, db))
		require.Equal(t, []string{"pub/a9"}, sqlObjCol(t, db, `select bucket_id || '/' || name from storage.objects where bucket_id = 'pub'`))
	})

	t.Run("ObjectsCreatedAfterTheJobSurvive", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "old1", "", "v1")
		sqlObjInsert(t, db, "priv", "old2", "", "v2")
		job, err := emptyQueue(t, db, asService, "priv")
		require.NoError(t, err)
		require.NotNil(t, job)
		sqlObjInsert(t, db, "priv", "new1", "", "v3")
		admin(t, db, `insert into storage.objects (bucket_id, name, version, created_at) values ('priv', '0-early', 'v4', now() + interval '1 minute')`)
		admin(t, db, `update storage.objects set created_at = now() + interval '1 minute' where name = 'old2'`)
		require.Equal(t, []emptyWork{{JobID: *job, Deleted: 1, Done: true}}, emptyDrain(t, db, 1000))
		require.Equal(t, []string{"priv/0-early", "priv/new1", "priv/old2"}, sqlObjNames(t, db))
		require.Equal(t, []string{"v1 priv"}, sqlObjFreed(t, db))
	})

	t.Run("ServiceRoleJobDeletesAll", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		lcOwnPolicies(t, db)
		sqlObjInsert(t, db, "priv", "a", userA.Sub, "va")
		sqlObjInsert(t, db, "priv", "b", userB.Sub, "vb")
		sqlObjInsert(t, db, "priv", "n", "", "vn")
		sqlObjInsert(t, db, "priv", "x/y", "", "vx")
		sqlObjInsert(t, db, "priv", "z", "", "")
		sqlObjInsert(t, db, "pub", "p", "", "vp")
		job, err := emptyQueue(t, db, asService, "priv")
		require.NoError(t, err)
		require.NotNil(t, job)
		require.Equal(t, "service_role", emptyJobGet(t, db, *job).Role)
		require.Equal(t, []emptyWork{
			{JobID: *job, Deleted: 2}, {JobID: *job, Deleted: 4}, {JobID: *job, Deleted: 5, Done: true},
		}, emptyDrain(t, db, 2))
		require.Equal(t, []string{"pub/p"}, sqlObjNames(t, db))
		require.ElementsMatch(t, []string{"va priv", "vb priv", "vn priv", "vx priv"}, sqlObjFreed(t, db))
	})

	// A caller without the prelude and without RLS (plain SQL as the tables' owner, a DBA)
	// queues a job the servers can run: as service_role, which bypasses RLS likewise (the
	// servers' role may not assume the owner's).
	t.Run("PlainSQLCaller", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "a", userA.Sub, "va")
		var job int64
		require.NoError(t, db.Pool.QueryRow(context.Background(), `select storage.bucket_empty('priv')`).Scan(&job))
		require.Equal(t, "service_role", emptyJobGet(t, db, job).Role)
		require.Equal(t, []emptyWork{{JobID: job, Deleted: 1, Done: true}}, emptyDrain(t, db, 10))
		require.Empty(t, sqlObjNames(t, db))
	})

	// bucket_empty_work assumes the job's role and settings for the batch only: in the
	// worker's transaction, what was there before is back afterwards, after a failed batch too.
	t.Run("WorkerIdentityRestored", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		lcOwnPolicies(t, db)
		sqlObjInsert(t, db, "priv", "a", userA.Sub, "va")
		sqlObjInsert(t, db, "pub", "a", userA.Sub, "vp")
		sqlObjInsert(t, db, "pub", "zz", userA.Sub, "vz")
		for _, bucket := range []string{"priv", "pub"} {
			job, err := emptyQueue(t, db, userA, bucket)
			require.NoError(t, err)
			require.NotNil(t, job)
		}
		// The second job's batch (pub/a and pub/zz) fails: the second call fails.
		admin(t, db, `create function public.lc_refuse_delete() returns trigger language plpgsql as $$
			begin raise exception 'deletes refused'; end $$;
			create trigger lc_refuse before delete on storage.objects for each row
			when (old.name = 'zz') execute function public.lc_refuse_delete()`)

		type ident struct{ user, session, role, sub, claims, claimRole, op string }
		// An unset setting reads as NULL, or as '' once a transaction of the session has set it
		// (PostgreSQL keeps the placeholder); policies treat both alike (auth.uid()): '-'.
		const q = `select current_user::text, session_user::text, current_setting('role'),
			coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''), '-'),
			coalesce(nullif(current_setting('request.jwt.claims', true), ''), '-'),
			coalesce(nullif(current_setting('request.jwt.claim.role', true), ''), '-'),
			coalesce(nullif(current_setting('storage.operation', true), ''), '-')`
		read := func(tx pgx.Tx) ident {
			var i ident
			require.NoError(t, tx.QueryRow(context.Background(), q).Scan(&i.user, &i.session, &i.role, &i.sub, &i.claims, &i.claimRole, &i.op))
			return i
		}
		ctx := context.Background()
		refused := "deletes refused"
		for call, wantErr := range []*string{nil, &refused} {
			tx, err := db.Pool.Begin(ctx)
			require.NoError(t, err)
			defer tx.Rollback(ctx) //nolint:errcheck // committed below
			_, err = tx.Exec(ctx, `select set_config('request.jwt.claim.sub', 'worker-sub', true),
				set_config('request.jwt.claims', '{"worker":true}', true)`)
			require.NoError(t, err)
			before := read(tx)
			require.Equal(t, before.user, before.session)
			require.Equal(t, "none", before.role)
			var w emptyWork
			require.NoError(t, tx.QueryRow(ctx, `select job_id, deleted, done, error from storage_internal.bucket_empty_work(2)`).
				Scan(&w.JobID, &w.Deleted, &w.Done, &w.Error))
			require.Equal(t, wantErr, w.Error, "call %d", call)
			after := read(tx)
			require.Equal(t, ident{before.session, before.session, "none", "worker-sub", `{"worker":true}`, "-", "-"}, after, "call %d", call)
			require.NoError(t, tx.Commit(ctx))
		}
		require.Equal(t, []string{"pub/a", "pub/zz"}, sqlObjNames(t, db))
	})

	t.Run("FailingJobEndsAfterFiveFailures", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "a", "", "va")
		sqlObjInsert(t, db, "priv", "b", "", "vb")
		sqlObjInsert(t, db, "pub", "p", "", "vp")
		failing, err := emptyQueue(t, db, asService, "priv")
		require.NoError(t, err)
		next, err := emptyQueue(t, db, asService, "pub")
		require.NoError(t, err)
		admin(t, db, `create function public.lc_refuse_delete() returns trigger language plpgsql as $$
			begin raise exception 'deletes refused in %', old.bucket_id; end $$;
			create trigger lc_refuse before delete on storage.objects for each row
			when (old.bucket_id = 'priv') execute function public.lc_refuse_delete()`)
		msg := "deletes refused in priv"
		for i := 1; i <= 5; i++ {
			w, ok := emptyWorkOnce(t, db, 10)
			require.True(t, ok)
			require.Equal(t, emptyWork{JobID: *failing, Deleted: 0, Done: i == 5, Error: &msg}, w, "failure %d", i)
			j := emptyJobGet(t, db, *failing)
			require.Equal(t, i, j.Attempts)
			require.Equal(t, &msg, j.Error)
			require.NotNil(t, j.StartedAt)
			require.Equal(t, i == 5, j.FinishedAt != nil)
		}
		// The failed job is over; the next one gets its turn.
		require.Equal(t, []emptyWork{{JobID: *next, Deleted: 1, Done: true}}, emptyDrain(t, db, 10))
		require.Equal(t, []string{"priv/a", "priv/b"}, sqlObjNames(t, db), "each failed batch was rolled back")
		require.Equal(t, []string{"vp pub"}, sqlObjFreed(t, db))
	})

	t.Run("FailureThenRecovery", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "a", "", "va")
		sqlObjInsert(t, db, "priv", "b", "", "vb")
		job, err := emptyQueue(t, db, asService, "priv")
		require.NoError(t, err)
		admin(t, db, `create function public.lc_refuse_delete() returns trigger language plpgsql as $$
			begin raise exception 'not now'; end $$;
			create trigger lc_refuse before delete on storage.objects for each row execute function public.lc_refuse_delete()`)
		msg := "not now"
		for range 2 {
			w, ok := emptyWorkOnce(t, db, 10)
			require.True(t, ok)
			require.Equal(t, emptyWork{JobID: *job, Error: &msg}, w)
		}
		admin(t, db, `drop trigger lc_refuse on storage.objects`)
		require.Equal(t, []emptyWork{{JobID: *job, Deleted: 2, Done: true}}, emptyDrain(t, db, 10))
		j := emptyJobGet(t, db, *job)
		require.Nil(t, j.Error, "a successful batch clears the error")
		require.Equal(t, 2, j.Attempts, "failures stay counted")
		require.Empty(t, sqlObjNames(t, db))
	})

	t.Run("ConcurrentWorkersTakeDifferentJobs", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "a", "", "va")
		sqlObjInsert(t, db, "pub", "p", "", "vp")
		first, err := emptyQueue(t, db, asService, "priv")
		require.NoError(t, err)
		second, err := emptyQueue(t, db, asService, "pub")
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx) //nolint:errcheck // committed below
		var got1, got2 int64
		require.NoError(t, tx.QueryRow(ctx, `select job_id from storage_internal.bucket_empty_work(10)`).Scan(&got1))
		require.Equal(t, *first, got1)
		// The first job is locked by the open transaction: another worker skips it, unblocked.
		require.NoError(t, db.Pool.QueryRow(ctx, `select job_id from storage_internal.bucket_empty_work(10)`).Scan(&got2))
		require.Equal(t, *second, got2)
		var none int64
		require.NoError(t, db.Pool.QueryRow(ctx, `select count(*) from storage_internal.bucket_empty_work(10)`).Scan(&none))
		require.Equal(t, int64(0), none, "the only pending job is being worked")
		require.NoError(t, tx.Commit(ctx))
		require.Empty(t, sqlObjNames(t, db))
		_, ok := emptyWorkOnce(t, db, 10)
		require.False(t, ok)
	})
}

func TestSQLLifecyclePrivileges(t *testing.T) {
	t.Parallel()
	db := sqlObjDB(t)
	sqlObjInsert(t, db, "priv", "a", "", "va")
	job, err := emptyQueue(t, db, asService, "priv")
	require.NoError(t, err)
	sqlObjInsert(t, db, "pub", "q", "", "vq")
	admin(t, db, `delete from storage.objects where name = 'q'`)
	v := lcUploadBegin(t, db, "pub", "u")

	ownerOnly := []string{
		`select * from storage_internal.bucket_empty_work(10)`,
		`select storage_internal.blob_collect_next(interval '0', 10)`,
		`select storage_internal.blob_collect_done(array['vq'])`,
		`select storage_internal.blob_collect_failed('vq', 'e')`,
		`select storage_internal.blob_upload_expire(interval '0')`,
		`select storage_internal.blob_upload_expire(interval '0', '` + v + `')`,
	}
	for _, id := range []proxy.Identity{asAnon, userA, asService} {
		for _, stmt := range ownerOnly {
			requireSQLState(t, exec(t, db, id, stmt), "42501", "")
		}
	}
	// The job recorder works only under storage.bucket_empty (which checks the bucket first).
	for _, id := range []proxy.Identity{asAnon, userA, asService} {
		requireSQLState(t, exec(t, db, id, `select storage_internal.bucket_empty_enqueue('priv')`), "42501",
			"storage_internal.bucket_empty_enqueue may only be called by storage.bucket_empty")
	}
	requireSQLState(t, exec(t, db, asService, `select storage_internal.bucket_empty_enqueue('no-such-bucket')`), "42501",
		"storage_internal.bucket_empty_enqueue may only be called by storage.bucket_empty")
	for _, id := range []proxy.Identity{asAnon, userA} {
		_, err := sqlObjQuery(t, db, id, false, `select id::text from storage.bucket_empty_jobs`)
		requireSQLState(t, err, "42501", "")
	}
	got, err := sqlObjQuery(t, db, asService, false, `select id::text from storage.bucket_empty_jobs`)
	require.NoError(t, err)
	require.Equal(t, []string{fmt.Sprint(*job)}, got)
	for _, stmt := range []string{
		`update storage.bucket_empty_jobs set finished_at = now()`,
		`delete from storage.bucket_empty_jobs`,
		`insert into storage.bucket_empty_jobs (bucket_id, created_before, role) values ('pub', now(), 'service_role')`,
	} {
		requireSQLState(t, exec(t, db, asService, stmt), "42501", "")
	}
	// Nothing of the above happened.
	j := emptyJobGet(t, db, *job)
	require.Nil(t, j.FinishedAt)
	require.Nil(t, j.StartedAt)
	require.Equal(t, []string{"priv/a"}, sqlObjNames(t, db))
	require.Equal(t, []string{"vq pub"}, sqlObjFreed(t, db))
	require.Equal(t, []string{v}, sqlObjCol(t, db, `select version from storage.blob_uploads`))
}

func TestSQLBlobCollect(t *testing.T) {
	t.Parallel()

	t.Run("Retention", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		for _, v := range []string{"old1", "old2", "young"} {
			sqlObjInsert(t, db, "priv", v, "", v)
		}
		admin(t, db, `delete from storage.objects`)
		admin(t, db, `update storage.blobs_freed set freed_at = now() - interval '3 hours' where version = 'old1';
			update storage.blobs_freed set freed_at = now() - interval '2 hours' where version = 'old2';
			update storage.blobs_freed set freed_at = now() - interval '10 minutes' where version = 'young'`)
		require.Empty(t, lcCollectNext(t, db, "4 hours", 10))
		require.Equal(t, []string{"old1", "old2"}, lcCollectNext(t, db, "1 hour", 10))
		require.Equal(t, []string{"old1"}, lcCollectNext(t, db, "1 hour", 1), "oldest first")
		require.Equal(t, []string{"old1", "old2", "young"}, lcCollectNext(t, db, "0", 10))
		require.Len(t, sqlObjFreed(t, db), 3, "handing out removes nothing")
		// Queued just now: not before the retention has passed.
		sqlObjInsert(t, db, "priv", "fresh", "", "fresh")
		admin(t, db, `delete from storage.objects`)
		require.Equal(t, []string{"old1", "old2", "young"}, lcCollectNext(t, db, "1 minute", 10))
	})

	t.Run("FailedBacksOff", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		admin(t, db, `insert into storage.blobs_freed (version, bucket_id) values ('f', 'priv'), ('f', 'pub'), ('g', 'priv')`)
		ctx := context.Background()
		// fail reports a failed delete of f and returns, per entry of f, attempts, last_error
		// and the backoff (retry_at - now()).
		fail := func(errText string) []string {
			tx, err := db.Pool.Begin(ctx)
			require.NoError(t, err)
			defer tx.Rollback(ctx) //nolint:errcheck // committed below
			_, err = tx.Exec(ctx, `select storage_internal.blob_collect_failed('f', $1)`, errText)
			require.NoError(t, err)
			rows, err := tx.Query(ctx, `select attempts || ' ' || last_error || ' ' || (retry_at - now())::text
				from storage.blobs_freed where version = 'f' order by id`)
			require.NoError(t, err)
			out, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(t, err)
			require.NoError(t, tx.Commit(ctx))
			return out
		}
		require.Equal(t, []string{"1 boom 00:00:02", "1 boom 00:00:02"}, fail("boom"))
		require.Equal(t, []string{"g"}, lcCollectNext(t, db, "0", 10), "f waits out its backoff")
		admin(t, db, `update storage.blobs_freed set retry_at = now() - interval '1 second' where version = 'f'`)
		require.Equal(t, []string{"f", "g"}, lcCollectNext(t, db, "0", 10), "the backoff has passed")
		require.Equal(t, []string{"2 again 00:00:04", "2 again 00:00:04"}, fail("again"))
		require.Equal(t, []string{"g"}, lcCollectNext(t, db, "0", 10))
		admin(t, db, `update storage.blobs_freed set attempts = 20 where version = 'f'`)
		require.Equal(t, []string{"21 capped 01:00:00", "21 capped 01:00:00"}, fail("capped"))
		// Unknown versions are ignored.
		admin(t, db, `select storage_internal.blob_collect_failed('nope', 'x')`)
		require.Equal(t, int64(3), lcCount(t, db, `select count(*) from storage.blobs_freed`))
		require.Equal(t, int64(0), lcCount(t, db, `select count(*) from storage.blobs_freed where version = 'g' and (attempts <> 0 or retry_at is not null or last_error is not null)`))
	})

	t.Run("DoneRemovesEveryEntryOfTheVersions", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		admin(t, db, `insert into storage.blobs_freed (version, bucket_id) values
			('a', 'priv'), ('a', 'pub'), ('b', 'priv'), ('c', 'priv'), ('a', 'priv')`)
		require.Equal(t, []string{"a", "b", "c"}, lcCollectNext(t, db, "0", 10), "each version once")
		admin(t, db, `select storage_internal.blob_collect_done(array['a', 'b', 'unknown'])`)
		require.Equal(t, []string{"c priv"}, sqlObjFreed(t, db))
		admin(t, db, `select storage_internal.blob_collect_done('{}')`)
		require.Equal(t, []string{"c priv"}, sqlObjFreed(t, db))
		require.Equal(t, []string{"c"}, lcCollectNext(t, db, "0", 10))
	})

	t.Run("RestoredRowKeepsTheBlob", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		sqlObjInsert(t, db, "priv", "k", "", "r")
		sqlObjInsert(t, db, "priv", "gone", "", "g")
		admin(t, db, `delete from storage.objects`)
		require.ElementsMatch(t, []string{"r priv", "g priv"}, sqlObjFreed(t, db))
		// A restore (e.g. from a backup of the rows) brings k back with its version.
		sqlObjInsert(t, db, "pub", "k-restored", "", "r")
		require.Equal(t, []string{"g"}, lcCollectNext(t, db, "0", 10))
		require.Equal(t, []string{"g priv"}, sqlObjFreed(t, db), "r's entry is dropped, its blob stays")
	})
}

func TestSQLBlobUploadExpire(t *testing.T) {
	t.Parallel()
	expire := func(t *testing.T, db *testdb.DB, age string, version any) []string {
		t.Helper()
		got := sqlObjCol(t, db, `select v from storage_internal.blob_upload_expire($1::interval, $2) v`, age, version)
		sort.Strings(got)
		return got
	}
	uploads := func(t *testing.T, db *testdb.DB) []string {
		t.Helper()
		return sqlObjCol(t, db, `select version from storage.blob_uploads order by version`)
	}
	age := func(t *testing.T, db *testdb.DB, versions ...string) {
		t.Helper()
		admin(t, db, `update storage.blob_uploads set started_at = now() - interval '2 hours' where version = any ($1)`, versions)
	}
	sorted := func(s ...string) []string { sort.Strings(s); return s }

	t.Run("OldEntriesMoveToTheQueue", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		o1, o2 := lcUploadBegin(t, db, "priv", "o1"), lcUploadBegin(t, db, "pub", "o2")
		young := lcUploadBegin(t, db, "priv", "y")
		age(t, db, o1, o2)
		require.Equal(t, sorted(o1, o2), expire(t, db, "1 hour", nil))
		require.Equal(t, []string{young}, uploads(t, db))
		require.ElementsMatch(t, []string{o1 + " priv", o2 + " pub"}, sqlObjFreed(t, db))
		require.Empty(t, expire(t, db, "1 hour", nil), "already expired")
		require.Len(t, sqlObjFreed(t, db), 2)
	})

	t.Run("VersionLimitsToOne", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		o1, o2 := lcUploadBegin(t, db, "priv", "o1"), lcUploadBegin(t, db, "priv", "o2")
		young := lcUploadBegin(t, db, "priv", "y")
		age(t, db, o1, o2)
		require.Equal(t, []string{o1}, expire(t, db, "1 hour", o1))
		require.Equal(t, sorted(o2, young), uploads(t, db))
		require.Empty(t, expire(t, db, "1 hour", young), "too young")
		require.Empty(t, expire(t, db, "1 hour", "unknown"))
		require.Equal(t, sorted(o2, young), uploads(t, db))
		require.Equal(t, []string{young}, expire(t, db, "0", young))
		require.Equal(t, []string{o2}, uploads(t, db))
		require.ElementsMatch(t, []string{o1 + " priv", young + " priv"}, sqlObjFreed(t, db))
	})

	t.Run("CommitOfAnExpiredUploadIsRefused", func(t *testing.T) {
		t.Parallel()
		db := sqlObjDB(t)
		var v string
		require.NoError(t, asRole(t, db, asService, true, func(tx pgx.Tx) error {
			return tx.QueryRow(context.Background(), `select version from storage_internal.object_upload_prepare(
				bucket_id => 'priv', name => 'k', upsert => false, mimetype => 'text/plain', content_length => 3, user_metadata => '{}')`).Scan(&v)
		}))
		require.Equal(t, []string{v}, uploads(t, db))
		age(t, db, v)
		require.Equal(t, []string{v}, expire(t, db, "1 hour", nil))
		const gone = "The upload is no longer in progress (it expired or was aborted); upload again"
		for _, upsert := range []bool{false, true} {
			requireSQLState(t, exec(t, db, asService, lcCommitSQL, "priv", "k", v, upsert), "ST010", gone)
		}
		require.Empty(t, sqlObjNames(t, db))
		require.Equal(t, []string{v + " priv"}, sqlObjFreed(t, db))
		// The server then aborts: nothing more to queue.
		require.NoError(t, exec(t, db, asService, `select storage_internal.object_upload_abort(version => $1)`, v))
		require.Equal(t, []string{v + " priv"}, sqlObjFreed(t, db))
		// A version that never was in flight is refused alike.
		requireSQLState(t, exec(t, db, asService, lcCommitSQL, "priv", "k", "made-up", true), "ST010", gone)
		require.Empty(t, sqlObjNames(t, db))
	})
}

// TestSQLBlobCollectConcurrentRequeue: storage_internal.blob_collect_next must not drop the queue entry
// that a concurrent delete of a version's last row adds. (It once checked for a referencing row
// in one statement and dropped the version's entries in the next, which, at READ COMMITTED,
// saw the delete committed in between: no row and no entry were left, and the blob was never
// collected.) The test pauses the collector inside its statement with a row-level security
// gate on storage.objects that waits for an advisory lock.
func TestSQLBlobCollectConcurrentRequeue(t *testing.T) {
	t.Parallel()
	db := sqlObjDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sqlObjInsert(t, db, "priv", "a", "", "s")
	sqlObjInsert(t, db, "priv", "b", "", "s")
	admin(t, db, `delete from storage.objects where name = 'a'`)
	require.Equal(t, []string{"s priv"}, sqlObjFreed(t, db))

	// The gate: a query on storage.objects by a session with lc.gate = on waits for advisory
	// lock 4242 after taking its snapshot. FORCE makes the owner (the collector) subject to it.
	admin(t, db, `create function public.lc_gate() returns boolean language plpgsql volatile as $$
		begin
		  if current_setting('lc.gate', true) = 'on' then perform pg_advisory_xact_lock_shared(4242); end if;
		  return true;
		end $$;
		create policy lc_gate on storage.objects for all using (public.lc_gate()) with check (true);
		alter table storage.objects force row level security`)
	hold, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer hold.Release()
	_, err = hold.Exec(ctx, `select pg_advisory_lock(4242)`)
	require.NoError(t, err)

	// The delete of the last row, in flight.
	del, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer del.Rollback(ctx) //nolint:errcheck // committed below
	_, err = del.Exec(ctx, `delete from storage.objects where name = 'b'`)
	require.NoError(t, err)

	// The collector: finds the entry of s, then b (not yet deleted for it), and waits at the gate.
	collector, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer collector.Release()
	var pid int
	require.NoError(t, collector.QueryRow(ctx, `select pg_backend_pid()`).Scan(&pid))
	_, err = collector.Exec(ctx, `set lc.gate = on`)
	require.NoError(t, err)
	got := make(chan []string, 1)
	go func() {
		rows, err := collector.Query(ctx, `select v from storage_internal.blob_collect_next(interval '0', 10) v`)
		if err != nil {
			got <- []string{"error: " + err.Error()}
			return
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			out = []string{"error: " + err.Error()}
		}
		got <- out
	}()
	require.Eventually(t, func() bool {
		return lcCount(t, db, `select count(*) from pg_locks where pid = $1 and locktype = 'advisory' and not granted`, pid) == 1
	}, 10*time.Second, 5*time.Millisecond, "the collector reaches the gate")

	// The last row goes (its entry commits), then the collector goes on.
	require.NoError(t, del.Commit(ctx))
	_, err = hold.Exec(ctx, `select pg_advisory_unlock(4242)`)
	require.NoError(t, err)
	require.Empty(t, <-got, "b was there when the collector looked")
	_, err = collector.Exec(ctx, `reset lc.gate`)
	require.NoError(t, err)

	require.Empty(t, sqlObjNames(t, db))
	require.Equal(t, []string{"s priv"}, sqlObjFreed(t, db), "the entry the delete of b queued must survive: no row references s any more")
	require.Equal(t, []string{"s"}, lcCollectNext(t, db, "0", 10))
}
