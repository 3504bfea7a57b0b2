package tests

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/proxy"
	"github.com/pgstorage/storage/tests/testdb"
)

// TestSQLLookupsUseTheNameIndex: every SQL API function that finds an object by (bucket_id,
// name) reaches it through the unique index, not by reading the bucket. The index is on
// name COLLATE "C"; a comparison in the database's default collation cannot use it unless that
// collation happens to be C, so a lookup that forgets the COLLATE works everywhere and reads
// the whole bucket on most databases. The backend's table statistics, read before and after
// each call in its transaction, say how many rows of storage.objects it read: a handful, out
// of 3,000.
func TestSQLLookupsUseTheNameIndex(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	var collation string
	require.NoError(t, db.Pool.QueryRow(ctx,
		`select datcollate from pg_database where datname = current_database()`).Scan(&collation))
	require.NotContains(t, []string{"C", "POSIX"}, collation,
		"this test needs a database whose default collation is not C (the harness's clusters use C.UTF-8): with C every lookup can use the index")

	admin(t, db, `select storage.signing_secret_set('a-signing-secret-of-at-least-32-bytes')`)
	admin(t, db, `insert into storage.buckets (id, name, public) values ('b', 'b', true)`)
	admin(t, db, `insert into storage.objects (bucket_id, name, version, metadata)
		select 'b', 'f/' || lpad(i::text, 5, '0'), 'v' || i, '{"size": 3, "mimetype": "text/plain"}'
		from generate_series(1, 3000) i`)
	admin(t, db, `analyze storage.objects`)

	cases := []struct{ name, sql string }{
		{"object_info", `select storage.object_info('b', 'f/01500')`},
		{"object_public_lookup", `select storage_internal.object_public_lookup('b', 'f/01500')`},
		{"object_upload_prepare (new key)", `select storage_internal.object_upload_prepare('b', 'g/new')`},
		{"object_upload_prepare (existing key)", `select storage_internal.object_upload_prepare('b', 'f/01500', upsert => true)`},
		{"object_delete", `select storage.object_delete('b', 'f/01500')`},
		{"object_delete_many", `select storage.object_delete_many('b', array['f/01500', 'f/01501', 'f/99999'])`},
		{"object_move", `select storage.object_move('b', 'f/01500', 'g/moved')`},
		{"object_copy", `select storage.object_copy('b', 'f/01500', 'g/copied')`},
		{"url_sign", `select storage.url_sign('b', 'f/01500', 60)`},
		{"url_sign_many", `select storage.url_sign_many('b', array['f/01500', 'f/01501', 'f/99999'], 60)`},
	}
	// pg_stat_xact_user_tables holds the counts the backend has not reported yet, which may
	// span earlier transactions: only the difference across a call is the call's.
	const rowsReadSQL = `select coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
		from pg_stat_xact_user_tables where relid = 'storage.objects'::regclass`
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before, after int64
			err := asRole(t, db, asService, false, func(tx pgx.Tx) error {
				if err := tx.QueryRow(ctx, rowsReadSQL).Scan(&before); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, c.sql); err != nil {
					return err
				}
				return tx.QueryRow(ctx, rowsReadSQL).Scan(&after)
			})
			require.NoError(t, err)
			require.LessOrEqual(t, after-before, int64(10), "rows of storage.objects read by %s", c.sql)
		})
	}
}

