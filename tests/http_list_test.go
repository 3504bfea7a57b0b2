package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The list routes over real HTTP against the real proxy and database: POST /object/list/{b}
// (v1, spec §7.1) and POST /object/list-v2/{b} (v2, spec §7.2), pinned to spec §11 items 10,
// 33, 34, 53 and 77–80 (subtests are named after the item they pin), the exact JSON shapes of
// list entries (§1.3: timestamps as JavaScript ISO strings), the request validation, and a
// pagination property: walking a random tree page by page (v2 cursors, v1 limit/offset) yields
// exactly the listing computed in Go, without duplicates or gaps, hasNext false exactly at the
// end. Object rows are inserted directly as the tables' owner: listing never reads blobs.

// ---------------------------------------------------------------------------------------------
// Requests and response shapes.

// listBody encodes a request body (map order does not matter to the server).
func listBody(t *testing.T, v map[string]any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func (b *httpBundle) listV1(t *testing.T, token, bucket string, body map[string]any) httpResponse {
	t.Helper()
	return b.do(t, "POST", "/object/list/"+bucket, token, listBody(t, body))
}

func (b *httpBundle) listV2(t *testing.T, token, bucket string, body map[string]any) httpResponse {
	t.Helper()
	return b.do(t, "POST", "/object/list-v2/"+bucket, token, listBody(t, body))
}

// v1Fields are exactly the properties of a list v1 entry (the route's 200 schema, §7.1).
var v1Fields = []string{"created_at", "id", "last_accessed_at", "metadata", "name", "updated_at"}

// v1Entry is a decoded list v1 entry.
type v1Entry struct {
	name   string
	folder bool
	raw    map[string]any
}

// requireV1 asserts a 200 list v1 response, the exact shape of every entry (folders: id,
// timestamps and metadata null, name without a trailing slash; files: uuid id, ISO-ms-Z
// timestamps, metadata object), and returns the entries.
func requireV1(t *testing.T, r httpResponse) []v1Entry {
	t.Helper()
	v := requireOKJSON(t, r)
	arr, ok := v.([]any)
	require.True(t, ok, "list v1 returns an array: %s", r.Body)
	out := make([]v1Entry, 0, len(arr))
	for _, e := range arr {
		m, ok := e.(map[string]any)
		require.True(t, ok, "entry %v", e)
		require.Equal(t, v1Fields, sortedKeys(m), "list v1 entry fields (spec §7.1): %v", m)
		name, ok := m["name"].(string)
		require.True(t, ok, "name is a string: %v", m)
		if m["id"] == nil {
			for _, k := range []string{"updated_at", "created_at", "last_accessed_at", "metadata"} {
				require.Nil(t, m[k], "folder %q: %s must be null (spec §11 item 77): %v", name, k, m)
			}
			require.False(t, strings.HasSuffix(name, "/"), "v1 folder names have no trailing slash (spec §11 item 77): %q", name)
			out = append(out, v1Entry{name: name, folder: true, raw: m})
			continue
		}
		requireFileFields(t, name, m)
		out = append(out, v1Entry{name: name, raw: m})
	}
	return out
}

// requireFileFields asserts the value types of an object entry (both versions).
func requireFileFields(t *testing.T, name string, m map[string]any) {
	t.Helper()
	require.Regexp(t, uuidPattern, m["id"], "object %q id: %v", name, m)
	for _, k := range []string{"updated_at", "created_at", "last_accessed_at"} {
		s, ok := m[k].(string)
		require.True(t, ok, "object %q: %s is a string: %v", name, k, m)
		require.Regexp(t, jsTimestamp, s, "object %q: %s is an ISO-8601 UTC ms timestamp (spec §1.3)", name, k)
	}
	_, ok := m["metadata"].(map[string]any)
	require.True(t, ok, "object %q: metadata is an object: %v", name, m)
}

// renderV1Entries renders entries as "d:<name>" / "f:<name>".
func renderV1Entries(es []v1Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = map[bool]string{true: "d:", false: "f:"}[e.folder] + e.name
	}
	return out
}

func (b *httpBundle) v1Names(t *testing.T, token, bucket string, body map[string]any) []string {
	t.Helper()
	return renderV1Entries(requireV1(t, b.listV1(t, token, bucket, body)))
}

// v2Page is a decoded list v2 response.
type v2Page struct {
	hasNext    bool
	nextCursor string
	folders    []map[string]any
	objects    []map[string]any
}

// v2FolderFields / v2ObjectFields are the properties of list v2 entries (spec §7.2): objects
// carry key only in delimited listings.
var (
	v2FolderFields         = []string{"created_at", "id", "key", "last_accessed_at", "metadata", "name", "updated_at"}
	v2ObjectFields         = []string{"created_at", "id", "last_accessed_at", "metadata", "name", "updated_at"}
	v2ObjectFieldsWithKeys = []string{"created_at", "id", "key", "last_accessed_at", "metadata", "name", "updated_at"}
)

// requireV2 asserts a 200 list v2 response: the top-level key set (nextCursor and
// nextCursorKey present exactly when hasNext), the exact fields of every entry, folders only
// with the delimiter (name ending in "/", id and metadata null, timestamps null under name
// sorting), objects fully typed.
func requireV2(t *testing.T, r httpResponse, delimiter bool, column string) v2Page {
	t.Helper()
	v := requireOKJSON(t, r)
	m, ok := v.(map[string]any)
	require.True(t, ok, "list v2 returns an object: %s", r.Body)
	var p v2Page
	p.hasNext, ok = m["hasNext"].(bool)
	require.True(t, ok, "hasNext is a boolean: %s", r.Body)
	if p.hasNext {
		require.Equal(t, []string{"folders", "hasNext", "nextCursor", "nextCursorKey", "objects"}, sortedKeys(m), "body: %s", r.Body)
		p.nextCursor, ok = m["nextCursor"].(string)
		require.True(t, ok && p.nextCursor != "", "nextCursor is a non-empty string: %s", r.Body)
		_, ok = m["nextCursorKey"].(string)
		require.True(t, ok, "nextCursorKey is a string: %s", r.Body)
	} else {
		require.Equal(t, []string{"folders", "hasNext", "objects"}, sortedKeys(m),
			"nextCursor/nextCursorKey are absent (not null) when hasNext is false (spec §7.2): %s", r.Body)
	}
	folders, ok := m["folders"].([]any)
	require.True(t, ok, "folders is an array: %s", r.Body)
	objects, ok := m["objects"].([]any)
	require.True(t, ok, "objects is an array: %s", r.Body)
	if !delimiter {
		require.Empty(t, folders, "without the delimiter folders is always [] (spec §7.2)")
	}
	for _, f := range folders {
		e, ok := f.(map[string]any)
		require.True(t, ok, "folder %v", f)
		require.Equal(t, v2FolderFields, sortedKeys(e), "list v2 folder fields (spec §7.2): %v", e)
		name, _ := e["name"].(string)
		require.True(t, strings.HasSuffix(name, "/"), "a v2 folder name ends in '/' (spec §11 item 80): %v", e)
		_, ok = e["key"].(string)
		require.True(t, ok, "folder key is a string: %v", e)
		require.Nil(t, e["id"], "folder id is null: %v", e)
		require.Nil(t, e["metadata"], "folder metadata is null: %v", e)
		if column == "name" {
			for _, k := range []string{"updated_at", "created_at", "last_accessed_at"} {
				require.Nil(t, e[k], "folder %s is null under name sorting (spec §7.2): %v", k, e)
			}
		} else {
			require.Regexp(t, jsTimestamp, e["created_at"], "a folder's created_at under time sorting is its earliest child's (spec §7.2): %v", e)
		}
		p.folders = append(p.folders, e)
	}
	for _, o := range objects {
		e, ok := o.(map[string]any)
		require.True(t, ok, "object %v", o)
		want := v2ObjectFields
		if delimiter {
			want = v2ObjectFieldsWithKeys
			_, ok = e["key"].(string)
			require.True(t, ok, "object key is a string with the delimiter: %v", e)
		}
		require.Equal(t, want, sortedKeys(e), "list v2 object fields (spec §7.2): %v", e)
		name, _ := e["name"].(string)
		requireFileFields(t, name, e)
		p.objects = append(p.objects, e)
	}
	return p
}

