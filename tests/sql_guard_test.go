package tests

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/proxy"
	"github.com/pgstorage/storage/tests/testdb"
)

// guardDB is a private bucket "priv" with the README's folder-per-user policies (each user
// reads, writes and updates only the folder named after their sub), userB's secret in
// B/secret.txt (version vB) and userA's own object in A/mine.txt (version vA).
func guardDB(t *testing.T) *testdb.DB {
	t.Helper()
	db := sqlObjDB(t)
	admin(t, db, `
		create policy own_read on storage.objects for select to authenticated
		  using ((storage.foldername(name))[1] = (select auth.uid())::text);
		create policy own_insert on storage.objects for insert to authenticated
		  with check ((storage.foldername(name))[1] = (select auth.uid())::text);
		create policy own_update on storage.objects for update to authenticated
		  using ((storage.foldername(name))[1] = (select auth.uid())::text);`)
	sqlObjInsert(t, db, "priv", userB.Sub+"/secret.txt", userB.Sub, "vB")
	sqlObjInsert(t, db, "priv", userA.Sub+"/mine.txt", userA.Sub, "vA")
	return db
}

// TestSQLObjectVersionGuard is the regression for hardening finding 1: an authenticated user
// whose policies let them insert or update rows in their own folder set a row's version to
// another user's object's version and downloaded that object's bytes under their own key. A
// row may now take a version only from an upload in flight for its key or from a row its
// writer may read; nothing else, whatever the writer's INSERT and UPDATE policies allow.
func TestSQLObjectVersionGuard(t *testing.T) {
	t.Parallel()
	a := userA.Sub + "/"

	t.Run("ForgedOrStolenVersionsRefused", func(t *testing.T) {
		t.Parallel()
		db := guardDB(t)
		for _, stmt := range []string{
			// Pointing one's own row at the victim's bytes (the reproduction).
			`update storage.objects set version = 'vB' where name = '` + a + `mine.txt'`,
			`insert into storage.objects (bucket_id, name, owner_id, version) values ('priv', '` + a + `stolen', '` + userA.Sub + `', 'vB')`,
			// Made-up versions: bytes no one uploaded, or someone's never shown.
			`insert into storage.objects (bucket_id, name, owner_id, version) values ('priv', '` + a + `x', '` + userA.Sub + `', 'made-up')`,
			`update storage.objects set version = 'made-up' where name = '` + a + `mine.txt'`,
			// Dropping one's bytes without dropping the row, or rewriting what they are.
			`update storage.objects set version = null where name = '` + a + `mine.txt'`,
			`update storage.objects set metadata = '{"size":1000000,"mimetype":"text/html"}' where name = '` + a + `mine.txt'`,
		} {
			requireSQLState(t, exec(t, db, userA, stmt), "42501", "")
		}
		require.Equal(t, []string{"vA", "vB"}, sqlObjCol(t, db, `select version from storage.objects order by version`))
		// The service role reads everything, but still cannot invent bytes.
		requireSQLState(t, exec(t, db, asService, `update storage.objects set version = 'made-up' where name = '`+a+`mine.txt'`), "42501", "")
		require.NoError(t, exec(t, db, asService, `update storage.objects set version = 'vB' where name = '`+a+`mine.txt'`))
		// The tables' owner (a DBA) may repair rows by hand.
		admin(t, db, `update storage.objects set version = 'repaired' where name = $1`, a+"mine.txt")
	})

	t.Run("OwnUploadInFlightAndReadableBytes", func(t *testing.T) {
		t.Parallel()
		db := guardDB(t)
		// An upload userA prepared for a key: its version may go to that key only.
		v, _, err := sqlPrep(t, db, userA, "priv", a+"new.txt", false, "text/plain", nil)
		require.NoError(t, err)
		requireSQLState(t, exec(t, db, userA, `insert into storage.objects (bucket_id, name, owner_id, version)
			values ('priv', $1, $2, $3)`, a+"elsewhere.txt", userA.Sub, v), "42501", "")
		require.NoError(t, exec(t, db, userA, `insert into storage.objects (bucket_id, name, owner_id, version, metadata)
			values ('priv', $1, $2, $3, '{"size":3}')`, a+"new.txt", userA.Sub, v))
		// Bytes userA may read: a copy, as storage.object_copy makes, described alike (the
		// size and ETag are the bytes'; their type and caching are the writer's).
		requireSQLState(t, exec(t, db, userA, `insert into storage.objects (bucket_id, name, owner_id, version, metadata)
			values ('priv', $1, $2, 'vA', '{"size":1000}')`, a+"copy.txt", userA.Sub), "42501", "")
		require.NoError(t, exec(t, db, userA, `insert into storage.objects (bucket_id, name, owner_id, version, metadata)
			values ('priv', $1, $2, 'vA', '{"size":1}')`, a+"copy.txt", userA.Sub))
		require.NoError(t, exec(t, db, userA, `update storage.objects set metadata = '{"size":1,"mimetype":"text/plain"}' where name = $1`,
			a+"copy.txt"))
		// Renames and user metadata keep the bytes: allowed.
		require.NoError(t, exec(t, db, userA, `update storage.objects set name = $1, user_metadata = '{"k":1}' where name = $2`,
			a+"renamed.txt", a+"copy.txt"))
		// A row without bytes (as storage-js's folder placeholders were once made).
		require.NoError(t, exec(t, db, userA, `insert into storage.objects (bucket_id, name, owner_id) values ('priv', $1, $2)`,
			a+"empty", userA.Sub))
		require.Equal(t, []string{
			userB.Sub + "/secret.txt vB", userA.Sub + "/empty <null>", userA.Sub + "/mine.txt vA",
			userA.Sub + "/new.txt " + v, userA.Sub + "/renamed.txt vA",
		}, sqlObjCol(t, db, `select name || ' ' || coalesce(version, '<null>') from storage.objects order by name collate "C"`))
	})

	t.Run("CopyOfHiddenObjectRefused", func(t *testing.T) {
		t.Parallel()
		db := guardDB(t)
		_, err := sqlObjQuery(t, db, userA, true, `select id::text from storage.object_copy('priv', $1, $2)`,
			userB.Sub+"/secret.txt", a+"stolen.txt")
		requireSQLState(t, err, "ST002", "Object not found")
		_, err = sqlObjQuery(t, db, userA, true, `select id::text from storage.object_copy('priv', $1, $2)`,
			a+"mine.txt", a+"copy.txt")
		require.NoError(t, err)
	})
}