// TestSQLMimeTypeAllowed: a bucket's allowed_mime_types as the reference applies them (split
// on the first '/'; an entry matches with an equal type and subtype '*' or an identical rest),
// including the corners: parameters are part of the subtype, '*' and '*/*' allow nothing
// else, NULL entries match nothing, and NULL or empty lists allow everything.
func TestSQLMimeTypeAllowed(t *testing.T) {
	db := testdb.New(t)
	for _, c := range []struct {
		mime    string
		allowed *string // a text[] literal; nil = NULL
		want    bool
	}{
		{"image/png", nil, true},
		{"image/png", ptr(`{}`), true},
		{"image/png", ptr(`{image/png}`), true},
		{"image/png", ptr(`{image/*}`), true},
		{"image/png", ptr(`{text/*,image/png}`), true},
		{"image/png", ptr(`{image/jpeg}`), false},
		{"image/png", ptr(`{IMAGE/PNG}`), false},
		{"image/png", ptr(`{image}`), false},
		{"image/png", ptr(`{*}`), false},
		{"image/png", ptr(`{*/*}`), false},
		{"image/png", ptr(`{*/png}`), false},
		{"image/png", ptr(`{NULL}`), false},
		{"image/png", ptr(`{NULL,image/png}`), true},
		{"text/plain;charset=UTF-8", ptr(`{text/plain}`), false},
		{"text/plain;charset=UTF-8", ptr(`{text/*}`), true},
		{"text/plain;charset=UTF-8", ptr(`{text/plain;charset=UTF-8}`), true},
		{"a/b/c", ptr(`{a/*}`), true},
		{"a/b/c", ptr(`{a/b/*}`), false},
		{"image", ptr(`{image}`), false},
		{"image", ptr(`{image/*}`), false},
	} {
		var got bool
		require.NoError(t, db.Pool.QueryRow(context.Background(),
			`select storage_internal.mime_type_allowed($1, $2::text[])`, c.mime, c.allowed).Scan(&got))
		require.Equal(t, c.want, got, "%s in %v", c.mime, c.allowed)
	}
}

// staleListStats makes bucket b, holding f/00001 … f/03000, and bucket other, holding
// 20,000 objects, with statistics taken before b filled up: they call b tiny.
func staleListStats(t *testing.T, db *testdb.DB) {
	t.Helper()
	admin(t, db, `insert into storage.buckets (id, name) values ('b', 'b'), ('other', 'other')`)
	admin(t, db, `insert into storage.objects (bucket_id, name, version)
		select 'other', 'o/' || i, 'o' || i from generate_series(1, 20000) i`)
	admin(t, db, `insert into storage.objects (bucket_id, name, version) values ('b', 'seed', 'seed')`)
	admin(t, db, `analyze storage.objects`)
	admin(t, db, `insert into storage.objects (bucket_id, name, version, metadata)
		select 'b', 'f/' || lpad(i::text, 5, '0'), 'v' || i, '{"size": 3}'
		from generate_series(1, 3000) i`)
}

// TestSQLListPageReadsAPage: a list v1 page by name reads about a page of rows, even when the
// statistics are stale and call the bucket tiny (analyzed before it filled up), which tempts
// the planner into reading the whole bucket through the name index and sorting it.
func TestSQLListPageReadsAPage(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	staleListStats(t, db)

	const rowsReadSQL = `select coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
		from pg_stat_xact_user_tables where relid = 'storage.objects'::regclass`
	for _, order := range []string{"asc", "desc"} {
		var before, after int64
		var names []string
		err := asRole(t, db, asService, false, func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, rowsReadSQL).Scan(&before); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `select name from storage.object_list('b', 'f', 100, 0, '', 'name', $1)`, order)
			if err != nil {
				return err
			}
			if names, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				return err
			}
			return tx.QueryRow(ctx, rowsReadSQL).Scan(&after)
		})
		require.NoError(t, err)
		require.Len(t, names, 100, order)
		if order == "asc" {
			require.Equal(t, []string{"00001", "00100"}, []string{names[0], names[99]})
		} else {
			require.Equal(t, []string{"03000", "02901"}, []string{names[0], names[99]})
		}
		require.LessOrEqual(t, after-before, int64(150), "rows of storage.objects read by a %s page", order)
	}
}