// names renders entries: "<name>" without the delimiter, "<name> key=<key>" with it.
func (p v2Page) names(entries []map[string]any) []string {
	out := []string{}
	for _, e := range entries {
		s := e["name"].(string)
		if k, ok := e["key"]; ok {
			s += fmt.Sprintf(" key=%v", k)
		}
		out = append(out, s)
	}
	return out
}

// namesOf lists the entries' names only.
func namesOf(entries []map[string]any) []string {
	out := []string{}
	for _, e := range entries {
		out = append(out, e["name"].(string))
	}
	return out
}

func (p v2Page) folderNames() []string { return p.names(p.folders) }
func (p v2Page) objectNames() []string { return p.names(p.objects) }

// listPage fetches one v2 page and checks its shape.
func (b *httpBundle) listPage(t *testing.T, token, bucket string, body map[string]any) v2Page {
	t.Helper()
	delim, _ := body["with_delimiter"].(bool)
	column := "name"
	if sb, ok := body["sortBy"].(map[string]any); ok {
		if c, ok := sb["column"].(string); ok {
			column = c
		}
	}
	return requireV2(t, b.listV2(t, token, bucket, body), delim, column)
}

// ---------------------------------------------------------------------------------------------
// Scenes.

// listScene makes a bucket and inserts rows with the given names.
func listScene(t *testing.T, h *httpBundle, bucket string, public bool, names ...string) {
	t.Helper()
	admin(t, h.db, `insert into storage.buckets (id, name, public) values ($1, $1, $2)`, bucket, public)
	if len(names) > 0 {
		listInsert(t, h.db, bucket, names...)
	}
}

var errInvalidCursor = apiError{"400", "InvalidParameter", "InvalidParameter", "Invalid Parameter continuation token"}

