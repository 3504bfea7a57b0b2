package tests

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/proxy"
	"github.com/pgstorage/storage/tests/testdb"
)

// Listing as SQL callers use it: storage.object_list (list v1, spec §7.1) and
// storage.object_list_v2 (list v2, spec §7.2), always through the production prelude (asRole).
// The scene is set by inserting rows directly as the tables' owner: listing never reads blobs.
//
// Rows are rendered compactly so that whole listings compare exactly:
//   v1: "d:<name>" for a folder (id, timestamps and metadata all NULL), "f:<name>" for a file;
//   v2: "<name> key=<key>" ("key=-" when key is NULL); folders are the rows whose id is NULL.
// The renderers also assert the per-row invariants (folders all-NULL, files fully populated).

// listTree is the fixed tree most cases list (bucket "t").
var listTree = []string{
	"folder/a.txt",
	"folder/B.txt",
	"folder/c.txt",
	"folder/sub/x.txt",
	"folder/sub/deeper/y.txt",
	"folder/Sub2/z.txt",
	"folder/.emptyFolderPlaceholder",
	"public/abra.txt",
	"public/bravo.txt",
	"public/Brass/k.txt",
	"public/br/l.txt",
	"root.txt",
	// A raw (non-slash) prefix: "aal" matches aal.txt, aal/… and aalx.txt.
	"aal.txt",
	"aal/one.txt",
	"aal/two/three.txt",
	"aalx.txt",
	// % and _ are literal characters, never wildcards.
	"lit/a%b/1.txt",
	"lit/axb/2.txt",
	"lit/a_b/3.txt",
	"lit/ayb/4.txt",
	"lit/a%.txt",
	"lit/a_.txt",
	"lit/az.txt",
	"foo_bar.txt",
	"fooxbar.txt",
	// Empty path segments are stored and listed verbatim.
	"a///b.txt",
}

// sqlListDB returns a fresh database with a private bucket "t" holding listTree, a public
// bucket "pub" (empty) and a private bucket "empty".
func sqlListDB(t *testing.T) *testdb.DB {
	t.Helper()
	db := testdb.New(t)
	admin(t, db, `insert into storage.buckets (id, name, public) values ('t', 't', false), ('pub', 'pub', true), ('empty', 'empty', false)`)
	listInsert(t, db, "t", listTree...)
	return db
}

// listInsert inserts object rows as the tables' owner (no blob: listing never reads one).
func listInsert(t *testing.T, db *testdb.DB, bucket string, names ...string) {
	t.Helper()
	admin(t, db, `insert into storage.objects (bucket_id, name, metadata, version)
		select $1, n, jsonb_build_object('size', 1, 'mimetype', 'text/plain'), gen_random_uuid()::text from unnest($2::text[]) n`,
		bucket, names)
}

// listInsertAt inserts one row with explicit timestamps (and owner_id, "" for NULL).
func listInsertAt(t *testing.T, db *testdb.DB, bucket, name, ownerID string, created, updated, accessed time.Time) {
	t.Helper()
	admin(t, db, `insert into storage.objects (bucket_id, name, owner_id, metadata, version, created_at, updated_at, last_accessed_at)
		values ($1, $2, nullif($3, ''), '{"size":1}', gen_random_uuid()::text, $4, $5, $6)`,
		bucket, name, ownerID, created, updated, accessed)
}

// v1Args are storage.object_list's arguments, all passed explicitly (by name).
type v1Args struct {
	bucket, prefix string
	limit, offset  int
	search         string
	col, order     string
}

// v1 builds v1Args with the function's documented defaults.
func v1(bucket, prefix string) v1Args {
	return v1Args{bucket: bucket, prefix: prefix, limit: 100, col: "name", order: "asc"}
}

func (a v1Args) lim(l, o int) v1Args           { a.limit, a.offset = l, o; return a }
func (a v1Args) find(s string) v1Args          { a.search = s; return a }
func (a v1Args) sort(col, order string) v1Args { a.col, a.order = col, order; return a }

const v1Query = `select name, id::text, updated_at, created_at, last_accessed_at, metadata::text
	from storage.object_list(bucket_id => $1, prefix => $2, limits => $3, offsets => $4, search => $5,
	                         sort_column => $6, sort_order => $7)`

// v1Row is a row of storage.object_list.
type v1Row struct {
	Name                                 *string
	ID                                   *string
	UpdatedAt, CreatedAt, LastAccessedAt *time.Time
	Metadata                             *string
}

// listV1Rows calls storage.object_list as id and returns its rows.
func listV1Rows(t *testing.T, db *testdb.DB, id proxy.Identity, a v1Args) ([]v1Row, error) {
	t.Helper()
	return listRows[v1Row](t, db, id, v1Query, a.bucket, a.prefix, a.limit, a.offset, a.search, a.col, a.order)
}

func listRows[T any](t *testing.T, db *testdb.DB, id proxy.Identity, sql string, args ...any) ([]T, error) {
	t.Helper()
	var out []T
	err := asRole(t, db, id, false, func(tx pgx.Tx) error {
		rows, err := tx.Query(context.Background(), sql, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowToStructByPos[T])
		return err
	})
	return out, err
}

// renderV1 renders v1 rows as "d:<name>" / "f:<name>", asserting that a folder has id,
// timestamps and metadata all NULL and a file has them all set.
func renderV1(t *testing.T, rows []v1Row) []string {
	t.Helper()
	out := []string{}
	for _, r := range rows {
		require.NotNil(t, r.Name, "a listed row without a name: %+v", r)
		if r.ID == nil {
			require.True(t, r.UpdatedAt == nil && r.CreatedAt == nil && r.LastAccessedAt == nil && r.Metadata == nil,
				"folder %q must have id, updated_at, created_at, last_accessed_at and metadata all NULL (spec §7.1): %+v", *r.Name, r)
			require.False(t, strings.HasSuffix(*r.Name, "/"), "v1 folder names carry no trailing slash (spec §11 item 77): %q", *r.Name)
			out = append(out, "d:"+*r.Name)
			continue
		}
		require.True(t, r.UpdatedAt != nil && r.CreatedAt != nil && r.LastAccessedAt != nil && r.Metadata != nil,
			"file %q must carry its timestamps and metadata: %+v", *r.Name, r)
		out = append(out, "f:"+*r.Name)
	}
	return out
}