// TestSQLListPlans: how PostgreSQL plans list v1's statements, read from auto_explain's plans
// of each statement inside the function (as notices).
//   - By name, the statements use the plan made once per connection (parameters $n in the
//     plan), not one made again on every call for the call's values, which costs half again
//     as much as reading the page.
//   - By a time column, the statement sorts, so it must be planned with sorts allowed: the
//     by-name setting that disables them would make its cost look astronomic, which also
//     triggers JIT compiling (~140 ms per call), and no plan may show JIT at all.
func TestSQLListPlans(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	// With statistics that call b tiny, a plan for the call's values always looks cheaper
	// than the generic one.
	staleListStats(t, db)

	cfg, err := pgx.ParseConfig(db.SuperURL)
	require.NoError(t, err)
	var notices []string
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer conn.Close(ctx)
	for _, s := range []string{`load 'auto_explain'`, `set auto_explain.log_min_duration = 0`,
		`set auto_explain.log_nested_statements = on`, `set auto_explain.log_level = notice`,
		`set client_min_messages = notice`} {
		_, err := conn.Exec(ctx, s)
		require.NoError(t, err, s)
	}
	// plans runs a listing and returns the plans of the statements run inside the function.
	plans := func(sortColumn string) []string {
		notices = nil
		var n int
		require.NoError(t, conn.QueryRow(ctx,
			`select count(*) from storage.object_list('b', 'f', 100, 0, '', $1, 'asc')`, sortColumn).Scan(&n))
		require.Equal(t, 100, n, sortColumn)
		var inner []string
		for _, p := range notices {
			if strings.Contains(p, "storage.objects") && !strings.Contains(p, "object_list(") {
				inner = append(inner, p)
			}
		}
		require.NotEmpty(t, inner, "no plans of the function's statements in %q", notices)
		return inner
	}

	// PostgreSQL plans a statement for the call's values at least five times before it may
	// settle on the generic plan: the calls after that show which one it kept.
	for i := 0; i < 8; i++ {
		byName := plans("name")
		if i < 6 {
			continue
		}
		for _, p := range byName {
			require.Contains(t, p, "bucket_id = $", "call %d by name: planned for the call's values:\n%s", i+1, p)
			require.NotContains(t, p, "JIT:", p)
		}
	}
	disabledCost := regexp.MustCompile(`cost=\d{10,}`)
	for _, col := range []string{"created_at", "updated_at"} {
		for _, p := range plans(col) {
			require.NotRegexp(t, disabledCost, p, "by %s: planned with sorts disabled", col)
			require.Contains(t, p, "Sort", "by %s", col)
			require.NotContains(t, p, "JIT:", p)
		}
	}
}

// TestSQLUploadQueueByKey: an upload's commit and abort find its storage.blob_uploads entry
// through the key, even on a connection that cached its plans right after a vacuum left the
// queue empty, once dead entries pile up (the queue holds as many as uploads between two
// vacuums). Read before and after each call in its transaction, the table's statistics count
// the sequential scans: none.
func TestSQLUploadQueueByKey(t *testing.T) {
	db := testdb.New(t)
	ctx := context.Background()
	admin(t, db, `insert into storage.buckets (id, name) values ('b', 'b')`)
	admin(t, db, `vacuum analyze storage.blob_uploads`)

	conn, err := db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	const seqScansSQL = `select coalesce(seq_scan, 0) from pg_stat_xact_user_tables
		where relid = 'storage.blob_uploads'::regclass`
	prelude, preludeArgs := proxy.Prelude(asService, "test")
	// upload runs an upload's calls as the service role in one transaction on the pinned
	// connection, and returns the sequential scans of the queue its last call made.
	upload := func(key string, abort bool) int64 {
		tx, err := conn.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx)
		_, err = tx.Exec(ctx, prelude, preludeArgs...)
		require.NoError(t, err)
		var version string
		require.NoError(t, tx.QueryRow(ctx, `select version from storage_internal.object_upload_prepare('b', $1)`, key).Scan(&version))
		var before, after int64
		require.NoError(t, tx.QueryRow(ctx, seqScansSQL).Scan(&before))
		if abort {
			_, err = tx.Exec(ctx, `select storage_internal.object_upload_abort($1)`, version)
		} else {
			_, err = tx.Exec(ctx, `select storage_internal.object_upload_commit('b', $1, $2, false, null, 3, 'md5', 'text/plain', 'no-cache', null)`, key, version)
		}
		require.NoError(t, err)
		require.NoError(t, tx.QueryRow(ctx, seqScansSQL).Scan(&after))
		require.NoError(t, tx.Commit(ctx))
		return after - before
	}
	// Enough calls on a near-empty queue for PostgreSQL to settle on a plan for the
	// connection, then the dead entries of 5,000 finished uploads.
	for i := 0; i < 8; i++ {
		upload(fmt.Sprintf("warm/%d-commit", i), false)
		upload(fmt.Sprintf("warm/%d-abort", i), true)
	}
	admin(t, db, `insert into storage.blob_uploads (version, bucket_id, name)
		select 'dead' || i, 'b', 'dead/' || i from generate_series(1, 5000) i`)
	admin(t, db, `delete from storage.blob_uploads where version like 'dead%'`)
	require.Zero(t, upload("after/commit", false), "sequential scans of storage.blob_uploads by object_upload_commit")
	require.Zero(t, upload("after/abort", true), "sequential scans of storage.blob_uploads by object_upload_abort")
}