func TestHTTPList(t *testing.T) {
	t.Parallel()
	h := setupHTTP(t)
	listScene(t, h, "b", false, listTree...)
	listScene(t, h, "pb", true, "k.txt", "dir/x.txt")
	listScene(t, h, "four", false, "k1", "k2", "k3", "k4")
	listScene(t, h, "mixed", false, "a.txt", "d1/x.txt", "d1/deep/y.txt", "d2/z.txt", "m.txt", "z.txt")
	listScene(t, h, "odd", false, "dir/we ird @+$,;=?.txt", "dir/we ird/x.txt", "a///b.txt")
	listScene(t, h, "empty", false)

	t.Run("Item77_V1PrefixWithoutSlash", func(t *testing.T) {
		t.Parallel()
		want := []string{"f:.emptyFolderPlaceholder", "f:a.txt", "f:B.txt", "f:c.txt", "d:sub", "d:Sub2"}
		require.Equal(t, want, h.v1Names(t, h.service, "b", map[string]any{"prefix": "folder"}))
		require.Equal(t, want, h.v1Names(t, h.service, "b", map[string]any{"prefix": "folder/"}))
		// storage-js sends every option.
		require.Equal(t, want, h.v1Names(t, h.service, "b", map[string]any{
			"prefix": "folder", "limit": 100, "offset": 0, "sortBy": map[string]any{"column": "name", "order": "asc"}, "search": ""}))
		require.Equal(t, []string{"d:deeper", "f:x.txt"}, h.v1Names(t, h.service, "b", map[string]any{"prefix": "folder/sub"}))
		// The folder entries, exactly.
		es := requireV1(t, h.listV1(t, h.service, "b", map[string]any{"prefix": "folder", "search": "sub2"}))
		require.Len(t, es, 1)
		require.JSONEq(t, `{"name":"Sub2","id":null,"updated_at":null,"created_at":null,"last_accessed_at":null,"metadata":null}`,
			string(mustJSON(t, es[0].raw)))
	})

	t.Run("Item78_V1CaseInsensitiveStartsWith", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, []string{"f:abra.txt", "d:br", "d:Brass", "f:bravo.txt"}, h.v1Names(t, h.service, "b", map[string]any{"prefix": "PUBLIC/"}))
		require.Equal(t, []string{"d:Brass", "f:bravo.txt"}, h.v1Names(t, h.service, "b", map[string]any{"prefix": "public", "search": "bra"}))
		require.Equal(t, []string{"d:br", "d:Brass", "f:bravo.txt"}, h.v1Names(t, h.service, "b", map[string]any{"prefix": "Public/", "search": "BR"}))
		for _, col := range []string{"name", "updated_at", "created_at", "last_accessed_at"} {
			for _, order := range []string{"asc", "desc"} {
				require.Equal(t, []string{}, h.v1Names(t, h.service, "b", map[string]any{
					"prefix": "%", "sortBy": map[string]any{"column": col, "order": order}}), "%s %s", col, order)
				require.Equal(t, []string{}, h.v1Names(t, h.service, "b", map[string]any{
					"prefix": "", "search": "%", "sortBy": map[string]any{"column": col, "order": order}}), "%s %s", col, order)
			}
		}
		// A search containing "/" yields names containing "/" (relative to the prefix).
		require.Equal(t, []string{"d:folder/sub/deeper", "f:folder/sub/x.txt"}, h.v1Names(t, h.service, "b", map[string]any{"prefix": "", "search": "folder/sub/"}))
		require.Equal(t, []string{"f:a_.txt", "d:a_b"}, h.v1Names(t, h.service, "b", map[string]any{"prefix": "lit", "search": "a_"}))
	})

	t.Run("Item79_V2WithoutDelimiter", func(t *testing.T) {
		t.Parallel()
		p := h.listPage(t, h.service, "b", map[string]any{"prefix": "folder/"})
		require.False(t, p.hasNext)
		require.Equal(t, []string{}, p.folderNames())
		require.Equal(t, []string{
			"folder/.emptyFolderPlaceholder", "folder/B.txt", "folder/Sub2/z.txt", "folder/a.txt", "folder/c.txt",
			"folder/sub/deeper/y.txt", "folder/sub/x.txt",
		}, p.objectNames())
		p = h.listPage(t, h.service, "b", map[string]any{"prefix": "foo_b"})
		require.Equal(t, []string{"foo_bar.txt"}, p.objectNames())
		p = h.listPage(t, h.service, "b", map[string]any{"prefix": "FOLDER/"})
		require.Equal(t, []string{}, p.objectNames(), "v2 prefixes are case-sensitive")
		p = h.listPage(t, h.service, "b", map[string]any{"prefix": "lit/a%"})
		require.Equal(t, []string{"lit/a%.txt", "lit/a%b/1.txt"}, p.objectNames())
		// No body at all: every key of the bucket, name order.
		r := h.do(t, "POST", "/object/list-v2/four", h.service, "{}")
		p = requireV2(t, r, false, "name")
		require.Equal(t, []string{"k1", "k2", "k3", "k4"}, p.objectNames())
		r = h.do(t, "POST", "/object/list-v2/four", h.service, "")
		p = requireV2(t, r, false, "name")
		require.Equal(t, []string{"k1", "k2", "k3", "k4"}, p.objectNames())
	})

	t.Run("Item80_V2Pages", func(t *testing.T) {
		t.Parallel()
		p := h.listPage(t, h.service, "four", map[string]any{"limit": 2})
		require.True(t, p.hasNext)
		require.Equal(t, []string{"k1", "k2"}, p.objectNames())
		p = h.listPage(t, h.service, "four", map[string]any{"limit": 2, "cursor": p.nextCursor})
		require.False(t, p.hasNext)
		require.Equal(t, []string{"k3", "k4"}, p.objectNames())
		// Descending.
		p = h.listPage(t, h.service, "four", map[string]any{"limit": 3, "sortBy": map[string]any{"column": "name", "order": "desc"}})
		require.True(t, p.hasNext)
		require.Equal(t, []string{"k4", "k3", "k2"}, p.objectNames())
		p = h.listPage(t, h.service, "four", map[string]any{"limit": 3, "cursor": p.nextCursor})
		require.False(t, p.hasNext)
		require.Equal(t, []string{"k1"}, p.objectNames())
		// A limit that exactly fits: no next page.
		p = h.listPage(t, h.service, "four", map[string]any{"limit": 4})
		require.False(t, p.hasNext)
		require.Len(t, p.objects, 4)

		// With the delimiter: folders end in "/", deeper keys are hidden, and limit counts
		// folders and objects together (a.txt, d1/, d2/, m.txt, z.txt).
		d := map[string]any{"with_delimiter": true, "limit": 2}
		p = h.listPage(t, h.service, "mixed", d)
		require.True(t, p.hasNext)
		require.Equal(t, []string{"d1/ key=d1"}, p.folderNames())
		require.Equal(t, []string{"a.txt key=a.txt"}, p.objectNames())
		p = h.listPage(t, h.service, "mixed", map[string]any{"with_delimiter": true, "limit": 2, "cursor": p.nextCursor})
		require.True(t, p.hasNext)
		require.Equal(t, []string{"d2/ key=d2"}, p.folderNames())
		require.Equal(t, []string{"m.txt key=m.txt"}, p.objectNames())
		p = h.listPage(t, h.service, "mixed", map[string]any{"with_delimiter": true, "limit": 2, "cursor": p.nextCursor})
		require.False(t, p.hasNext)
		require.Equal(t, []string{}, p.folderNames())
		require.Equal(t, []string{"z.txt key=z.txt"}, p.objectNames())
		p = h.listPage(t, h.service, "mixed", map[string]any{"with_delimiter": true, "prefix": "d1/"})
		require.Equal(t, []string{"d1/deep/ key=deep"}, p.folderNames())
		require.Equal(t, []string{"d1/x.txt key=x.txt"}, p.objectNames())
		// Spec §7.2: prefix "aal" returns object aal.txt and folder aal/.
		p = h.listPage(t, h.service, "b", map[string]any{"with_delimiter": true, "prefix": "aal"})
		require.Equal(t, []string{"aal/"}, namesOf(p.folders))
		require.Equal(t, []string{"aal.txt", "aalx.txt"}, namesOf(p.objects))
	})

	t.Run("V2DelimiterKeys", func(t *testing.T) {
		t.Parallel()
		// Spec §7.2: key = the path segment at the prefix's depth, whether or not the prefix
		// ends in "/".
		p := h.listPage(t, h.service, "b", map[string]any{"with_delimiter": true, "prefix": "aal"})
		require.Equal(t, []string{"aal/ key=aal"}, p.folderNames())
		require.Equal(t, []string{"aal.txt key=aal.txt", "aalx.txt key=aalx.txt"}, p.objectNames())
		p = h.listPage(t, h.service, "b", map[string]any{"with_delimiter": true, "prefix": "public/br"})
		require.Equal(t, []string{"public/br/ key=br"}, p.folderNames())
		require.Equal(t, []string{"public/bravo.txt key=bravo.txt"}, p.objectNames())
		p = h.listPage(t, h.service, "b", map[string]any{"with_delimiter": true, "prefix": "public/"})
		require.Equal(t, []string{"public/Brass/ key=Brass", "public/br/ key=br"}, p.folderNames())
		require.Equal(t, []string{"public/abra.txt key=abra.txt", "public/bravo.txt key=bravo.txt"}, p.objectNames())
	})

	t.Run("Item10_V2WithoutAuthorization", func(t *testing.T) {
		t.Parallel()
		for _, body := range []string{`{}`, `{"prefix":""}`} {
			r := h.do(t, "POST", "/object/list-v2/b", "", body)
			e := requireAPIErrorCode(t, r, http.StatusBadRequest, "403", "AccessDenied")
			require.Equal(t, "Unauthorized", e.Error, "body: %s", r.Body)
		}
		// v1 has the header schema (spec §1.1).
		requireAPIError(t, h.do(t, "POST", "/object/list/b", "", `{"prefix":""}`), http.StatusBadRequest, errNoAuthHeader)
		// Bad tokens are AccessDenied on both.
		for _, path := range []string{"/object/list/b", "/object/list-v2/b"} {
			r := h.do(t, "POST", path, "not-a-jwt", `{"prefix":""}`)
			requireAPIError(t, r, http.StatusBadRequest, apiError{"403", "AccessDenied", "Unauthorized", "Invalid Compact JWS"})
		}
	})

	t.Run("Item53_PublicBucketAnonWithoutPolicy", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, []string{}, h.v1Names(t, h.anon, "pb", map[string]any{"prefix": ""}))
		p := h.listPage(t, h.anon, "pb", map[string]any{})
		require.Equal(t, []string{}, p.objectNames())
		require.False(t, p.hasNext)
		p = h.listPage(t, h.anon, "pb", map[string]any{"with_delimiter": true})
		require.Equal(t, []string{}, p.objectNames())
		require.Equal(t, []string{}, p.folderNames())
		// The service key sees them.
		require.Equal(t, []string{"d:dir", "f:k.txt"}, h.v1Names(t, h.service, "pb", map[string]any{"prefix": ""}))
	})

	t.Run("Item33_Item34_OddKeys", func(t *testing.T) {
		t.Parallel()
		// v1 orders a folder by its name: "we ird" sorts before "we ird @…" (spec §7.1).
		require.Equal(t, []string{"d:we ird", "f:we ird @+$,;=?.txt"}, h.v1Names(t, h.service, "odd", map[string]any{"prefix": "dir"}))
		require.Equal(t, []string{"f:we ird @+$,;=?.txt"}, h.v1Names(t, h.service, "odd", map[string]any{"prefix": "dir", "search": "we ird "}))
		p := h.listPage(t, h.service, "odd", map[string]any{"prefix": "dir/"})
		require.Equal(t, []string{"dir/we ird @+$,;=?.txt", "dir/we ird/x.txt"}, p.objectNames())
		p = h.listPage(t, h.service, "odd", map[string]any{"prefix": "dir/", "with_delimiter": true})
		require.Equal(t, []string{"dir/we ird/ key=we ird"}, p.folderNames())
		require.Equal(t, []string{"dir/we ird @+$,;=?.txt key=we ird @+$,;=?.txt"}, p.objectNames())
		// Spec §11 item 34: exactly a///b.txt.
		p = h.listPage(t, h.service, "odd", map[string]any{"prefix": "a"})
		require.Equal(t, []string{"a///b.txt"}, p.objectNames())
		p = h.listPage(t, h.service, "odd", map[string]any{"prefix": "a///", "with_delimiter": true})
		require.Equal(t, []string{"a///b.txt key=b.txt"}, p.objectNames())
		require.Equal(t, []string{"f:b.txt"}, h.v1Names(t, h.service, "odd", map[string]any{"prefix": "a///"}))
		// Keys with spaces etc. survive the cursor.
		p = h.listPage(t, h.service, "odd", map[string]any{"prefix": "dir/", "limit": 1})
		require.Equal(t, []string{"dir/we ird @+$,;=?.txt"}, p.objectNames())
		p = h.listPage(t, h.service, "odd", map[string]any{"prefix": "dir/", "limit": 1, "cursor": p.nextCursor})
		require.Equal(t, []string{"dir/we ird/x.txt"}, p.objectNames())
		require.False(t, p.hasNext)
	})

	t.Run("EntryShapes", func(t *testing.T) {
		t.Parallel()
		// A file entry's values are the row's: id, timestamps rendered in ms with Z, metadata.
		var id string
		var created, updated, accessed time.Time
		require.NoError(t, h.db.Pool.QueryRow(context.Background(),
			`select id::text, created_at, updated_at, last_accessed_at from storage.objects where bucket_id = 'mixed' and name = 'm.txt'`).
			Scan(&id, &created, &updated, &accessed))
		js := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
		want := fmt.Sprintf(`{"name":"m.txt","id":%q,"updated_at":%q,"created_at":%q,"last_accessed_at":%q,"metadata":{"size":1,"mimetype":"text/plain"}}`,
			id, js(updated), js(created), js(accessed))
		es := requireV1(t, h.listV1(t, h.service, "mixed", map[string]any{"prefix": "", "search": "m"}))
		require.Len(t, es, 1)
		require.JSONEq(t, want, string(mustJSON(t, es[0].raw)))

		p := h.listPage(t, h.service, "mixed", map[string]any{"prefix": "m"})
		require.Len(t, p.objects, 1)
		require.JSONEq(t, want, string(mustJSON(t, p.objects[0])))
		p = h.listPage(t, h.service, "mixed", map[string]any{"with_delimiter": true})
		require.Equal(t, []string{"d1/ key=d1", "d2/ key=d2"}, p.folderNames())
		require.Equal(t, []string{"a.txt key=a.txt", "m.txt key=m.txt", "z.txt key=z.txt"}, p.objectNames())
		require.JSONEq(t, strings.Replace(want, `{"name"`, `{"key":"m.txt","name"`, 1), string(mustJSON(t, p.objects[1])))
		require.JSONEq(t, `{"key":"d2","name":"d2/","id":null,"updated_at":null,"created_at":null,"last_accessed_at":null,"metadata":null}`,
			string(mustJSON(t, p.folders[1])))
		// Under a time sort a folder carries its earliest child's created_at.
		var earliest time.Time
		require.NoError(t, h.db.Pool.QueryRow(context.Background(),
			`select min(created_at) from storage.objects where bucket_id = 'mixed' and name like 'd1/%'`).Scan(&earliest))
		p = h.listPage(t, h.service, "mixed", map[string]any{"with_delimiter": true, "sortBy": map[string]any{"column": "created_at"}})
		require.Equal(t, []string{"d1/ key=d1", "d2/ key=d2"}, p.folderNames())
		require.Equal(t, js(earliest), p.folders[0]["created_at"])
		// JSON content type on both.
		for _, r := range []httpResponse{h.listV1(t, h.service, "mixed", map[string]any{"prefix": ""}), h.listV2(t, h.service, "mixed", nil)} {
			require.True(t, strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"), "Content-Type %q", r.Header.Get("Content-Type"))
		}
	})

	t.Run("MissingAndEmptyBuckets", func(t *testing.T) {
		t.Parallel()
		for _, bucket := range []string{"nosuchbucket", "empty"} {
			// Spec §7.1: no error for a missing bucket.
			r := h.listV1(t, h.service, bucket, map[string]any{"prefix": ""})
			require.Equal(t, "[]", string(okBody(t, r)))
			r = h.listV2(t, h.service, bucket, map[string]any{})
			require.JSONEq(t, `{"hasNext":false,"folders":[],"objects":[]}`, string(okBody(t, r)), "bucket %s", bucket)
			r = h.listV2(t, h.service, bucket, map[string]any{"with_delimiter": true})
			require.JSONEq(t, `{"hasNext":false,"folders":[],"objects":[]}`, string(okBody(t, r)), "bucket %s", bucket)
		}
	})

	t.Run("InvalidBucketName", func(t *testing.T) {
		t.Parallel()
		// Spec §2.3: list routes validate the bucket name before touching the database.
		for _, path := range []string{"/object/list/bad%23name", "/object/list-v2/bad%23name", "/object/list/caf%C3%A9", "/object/list-v2/caf%C3%A9"} {
			requireAPIError(t, h.do(t, "POST", path, h.service, `{"prefix":""}`), http.StatusBadRequest, errBadName)
		}
	})

	t.Run("InvalidCursor", func(t *testing.T) {
		t.Parallel()
		for _, c := range []string{"not a cursor!", "%%%", "bm90IGEgY3Vyc29y" /* base64("not a cursor") */, "e30=", "AAAA"} {
			for _, delim := range []bool{false, true} {
				r := h.listV2(t, h.service, "four", map[string]any{"cursor": c, "with_delimiter": delim})
				requireAPIError(t, r, http.StatusBadRequest, errInvalidCursor)
			}
		}
	})

	t.Run("CursorWinsOverSortBy", func(t *testing.T) {
		t.Parallel()
		// Spec §7.2: a cursor's order/column win over the body's sortBy.
		p := h.listPage(t, h.service, "four", map[string]any{"limit": 1, "sortBy": map[string]any{"column": "name", "order": "desc"}})
		require.Equal(t, []string{"k4"}, p.objectNames())
		p = h.listPage(t, h.service, "four", map[string]any{"limit": 2, "cursor": p.nextCursor, "sortBy": map[string]any{"column": "name", "order": "asc"}})
		require.Equal(t, []string{"k3", "k2"}, p.objectNames())
		require.True(t, p.hasNext)
		p = h.listPage(t, h.service, "four", map[string]any{"limit": 2, "cursor": p.nextCursor})
		require.Equal(t, []string{"k1"}, p.objectNames())
		require.False(t, p.hasNext)
		// A time cursor keeps its column and order when the follow-up sends no sortBy (the
		// four rows share created_at, so name breaks the ties, in the cursor's direction).
		p = h.listPage(t, h.service, "four", map[string]any{"limit": 1, "sortBy": map[string]any{"column": "created_at", "order": "desc"}})
		require.Equal(t, []string{"k4"}, p.objectNames())
		p = h.listPage(t, h.service, "four", map[string]any{"limit": 2, "cursor": p.nextCursor})
		require.Equal(t, []string{"k3", "k2"}, p.objectNames())
		p = h.listPage(t, h.service, "four", map[string]any{"limit": 2, "cursor": p.nextCursor, "sortBy": map[string]any{"column": "name", "order": "asc"}})
		require.Equal(t, []string{"k1"}, p.objectNames())
		require.False(t, p.hasNext)
	})

	t.Run("Validation", func(t *testing.T) {
		t.Parallel()
		schema := func(msg string) apiError { return apiError{"400", "InvalidRequest", "Error", msg} }
		cases := []struct {
			path, body string
			want       apiError
		}{
			{"/object/list/b", `{"prefix":"","limit":0}`, schema("body/limit must be >= 1")},
			{"/object/list/b", `{"prefix":"","limit":-1}`, schema("body/limit must be >= 1")},
			{"/object/list/b", `{"prefix":"","offset":-1}`, schema("body/offset must be >= 0")},
			{"/object/list/b", `{"prefix":"","limit":"x"}`, schema("body/limit must be integer")},
			{"/object/list/b", `{}`, schema("body must have required property 'prefix'")},
			{"/object/list/b", `{"prefix":"","sortBy":{"column":"size"}}`, schema("body/sortBy/column must be equal to one of the allowed values")},
			{"/object/list/b", `{"prefix":"","sortBy":{"column":"name","order":"up"}}`, schema("body/sortBy/order must be equal to one of the allowed values")},
			{"/object/list-v2/b", `{"limit":0}`, schema("body/limit must be >= 1")},
			{"/object/list-v2/b", `{"limit":-3}`, schema("body/limit must be >= 1")},
			{"/object/list-v2/b", `{"sortBy":{"column":"last_accessed_at"}}`, schema("body/sortBy/column must be equal to one of the allowed values")},
			{"/object/list-v2/b", `{"sortBy":{"column":"name","order":"sideways"}}`, schema("body/sortBy/order must be equal to one of the allowed values")},
		}
		for _, c := range cases {
			requireAPIError(t, h.do(t, "POST", c.path, h.service, c.body), http.StatusBadRequest, c.want)
		}
		// Type coercion as in the reference's schemas: "2" is an integer.
		require.Equal(t, []string{"f:k1", "f:k2"}, h.v1Names(t, h.service, "four", map[string]any{"prefix": "", "limit": "2"}))
		p := h.listPage(t, h.service, "four", map[string]any{"limit": "3"})
		require.Equal(t, []string{"k1", "k2", "k3"}, p.objectNames())
	})

	t.Run("RLS", func(t *testing.T) {
		t.Parallel()
		listScene(t, h, "rls", true)
		now := time.Now().UTC()
		listInsertAt(t, h.db, "rls", "mine/a.txt", userA.Sub, now, now, now)
		listInsertAt(t, h.db, "rls", "theirs/b.txt", userB.Sub, now, now, now)
		listInsertAt(t, h.db, "rls", "top.txt", userA.Sub, now, now, now)
		admin(t, h.db, `create policy list_http_own on storage.objects for select to authenticated
			using (bucket_id = 'rls' and owner_id = (select auth.uid())::text)`)
		require.Equal(t, []string{"d:mine", "f:top.txt"}, h.v1Names(t, h.userA, "rls", map[string]any{"prefix": ""}))
		require.Equal(t, []string{"d:theirs"}, h.v1Names(t, h.userB, "rls", map[string]any{"prefix": ""}))
		require.Equal(t, []string{}, h.v1Names(t, h.anon, "rls", map[string]any{"prefix": ""}))
		p := h.listPage(t, h.userA, "rls", map[string]any{"with_delimiter": true})
		require.Equal(t, []string{"mine/ key=mine"}, p.folderNames())
		require.Equal(t, []string{"top.txt key=top.txt"}, p.objectNames())
		p = h.listPage(t, h.userB, "rls", map[string]any{})
		require.Equal(t, []string{"theirs/b.txt"}, p.objectNames())
		p = h.listPage(t, h.anon, "rls", map[string]any{})
		require.Equal(t, []string{}, p.objectNames())
		p = h.listPage(t, h.service, "rls", map[string]any{})
		require.Equal(t, []string{"mine/a.txt", "theirs/b.txt", "top.txt"}, p.objectNames())
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// TestHTTPListLimits pins the page-size caps: v1 default 100 and at most 1500, v2 default and
// at most 1000 per page (spec §6.5, §7.2).
func TestHTTPListLimits(t *testing.T) {
	t.Parallel()
	h := setupHTTP(t)
	listScene(t, h, "big", false)
	admin(t, h.db, `insert into storage.objects (bucket_id, name, metadata, version)
		select 'big', 'k' || lpad(i::text, 4, '0'), '{"size":1}', 'v' || i from generate_series(1, 1600) i`)
	key := func(i int) string { return fmt.Sprintf("k%04d", i) }

	t.Run("V1", func(t *testing.T) {
		t.Parallel()
		got := h.v1Names(t, h.service, "big", map[string]any{"prefix": ""})
		require.Len(t, got, 100, "default limit")
		got = h.v1Names(t, h.service, "big", map[string]any{"prefix": "", "limit": 5000})
		require.Len(t, got, 1500, "limit capped at 1500")
		require.Equal(t, "f:"+key(1500), got[1499])
		got = h.v1Names(t, h.service, "big", map[string]any{"prefix": "", "limit": 1500, "offset": 1590})
		require.Equal(t, []string{"f:" + key(1591), "f:" + key(1592)}, got[:2])
		require.Len(t, got, 10)
	})

	t.Run("V2", func(t *testing.T) {
		t.Parallel()
		for _, body := range []map[string]any{{}, {"limit": 1000}, {"limit": 5000}} {
			p := h.listPage(t, h.service, "big", body)
			require.Len(t, p.objects, 1000, "body %v: pages hold at most 1000", body)
			require.True(t, p.hasNext, "body %v: 600 more keys follow", body)
			require.Equal(t, key(1000), p.objects[999]["name"])
			body["cursor"] = p.nextCursor
			p = h.listPage(t, h.service, "big", body)
			require.Len(t, p.objects, 600, "body %v", body)
			require.False(t, p.hasNext)
			require.Equal(t, key(1001), p.objects[0]["name"])
		}
		p := h.listPage(t, h.service, "big", map[string]any{"limit": 999})
		require.True(t, p.hasNext)
		require.Len(t, p.objects, 999)
		p = h.listPage(t, h.service, "big", map[string]any{"limit": 1000, "prefix": "k1"})
		require.Len(t, p.objects, 601, "k1000..k1600")
		require.False(t, p.hasNext)
	})
}

// ---------------------------------------------------------------------------------------------
// Pagination property: a random tree, listed in Go, compared with every page.

// treeObj is an object of the random tree with its timestamps.
type treeObj struct {
	name                       string
	created, updated, accessed time.Time
}

// randomTree builds n keys of depth 1–4. Segments come from a small mixed-case alphabet with
// a few '%', '_', ' ' and '-', so byte order (v2) and lower-case order (v1) differ and LIKE
// wildcards would show. To keep both orders total, no two paths differ only by case (the
// first spelling of a path wins) and folder segments never contain '.', while every file
// name does, so a folder never ties a file. created_at and last_accessed_at are distinct per
// object; updated_at takes few values, so name must break ties.
func randomTree(r *rand.Rand, n int) []treeObj {
	const letters = "abAB"
	const rare = "%_ -"
	seg := func() string {
		var b strings.Builder
		for range 1 + r.IntN(2) {
			if r.IntN(12) == 0 {
				b.WriteByte(rare[r.IntN(len(rare))])
			} else {
				b.WriteByte(letters[r.IntN(len(letters))])
			}
		}
		return b.String()
	}
	exts := []string{".txt", ".png", ".a"}
	canon := map[string]string{}
	spell := func(p string) string {
		if c, ok := canon[strings.ToLower(p)]; ok {
			return c
		}
		canon[strings.ToLower(p)] = p
		return p
	}
	seen := map[string]bool{}
	var names []string
	for len(names) < n {
		depth := 1 + r.IntN(4)
		path := ""
		for range depth - 1 {
			path = spell(path + seg() + "/")
		}
		leaf := seg() + exts[r.IntN(len(exts))]
		if r.IntN(40) == 0 {
			leaf = ".emptyFolderPlaceholder"
		}
		key := spell(path + leaf)
		if seen[key] {
			continue
		}
		seen[key] = true
		names = append(names, key)
	}
	base := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	created, accessed := r.Perm(n), r.Perm(n)
	out := make([]treeObj, n)
	for i, name := range names {
		out[i] = treeObj{
			name:     name,
			created:  base.Add(time.Duration(created[i]) * time.Millisecond),
			updated:  base.Add(time.Duration(r.IntN(40)) * time.Second),
			accessed: base.Add(time.Duration(accessed[i]) * 3 * time.Millisecond),
		}
	}
	return out
}

func insertTree(t *testing.T, h *httpBundle, bucket string, objs []treeObj) {
	t.Helper()
	var names []string
	var created, updated, accessed []time.Time
	for _, o := range objs {
		names = append(names, o.name)
		created = append(created, o.created)
		updated = append(updated, o.updated)
		accessed = append(accessed, o.accessed)
	}
	admin(t, h.db, `insert into storage.objects (bucket_id, name, metadata, version, created_at, updated_at, last_accessed_at)
		select $1, n, '{"size":1}', gen_random_uuid()::text, c, u, a
		from unnest($2::text[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[]) as t(n, c, u, a)`,
		bucket, names, created, updated, accessed)
}

// v2Want is an entry of the expected v2 listing.
type v2Want struct {
	name, key string
	folder    bool
	ts        time.Time // the sort timestamp under time sorting
}

// modelV2 is spec §7.2 in Go: keys starting with prefix (case-sensitive); with the delimiter,
// the immediate children (folders named with a trailing "/", key = the path segment at the
// prefix's depth, a folder's time = its earliest created_at beneath); ordered by name bytewise,
// or by (time, name), in the requested direction.
func modelV2(objs []treeObj, prefix string, delim bool, column, order string) []v2Want {
	stamp := func(o treeObj) time.Time {
		if column == "updated_at" {
			return o.updated
		}
		return o.created
	}
	depth := strings.Count(prefix, "/")
	var out []v2Want
	folders := map[string]int{}
	for _, o := range objs {
		if !strings.HasPrefix(o.name, prefix) {
			continue
		}
		if !delim {
			out = append(out, v2Want{name: o.name, ts: stamp(o)})
			continue
		}
		seg := strings.Split(o.name, "/")[depth]
		rest := o.name[len(prefix):]
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			out = append(out, v2Want{name: o.name, key: seg, ts: stamp(o)})
			continue
		}
		fname := prefix + rest[:i+1]
		if j, ok := folders[fname]; ok {
			if o.created.Before(out[j].ts) {
				out[j].ts = o.created
			}
			continue
		}
		folders[fname] = len(out)
		out = append(out, v2Want{name: fname, key: seg, folder: true, ts: o.created})
	}
	slices.SortFunc(out, func(a, b v2Want) int {
		c := 0
		if column != "name" {
			c = a.ts.Compare(b.ts)
		}
		if c == 0 {
			c = strings.Compare(a.name, b.name)
		}
		if order == "desc" {
			c = -c
		}
		return c
	})
	return out
}

// v1Want is an entry of the expected v1 listing.
type v1Want struct {
	name   string
	folder bool
	obj    treeObj
}

// modelV1 is spec §7.1 in Go: effective prefix = prefix (+ "/") + search, matched
// case-insensitively; entries named relative to the prefix; name sort interleaves by
// lower(name) bytewise; other columns list the folders first (by lower(name), or byte order
// when cOrderFolders), then the files by the column.
func modelV1(objs []treeObj, prefix, search, column, order string, cOrderFolders bool) []string {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	eff := strings.ToLower(prefix + search)
	var es []v1Want
	seen := map[string]bool{}
	for _, o := range objs {
		if !strings.HasPrefix(strings.ToLower(o.name), eff) {
			continue
		}
		rest := o.name[len(eff):]
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			name := o.name[len(prefix) : len(eff)+i]
			if !seen[name] {
				seen[name] = true
				es = append(es, v1Want{name: name, folder: true})
			}
			continue
		}
		es = append(es, v1Want{name: o.name[len(prefix):], obj: o})
	}
	dir := 1
	if order == "desc" {
		dir = -1
	}
	byName := func(a, b v1Want) int { return dir * strings.Compare(strings.ToLower(a.name), strings.ToLower(b.name)) }
	if column == "name" {
		slices.SortFunc(es, byName)
	} else {
		slices.SortFunc(es, func(a, b v1Want) int {
			if a.folder != b.folder {
				if a.folder {
					return -1
				}
				return 1
			}
			if a.folder {
				if cOrderFolders {
					return dir * strings.Compare(a.name, b.name)
				}
				return byName(a, b)
			}
			at, bt := a.obj.created, b.obj.created
			if column == "last_accessed_at" {
				at, bt = a.obj.accessed, b.obj.accessed
			}
			return dir * at.Compare(bt)
		})
	}
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = map[bool]string{true: "d:", false: "f:"}[e.folder] + e.name
	}
	return out
}

