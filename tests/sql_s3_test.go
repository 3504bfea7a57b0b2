package tests

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/proxy"
	"github.com/pgstorage/storage/tests/testdb"
)

// The S3 door's own SQL shapes as SQL callers use them, always through the production prelude
// (asRole): storage.s3_list_objects (ListObjects v1/v2), storage.s3_delete_objects
// (DeleteObjects) with its SECURITY DEFINER helper, and storage.s3_delete_object. Rows are set
// up as the tables' owner; listing never reads a blob.

// s3ListArgs are storage.s3_list_objects' arguments; nil delimiter and after are SQL NULL.
type s3ListArgs struct {
	bucket, prefix   string
	delimiter, after *string
	max              int
}

func s3List(bucket string) s3ListArgs { return s3ListArgs{bucket: bucket, max: 1001} }

func (a s3ListArgs) in(prefix string) s3ListArgs { a.prefix = prefix; return a }
func (a s3ListArgs) delim(d string) s3ListArgs   { a.delimiter = &d; return a }
func (a s3ListArgs) startAt(s string) s3ListArgs { a.after = &s; return a }
func (a s3ListArgs) limit(n int) s3ListArgs      { a.max = n; return a }
func (a s3ListArgs) String() string {
	return fmt.Sprintf("%+v", struct{ B, P, D, A any }{a.bucket, a.prefix, deref(a.delimiter), deref(a.after)})
}
func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

const s3ListSQL = `select name, is_prefix, updated_at is not null, metadata is not null
	from storage.s3_list_objects(bucket_id => $1, prefix => $2, delimiter => $3, start_after => $4, max_keys => $5)`

// s3ListRows calls storage.s3_list_objects as id and renders each row as "k:<key>" or
// "p:<common prefix>", asserting that keys carry their update time and metadata and common
// prefixes neither.
func s3ListRows(t *testing.T, db *testdb.DB, id proxy.Identity, a s3ListArgs) ([]string, error) {
	t.Helper()
	out := []string{}
	err := asRole(t, db, id, false, func(tx pgx.Tx) error {
		rows, err := tx.Query(context.Background(), s3ListSQL, a.bucket, a.prefix, a.delimiter, a.after, a.max)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var isPrefix, hasTime, hasMeta bool
			if err := rows.Scan(&name, &isPrefix, &hasTime, &hasMeta); err != nil {
				return err
			}
			if isPrefix {
				require.False(t, hasTime || hasMeta, "common prefix %q carries a time or metadata", name)
				out = append(out, "p:"+name)
			} else {
				require.True(t, hasTime && hasMeta, "key %q lacks its time or metadata", name)
				out = append(out, "k:"+name)
			}
		}
		return rows.Err()
	})
	return out, err
}

func s3ListAs(t *testing.T, db *testdb.DB, id proxy.Identity, a s3ListArgs) []string {
	t.Helper()
	got, err := s3ListRows(t, db, id, a)
	require.NoError(t, err, "%v", a)
	return got
}