// TestSQLCallStackCannotBeForged: the SECURITY DEFINER helpers read their caller from the
// PL/pgSQL call stack. SQL a caller writes shows up there as its own frame, whatever text it
// holds, and a look-alike function outside the storage schemas does not pass for the real one.
func TestSQLCallStackCannotBeForged(t *testing.T) {
	t.Parallel()
	db := guardDB(t)
	ctx := context.Background()
	victim := sqlObjCol(t, db, `select id::text from storage.objects where name = $1`, userB.Sub+"/secret.txt")[0]

	// A DO block whose statement text carries what a genuine frame of object_copy looks like.
	forged := `do $$ declare o storage.objects; begin
		select * into o from storage_internal.object_share_lock('` + victim + `'::uuid /*
PL/pgSQL function storage.object_copy(text,text,text,text,boolean,boolean,jsonb,jsonb) line 30 at assignment
*/); raise notice 'got %', o.version; end $$`
	for _, id := range []proxy.Identity{asAnon, userA, asService} {
		requireSQLState(t, exec(t, db, id, forged), "42501", "storage_internal.object_share_lock may only be called by storage.object_copy")
	}
	// Nothing was locked: another session takes the row at once.
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `select from storage.objects where id = $1 for update nowait`, victim)
	require.NoError(t, err)
	require.NoError(t, tx.Rollback(ctx))

	// A function named like the API function, found first on the search_path (the owner can
	// create one; so could any role with CREATE on a schema).
	admin(t, db, `create function public.object_copy(id uuid) returns text language plpgsql as $f$
		declare o storage.objects; begin o := storage_internal.object_share_lock(id); return o.version; end $f$`)
	err = asRole(t, db, userA, false, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `set local search_path = public, storage`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `select public.object_copy($1::uuid)`, victim)
		return err
	})
	requireSQLState(t, err, "42501", "storage_internal.object_share_lock may only be called by storage.object_copy")

	// With the real object_copy on a search_path that names storage (so PostgreSQL prints its
	// frame unqualified) the API still works — unless a look-alike exists, as here, which
	// refuses it rather than risk the impostor.
	admin(t, db, `drop function public.object_copy(uuid)`)
	err = asRole(t, db, userA, false, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `set local search_path = storage, public`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `select object_copy('priv', $1, $2)`, userA.Sub+"/mine.txt", userA.Sub+"/copy.txt")
		return err
	})
	require.NoError(t, err)
}
