package tests

import (
	"context"
	"database/sql"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/peterldowns/pgtestdb"
	"github.com/stretchr/testify/require"

	storage "github.com/pgstorage/storage"
	"github.com/pgstorage/storage/tests/testdb"
)

// latestMigration pins the newest migration: adding one means updating this constant, on
// purpose, together with the tests of what it adds.
const latestMigration = 21

// emptyMigrator gives a database with no migration applied.
type emptyMigrator struct{}

func (emptyMigrator) Hash() (string, error)                                   { return "empty", nil }
func (emptyMigrator) Migrate(context.Context, *sql.DB, pgtestdb.Config) error { return nil }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestMigrationsLatestVersion(t *testing.T) {
	t.Parallel()
	require.Equal(t, int32(latestMigration), storage.LatestVersion())
}

// Up to the latest, down to zero, and up again: every migration is reversible and leaves
// nothing behind that breaks its own re-application.
func TestMigrationsUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.NewMigrated(t, emptyMigrator{})
	conn := connect(t, db.URL)
	m, err := storage.NewMigrator(ctx, conn)
	require.NoError(t, err)

	schemaObjects := func() (n int) {
		require.NoError(t, conn.QueryRow(ctx, `
			select (select count(*) from pg_namespace where nspname in ('storage', 'auth'))
			     + (select count(*) from pg_proc where pronamespace::regnamespace::text in ('storage', 'auth'))`).Scan(&n))
		return n
	}

	require.NoError(t, m.MigrateTo(ctx, latestMigration))
	upCount := schemaObjects()
	require.Greater(t, upCount, 10)
	require.NoError(t, m.MigrateTo(ctx, 0))
	require.Equal(t, 0, schemaObjects(), "down to zero leaves no storage or auth objects")
	require.NoError(t, m.MigrateTo(ctx, latestMigration))
	require.Equal(t, upCount, schemaObjects())

	// Migrating an up-to-date database is a no-op.
	v, err := storage.Migrate(ctx, conn)
	require.NoError(t, err)
	require.Equal(t, int32(latestMigration), v)
}

// A Supabase database already has auth.uid() and friends: the migrations keep them, and
// going down does not drop what they did not create.
func TestMigrationsKeepExistingAuthHelpers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.NewMigrated(t, emptyMigrator{})
	conn := connect(t, db.URL)
	_, err := conn.Exec(ctx, `create schema auth;
		create function auth.uid() returns uuid language sql stable as $$ select '00000000-0000-0000-0000-000000000001'::uuid $$;`)
	require.NoError(t, err)
	m, err := storage.NewMigrator(ctx, conn)
	require.NoError(t, err)
	require.NoError(t, m.MigrateTo(ctx, latestMigration))
	var uid, role string
	require.NoError(t, conn.QueryRow(ctx, `select auth.uid()::text, coalesce(auth.role(), 'none')`).Scan(&uid, &role))
	require.Equal(t, "00000000-0000-0000-0000-000000000001", uid, "existing helper untouched")
	require.Equal(t, "none", role, "missing helper created")

	require.NoError(t, m.MigrateTo(ctx, 0))
	var n int
	require.NoError(t, conn.QueryRow(ctx, `select count(*) from pg_proc where pronamespace = 'auth'::regnamespace`).Scan(&n))
	require.Equal(t, 1, n, "only the pre-existing auth.uid() remains")
}

// The code package sql/api is the one source of the API functions; the newest snapshot must
// equal it, or a change was made without `make api/snapshot`.
func TestMigrationsSnapshotMatchesAPIPackage(t *testing.T) {
	t.Parallel()
	snapshots, err := os.ReadDir("../sql/snapshots")
	require.NoError(t, err)
	var names []string
	for _, e := range snapshots {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	latest := filepath.Join("../sql/snapshots", names[len(names)-1])
	read := func(dir string) map[string]string {
		out := map[string]string{}
		require.NoError(t, fs.WalkDir(os.DirFS(dir), ".", func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, err := os.ReadFile(filepath.Join(dir, p))
				out[p] = string(b)
				return err
			}
			return err
		}))
		return out
	}
	require.Equal(t, read("../sql/api"), read(latest), "sql/api differs from %s: run make api/snapshot", latest)
}

// Every function of schemas storage and storage_internal comes from sql/api (the policy
// helpers of migration 004 aside), and every route-facing one (noun_verb for a REST operation,
// and the server's upload steps) has exactly one call site in the proxy.
func TestMigrationsAPIParity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testdb.New(t)
	rows, err := db.Pool.Query(ctx, `
		select distinct p.pronamespace::regnamespace::text || '.' || p.proname from pg_proc p
		where p.pronamespace in ('storage'::regnamespace, 'storage_internal'::regnamespace)
		  and p.proname not in ('foldername', 'filename', 'extension', 'operation',
		                        'allow_only_operation', 'allow_any_operation')
		order by 1`)
	require.NoError(t, err)
	inDB, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, inDB, storage.APIFunctions())

	proxySource := ""
	files, err := filepath.Glob("../proxy/*.go")
	require.NoError(t, err)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		proxySource += string(b)
	}
	routeFacing := regexp.MustCompile(`^storage\.(bucket_(create|get|list|update|delete|empty)|object_(info|delete|delete_many|move|copy)|url_sign(_many|_upload)?|object_list(_v2)?)$|^storage_internal\.object_upload_(prepare|commit|abort|inline)$`)
	checked := 0
	for _, f := range inDB {
		if !routeFacing.MatchString(f) {
			continue
		}
		checked++
		calls := strings.Count(proxySource, f+"(")
		require.Equal(t, 1, calls, "%s must have exactly one call site in proxy/", f)
	}
	require.Equal(t, 20, checked)
}