// TestSQLS3ListObjects: storage.s3_list_objects over the S3 spec's fixture F (§8 listing
// assertions) and buckets made for delimiters other than '/'.
func TestSQLS3ListObjects(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	admin(t, db, `insert into storage.buckets (id, name) values ('f', 'f'), ('p', 'p'), ('dash', 'dash'), ('dot', 'dot'), ('multi', 'multi'), ('empty', 'empty')`)
	listInsert(t, db, "f", "a.txt", "b.txt", "c/1.txt", "c/2.txt", "d/x/y.txt", "e.txt")
	listInsert(t, db, "p", "p/a/leaf", "p/b/leaf", "p/c/leaf")
	listInsert(t, db, "dash", "x", "x-1-a", "x-1-b", "x-2", "y-", "z")
	listInsert(t, db, "dot", "a.txt", "a.b.c", "b", "c.d/e")
	listInsert(t, db, "multi", "a::b::c", "a::d", "a:e", "b")

	for _, c := range []struct {
		args s3ListArgs
		want []string
	}{
		// Fixture F without a delimiter: every key, in byte order; max_keys bounds the page
		// and start_after resumes strictly after a key (§8 assertion 63).
		{s3List("f"), []string{"k:a.txt", "k:b.txt", "k:c/1.txt", "k:c/2.txt", "k:d/x/y.txt", "k:e.txt"}},
		{s3List("f").limit(2), []string{"k:a.txt", "k:b.txt"}},
		{s3List("f").limit(2).startAt("b.txt"), []string{"k:c/1.txt", "k:c/2.txt"}},
		{s3List("f").startAt("c/2.txt"), []string{"k:d/x/y.txt", "k:e.txt"}},
		{s3List("f").limit(0), []string{}},
		// Without a delimiter, a start_after naming a prefix skips nothing.
		{s3List("f").startAt("c"), []string{"k:c/1.txt", "k:c/2.txt", "k:d/x/y.txt", "k:e.txt"}},
		// A start_after before the prefix starts at the prefix.
		{s3List("f").in("c/").startAt("a"), []string{"k:c/1.txt", "k:c/2.txt"}},
		{s3List("f").in("c/").startAt("zzz"), []string{}},
		// Raw, case-sensitive prefixes.
		{s3List("f").in("c/"), []string{"k:c/1.txt", "k:c/2.txt"}},
		{s3List("f").in("C/"), []string{}},
		{s3List("f").in("d/x/y.txt"), []string{"k:d/x/y.txt"}},
		// With '/': common prefixes at their sort position (64), each one entry of the page.
		{s3List("f").delim("/"), []string{"k:a.txt", "k:b.txt", "p:c/", "p:d/", "k:e.txt"}},
		{s3List("f").delim("/").limit(3), []string{"k:a.txt", "k:b.txt", "p:c/"}},
		{s3List("f").delim("/").in("d/"), []string{"p:d/x/"}},
		{s3List("f").delim("/").in("c"), []string{"p:c/"}},
		// 68: resuming after a key, and after a common prefix named with its delimiter (what
		// the door's markers and tokens carry, as AWS's NextMarker), which skips the whole
		// group; a name without the delimiter is a key like any other (the reference skips the
		// group then, which lists keys such as "c.txt" again after the page that ended on "c/").
		{s3List("f").delim("/").startAt("a.txt").limit(2), []string{"k:b.txt", "p:c/"}},
		{s3List("f").delim("/").startAt("c/").limit(2), []string{"p:d/", "k:e.txt"}},
		{s3List("f").delim("/").startAt("d/"), []string{"k:e.txt"}},
		{s3List("f").delim("/").startAt("c").limit(2), []string{"p:c/", "p:d/"}},
		// 65: a start_after inside a group still lists the groups after it.
		{s3List("p").delim("/").in("p/").startAt("p/a/zzzzz"), []string{"p:p/b/", "p:p/c/"}},
		{s3List("p").delim("/").in("p/").startAt("p/a"), []string{"p:p/a/", "p:p/b/", "p:p/c/"}},
		{s3List("p").delim("/").in("p/").startAt("p/a/"), []string{"p:p/b/", "p:p/c/"}},
		{s3List("p").delim("/").in("p/").startAt("p/b/"), []string{"p:p/c/"}},
		{s3List("p").delim("/"), []string{"p:p/"}},
		// '-': common prefixes end in the delimiter itself (the reference's end in '/'), a
		// key ending in the delimiter is a group of its own, and the prefix is raw.
		{s3List("dash").delim("-"), []string{"k:x", "p:x-", "p:y-", "k:z"}},
		{s3List("dash").delim("-").in("x-"), []string{"p:x-1-", "k:x-2"}},
		{s3List("dash").delim("-").in("x-1-"), []string{"k:x-1-a", "k:x-1-b"}},
		{s3List("dash").delim("-").in("x-1"), []string{"p:x-1-"}},
		{s3List("dash").delim("-").limit(2), []string{"k:x", "p:x-"}},
		// A start_after naming a group with its delimiter skips the group; one inside the
		// group lists it again, since keys after start_after fall in it (as S3 does).
		{s3List("dash").delim("-").startAt("x-"), []string{"p:y-", "k:z"}},
		{s3List("dash").delim("-").startAt("x"), []string{"p:x-", "p:y-", "k:z"}},
		{s3List("dash").delim("-").in("x-").startAt("x-1"), []string{"p:x-1-", "k:x-2"}},
		{s3List("dash").delim("-").in("x-").startAt("x-1-"), []string{"k:x-2"}},
		{s3List("dash").delim("-").startAt("x-1-a"), []string{"p:x-", "p:y-", "k:z"}},
		{s3List("dash").delim("-").startAt("x-2"), []string{"p:y-", "k:z"}},
		{s3List("dash").delim("-").startAt("y-"), []string{"k:z"}},
		// '.': groups end in '.'.
		{s3List("dot").delim("."), []string{"p:a.", "k:b", "p:c."}},
		{s3List("dot").delim(".").in("a."), []string{"p:a.b.", "k:a.txt"}},
		// A delimiter of several characters.
		{s3List("multi").delim("::"), []string{"p:a::", "k:a:e", "k:b"}},
		{s3List("multi").delim("::").in("a::"), []string{"p:a::b::", "k:a::d"}},
		{s3List("multi").delim("::").startAt("a::"), []string{"k:a:e", "k:b"}},
		// An empty delimiter is none.
		{s3List("dash").delim(""), []string{"k:x", "k:x-1-a", "k:x-1-b", "k:x-2", "k:y-", "k:z"}},
		{s3List("empty").delim("/"), []string{}},
	} {
		require.Equal(t, c.want, s3ListAs(t, db, asService, c.args), "%v", c.args)
	}

	// A missing bucket is ST001 (the bucket is looked up whatever the caller's policies); a
	// name no bucket can have is ST006.
	for _, id := range []proxy.Identity{asService, asAnon, userA} {
		_, err := s3ListRows(t, db, id, s3List("nob"))
		requireSQLState(t, err, "ST001", "Bucket not found")
		_, err = s3ListRows(t, db, id, s3List("nob").delim("/"))
		requireSQLState(t, err, "ST001", "Bucket not found")
	}
	_, err := s3ListRows(t, db, asService, s3List("a/b"))
	requireSQLState(t, err, "ST006", "Bucket name invalid")
}

