package tests

import (
	"context"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/proxy"
	"github.com/pgstorage/storage/tests/testdb"
)

// auditRow is one function of the audit table in SECURITY.md.
type auditRow struct {
	runsAs   string // invoker, definer
	callable string // the "callable by" column
}

// readAudit parses the audit table of SECURITY.md: one row per function, schema-qualified
// (a row listing `storage.url_sign`, `url_sign_many` names both in schema storage).
func readAudit(t *testing.T) map[string]auditRow {
	t.Helper()
	b, err := os.ReadFile("../SECURITY.md")
	require.NoError(t, err)
	_, table, ok := strings.Cut(string(b), "## Audit: functions request roles can execute")
	require.True(t, ok, "SECURITY.md has the audit section")
	name := regexp.MustCompile("`([a-z_]+\\.)?([a-z0-9_]+)`")
	out := map[string]auditRow{}
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) != 6 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		row := auditRow{runsAs: strings.TrimSpace(cells[2]), callable: strings.TrimSpace(cells[3])}
		schema := ""
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			if m[1] != "" {
				schema = strings.TrimSuffix(m[1], ".")
			}
			_, dup := out[schema+"."+m[2]]
			require.False(t, dup, "%s.%s is listed twice", schema, m[2])
			out[schema+"."+m[2]] = row
		}
	}
	return out
}

// TestSQLAuditTable: SECURITY.md lists exactly the functions of schemas storage,
// storage_internal and auth, each as SECURITY DEFINER or INVOKER as it really is, and "callable
// by" tells the truth about EXECUTE: "everyone" and "request roles" for what anon,
// authenticated and service_role may execute, "owner, storage_server" for the server's, and
// "trigger" for trigger functions.
func TestSQLAuditTable(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	doc := readAudit(t)
	rows, err := db.Pool.Query(context.Background(), `
		select n.nspname || '.' || p.proname,
		       case when p.prosecdef then 'definer' else 'invoker' end,
		       p.prorettype = 'trigger'::regtype,
		       has_function_privilege('anon', p.oid, 'execute')
		         and has_function_privilege('authenticated', p.oid, 'execute')
		         and has_function_privilege('service_role', p.oid, 'execute'),
		       has_function_privilege('anon', p.oid, 'execute')
		         or has_function_privilege('authenticated', p.oid, 'execute')
		         or has_function_privilege('service_role', p.oid, 'execute'),
		       has_function_privilege('storage_server', p.oid, 'execute')
		from pg_proc p join pg_namespace n on n.oid = p.pronamespace
		where n.nspname in ('storage', 'storage_internal', 'auth')`)
	require.NoError(t, err)
	type fn struct {
		Name, RunsAs                            string
		Trigger, AllRequest, AnyRequest, Server bool
	}
	fns, err := pgx.CollectRows(rows, pgx.RowToStructByPos[fn])
	require.NoError(t, err)
	var inDB []string
	for _, f := range fns {
		if !slices.Contains(inDB, f.Name) { // overloads share a row
			inDB = append(inDB, f.Name)
		}
		d, ok := doc[f.Name]
		if !ok {
			continue // reported below, all at once
		}
		require.Equal(t, f.RunsAs, d.runsAs, "%s: SECURITY.md says it runs as %s", f.Name, d.runsAs)
		switch {
		case f.Trigger:
			require.Equal(t, "trigger", d.callable, f.Name)
		case f.AllRequest:
			require.True(t, d.callable == "everyone" || d.callable == "request roles" || strings.HasSuffix(d.callable, " only"),
				"%s is executable by the request roles; SECURITY.md says %q", f.Name, d.callable)
		case f.AnyRequest:
			t.Fatalf("%s is executable by only some request roles", f.Name)
		case f.Server:
			require.Equal(t, "owner, `storage_server`", d.callable, f.Name)
		default:
			require.True(t, strings.HasPrefix(d.callable, "owner"), "%s: only the owner may execute it; SECURITY.md says %q", f.Name, d.callable)
		}
	}
	var inDoc []string
	for name := range doc {
		inDoc = append(inDoc, name)
	}
	sort.Strings(inDB)
	sort.Strings(inDoc)
	require.Equal(t, inDB, inDoc, "SECURITY.md's audit table must list exactly the functions of storage, storage_internal and auth")
}

// TestSQLDefinerHelpersAnswerOnlyTheirCallers: every SECURITY DEFINER helper the request roles
// may execute either discloses no more than the reference (SECURITY.md says why, and its
// "callable by" is "request roles") or refuses any caller but its API function: called
// directly by each request role, with whatever arguments, it raises 42501 before doing
// anything.
func TestSQLDefinerHelpersAnswerOnlyTheirCallers(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	doc := readAudit(t)
	rows, err := db.Pool.Query(context.Background(), `
		select n.nspname || '.' || p.proname, p.pronargs
		from pg_proc p join pg_namespace n on n.oid = p.pronamespace
		where n.nspname in ('storage', 'storage_internal') and p.prosecdef
		  and p.prorettype <> 'trigger'::regtype
		  and has_function_privilege('anon', p.oid, 'execute')
		order by 1`)
	require.NoError(t, err)
	type fn struct {
		Name  string
		NArgs int
	}
	fns, err := pgx.CollectRows(rows, pgx.RowToStructByPos[fn])
	require.NoError(t, err)
	guarded := 0
	for _, f := range fns {
		d := doc[f.Name]
		if d.callable == "request roles" {
			continue // audited as disclosing only what the reference does
		}
		require.True(t, strings.HasSuffix(d.callable, " only"), "%s: request roles may execute it; SECURITY.md must say which API function it answers", f.Name)
		guarded++
		args := strings.TrimSuffix(strings.Repeat("null, ", f.NArgs), ", ")
		for _, id := range []proxy.Identity{asAnon, userA, asService} {
			err := exec(t, db, id, `select `+f.Name+`(`+args+`)`)
			requireSQLState(t, err, "42501", "")
			require.Contains(t, err.Error(), f.Name+" may only be called by", "%s as %s", f.Name, id.Role)
		}
	}
	require.GreaterOrEqual(t, guarded, 8)
}

// TestSQLFunctionsComment: `\df+ storage.*` tells a DBA what each function is for, who may call
// it and what it raises: every function of storage and storage_internal has a comment, and
// schema storage holds only what callers use (the API, signing_secret_set and the policy
// helpers).
func TestSQLFunctionsComment(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	rows, err := db.Pool.Query(context.Background(), `
		select p.oid::regprocedure::text from pg_proc p
		where p.pronamespace in ('storage'::regnamespace, 'storage_internal'::regnamespace)
		  and coalesce(obj_description(p.oid, 'pg_proc'), '') = ''
		order by 1`)
	require.NoError(t, err)
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Empty(t, missing, "functions without a comment")

	rows, err = db.Pool.Query(context.Background(), `
		select distinct p.proname::text from pg_proc p where p.pronamespace = 'storage'::regnamespace order by 1`)
	require.NoError(t, err)
	inStorage, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{
		"allow_any_operation", "allow_only_operation", "bucket_create", "bucket_delete", "bucket_empty",
		"bucket_get", "bucket_list", "bucket_update", "events_replay", "extension", "filename", "foldername",
		"object_copy", "object_delete", "object_delete_many", "object_delete_prefix", "object_info",
		"object_list", "object_list_v2", "object_move", "operation", "s3_delete_object", "s3_delete_objects", "s3_list_multipart_uploads", "s3_list_objects", "s3_list_parts", "signing_secret_set",
		"url_sign", "url_sign_many", "url_sign_upload",
	}, inStorage)
}