// listV1 is storage.object_list as id, rendered; it must not fail.
func listV1(t *testing.T, db *testdb.DB, id proxy.Identity, a v1Args) []string {
	t.Helper()
	rows, err := listV1Rows(t, db, id, a)
	require.NoError(t, err, "object_list%+v", a)
	return renderV1(t, rows)
}

// v2Args are storage.object_list_v2's arguments, all passed explicitly (by name).
type v2Args struct {
	bucket, prefix string
	limit          int
	startAfter     *string
	delimiter      bool
	col, order     string
	startAfterTime *time.Time
}

// v2 builds v2Args with the function's documented defaults.
func v2(bucket, prefix string) v2Args {
	return v2Args{bucket: bucket, prefix: prefix, limit: 1000, col: "name", order: "asc"}
}

func (a v2Args) delim() v2Args                 { a.delimiter = true; return a }
func (a v2Args) lim(l int) v2Args              { a.limit = l; return a }
func (a v2Args) after(s string) v2Args         { a.startAfter = &s; return a }
func (a v2Args) sort(col, order string) v2Args { a.col, a.order = col, order; return a }
func (a v2Args) afterAt(s string, ts time.Time) v2Args {
	a.startAfter, a.startAfterTime = &s, &ts
	return a
}

const v2Query = `select key, name, id::text, updated_at, created_at, last_accessed_at, metadata::text
	from storage.object_list_v2(bucket_id => $1, prefix => $2, limits => $3, start_after => $4,
	                            with_delimiter => $5, sort_column => $6, sort_order => $7, start_after_time => $8)`

// v2Row is a row of storage.object_list_v2.
type v2Row struct {
	Key                                  *string
	Name                                 *string
	ID                                   *string
	UpdatedAt, CreatedAt, LastAccessedAt *time.Time
	Metadata                             *string
}

func listV2Rows(t *testing.T, db *testdb.DB, id proxy.Identity, a v2Args) ([]v2Row, error) {
	t.Helper()
	return listRows[v2Row](t, db, id, v2Query, a.bucket, a.prefix, a.limit, a.startAfter, a.delimiter, a.col, a.order, a.startAfterTime)
}

// renderV2 renders v2 rows as "<name> key=<key>" and asserts the row invariants of spec
// §7.2: a folder (id NULL) only with the delimiter, its name ending in "/", metadata NULL and
// (under name sorting) its timestamps NULL; an object fully populated; key NULL without the
// delimiter.
func renderV2(t *testing.T, a v2Args, rows []v2Row) []string {
	t.Helper()
	out := []string{}
	for _, r := range rows {
		require.NotNil(t, r.Name, "a listed row without a name: %+v", r)
		name := *r.Name
		key := "-"
		if r.Key != nil {
			key = *r.Key
		}
		if !a.delimiter {
			require.Nil(t, r.Key, "without the delimiter key is NULL: %q", name)
		}
		if r.ID == nil {
			require.True(t, a.delimiter, "folders are listed only with the delimiter: %q", name)
			require.True(t, strings.HasSuffix(name, "/"), "a v2 folder's name ends in '/' (spec §7.2): %q", name)
			require.Nil(t, r.Metadata, "folder %q has NULL metadata", name)
			if a.col == "name" {
				require.True(t, r.UpdatedAt == nil && r.CreatedAt == nil && r.LastAccessedAt == nil,
					"folder %q has NULL timestamps under name sorting (spec §7.2): %+v", name, r)
			}
		} else {
			require.True(t, r.UpdatedAt != nil && r.CreatedAt != nil && r.LastAccessedAt != nil && r.Metadata != nil,
				"object %q must carry its timestamps and metadata: %+v", name, r)
		}
		out = append(out, name+" key="+key)
	}
	return out
}

// listV2 is storage.object_list_v2 as id, rendered; it must not fail.
func listV2(t *testing.T, db *testdb.DB, id proxy.Identity, a v2Args) []string {
	t.Helper()
	rows, err := listV2Rows(t, db, id, a)
	require.NoError(t, err, "object_list_v2%+v", a)
	return renderV2(t, a, rows)
}

// listV2Names is listV2 reduced to the names (for cases that do not pin keys).
func listV2Names(t *testing.T, db *testdb.DB, id proxy.Identity, a v2Args) []string {
	t.Helper()
	out := []string{}
	for _, r := range listV2(t, db, id, a) {
		name, _, _ := strings.Cut(r, " key=")
		out = append(out, name)
	}
	return out
}