// TestSQLS3ListObjectsRLS: the caller's SELECT policies decide what is listed; rows they hide
// are neither listed nor folded into a common prefix.
func TestSQLS3ListObjectsRLS(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	admin(t, db, `insert into storage.buckets (id, name, public) values ('r', 'r', false), ('pub', 'pub', true)`)
	keys := []string{"mixed/hidden", "mixed/shown", "open/1", "open/2", "secret/1", "secret/2", "top-hidden", "top-shown"}
	listInsert(t, db, "r", keys...)
	listInsert(t, db, "pub", keys...)
	admin(t, db, `create policy s3list_anon on storage.objects for select to anon
		using (bucket_id = 'r' and name not like '%hidden' and name not like 'secret/%')`)

	all := []string{"k:mixed/hidden", "k:mixed/shown", "k:open/1", "k:open/2", "k:secret/1", "k:secret/2", "k:top-hidden", "k:top-shown"}
	require.Equal(t, all, s3ListAs(t, db, asService, s3List("r")))
	require.Equal(t, []string{"p:mixed/", "p:open/", "p:secret/", "k:top-hidden", "k:top-shown"}, s3ListAs(t, db, asService, s3List("r").delim("/")))

	require.Equal(t, []string{"k:mixed/shown", "k:open/1", "k:open/2", "k:top-shown"}, s3ListAs(t, db, asAnon, s3List("r")))
	require.Equal(t, []string{"p:mixed/", "p:open/", "k:top-shown"}, s3ListAs(t, db, asAnon, s3List("r").delim("/")))
	require.Equal(t, []string{"k:mixed/shown"}, s3ListAs(t, db, asAnon, s3List("r").in("mixed/")))
	require.Equal(t, []string{}, s3ListAs(t, db, asAnon, s3List("r").in("secret/")))
	require.Equal(t, []string{}, s3ListAs(t, db, asAnon, s3List("r").in("secret/").delim("/")))
	require.Equal(t, []string{"p:open/", "k:top-shown"}, s3ListAs(t, db, asAnon, s3List("r").delim("/").startAt("mixed/")))
	// A page is counted in visible entries.
	require.Equal(t, []string{"p:mixed/", "p:open/"}, s3ListAs(t, db, asAnon, s3List("r").delim("/").limit(2)))

	// No policy for the role: an empty listing, not an error, public bucket or not.
	for _, b := range []string{"r", "pub"} {
		require.Equal(t, []string{}, s3ListAs(t, db, userA, s3List(b)))
		require.Equal(t, []string{}, s3ListAs(t, db, userA, s3List(b).delim("/")))
	}
	require.Equal(t, []string{}, s3ListAs(t, db, asAnon, s3List("pub").delim("/")))
}

