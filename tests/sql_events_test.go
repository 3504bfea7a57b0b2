package tests

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/proxy"
	"github.com/pgstorage/storage/tests/testdb"
)

// The outbox storage.events as SQL callers and DBAs see it (sql/api/events.sql): every change
// of storage.objects records its events in its own transaction, under the reference's names.

// sqlEvent is a row of storage.events as the tables' owner reads it.
type sqlEvent struct {
	ID                 int64
	Type, Bucket, Name string
	Version            *string
	Payload            map[string]any
	Delivered          bool
	Attempts           int
}

// sqlEventList is storage.events after id `after`, in id order.
func sqlEventList(t *testing.T, db *testdb.DB, after int64) []sqlEvent {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `
		select id, type, bucket_id, name, version, payload, delivered_at is not null, attempts
		from storage.events where id > $1 order by id`, after)
	require.NoError(t, err)
	evs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[sqlEvent])
	require.NoError(t, err)
	return evs
}

// sqlEventKeys renders events as "type bucket/name" lines.
func sqlEventKeys(evs []sqlEvent) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, e.Type+" "+e.Bucket+"/"+e.Name)
	}
	return out
}

// sqlLastEventID is the highest event id so far (0 when none).
func sqlLastEventID(t *testing.T, db *testdb.DB) int64 {
	t.Helper()
	var id int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), `select coalesce(max(id), 0) from storage.events`).Scan(&id))
	return id
}

// jsonObject decodes a JSON object for exact comparisons.
func jsonObject(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(s), &m), s)
	return m
}

// TestSQLEventsPlainSQL: a SQL caller's (or DBA's) plain INSERT, UPDATE and DELETE on
// storage.objects emit the reference's events with the reference's payload; uploadType is
// "standard" and reqId absent without a request.
func TestSQLEventsPlainSQL(t *testing.T) {
	t.Parallel()
	db := sqlObjDB(t)
	admin(t, db, `insert into storage.objects (bucket_id, name, version, metadata, user_metadata)
		values ('priv', 'b', 'v1', '{"size":1}', '{}'), ('priv', 'a', 'v2', '{"size":2}', null)`)
	evs := sqlEventList(t, db, 0)
	require.Equal(t, []string{"ObjectCreated:Post priv/a", "ObjectCreated:Post priv/b"}, sqlEventKeys(evs),
		"one event per row, in name order within a statement")
	require.Equal(t, jsonObject(t, `{"name":"a","bucketId":"priv","version":"v2","metadata":{"size":2},"uploadType":"standard"}`),
		evs[0].Payload)
	require.Equal(t, "v2", *evs[0].Version)
	require.False(t, evs[0].Delivered)
	last := evs[1].ID

	admin(t, db, `update storage.objects set version = 'v3', metadata = '{"size":3}' where name = 'a'`)
	admin(t, db, `update storage.objects set metadata = '{"size":2,"mimetype":"text/plain"}' where name = 'a'`)
	admin(t, db, `update storage.objects set user_metadata = '{"k":1}' where name = 'a'`)
	admin(t, db, `update storage.objects set owner_id = 'someone', last_accessed_at = now() where name = 'a'`)
	admin(t, db, `update storage.objects set name = 'c', bucket_id = 'pub' where name = 'b'`)
	admin(t, db, `delete from storage.objects where bucket_id = 'priv'`)
	evs = sqlEventList(t, db, last)
	require.Equal(t, []string{
		"ObjectCreated:Put priv/a",
		"ObjectUpdated:Metadata priv/a",
		"ObjectUpdated:Metadata priv/a",
		// the owner change emits nothing
		"ObjectRemoved:Move priv/b",
		"ObjectCreated:Move pub/c",
		"ObjectRemoved:Delete priv/a",
	}, sqlEventKeys(evs))
	require.Equal(t, jsonObject(t, `{"name":"a","bucketId":"priv","version":"v3","metadata":{"size":3},"uploadType":"standard"}`),
		evs[0].Payload)
	require.Equal(t, jsonObject(t, `{"name":"a","bucketId":"priv","version":"v3","metadata":{"size":2,"mimetype":"text/plain"}}`),
		evs[1].Payload)
	require.Equal(t, jsonObject(t, `{"name":"b","bucketId":"priv","version":"v1","metadata":{"size":1}}`), evs[3].Payload)
	require.Equal(t, jsonObject(t, `{"name":"c","bucketId":"pub","version":"v1","metadata":{"size":1},"uploadType":"standard",
		"oldObject":{"name":"b","bucketId":"priv","version":"v1"}}`), evs[4].Payload)
	require.Equal(t, jsonObject(t, `{"name":"a","bucketId":"priv","version":"v3","metadata":{"size":2,"mimetype":"text/plain"}}`),
		evs[5].Payload)
	for i := 1; i < len(evs); i++ {
		require.Greater(t, evs[i].ID, evs[i-1].ID)
	}
}