func reversed(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

// keysOnly renders names without the delimiter: "<name> key=-" each.
func keysOnly(names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n + " key=-"
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// v1: storage.object_list.

func TestSQLListV1(t *testing.T) {
	t.Parallel()
	db := sqlListDB(t)

	// The folder/ level: files and folders interleaved by lower(name) in byte order, so
	// ".emptyFolderPlaceholder" < "a.txt" < "B.txt" < "c.txt" < "sub" < "Sub2" (byte order of
	// the names themselves would put "B.txt" and "Sub2" first).
	folderLevel := []string{"f:.emptyFolderPlaceholder", "f:a.txt", "f:B.txt", "f:c.txt", "d:sub", "d:Sub2"}

	t.Run("PrefixWithAndWithoutSlash", func(t *testing.T) {
		t.Parallel()
		// Spec §7.1 / §11 item 77: a prefix without "/" gets one; names are relative to it.
		require.Equal(t, folderLevel, listV1(t, db, asService, v1("t", "folder")))
		require.Equal(t, folderLevel, listV1(t, db, asService, v1("t", "folder/")))
		require.Equal(t, []string{"d:deeper", "f:x.txt"}, listV1(t, db, asService, v1("t", "folder/sub")))
		require.Equal(t, []string{"f:y.txt"}, listV1(t, db, asService, v1("t", "folder/sub/deeper/")))
		// "fold" is the folder "fold/", which does not exist: not a raw string prefix.
		require.Equal(t, []string{}, listV1(t, db, asService, v1("t", "fold")))
		require.Equal(t, []string{}, listV1(t, db, asService, v1("t", "folder/a.txt")))
	})

	t.Run("Root", func(t *testing.T) {
		t.Parallel()
		want := []string{"d:a", "d:aal", "f:aal.txt", "f:aalx.txt", "d:folder", "f:foo_bar.txt", "f:fooxbar.txt", "d:lit", "d:public", "f:root.txt"}
		require.Equal(t, want, listV1(t, db, asService, v1("t", "")))
		require.Equal(t, reversed(want), listV1(t, db, asService, v1("t", "").sort("name", "desc")))
	})

	t.Run("CaseInsensitive", func(t *testing.T) {
		t.Parallel()
		// Spec §11 item 78: prefix "PUBLIC/" finds public/…; names keep their stored case.
		require.Equal(t, folderLevel, listV1(t, db, asService, v1("t", "FOLDER")))
		require.Equal(t, folderLevel, listV1(t, db, asService, v1("t", "FoLdEr/")))
		require.Equal(t, []string{"f:abra.txt", "d:br", "d:Brass", "f:bravo.txt"}, listV1(t, db, asService, v1("t", "PUBLIC/")))
		require.Equal(t, []string{"d:deeper", "f:x.txt"}, listV1(t, db, asService, v1("t", "folder/SUB")))
	})

	t.Run("DescendingName", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, reversed(folderLevel), listV1(t, db, asService, v1("t", "folder").sort("name", "desc")))
	})

	t.Run("SearchIsStartsWith", func(t *testing.T) {
		t.Parallel()
		// Spec §11 item 78: "bra" is a starts-with filter (abra.txt is not returned), and it is
		// case-insensitive like the prefix (Brass matches).
		require.Equal(t, []string{"d:Brass", "f:bravo.txt"}, listV1(t, db, asService, v1("t", "public").find("bra")))
		require.Equal(t, []string{"d:br", "d:Brass", "f:bravo.txt"}, listV1(t, db, asService, v1("t", "public/").find("BR")))
		require.Equal(t, []string{"f:abra.txt"}, listV1(t, db, asService, v1("t", "public").find("abra")))
		require.Equal(t, []string{}, listV1(t, db, asService, v1("t", "public").find("ra")))
		require.Equal(t, []string{"d:sub", "d:Sub2"}, listV1(t, db, asService, v1("t", "folder").find("s")))
		require.Equal(t, []string{"d:Sub2"}, listV1(t, db, asService, v1("t", "folder").find("sub2")))
		require.Equal(t, []string{"f:root.txt"}, listV1(t, db, asService, v1("t", "").find("r")))
	})

	t.Run("SearchWithSlash", func(t *testing.T) {
		t.Parallel()
		// Spec §7.1: names are relative to prefix, not to prefix+search, so a search
		// containing "/" yields names containing "/".
		require.Equal(t, []string{"d:folder/sub/deeper", "f:folder/sub/x.txt"}, listV1(t, db, asService, v1("t", "").find("folder/sub/")))
		require.Equal(t, []string{"d:folder/sub", "d:folder/Sub2"}, listV1(t, db, asService, v1("t", "").find("folder/s")))
		require.Equal(t, []string{"d:sub/deeper", "f:sub/x.txt"}, listV1(t, db, asService, v1("t", "folder").find("sub/")))
		require.Equal(t, []string{"f:sub/deeper/y.txt"}, listV1(t, db, asService, v1("t", "folder").find("sub/deeper/")))
	})

	t.Run("PercentAndUnderscoreAreLiteral", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, []string{"f:1.txt"}, listV1(t, db, asService, v1("t", "lit/a%b")))
		require.Equal(t, []string{"f:3.txt"}, listV1(t, db, asService, v1("t", "lit/a_b/")))
		require.Equal(t, []string{"f:a%.txt", "d:a%b"}, listV1(t, db, asService, v1("t", "lit").find("a%")))
		require.Equal(t, []string{"f:a_.txt", "d:a_b"}, listV1(t, db, asService, v1("t", "lit").find("a_")))
		require.Equal(t, []string{}, listV1(t, db, asService, v1("t", "lit").find("%")))
		require.Equal(t, []string{}, listV1(t, db, asService, v1("t", "lit").find("_")))
		require.Equal(t, []string{}, listV1(t, db, asService, v1("t", "lit").find("a_b.")))
		require.Equal(t, []string{"f:foo_bar.txt"}, listV1(t, db, asService, v1("t", "").find("foo_b")))
		// Spec §11 item 78: prefix "%" returns nothing, with every sort.
		for _, col := range []string{"name", "updated_at", "created_at", "last_accessed_at"} {
			for _, order := range []string{"asc", "desc"} {
				require.Equal(t, []string{}, listV1(t, db, asService, v1("t", "%").sort(col, order)), "%s %s", col, order)
				require.Equal(t, []string{}, listV1(t, db, asService, v1("t", "_").sort(col, order)), "%s %s", col, order)
				require.Equal(t, []string{}, listV1(t, db, asService, v1("t", "").find("%").sort(col, order)), "%s %s", col, order)
			}
		}
	})

	t.Run("LimitsAndOffsets", func(t *testing.T) {
		t.Parallel()
		for limit := 1; limit <= len(folderLevel)+1; limit++ {
			for offset := 0; offset <= len(folderLevel)+1; offset++ {
				want := folderLevel[min(offset, len(folderLevel)):min(offset+limit, len(folderLevel))]
				require.Equal(t, want, listV1(t, db, asService, v1("t", "folder").lim(limit, offset)), "limit %d offset %d", limit, offset)
				wantDesc := reversed(folderLevel)[min(offset, len(folderLevel)):min(offset+limit, len(folderLevel))]
				require.Equal(t, wantDesc, listV1(t, db, asService, v1("t", "folder").lim(limit, offset).sort("name", "desc")),
					"desc limit %d offset %d", limit, offset)
			}
		}
	})

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		got, err := queryStrings(t, db, asService, `select coalesce(id::text, 'folder') || ' ' || name from storage.object_list('t', 'folder')`)
		require.NoError(t, err)
		require.Len(t, got, len(folderLevel))
		names := make([]string, len(got))
		for i, g := range got {
			kind, name, _ := strings.Cut(g, " ")
			names[i] = map[bool]string{true: "d:", false: "f:"}[kind == "folder"] + name
		}
		require.Equal(t, folderLevel, names)
	})

	t.Run("EmptyFolderPlaceholderAndEmptySegments", func(t *testing.T) {
		t.Parallel()
		// Spec §7.1: .emptyFolderPlaceholder is listed like any file.
		require.Contains(t, listV1(t, db, asService, v1("t", "folder")), "f:.emptyFolderPlaceholder")
		require.Equal(t, []string{"f:.emptyFolderPlaceholder"}, listV1(t, db, asService, v1("t", "folder").find(".empty")))
		// Spec §6.2: a///b.txt is stored verbatim; under its full directory it is a file.
		require.Equal(t, []string{"f:b.txt"}, listV1(t, db, asService, v1("t", "a///")))
	})

	t.Run("MissingBucketAndEmptyBucket", func(t *testing.T) {
		t.Parallel()
		for _, id := range []proxy.Identity{asService, asAnon, userA} {
			require.Equal(t, []string{}, listV1(t, db, id, v1("nosuchbucket", "")))
			require.Equal(t, []string{}, listV1(t, db, id, v1("empty", "")))
		}
	})

	t.Run("NonNameSorts", func(t *testing.T) {
		t.Parallel()
		// Its own bucket: files with distinct timestamps per column, two folders (lower-case
		// names, so folder order does not depend on how case is compared).
		db := testdb.New(t)
		admin(t, db, `insert into storage.buckets (id, name) values ('s', 's')`)
		base := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
		at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
		// name            created updated accessed
		listInsertAt(t, db, "s", "d/m.txt", "", at(2), at(3), at(1))
		listInsertAt(t, db, "s", "d/b.txt", "", at(1), at(4), at(3))
		listInsertAt(t, db, "s", "d/z.txt", "", at(3), at(2), at(4))
		listInsertAt(t, db, "s", "d/a.txt", "", at(4), at(1), at(2))
		listInsertAt(t, db, "s", "d/k/1.txt", "", at(0), at(0), at(0))
		listInsertAt(t, db, "s", "d/c/1.txt", "", at(9), at(9), at(9))
		byCol := map[string][]string{
			"created_at":       {"f:b.txt", "f:m.txt", "f:z.txt", "f:a.txt"},
			"updated_at":       {"f:a.txt", "f:z.txt", "f:m.txt", "f:b.txt"},
			"last_accessed_at": {"f:m.txt", "f:a.txt", "f:b.txt", "f:z.txt"},
		}
		for col, files := range byCol {
			// Spec §7.1: all folders first (by folder name, in the requested direction), then
			// the files by the column; LIMIT/OFFSET over the combined list.
			asc := append([]string{"d:c", "d:k"}, files...)
			desc := append([]string{"d:k", "d:c"}, reversed(files)...)
			require.Equal(t, asc, listV1(t, db, asService, v1("s", "d").sort(col, "asc")), col)
			require.Equal(t, desc, listV1(t, db, asService, v1("s", "d").sort(col, "desc")), col)
			for limit := 1; limit <= 7; limit++ {
				for offset := 0; offset <= 7; offset++ {
					require.Equal(t, asc[min(offset, 6):min(offset+limit, 6)],
						listV1(t, db, asService, v1("s", "d").sort(col, "asc").lim(limit, offset)), "%s asc limit %d offset %d", col, limit, offset)
					require.Equal(t, desc[min(offset, 6):min(offset+limit, 6)],
						listV1(t, db, asService, v1("s", "d").sort(col, "desc").lim(limit, offset)), "%s desc limit %d offset %d", col, limit, offset)
				}
			}
			require.Equal(t, []string{"f:a.txt"}, listV1(t, db, asService, v1("s", "d").sort(col, "asc").find("a")), col)
			require.Equal(t, []string{}, listV1(t, db, asService, v1("s", "%").sort(col, "asc")), col)
			require.Equal(t, []string{"d:k"}, listV1(t, db, asService, v1("s", "D").sort(col, "asc").find("K")), col)
		}
	})

	t.Run("LimitCap1500", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		admin(t, db, `insert into storage.buckets (id, name) values ('big', 'big')`)
		admin(t, db, `insert into storage.objects (bucket_id, name, metadata, version)
			select 'big', 'k' || lpad(i::text, 4, '0'), '{"size":1}', 'v' || i from generate_series(1, 1600) i`)
		got := listV1(t, db, asService, v1("big", "").lim(2000, 0))
		require.Len(t, got, 1500, "spec §6.5: list v1 limit silently capped at 1500")
		require.Equal(t, "f:k0001", got[0])
		require.Equal(t, "f:k1500", got[1499])
		got = listV1(t, db, asService, v1("big", "").lim(1500, 1550))
		require.Equal(t, 50, len(got))
		require.Equal(t, "f:k1551", got[0])
		n, err := queryStrings(t, db, asService, `select count(*)::text from storage.object_list('big', '')`)
		require.NoError(t, err)
		require.Equal(t, []string{"100"}, n, "the default limit is 100")
	})
}