// TestSQLS3ListObjectsFlatCost: a page of storage.s3_list_objects reads about a page of rows
// out of a bucket of 20,000 (beside another of 20,000), with a delimiter and without, first
// page or deep, as the service role and under a policy. The backend's table statistics, read
// before and after the call in its transaction, count the rows it read of storage.objects.
func TestSQLS3ListObjectsFlatCost(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	admin(t, db, `insert into storage.buckets (id, name) values ('big', 'big'), ('other', 'other')`)
	// 200 folders of 100 keys each, and as many in another bucket. Inserted as the superuser
	// with triggers off (session_replication_role): the per-row guard would take most of the
	// test's time checking names that are valid anyway.
	super, err := pgx.Connect(ctx, db.SuperURL)
	require.NoError(t, err)
	defer super.Close(ctx)
	tx, err := super.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `set local session_replication_role = replica`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `insert into storage.objects (bucket_id, name, version, metadata)
		select b, 'dir-' || lpad((i / 100)::text, 3, '0') || '/file-' || lpad((i % 100)::text, 3, '0'), b || i, '{"size": 1}'
		from generate_series(0, 19999) i, unnest(array['big', 'other']) b`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	admin(t, db, `analyze storage.objects`)
	admin(t, db, `create policy s3cost_anon on storage.objects for select to anon using (bucket_id = 'big')`)

	const rowsReadSQL = `select coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0), coalesce(seq_scan, 0)
		from pg_stat_xact_user_tables where relid = 'storage.objects'::regclass`
	for _, c := range []struct {
		name  string
		args  s3ListArgs
		first string
	}{
		{"keys, first page", s3List("big").limit(101), "k:dir-000/file-000"},
		{"keys, deep page", s3List("big").limit(101).startAt("dir-150/file-049"), "k:dir-150/file-050"},
		{"keys under a prefix", s3List("big").in("dir-120/").limit(101), "k:dir-120/file-000"},
		{"folders, first page", s3List("big").delim("/").limit(101), "p:dir-000/"},
		{"folders, deep page", s3List("big").delim("/").limit(101).startAt("dir-098/"), "p:dir-099/"},
		{"folders under a prefix", s3List("big").in("dir-1").delim("/").limit(101), "p:dir-100/"},
	} {
		for _, id := range []proxy.Identity{asService, asAnon} {
			var before, after, scansBefore, scansAfter int64
			var got []string
			err := asRole(t, db, id, false, func(tx pgx.Tx) error {
				if err := tx.QueryRow(ctx, rowsReadSQL).Scan(&before, &scansBefore); err != nil {
					return err
				}
				rows, err := tx.Query(ctx, s3ListSQL, c.args.bucket, c.args.prefix, c.args.delimiter, c.args.after, c.args.max)
				if err != nil {
					return err
				}
				for rows.Next() {
					var name string
					var isPrefix, hasTime, hasMeta bool
					if err := rows.Scan(&name, &isPrefix, &hasTime, &hasMeta); err != nil {
						return err
					}
					if isPrefix {
						name = "p:" + name
					} else {
						name = "k:" + name
					}
					got = append(got, name)
				}
				if err := rows.Err(); err != nil {
					return err
				}
				return tx.QueryRow(ctx, rowsReadSQL).Scan(&after, &scansAfter)
			})
			require.NoError(t, err, c.name)
			require.NotEmpty(t, got, c.name)
			require.Equal(t, c.first, got[0], "%s as %s", c.name, id.Role)
			require.LessOrEqual(t, len(got), 101, c.name)
			require.Equal(t, scansBefore, scansAfter, "%s as %s: sequential scans of storage.objects", c.name, id.Role)
			require.LessOrEqual(t, after-before, int64(150), "%s as %s: rows of storage.objects read for a page of %d", c.name, id.Role, len(got))
		}
	}
}