// TestSQLEventsRolledBack: a transaction that rolls back, or a statement that fails, leaves no
// event and no notification; with storage.events_notify on, the first notification a listener
// gets is the committed change's (and none comes from a commit while the setting is off).
func TestSQLEventsRolledBack(t *testing.T) {
	t.Parallel()
	db := sqlObjDB(t)
	ctx := context.Background()
	listener := connect(t, db.URL)
	_, err := listener.Exec(ctx, `listen storage_events`)
	require.NoError(t, err)
	writer := connect(t, db.URL)
	_, err = writer.Exec(ctx, `set storage.events_notify = on`)
	require.NoError(t, err)

	tx, err := writer.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `insert into storage.objects (bucket_id, name, version) values ('priv', 'gone', 'v1')`)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))
	// A statement that fails after its trigger ran (a duplicate in the same statement).
	_, err = writer.Exec(ctx, `insert into storage.objects (bucket_id, name, version) values ('priv', 'dup', 'v1'), ('priv', 'dup', 'v2')`)
	require.Error(t, err)
	// An upload's dry-run (a caller under RLS) inserts the row in a subtransaction it rolls
	// back: no event either.
	admin(t, db, `create policy ins on storage.objects for insert to authenticated with check (true)`)
	_, _, err = sqlPrep(t, db, userA, "priv", "dry", false, "text/plain", nil)
	require.NoError(t, err)
	require.Empty(t, sqlEventList(t, db, 0))

	// Notifications are off by default: this commit records its event and notifies nothing.
	admin(t, db, `insert into storage.objects (bucket_id, name, version) values ('priv', 'quiet', 'v1')`)
	_, err = writer.Exec(ctx, `insert into storage.objects (bucket_id, name, version) values ('priv', 'kept', 'v1')`)
	require.NoError(t, err)
	n, err := listener.WaitForNotification(ctx)
	require.NoError(t, err)
	require.Equal(t, "storage_events", n.Channel)
	evs := sqlEventList(t, db, 0)
	require.Equal(t, []string{"ObjectCreated:Post priv/quiet", "ObjectCreated:Post priv/kept"}, sqlEventKeys(evs))
	require.JSONEq(t, `{"id":`+strconv.FormatInt(evs[1].ID, 10)+`,"type":"ObjectCreated:Post","bucketId":"priv","name":"kept"}`, n.Payload)
}