// treePrefixes picks prefixes worth listing: the root, folders with and without their slash,
// in another case, raw partial prefixes, ones with % or _, and one matching nothing.
func treePrefixes(r *rand.Rand, objs []treeObj) []string {
	var folders []string
	seen := map[string]bool{}
	for _, o := range objs {
		parts := strings.Split(o.name, "/")
		for i := 1; i < len(parts); i++ {
			f := strings.Join(parts[:i], "/") + "/"
			if !seen[f] {
				seen[f] = true
				folders = append(folders, f)
			}
		}
	}
	slices.Sort(folders)
	pick := func() string { return folders[r.IntN(len(folders))] }
	out := []string{"", "zzz-nothing/"}
	for range 3 {
		out = append(out, pick())
	}
	out = append(out, strings.TrimSuffix(pick(), "/"), strings.ToUpper(pick()), strings.ToLower(pick()))
	for range 2 {
		o := objs[r.IntN(len(objs))].name
		out = append(out, o[:1+r.IntN(len(o))])
	}
	for _, f := range folders {
		if strings.ContainsAny(f, "%_") {
			out = append(out, f)
			break
		}
	}
	out = append(out, "%", "_", "a%", "A_")
	return slices.Compact(out)
}

// walkV2 pages through a v2 listing via nextCursor and checks every page against want: the
// page's folders and objects are exactly the next limit entries of want (split in two arrays,
// each in stream order), hasNext is true on every page but the last, and the cursor is absent
// on the last. It returns the number of pages and the delimited entries whose key differs
// from the model's (reported once per configuration, after the walks).
func walkV2(t *testing.T, h *httpBundle, bucket string, body map[string]any, limit int, want []v2Want) (pages int, keyMismatches []string) {
	t.Helper()
	delim, _ := body["with_delimiter"].(bool)
	column := "name"
	if sb, ok := body["sortBy"].(map[string]any); ok {
		column, _ = sb["column"].(string)
	}
	pos := 0
	cursor := ""
	for {
		req := map[string]any{}
		for k, v := range body {
			req[k] = v
		}
		req["limit"] = limit
		if cursor != "" {
			req["cursor"] = cursor
		}
		p := requireV2(t, h.listV2(t, h.service, bucket, req), delim, column)
		pages++
		end := min(pos+limit, len(want))
		var wantFolders, wantObjects []string
		var gotFolders, gotObjects []string
		for _, w := range want[pos:end] {
			if w.folder {
				wantFolders = append(wantFolders, w.name)
			} else {
				wantObjects = append(wantObjects, w.name)
			}
		}
		for _, e := range p.folders {
			gotFolders = append(gotFolders, e["name"].(string))
		}
		for _, e := range p.objects {
			gotObjects = append(gotObjects, e["name"].(string))
		}
		ctx := fmt.Sprintf("page %d (entries %d..%d of %d), body %v, cursor %q", pages, pos, end, len(want), req, cursor)
		require.Equal(t, wantFolders, gotFolders, "folders of %s", ctx)
		require.Equal(t, wantObjects, gotObjects, "objects of %s", ctx)
		require.Equal(t, end < len(want), p.hasNext, "hasNext of %s", ctx)
		if delim {
			byName := map[string]v2Want{}
			for _, w := range want[pos:end] {
				byName[w.name] = w
			}
			for _, e := range append(slices.Clone(p.folders), p.objects...) {
				if w := byName[e["name"].(string)]; e["key"] != w.key {
					keyMismatches = append(keyMismatches, fmt.Sprintf("prefix %q: %s key=%q, want %q", body["prefix"], w.name, e["key"], w.key))
				}
			}
		}
		if column != "name" {
			for _, e := range append(slices.Clone(p.folders), p.objects...) {
				w := want[slices.IndexFunc(want, func(w v2Want) bool { return w.name == e["name"] })]
				require.Equal(t, w.ts.UTC().Format("2006-01-02T15:04:05.000Z"), e[column], "%s timestamp of %s in %s", column, w.name, ctx)
			}
		}
		pos = end
		if !p.hasNext {
			break
		}
		require.Less(t, pages, len(want)+2, "the walk does not end")
		cursor = p.nextCursor
	}
	require.Equal(t, len(want), pos, "the walk covered every entry")
	return pages, keyMismatches
}