// TestSQLS3DeleteObjects: storage.s3_delete_objects answers for every name given, in order:
// gone (deleted, or never there) or kept (there, but the caller may not delete it).
func TestSQLS3DeleteObjects(t *testing.T) {
	t.Parallel()
	const delSQL = `select name || '=' || deleted::text from storage.s3_delete_objects(bucket_id => $1, names => $2)`
	db := sqlObjDB(t)
	admin(t, db, `create policy s3del_sel on storage.objects for select to authenticated
			using (owner_id = (select auth.uid())::text or name = 'visible');
		create policy s3del_del on storage.objects for delete to authenticated using (owner_id = (select auth.uid())::text)`)
	sqlObjInsert(t, db, "priv", "a1", userA.Sub, "va1")
	sqlObjInsert(t, db, "priv", "a2", userA.Sub, "va2")
	sqlObjInsert(t, db, "priv", "b1", userB.Sub, "vb1")
	sqlObjInsert(t, db, "priv", "visible", userB.Sub, "vvis")
	sqlObjInsert(t, db, "priv", "dir/x", userA.Sub, "vx")

	// userA: its own key goes (named twice: both answered), a missing key is gone, another's
	// key is kept whether userA can see it or not, a folder name is not a prefix.
	got, err := sqlObjQuery(t, db, userA, true, delSQL, "priv", []string{"a1", "missing", "b1", "visible", "a1", "dir"})
	require.NoError(t, err)
	require.Equal(t, []string{"a1=true", "missing=true", "b1=false", "visible=false", "a1=true", "dir=true"}, got)
	require.Equal(t, []string{"priv/a2", "priv/b1", "priv/dir/x", "priv/visible"}, sqlObjNames(t, db))
	require.Equal(t, []string{"va1 priv"}, sqlObjFreed(t, db), "the deleted row's blob is queued")

	// anon (no policies) deletes nothing and is told which keys exist, as the reference tells.
	got, err = sqlObjQuery(t, db, asAnon, true, delSQL, "priv", []string{"a2", "nothing"})
	require.NoError(t, err)
	require.Equal(t, []string{"a2=false", "nothing=true"}, got)

	// Keys are matched exactly: case, whitespace and LIKE characters are literal.
	got, err = sqlObjQuery(t, db, asService, false, delSQL, "priv", []string{"A2", " a2", "a_", "a%"})
	require.NoError(t, err)
	require.Equal(t, []string{"A2=true", " a2=true", "a_=true", "a%=true"}, got)
	require.Equal(t, []string{"priv/a2", "priv/b1", "priv/dir/x", "priv/visible"}, sqlObjNames(t, db))

	// The service role deletes whatever it names.
	got, err = sqlObjQuery(t, db, asService, true, delSQL, "priv", []string{"b1", "visible"})
	require.NoError(t, err)
	require.Equal(t, []string{"b1=true", "visible=true"}, got)
	require.Equal(t, []string{"priv/a2", "priv/dir/x"}, sqlObjNames(t, db))

	// A missing bucket: ST001 when nothing was there to delete; an existing bucket holding
	// none of the names answers them all as gone; no names, no rows.
	_, err = sqlObjQuery(t, db, userA, true, delSQL, "nob", []string{"a2"})
	requireSQLState(t, err, "ST001", "Bucket not found")
	got, err = sqlObjQuery(t, db, userA, true, delSQL, "pub", []string{"a2"})
	require.NoError(t, err)
	require.Equal(t, []string{"a2=true"}, got)
	got, err = sqlObjQuery(t, db, userA, true, delSQL, "priv", []string{})
	require.NoError(t, err)
	require.Empty(t, got)
	_, err = sqlObjQuery(t, db, userA, true, delSQL, "a/b", []string{"a2"})
	requireSQLState(t, err, "ST006", "Bucket name invalid")
}

