// Package testdb gives every test its own real PostgreSQL database, cloned by pgtestdb from a
// template migrated with the product's own migrations. Main starts a throw-away cluster for
// the test binary unless TEST_DATABASE_URL names a server to use (as a superuser).
package testdb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // pgtestdb talks database/sql
	"github.com/peterldowns/pgtestdb"

	storage "github.com/pgstorage/storage"
	"github.com/pgstorage/storage/sql/cluster"
)

// admin is the superuser connection every test database is created through.
var admin pgtestdb.Config

// Main runs a test binary against real PostgreSQL: an ephemeral cluster (fsync off) unless
// TEST_DATABASE_URL is set, with the cluster-wide roles created once up front, as the
// migrations expect of a cluster whose migrating role may not create roles.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	adminURL := os.Getenv("TEST_DATABASE_URL")
	if adminURL == "" {
		dir, err := os.MkdirTemp("", "storage-test-pg-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "testdb:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		// MkdirTemp makes the directory 0700; the postgres OS user (when we are root) must
		// be able to reach the cluster inside it.
		if err := os.Chmod(dir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "testdb:", err)
			return 1
		}
		c, err := cluster.Start(ctx, cluster.Options{Dir: filepath.Join(dir, "pg"), Ephemeral: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, "testdb: start ephemeral PostgreSQL:", err)
			return 1
		}
		defer c.Stop()
		adminURL = c.ConnString("postgres")
	}
	if err := configure(ctx, adminURL); err != nil {
		fmt.Fprintln(os.Stderr, "testdb:", err)
		return 1
	}
	return m.Run()
}

// configure derives the pgtestdb config from the admin URL and prepares the roles.
func configure(ctx context.Context, adminURL string) error {
	pc, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return fmt.Errorf("TEST_DATABASE_URL: %w", err)
	}
	opts := url.Values{"sslmode": {"disable"}}
	host := pc.Host
	if filepath.IsAbs(host) { // unix socket: pgx reads host from the query string
		opts.Set("host", host)
		host = ""
	}
	admin = pgtestdb.Config{
		DriverName: "pgx",
		User:       pc.User,
		Password:   pc.Password,
		Host:       host,
		Port:       fmt.Sprint(pc.Port),
		Database:   pc.Database,
		Options:    opts.Encode(),
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return createRoles(ctx, conn)
}

// createRoles creates the cluster-wide roles the migrations expect, once per cluster.
func createRoles(ctx context.Context, conn *pgx.Conn) error {
	// The test role owns each test database and runs the migrations, like a deployment's
	// migrating role; it is a member of the request roles so the prelude can SET ROLE.
	_, err := conn.Exec(ctx, fmt.Sprintf(`
do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then create role anon nologin noinherit; end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then create role authenticated nologin noinherit; end if;
  if not exists (select from pg_roles where rolname = 'service_role') then create role service_role nologin noinherit bypassrls; end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then create role authenticator nologin noinherit; end if;
  if not exists (select from pg_roles where rolname = 'storage_server') then create role storage_server nologin noinherit; end if;
  if not exists (select from pg_roles where rolname = '%[1]s') then
    create role %[1]s login password '%[2]s' %[3]s;
  end if;
end $$;
grant anon, authenticated, service_role to %[1]s;
grant anon, authenticated, service_role to authenticator;`,
		pgtestdb.DefaultRoleUsername, pgtestdb.DefaultRolePassword, pgtestdb.DefaultRoleCapabilities))
	return err
}

// Migrator provisions pgtestdb's template with the product's migrations. Its hash covers
// every embedded schema file (all of sql/ and tern.conf), so any change makes a new template.
type Migrator struct{}

// Hash implements pgtestdb.Migrator.
func (Migrator) Hash() (string, error) { return storage.Hash(), nil }

// Migrate implements pgtestdb.Migrator with tern, as `storage migrate` does.
func (Migrator) Migrate(ctx context.Context, _ *sql.DB, conf pgtestdb.Config) error {
	conn, err := pgx.Connect(ctx, conf.URL())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = storage.Migrate(ctx, conn)
	return err
}

// DB is a fresh, migrated database of one test.
type DB struct {
	Pool *pgxpool.Pool
	URL  string // connects as the migrating role (the tables' owner)
	// SuperURL connects to the same database as the cluster's superuser, for what only a
	// superuser may do (loading auto_explain to read the plans inside a function).
	SuperURL string
}

// New returns a migrated database of the test's own, dropped after the test passes (kept for
// inspection when it fails).
func New(t testing.TB) *DB {
	t.Helper()
	return NewMigrated(t, Migrator{})
}

// NewMigrated is New with another migrator (e.g. an empty one for migration tests).
func NewMigrated(t testing.TB, m pgtestdb.Migrator) *DB {
	t.Helper()
	conf := pgtestdb.Custom(t, admin, m)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, conf.URL())
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	t.Cleanup(pool.Close)
	super := admin
	super.Database = conf.Database
	return &DB{Pool: pool, URL: conf.URL(), SuperURL: super.URL()}
}

// Private is a PostgreSQL cluster of one test's own, for tests that stop, restart or crash
// the database under a running server: a migrated database in it, and the means to restart it.
type Private struct {
	*DB
	dir     string
	cluster *cluster.Cluster
}

// NewPrivate starts a cluster for t (stopped and removed when t ends) and migrates a database
// in it. Its directory is short, so its unix socket stays at the same path across restarts.
func NewPrivate(t testing.TB) *Private {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil { // the postgres OS user must reach it
		t.Fatal(err)
	}
	p := &Private{dir: filepath.Join(dir, "pg")}
	p.start(t)
	t.Cleanup(func() { p.cluster.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.cluster.ConnString(""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := createRoles(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "create database storage owner "+pgtestdb.DefaultRoleUsername); err != nil {
		t.Fatal(err)
	}
	conf := pgtestdb.Config{DriverName: "pgx", User: pgtestdb.DefaultRoleUsername, Password: pgtestdb.DefaultRolePassword,
		Database: "storage", Options: url.Values{"sslmode": {"disable"}, "host": {p.cluster.SocketDir()}}.Encode()}
	if err := (Migrator{}).Migrate(ctx, nil, conf); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, conf.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	super := conf
	super.User, super.Password = "postgres", ""
	p.DB = &DB{Pool: pool, URL: conf.URL(), SuperURL: super.URL()}
	return p
}

func (p *Private) start(t testing.TB) {
	t.Helper()
	c, err := cluster.Start(context.Background(), cluster.Options{Dir: p.dir, Ephemeral: true})
	if err != nil {
		t.Fatal(err)
	}
	p.cluster = c
}

// Restart stops the cluster and starts it again: with a fast shutdown (open sessions are
// ended with an error, transactions in flight roll back) or an immediate one (the
// postmaster and every backend quit at once; crash recovery at the next start). down, when
// not nil, is called while the server is down, before it starts again.
func (p *Private) Restart(t testing.TB, immediate bool, down func()) {
	t.Helper()
	if immediate {
		b, err := os.ReadFile(filepath.Join(p.dir, "postmaster.pid"))
		if err != nil {
			t.Fatal(err)
		}
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err != nil {
			t.Fatalf("postmaster.pid: %v", err)
		}
		if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
			t.Fatal(err)
		}
	}
	_ = p.cluster.Stop() // after SIGQUIT it reports the abnormal exit
	if down != nil {
		down()
	}
	p.start(t)
}