// TestSQLEventsAPIOperations: the SQL API's writes emit exactly the reference's event for each
// operation: uploads Post then Put (upsert of an existing row), with the uploadType of the door
// (storage.operation) and the request id; copies Copy (also onto an existing key); moves
// Removed:Move then Created:Move; deletes Removed:Delete.
func TestSQLEventsAPIOperations(t *testing.T) {
	t.Parallel()
	db := sqlObjDB(t)
	ctx := context.Background()
	// as runs sql as id under operation op with request id req, and commits.
	as := func(id proxy.Identity, op, req, sql string, args ...any) {
		t.Helper()
		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx)
		pre, pargs := proxy.Prelude(id, op)
		_, err = tx.Exec(ctx, pre, pargs...)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, `select set_config('storage.request_id', $1, true)`, req)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, sql, args...)
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
	}
	upload := func(op, req, name string, upsert bool) {
		t.Helper()
		var version string
		require.NoError(t, asRole(t, db, asService, true, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, sqlPrepareSQL, "priv", name, upsert, "text/plain", nil).Scan(&version, new(string))
		}))
		as(asService, op, req, sqlCommitSQL, "priv", name, version, upsert, nil)
	}
	upload("storage.object.upload", "r1", "k", false)
	upload("storage.object.upload", "r2", "k", true)
	upload("storage.s3.upload", "r3", "s3key", true)
	upload("storage.tus.upload.part", "r4", "k", true)
	as(asService, "storage.object.copy", "r5", `select storage.object_copy('priv', 'k', 'k2')`)
	as(asService, "storage.s3.object.copy", "r6", `select storage.object_copy('priv', 'k', 'k2', upsert => true)`)
	as(asService, "storage.object.move", "r7", `select storage.object_move('priv', 'k2', 'k3', 'pub')`)
	as(asService, "storage.object.delete", "", `select storage.object_delete('pub', 'k3')`)
	as(asService, "storage.object.delete_many", "r9", `select storage.object_delete_many('priv', array['s3key', 'k'])`)

	evs := sqlEventList(t, db, 0)
	require.Equal(t, []string{
		"ObjectCreated:Post priv/k",
		"ObjectCreated:Put priv/k",
		"ObjectCreated:Post priv/s3key",
		"ObjectCreated:Put priv/k",
		"ObjectCreated:Copy priv/k2",
		"ObjectCreated:Copy priv/k2",
		"ObjectRemoved:Move priv/k2",
		"ObjectCreated:Move pub/k3",
		"ObjectRemoved:Delete pub/k3",
		"ObjectRemoved:Delete priv/k",
		"ObjectRemoved:Delete priv/s3key",
	}, sqlEventKeys(evs))
	field := func(i int, k string) any { return evs[i].Payload[k] }
	require.Equal(t, []any{"standard", "r1"}, []any{field(0, "uploadType"), field(0, "reqId")})
	require.Equal(t, []any{"standard", "r2"}, []any{field(1, "uploadType"), field(1, "reqId")})
	require.Equal(t, []any{"s3", "r3"}, []any{field(2, "uploadType"), field(2, "reqId")})
	require.Equal(t, []any{"resumable", "r4"}, []any{field(3, "uploadType"), field(3, "reqId")})
	require.Equal(t, "r5", field(4, "reqId"))
	require.Equal(t, "s3", field(5, "uploadType"))
	require.Equal(t, map[string]any{"name": "k2", "bucketId": "priv", "version": *evs[5].Version, "reqId": "r7"}, field(7, "oldObject"))
	require.Equal(t, "r7", field(6, "reqId"))
	require.NotContains(t, evs[8].Payload, "reqId", "an empty request id is none")
	require.NotContains(t, evs[8].Payload, "uploadType")
	meta := field(1, "metadata").(map[string]any)
	require.Equal(t, []any{float64(5), "text/plain", `"5d41402abc4b2a76b9719d911017c592"`},
		[]any{meta["size"], meta["mimetype"], meta["eTag"]})
}

// TestSQLEventsAccess: request roles cannot read or write storage.events, but the service
// role reads them and sends them again (storage.events_replay, or an UPDATE of delivered_at);
// the dispatcher's functions are the server's alone.
func TestSQLEventsAccess(t *testing.T) {
	t.Parallel()
	db := sqlObjDB(t)
	ctx := context.Background()
	admin(t, db, `insert into storage.objects (bucket_id, name, version) values ('priv', 'a', 'v1'), ('priv', 'b', 'v2'), ('priv', 'c', 'v3')`)
	admin(t, db, `select storage_internal.events_delivered(array(select id from storage.events))`)
	evs := sqlEventList(t, db, 0)
	require.Len(t, evs, 3)
	for _, e := range evs {
		require.True(t, e.Delivered)
		require.Equal(t, 1, e.Attempts)
	}

	for _, id := range []proxy.Identity{asAnon, userA} {
		for _, q := range []string{
			`select count(*) from storage.events`,
			`update storage.events set delivered_at = null`,
			`delete from storage.events`,
			`insert into storage.events (type, bucket_id, name, payload) values ('ObjectCreated:Post', 'priv', 'x', '{}')`,
			`select storage.events_replay(0)`,
		} {
			requireSQLState(t, exec(t, db, id, q), "42501", "")
		}
	}
	for _, q := range []string{
		`delete from storage.events`,
		`insert into storage.events (type, bucket_id, name, payload) values ('ObjectCreated:Post', 'priv', 'x', '{}')`,
		`update storage.events set payload = '{}'`,
		`select storage_internal.events_next(10)`,
		`select storage_internal.events_delivered(array[1::bigint])`,
		`select storage_internal.events_prune(interval '0', 10)`,
		`select storage_internal.lease_take('events', 'me', interval '1 hour')`,
	} {
		requireSQLState(t, exec(t, db, asService, q), "42501", "")
	}

	var n int64
	require.NoError(t, asRole(t, db, asService, true, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `select count(*) from storage.events`).Scan(&n); err != nil {
			return err
		}
		require.Equal(t, int64(3), n)
		return tx.QueryRow(ctx, `select storage.events_replay($1, $2)`, evs[1].ID, evs[2].ID).Scan(&n)
	}))
	require.Equal(t, int64(2), n)
	got := sqlEventList(t, db, 0)
	require.Equal(t, []bool{true, false, false}, []bool{got[0].Delivered, got[1].Delivered, got[2].Delivered})
	require.NoError(t, exec(t, db, asService, `update storage.events set delivered_at = null where name = 'a'`))
	require.False(t, sqlEventList(t, db, 0)[0].Delivered)
	var ids []int64
	rows, err := db.Pool.Query(ctx, `select id from storage_internal.events_next(10)`)
	require.NoError(t, err)
	ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Equal(t, []int64{evs[0].ID, evs[1].ID, evs[2].ID}, ids, "replayed events wait again, in id order")
	rows, err = db.Pool.Query(ctx, `select id from storage_internal.events_next(10, array['priv'], array['b'])`)
	require.NoError(t, err)
	ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Equal(t, []int64{evs[0].ID, evs[2].ID}, ids, "an object waiting out a backoff is skipped")
}