// TestSQLS3DeleteObject: storage.s3_delete_object, DeleteObject's idempotent delete.
func TestSQLS3DeleteObject(t *testing.T) {
	t.Parallel()
	const delSQL = `select storage.s3_delete_object(bucket_id => $1, name => $2)::text`
	db := sqlObjDB(t)
	admin(t, db, `create policy s3del1_sel on storage.objects for select to authenticated using (true);
		create policy s3del1_del on storage.objects for delete to authenticated using (owner_id = (select auth.uid())::text)`)
	sqlObjInsert(t, db, "priv", "mine", userA.Sub, "vm")
	sqlObjInsert(t, db, "priv", "theirs", userB.Sub, "vt")

	_, err := sqlObjQuery(t, db, userA, true, delSQL, "priv", "mine")
	require.NoError(t, err)
	_, err = sqlObjQuery(t, db, userA, true, delSQL, "priv", "mine")
	require.NoError(t, err, "a missing key in an existing bucket is no error")
	_, err = sqlObjQuery(t, db, userA, true, delSQL, "priv", "theirs")
	requireSQLState(t, err, "ST011", "")
	_, err = sqlObjQuery(t, db, userA, true, delSQL, "nob", "mine")
	requireSQLState(t, err, "ST001", "Bucket not found")
	require.Equal(t, []string{"priv/theirs"}, sqlObjNames(t, db))
	require.Equal(t, []string{"vm priv"}, sqlObjFreed(t, db))
}

// TestSQLS3ObjectsExistingRefusesDirectCalls: storage_internal.objects_existing tells which
// names exist whatever the caller's policies, so it answers storage.s3_delete_objects only:
// called directly, from a DO block, or from a look-alike function, it refuses with 42501.
func TestSQLS3ObjectsExistingRefusesDirectCalls(t *testing.T) {
	t.Parallel()
	db := sqlObjDB(t)
	ctx := context.Background()
	sqlObjInsert(t, db, "priv", "secret", userB.Sub, "vs")
	const refusal = "storage_internal.objects_existing may only be called by storage.s3_delete_objects"

	for _, id := range []proxy.Identity{asAnon, userA, asService} {
		_, err := sqlObjQuery(t, db, id, false, `select storage_internal.objects_existing('priv', array['secret'])::text`)
		requireSQLState(t, err, "42501", refusal)
		requireSQLState(t, exec(t, db, id, `do $$ begin
			raise notice '%', storage_internal.objects_existing('priv', array['secret']); end $$`), "42501", refusal)
	}

	// A function named like the API function, first on the search_path.
	admin(t, db, `create function public.s3_delete_objects(bucket_id text, names text[]) returns text[]
		language plpgsql as $f$ declare r text[]; begin r := storage_internal.objects_existing(bucket_id, names); return r; end $f$`)
	err := asRole(t, db, asAnon, false, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `set local search_path = public, storage`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `select public.s3_delete_objects('priv', array['secret'])`)
		return err
	})
	requireSQLState(t, err, "42501", refusal)
	require.Equal(t, []string{"priv/secret"}, sqlObjNames(t, db))
}