// ---------------------------------------------------------------------------------------------
// v2: storage.object_list_v2.

func TestSQLListV2(t *testing.T) {
	t.Parallel()
	db := sqlListDB(t)

	folderAll := keysOnly(
		"folder/.emptyFolderPlaceholder",
		"folder/B.txt",
		"folder/Sub2/z.txt",
		"folder/a.txt",
		"folder/c.txt",
		"folder/sub/deeper/y.txt",
		"folder/sub/x.txt",
	)
	// With the delimiter: one stream in byte order of the names ("Sub2/" < "a.txt").
	folderLevel := []string{
		"folder/.emptyFolderPlaceholder key=.emptyFolderPlaceholder",
		"folder/B.txt key=B.txt",
		"folder/Sub2/ key=Sub2",
		"folder/a.txt key=a.txt",
		"folder/c.txt key=c.txt",
		"folder/sub/ key=sub",
	}

	t.Run("WithoutDelimiterAllDepths", func(t *testing.T) {
		t.Parallel()
		// Spec §7.2 / §11 item 79: full keys at all depths, byte order, key NULL.
		require.Equal(t, folderAll, listV2(t, db, asService, v2("t", "folder/")))
		require.Equal(t, reversed(folderAll), listV2(t, db, asService, v2("t", "folder/").sort("name", "desc")))
		require.Equal(t, keysOnly("folder/sub/deeper/y.txt", "folder/sub/x.txt"), listV2(t, db, asService, v2("t", "folder/s")))
		require.Equal(t, keysOnly("folder/Sub2/z.txt"), listV2(t, db, asService, v2("t", "folder/S")))
		// A prefix without "/" is a raw string prefix.
		require.Equal(t, keysOnly("aal.txt", "aal/one.txt", "aal/two/three.txt", "aalx.txt"), listV2(t, db, asService, v2("t", "aal")))
		all := listV2(t, db, asService, v2("t", ""))
		require.Len(t, all, len(listTree))
		require.Equal(t, "a///b.txt key=-", all[0])
		require.Equal(t, "root.txt key=-", all[len(all)-1])
	})

	t.Run("CaseSensitive", func(t *testing.T) {
		t.Parallel()
		for _, delim := range []bool{false, true} {
			a := v2("t", "FOLDER/")
			a.delimiter = delim
			require.Equal(t, []string{}, listV2(t, db, asService, a), "delimiter %v", delim)
			a.prefix = "Public/"
			require.Equal(t, []string{}, listV2(t, db, asService, a), "delimiter %v", delim)
		}
		require.Equal(t, keysOnly("public/Brass/k.txt"), listV2(t, db, asService, v2("t", "public/B")))
		require.Equal(t, keysOnly("public/br/l.txt", "public/bravo.txt"), listV2(t, db, asService, v2("t", "public/b")))
	})

	t.Run("WithDelimiter", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, folderLevel, listV2(t, db, asService, v2("t", "folder/").delim()))
		require.Equal(t, reversed(folderLevel), listV2(t, db, asService, v2("t", "folder/").delim().sort("name", "desc")))
		require.Equal(t, []string{"folder/sub/deeper/ key=deeper", "folder/sub/x.txt key=x.txt"}, listV2(t, db, asService, v2("t", "folder/sub/").delim()))
		// Spec §7.2: prefix "aal" returns object aal.txt and folder aal/ ('.' < '/' < 'x'). Raw
		// (non-slash) prefixes are compared by name here; their keys are pinned by
		// KeyIsTheSegmentAtThePrefixDepth.
		require.Equal(t, []string{"aal.txt", "aal/", "aalx.txt"}, listV2Names(t, db, asService, v2("t", "aal").delim()))
		require.Equal(t, []string{"aal/one.txt key=one.txt", "aal/two/ key=two"}, listV2(t, db, asService, v2("t", "aal/").delim()))
		require.Equal(t, []string{"folder/sub/"}, listV2Names(t, db, asService, v2("t", "folder/su").delim()))
		require.Equal(t, []string{"folder/Sub2/"}, listV2Names(t, db, asService, v2("t", "folder/S").delim()))
		require.Equal(t, []string{"public/br/", "public/bravo.txt"}, listV2Names(t, db, asService, v2("t", "public/br").delim()))
		require.Equal(t, []string{
			"a/ key=a", "aal.txt key=aal.txt", "aal/ key=aal", "aalx.txt key=aalx.txt", "folder/ key=folder",
			"foo_bar.txt key=foo_bar.txt", "fooxbar.txt key=fooxbar.txt", "lit/ key=lit", "public/ key=public", "root.txt key=root.txt",
		}, listV2(t, db, asService, v2("t", "").delim()))
	})

	t.Run("StartAfter", func(t *testing.T) {
		t.Parallel()
		d := v2("t", "folder/").delim()
		require.Equal(t, folderLevel[:2], listV2(t, db, asService, d.lim(2)))
		require.Equal(t, folderLevel[2:4], listV2(t, db, asService, d.lim(2).after("folder/B.txt")))
		// A folder as the cursor skips everything under it (folder/Sub2/z.txt > folder/Sub2/).
		require.Equal(t, folderLevel[3:], listV2(t, db, asService, d.after("folder/Sub2/")))
		require.Equal(t, []string{}, listV2(t, db, asService, d.after("folder/sub/")))
		// A cursor that is not a listed name: strictly after its position.
		require.Equal(t, folderLevel[4:], listV2(t, db, asService, d.after("folder/b")))
		// Descending: strictly before.
		dd := d.sort("name", "desc")
		require.Equal(t, reversed(folderLevel[:5]), listV2(t, db, asService, dd.after("folder/sub/")))
		require.Equal(t, reversed(folderLevel[:2]), listV2(t, db, asService, dd.after("folder/Sub2/")))
		require.Equal(t, reversed(folderLevel[:2])[:1], listV2(t, db, asService, dd.after("folder/Sub2/").lim(1)))
		require.Equal(t, []string{}, listV2(t, db, asService, dd.after("folder/.emptyFolderPlaceholder")))
		// Without the delimiter the same cursor is just a position among the keys.
		a := v2("t", "folder/")
		require.Equal(t, folderAll[2:], listV2(t, db, asService, a.after("folder/Sub2/")))
		require.Equal(t, folderAll[3:5], listV2(t, db, asService, a.after("folder/Sub2/z.txt").lim(2)))
		require.Equal(t, reversed(folderAll[:2]), listV2(t, db, asService, a.sort("name", "desc").after("folder/Sub2/")))
		// Walking the delimited level one row at a time visits every entry once.
		var walked []string
		var cursor *string
		for i := 0; i <= len(folderLevel); i++ {
			a := d.lim(1)
			a.startAfter = cursor
			rows, err := listV2Rows(t, db, asService, a)
			require.NoError(t, err)
			if len(rows) == 0 {
				break
			}
			require.Len(t, rows, 1)
			walked = append(walked, renderV2(t, a, rows)...)
			cursor = rows[0].Name
		}
		require.Equal(t, folderLevel, walked)
	})

	t.Run("PercentAndUnderscoreAreLiteral", func(t *testing.T) {
		t.Parallel()
		// Spec §7.2 / §11 item 79.
		require.Equal(t, keysOnly("foo_bar.txt"), listV2(t, db, asService, v2("t", "foo_b")))
		require.Equal(t, []string{"foo_bar.txt"}, listV2Names(t, db, asService, v2("t", "foo_b").delim()))
		require.Equal(t, keysOnly("lit/a%.txt", "lit/a%b/1.txt"), listV2(t, db, asService, v2("t", "lit/a%")))
		require.Equal(t, keysOnly("lit/a_.txt", "lit/a_b/3.txt"), listV2(t, db, asService, v2("t", "lit/a_")))
		require.Equal(t, []string{"lit/a%.txt", "lit/a%b/"}, listV2Names(t, db, asService, v2("t", "lit/a%").delim()))
		require.Equal(t, []string{"lit/a_.txt", "lit/a_b/"}, listV2Names(t, db, asService, v2("t", "lit/a_").delim()))
		require.Equal(t, []string{"lit/a_b/3.txt key=3.txt"}, listV2(t, db, asService, v2("t", "lit/a_b/").delim()))
		for _, p := range []string{"%", "_", "lit/%", "lit/_", "lit/a%b/%"} {
			for _, col := range []string{"name", "updated_at", "created_at"} {
				for _, delim := range []bool{false, true} {
					a := v2("t", p).sort(col, "asc")
					a.delimiter = delim
					require.Equal(t, []string{}, listV2(t, db, asService, a), "prefix %q %s delimiter %v", p, col, delim)
				}
			}
		}
		// Time sorts too (spec §10 item 13: the reference's time-sorted delimiter listing
		// treats them as wildcards; we keep them literal everywhere).
		for _, col := range []string{"updated_at", "created_at"} {
			a := v2("t", "lit/a_").sort(col, "asc").delim()
			require.ElementsMatch(t, []string{"lit/a_.txt", "lit/a_b/"}, listV2Names(t, db, asService, a), col)
			a.delimiter = false
			require.ElementsMatch(t, keysOnly("lit/a_.txt", "lit/a_b/3.txt"), listV2(t, db, asService, a), col)
		}
	})

	t.Run("KeyIsTheSegmentAtThePrefixDepth", func(t *testing.T) {
		t.Parallel()
		// Spec §7.2: with the delimiter, key = the path segment at the prefix's depth, for a
		// folder its segment (prefix "aal": folder aal/ has key "aal"), whether or not the
		// prefix ends in "/".
		require.Equal(t, []string{"aal.txt key=aal.txt", "aal/ key=aal", "aalx.txt key=aalx.txt"}, listV2(t, db, asService, v2("t", "aal").delim()))
		require.Equal(t, []string{"foo_bar.txt key=foo_bar.txt"}, listV2(t, db, asService, v2("t", "foo_b").delim()))
		require.Equal(t, []string{"public/br/ key=br", "public/bravo.txt key=bravo.txt"}, listV2(t, db, asService, v2("t", "public/br").delim()))
		require.Equal(t, []string{"lit/a_.txt key=a_.txt", "lit/a_b/ key=a_b"}, listV2(t, db, asService, v2("t", "lit/a_").delim()))
		for _, col := range []string{"updated_at", "created_at"} {
			require.ElementsMatch(t, []string{"aal.txt key=aal.txt", "aal/ key=aal", "aalx.txt key=aalx.txt"},
				listV2(t, db, asService, v2("t", "aal").delim().sort(col, "asc")), col)
		}
	})

	t.Run("EmptySegments", func(t *testing.T) {
		t.Parallel()
		// Spec §11 item 34: the key is listed exactly as stored.
		require.Equal(t, keysOnly("a///b.txt"), listV2(t, db, asService, v2("t", "a/")))
		require.Equal(t, keysOnly("a///b.txt"), listV2(t, db, asService, v2("t", "a///")))
		require.Equal(t, []string{"a///b.txt key=b.txt"}, listV2(t, db, asService, v2("t", "a///").delim()))
		// Immediate children of "a/": the empty segment is a folder "a//" with key "".
		require.Equal(t, []string{"a// key="}, listV2(t, db, asService, v2("t", "a/").delim()))
		require.Equal(t, []string{"a/// key="}, listV2(t, db, asService, v2("t", "a//").delim()))
	})

	t.Run("KeysEndingInSlash", func(t *testing.T) {
		t.Parallel()
		// A key may end in "/" (spec §6.2): without the delimiter it is a key like any other,
		// and a cursor on it must not skip the keys beneath it.
		db := testdb.New(t)
		admin(t, db, `insert into storage.buckets (id, name) values ('s', 's')`)
		listInsert(t, db, "s", "d/", "d/a.txt", "d/b/c.txt", "e.txt")
		want := keysOnly("d/", "d/a.txt", "d/b/c.txt", "e.txt")
		require.Equal(t, want, listV2(t, db, asService, v2("s", "")))
		require.Equal(t, want[1:3], listV2(t, db, asService, v2("s", "").after("d/").lim(2)))
		require.Equal(t, reversed(want[:3]), listV2(t, db, asService, v2("s", "").sort("name", "desc").after("e.txt")))
		// v1 lists it too: the empty name under the folder "d/".
		require.Equal(t, []string{"d:d", "f:e.txt"}, listV1(t, db, asService, v1("s", "")))
	})

	t.Run("EmptyFolderPlaceholder", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, keysOnly("folder/.emptyFolderPlaceholder"), listV2(t, db, asService, v2("t", "folder/.")))
		require.Contains(t, listV2(t, db, asService, v2("t", "folder/").delim()), "folder/.emptyFolderPlaceholder key=.emptyFolderPlaceholder")
	})

	t.Run("Limits", func(t *testing.T) {
		t.Parallel()
		for l := 1; l <= len(folderAll)+1; l++ {
			require.Equal(t, folderAll[:min(l, len(folderAll))], listV2(t, db, asService, v2("t", "folder/").lim(l)), "limit %d", l)
			require.Equal(t, folderLevel[:min(l, len(folderLevel))], listV2(t, db, asService, v2("t", "folder/").delim().lim(l)), "limit %d", l)
		}
	})

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		got, err := queryStrings(t, db, asService, `select name from storage.object_list_v2('t')`)
		require.NoError(t, err)
		require.Len(t, got, len(listTree))
		got, err = queryStrings(t, db, asService, `select name || coalesce(' key=' || key, ' key=-') from storage.object_list_v2('t', 'folder/')`)
		require.NoError(t, err)
		require.Equal(t, folderAll, got)
	})

	t.Run("MissingBucketAndEmptyBucket", func(t *testing.T) {
		t.Parallel()
		for _, id := range []proxy.Identity{asService, asAnon, userA} {
			for _, delim := range []bool{false, true} {
				a := v2("nosuchbucket", "")
				a.delimiter = delim
				require.Equal(t, []string{}, listV2(t, db, id, a))
				a.bucket = "empty"
				require.Equal(t, []string{}, listV2(t, db, id, a))
			}
		}
	})

	t.Run("TimeSorts", func(t *testing.T) {
		t.Parallel()
		db := testdb.New(t)
		admin(t, db, `insert into storage.buckets (id, name) values ('s', 's')`)
		base := time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.UTC)
		at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
		// name            created updated
		listInsertAt(t, db, "s", "d/m.txt", "", at(2), at(5), at(0))
		listInsertAt(t, db, "s", "d/b.txt", "", at(1), at(5), at(0))
		listInsertAt(t, db, "s", "d/z.txt", "", at(2), at(1), at(0)) // created ties with m.txt
		listInsertAt(t, db, "s", "d/a.txt", "", at(4), at(3), at(0))
		listInsertAt(t, db, "s", "d/k/1.txt", "", at(6), at(0), at(0))
		listInsertAt(t, db, "s", "d/k/2.txt", "", at(3), at(7), at(0))
		listInsertAt(t, db, "s", "d/c/1.txt", "", at(0), at(2), at(0))

		// Without the delimiter: by the column, then name (byte order), both in the requested
		// direction (spec §7.2).
		byCreated := keysOnly("d/c/1.txt", "d/b.txt", "d/m.txt", "d/z.txt", "d/k/2.txt", "d/a.txt", "d/k/1.txt")
		byUpdated := keysOnly("d/k/1.txt", "d/z.txt", "d/c/1.txt", "d/a.txt", "d/b.txt", "d/m.txt", "d/k/2.txt")
		require.Equal(t, byCreated, listV2(t, db, asService, v2("s", "d/").sort("created_at", "asc")))
		require.Equal(t, reversed(byCreated), listV2(t, db, asService, v2("s", "d/").sort("created_at", "desc")))
		require.Equal(t, byUpdated, listV2(t, db, asService, v2("s", "d/").sort("updated_at", "asc")))
		require.Equal(t, reversed(byUpdated), listV2(t, db, asService, v2("s", "d/").sort("updated_at", "desc")))

		// Cursor = (start_after_time, start_after): strictly after that position.
		require.Equal(t, byCreated[3:5], listV2(t, db, asService, v2("s", "d/").sort("created_at", "asc").afterAt("d/m.txt", at(2)).lim(2)))
		require.Equal(t, byCreated[2:], listV2(t, db, asService, v2("s", "d/").sort("created_at", "asc").afterAt("d/b.txt", at(1))))
		require.Equal(t, reversed(byCreated[:2]), listV2(t, db, asService, v2("s", "d/").sort("created_at", "desc").afterAt("d/m.txt", at(2))))
		require.Equal(t, reversed(byCreated[:3]), listV2(t, db, asService, v2("s", "d/").sort("created_at", "desc").afterAt("d/z.txt", at(2))))
		require.Equal(t, byUpdated[5:], listV2(t, db, asService, v2("s", "d/").sort("updated_at", "asc").afterAt("d/b.txt", at(5))))

		// Walk one row at a time with the cursor the route would build.
		for _, col := range []string{"created_at", "updated_at"} {
			for _, order := range []string{"asc", "desc"} {
				want := map[string][]string{"created_at": byCreated, "updated_at": byUpdated}[col]
				if order == "desc" {
					want = reversed(want)
				}
				var walked []string
				a := v2("s", "d/").sort(col, order).lim(1)
				for range len(want) + 1 {
					rows, err := listV2Rows(t, db, asService, a)
					require.NoError(t, err)
					if len(rows) == 0 {
						break
					}
					walked = append(walked, renderV2(t, a, rows)...)
					ts := rows[0].CreatedAt
					if col == "updated_at" {
						ts = rows[0].UpdatedAt
					}
					a = a.afterAt(*rows[0].Name, *ts)
				}
				require.Equal(t, want, walked, "%s %s", col, order)
			}
		}

		// With the delimiter: folders and objects in one stream by time then name; a folder's
		// timestamps are its earliest child's created_at (spec §7.2).
		rows, err := listV2Rows(t, db, asService, v2("s", "d/").delim().sort("created_at", "asc"))
		require.NoError(t, err)
		got := renderV2(t, v2("s", "d/").delim().sort("created_at", "asc"), rows)
		require.Equal(t, []string{"d/c/ key=c", "d/b.txt key=b.txt", "d/m.txt key=m.txt", "d/z.txt key=z.txt", "d/k/ key=k", "d/a.txt key=a.txt"}, got)
		for _, r := range rows {
			if r.ID != nil {
				continue
			}
			want := map[string]time.Time{"d/c/": at(0), "d/k/": at(3)}[*r.Name]
			require.NotNil(t, r.CreatedAt, "folder %s under created_at sorting has a created_at (spec §7.2)", *r.Name)
			require.True(t, want.Equal(*r.CreatedAt), "folder %s created_at = earliest child created_at %v, got %v", *r.Name, want, *r.CreatedAt)
		}
		rows, err = listV2Rows(t, db, asService, v2("s", "d/").delim().sort("created_at", "desc"))
		require.NoError(t, err)
		require.Equal(t, reversed(got), renderV2(t, v2("s", "d/").delim().sort("created_at", "desc"), rows))
		// A folder as a time cursor skips the folder.
		require.Equal(t, got[1:3], listV2(t, db, asService, v2("s", "d/").delim().sort("created_at", "asc").afterAt("d/c/", at(0)).lim(2)))
		require.Equal(t, got[5:], listV2(t, db, asService, v2("s", "d/").delim().sort("created_at", "asc").afterAt("d/k/", at(3))))
	})

	t.Run("LargeLimit", func(t *testing.T) {
		t.Parallel()
		// The route asks for limit+1 (1001 at most): the function itself must return that many.
		db := testdb.New(t)
		admin(t, db, `insert into storage.buckets (id, name) values ('big', 'big')`)
		admin(t, db, `insert into storage.objects (bucket_id, name, metadata, version)
			select 'big', 'k' || lpad(i::text, 4, '0'), '{"size":1}', 'v' || i from generate_series(1, 1100) i`)
		n, err := queryStrings(t, db, asService, `select count(*)::text from storage.object_list_v2('big', '', 1001)`)
		require.NoError(t, err)
		require.Equal(t, []string{"1001"}, n)
		n, err = queryStrings(t, db, asService, `select count(*)::text from storage.object_list_v2('big', '', 1001, 'k1000')`)
		require.NoError(t, err)
		require.Equal(t, []string{"100"}, n)
	})
}