func TestHTTPListPagination(t *testing.T) {
	t.Parallel()
	h := setupHTTP(t)
	const seed = 20260814
	r := rand.New(rand.NewPCG(seed, seed))
	t.Logf("seed %d", seed)
	objs := randomTree(r, 300)
	listScene(t, h, "tree", false)
	insertTree(t, h, "tree", objs)
	prefixes := treePrefixes(r, objs)
	t.Logf("prefixes %q", prefixes)

	// Sanity of the fixture: the tree really exercises what it is meant to.
	var hasUpper, hasWild, hasSpace bool
	for _, o := range objs {
		hasUpper = hasUpper || strings.ContainsAny(o.name, "AB")
		hasWild = hasWild || strings.ContainsAny(o.name, "%_")
		hasSpace = hasSpace || strings.Contains(o.name, " ")
	}
	require.True(t, hasUpper && hasWild && hasSpace, "the random tree has mixed case, wildcards and spaces")

	t.Run("V2", func(t *testing.T) {
		t.Parallel()
		r := rand.New(rand.NewPCG(seed, 2))
		for _, delim := range []bool{false, true} {
			for _, column := range []string{"name", "updated_at", "created_at"} {
				for _, order := range []string{"asc", "desc"} {
					name := fmt.Sprintf("delimiter=%v/%s/%s", delim, column, order)
					sizes := []int{1 + r.IntN(50), 1 + r.IntN(50), 1 + r.IntN(10)}
					t.Run(name, func(t *testing.T) {
						t.Parallel()
						var mismatches []string
						walks, pages, entries := 0, 0, 0
						for _, prefix := range prefixes {
							want := modelV2(objs, prefix, delim, column, order)
							for _, size := range sizes {
								body := map[string]any{"prefix": prefix, "with_delimiter": delim, "sortBy": map[string]any{"column": column, "order": order}}
								n, m := walkV2(t, h, "tree", body, size, want)
								walks, pages, entries = walks+1, pages+n, entries+len(want)
								mismatches = append(mismatches, m...)
							}
						}
						t.Logf("%d walks (page sizes %v), %d pages, %d entries", walks, sizes, pages, entries)
						if len(mismatches) > 0 {
							t.Errorf("%d delimited entries carry a key other than the path segment at the prefix's depth (spec §7.2); first: %s",
								len(mismatches), mismatches[0])
						}
					})
				}
			}
		}
	})

	t.Run("V2SubMillisecondTimestamps", func(t *testing.T) {
		t.Parallel()
		// Timestamps differing below the millisecond (JSON shows milliseconds): the cursor must
		// still neither repeat nor skip entries.
		listScene(t, h, "us", false)
		base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		var names []string
		stamps := map[string]time.Time{}
		for i := range 40 {
			n := fmt.Sprintf("f%02d/o%02d.txt", i%5, i)
			names = append(names, n)
			stamps[n] = base.Add(time.Duration(i%3)*time.Millisecond + time.Duration((i*37)%1000)*time.Microsecond)
		}
		for _, n := range names {
			listInsertAt(t, h.db, "us", n, "", stamps[n], stamps[n], stamps[n])
		}
		for _, column := range []string{"created_at", "updated_at"} {
			for _, order := range []string{"asc", "desc"} {
				for _, delim := range []bool{false, true} {
					for _, size := range []int{1, 2, 3, 7} {
						seen := map[string]bool{}
						cursor := ""
						for pages := 0; ; pages++ {
							require.Less(t, pages, 100)
							body := map[string]any{"limit": size, "with_delimiter": delim, "sortBy": map[string]any{"column": column, "order": order}}
							if cursor != "" {
								body["cursor"] = cursor
							}
							p := h.listPage(t, h.service, "us", body)
							// Stream order is not recoverable across the two arrays of a
							// page, so check monotonic time per array and no repeats.
							for _, arr := range [][]map[string]any{p.folders, p.objects} {
								prev := ""
								for _, e := range arr {
									n := e["name"].(string)
									require.False(t, seen[n], "%s %s delim=%v size %d: %s listed twice", column, order, delim, size, n)
									seen[n] = true
									ts := e[column].(string)
									if prev != "" {
										if order == "asc" {
											require.LessOrEqual(t, prev, ts, "%s order", column)
										} else {
											require.GreaterOrEqual(t, prev, ts, "%s order", column)
										}
									}
									prev = ts
								}
							}
							if !p.hasNext {
								break
							}
							cursor = p.nextCursor
						}
						want := 40
						if delim {
							want = 5
						}
						require.Len(t, seen, want, "%s %s delim=%v size %d: every entry exactly once", column, order, delim, size)
					}
				}
			}
		}
	})

	t.Run("V1", func(t *testing.T) {
		t.Parallel()
		r := rand.New(rand.NewPCG(seed, 3))
		type v1Case struct{ prefix, search string }
		var cases []v1Case
		for _, p := range prefixes {
			cases = append(cases, v1Case{p, ""})
		}
		// Searches: a letter in either case, a folder-ish search containing "/", wildcards.
		for range 6 {
			o := objs[r.IntN(len(objs))].name
			cut := strings.LastIndexByte(o, '/') + 1
			dir, rest := o[:cut], o[cut:]
			cases = append(cases, v1Case{dir, rest[:1]}, v1Case{strings.ToUpper(dir), strings.ToUpper(rest[:1])})
			if i := strings.IndexByte(o, '/'); i >= 0 {
				cases = append(cases, v1Case{"", o[:i+1]})
			}
		}
		cases = append(cases, v1Case{"", "%"}, v1Case{"", "_"}, v1Case{"", "a%"}, v1Case{"", " "})
		for _, column := range []string{"name", "created_at", "last_accessed_at"} {
			for _, order := range []string{"asc", "desc"} {
				sizes := []int{1 + r.IntN(50), 1 + r.IntN(10)}
				t.Run(column+"/"+order, func(t *testing.T) {
					t.Parallel()
					var mismatches []string
					defer func() {
						if len(mismatches) > 0 {
							t.Errorf("%d of %d v1 listings differ from spec §7.1 (order by lower(name), folders named without '/'); first: %s",
								len(mismatches), len(cases), mismatches[0])
						}
					}()
					for _, c := range cases {
						sortBy := map[string]any{"column": column, "order": order}
						full := h.v1Names(t, h.service, "tree", map[string]any{"prefix": c.prefix, "search": c.search, "limit": 1500, "sortBy": sortBy})
						want := modelV1(objs, c.prefix, c.search, column, order, false)
						if column != "name" && !slices.Equal(want, full) {
							// Spec §7.1 says folders come "by folder name": accept byte order too.
							if alt := modelV1(objs, c.prefix, c.search, column, order, true); slices.Equal(alt, full) {
								want = alt
							}
						}
						if !slices.Equal(want, full) {
							mismatches = append(mismatches, fmt.Sprintf("prefix %q search %q:\n want %q\n  got %q", c.prefix, c.search, want, full))
						}
						// Windows must agree with the full listing (the server's own, so that an
						// ordering bug above does not hide a paging bug here).
						for _, size := range sizes {
							for off := 0; ; off += size {
								got := h.v1Names(t, h.service, "tree", map[string]any{"prefix": c.prefix, "search": c.search, "limit": size, "offset": off, "sortBy": sortBy})
								require.Equal(t, full[min(off, len(full)):min(off+size, len(full))], got,
									"v1 prefix %q search %q %s %s limit %d offset %d", c.prefix, c.search, column, order, size, off)
								if off+size >= len(full) {
									break
								}
							}
						}
					}
				})
			}
		}
	})
}