// TestSQLEventsPrune: events older than the retention go, delivered or not, in batches; the
// count of undelivered ones lets the dispatcher warn.
func TestSQLEventsPrune(t *testing.T) {
	t.Parallel()
	db := sqlObjDB(t)
	ctx := context.Background()
	admin(t, db, `insert into storage.objects (bucket_id, name, version) values ('priv', 'a', 'v1'), ('priv', 'b', 'v2'), ('priv', 'c', 'v3')`)
	admin(t, db, `update storage.events set created_at = now() - interval '2 days' where name in ('a', 'b')`)
	admin(t, db, `select storage_internal.events_delivered(array(select id from storage.events where name = 'a'))`)
	// One per call with a batch of 1; the delivered and the undelivered one both go.
	var deleted, undelivered [3]int64
	for i := range deleted {
		require.NoError(t, db.Pool.QueryRow(ctx, `select * from storage_internal.events_prune(interval '1 day', 1)`).Scan(&deleted[i], &undelivered[i]))
	}
	require.Equal(t, [3]int64{1, 1, 0}, deleted)
	require.Equal(t, int64(1), undelivered[0]+undelivered[1]+undelivered[2])
	require.Equal(t, []string{"ObjectCreated:Post priv/c"}, sqlEventKeys(sqlEventList(t, db, 0)))
	var count int64
	require.NoError(t, db.Pool.QueryRow(ctx, `select undelivered from storage_internal.events_backlog()`).Scan(&count))
	require.Equal(t, int64(1), count)
}

// TestSQLEventsLargeStatement: a statement changing more rows than fit in one jsonb value (its
// events' payloads come to 260 MiB here, over PostgreSQL's 256 MiB limit for a jsonb array)
// still succeeds and records every event, on insert and delete (update's trigger is built the
// same way): the triggers stream their rows.
func TestSQLEventsLargeStatement(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	exec := func(sql string) int64 {
		t.Helper()
		tag, err := db.Pool.Exec(ctx, sql)
		require.NoError(t, err, sql)
		return tag.RowsAffected()
	}
	exec(`insert into storage.buckets (id, name) values ('big', 'big')`)
	require.Equal(t, int64(260), exec(`insert into storage.objects (bucket_id, name, metadata)
		select 'big', 'k' || i, jsonb_build_object('pad', repeat('x', 1 << 20)) from generate_series(1, 260) i`))
	require.Equal(t, int64(260), exec(`delete from storage.objects where bucket_id = 'big'`))
	var counts []string
	rows, err := db.Pool.Query(ctx, `select type || ' ' || count(*) from storage.events where bucket_id = 'big' group by type order by type`)
	require.NoError(t, err)
	counts, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"ObjectCreated:Post 260", "ObjectRemoved:Delete 260"}, counts)
}