// ---------------------------------------------------------------------------------------------
// RLS: both versions list only what the caller's SELECT policies show, even in a public bucket
// (spec §3.6); folders are derived from visible rows only.

func TestSQLListRLS(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	admin(t, db, `insert into storage.buckets (id, name, public) values ('priv', 'priv', false), ('pub', 'pub', true)`)
	now := time.Now().UTC()
	for _, b := range []string{"priv", "pub"} {
		listInsertAt(t, db, b, "a/own-a.txt", userA.Sub, now, now, now)
		listInsertAt(t, db, b, "shared/a.txt", userA.Sub, now, now, now)
		listInsertAt(t, db, b, "shared/b.txt", userB.Sub, now, now, now)
		listInsertAt(t, db, b, "b/own-b.txt", userB.Sub, now, now, now)
		listInsertAt(t, db, b, "top-a.txt", userA.Sub, now, now, now)
		listInsertAt(t, db, b, "top-none.txt", "", now, now, now)
	}
	all := []string{"d:a", "d:b", "d:shared", "f:top-a.txt", "f:top-none.txt"}

	check := func(t *testing.T, id proxy.Identity, bucket string, wantV1, wantShared []string, wantV2 []string) {
		t.Helper()
		require.Equal(t, wantV1, listV1(t, db, id, v1(bucket, "")), "v1 %s in %s", id.Role+id.Sub, bucket)
		require.Equal(t, wantShared, listV1(t, db, id, v1(bucket, "shared")), "v1 shared %s in %s", id.Role+id.Sub, bucket)
		for _, col := range []string{"created_at", "updated_at", "last_accessed_at"} {
			got := listV1(t, db, id, v1(bucket, "").sort(col, "asc"))
			require.ElementsMatch(t, wantV1, got, "v1 by %s %s in %s", col, id.Role+id.Sub, bucket)
		}
		require.Equal(t, wantV2, listV2(t, db, id, v2(bucket, "")), "v2 %s in %s", id.Role+id.Sub, bucket)
		var wantDelim []string
		for _, e := range wantV1 {
			if name, ok := strings.CutPrefix(e, "d:"); ok {
				wantDelim = append(wantDelim, name+"/ key="+name)
			} else {
				wantDelim = append(wantDelim, e[2:]+" key="+e[2:])
			}
		}
		if wantDelim == nil {
			wantDelim = []string{}
		}
		require.Equal(t, wantDelim, listV2(t, db, id, v2(bucket, "").delim()), "v2 delimiter %s in %s", id.Role+id.Sub, bucket)
		for _, col := range []string{"created_at", "updated_at"} {
			require.ElementsMatch(t, wantDelim, listV2(t, db, id, v2(bucket, "").delim().sort(col, "asc")), "v2 delimiter by %s", col)
			require.ElementsMatch(t, wantV2, listV2(t, db, id, v2(bucket, "").sort(col, "asc")), "v2 by %s", col)
		}
	}

	t.Run("NoPolicies", func(t *testing.T) {
		for _, b := range []string{"priv", "pub"} {
			check(t, asService, b, all, []string{"f:a.txt", "f:b.txt"},
				keysOnly("a/own-a.txt", "b/own-b.txt", "shared/a.txt", "shared/b.txt", "top-a.txt", "top-none.txt"))
			for _, id := range []proxy.Identity{asAnon, userA, userB} {
				// Spec §11 item 53: no SELECT policy → nothing, even in a public bucket.
				check(t, id, b, []string{}, []string{}, []string{})
			}
		}
	})

	t.Run("OwnerPolicy", func(t *testing.T) {
		admin(t, db, `create policy list_own on storage.objects for select to authenticated using (owner_id = (select auth.uid())::text)`)
		for _, b := range []string{"priv", "pub"} {
			check(t, userA, b, []string{"d:a", "d:shared", "f:top-a.txt"}, []string{"f:a.txt"},
				keysOnly("a/own-a.txt", "shared/a.txt", "top-a.txt"))
			check(t, userB, b, []string{"d:b", "d:shared"}, []string{"f:b.txt"},
				keysOnly("b/own-b.txt", "shared/b.txt"))
			check(t, asAnon, b, []string{}, []string{}, []string{})
			check(t, asService, b, all, []string{"f:a.txt", "f:b.txt"},
				keysOnly("a/own-a.txt", "b/own-b.txt", "shared/a.txt", "shared/b.txt", "top-a.txt", "top-none.txt"))
		}
	})

	t.Run("BucketScopedPolicy", func(t *testing.T) {
		admin(t, db, `create policy list_pub_anon on storage.objects for select to anon using (bucket_id = 'pub' and name like 'shared/%')`)
		check(t, asAnon, "pub", []string{"d:shared"}, []string{"f:a.txt", "f:b.txt"}, keysOnly("shared/a.txt", "shared/b.txt"))
		check(t, asAnon, "priv", []string{}, []string{}, []string{})
	})
}
