package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	storage "github.com/pgstorage/storage"
	"github.com/pgstorage/storage/sql/cluster"
)

// database is an open, migrated PostgreSQL: the pool, plus the embedded cluster to stop when
// the server owns one.
type database struct {
	pool    *pgxpool.Pool
	cluster *cluster.Cluster // nil with DATABASE_URL
	display string           // where it is, for humans (no password): the admin connection
	version int32            // schema version after migrating
	role    string           // the role the pool connects as, when not the admin's
}

// serverRole is the login role the embedded default's server connects as: no superuser, no
// BYPASSRLS, a member of the request roles (to SET ROLE per request) and of storage_server
// (the collector's functions). A token that resets the role, or any statement that escapes
// the prelude, runs with no more than that. Migrations and maintenance use the superuser.
const serverRole = "storage_app"

// poolUse says whom openDatabase's pool connects as.
type poolUse int

const (
	// poolAdmin: the migrating role (the embedded superuser, or DATABASE_URL's role), for
	// migrate and reconcile, which read and repair the bookkeeping tables.
	poolAdmin poolUse = iota
	// poolServer: the role requests run through: serverRole in the embedded default,
	// DATABASE_URL's role otherwise.
	poolServer
)

// openDatabase connects to DATABASE_URL, or starts the embedded cluster, and applies pending
// migrations.
func openDatabase(ctx context.Context, cfg Config, logOut io.Writer, use poolUse) (*database, error) {
	db := &database{}
	connString := cfg.DatabaseURL
	if cfg.embedded() {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("STORAGE_DATA_DIR: %w", err)
		}
		pgDir, err := clusterDir(cfg.DataDir, logOut)
		if err != nil {
			return nil, err
		}
		// PostgreSQL logs to <pg>/postgres.log; errors quote its last lines.
		cl, err := cluster.Start(ctx, cluster.Options{Dir: pgDir, BinDir: cfg.PGBinDir})
		if err != nil {
			return nil, err
		}
		db.cluster = cl
		connString = cl.ConnString("postgres")
	}
	db.display = displayURL(connString)
	pcfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		db.close()
		return nil, fmt.Errorf("DATABASE_URL: %v", err)
	}
	pcfg.MaxConns = int32(cfg.MaxConns)
	if db.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err == nil {
		err = db.pool.Ping(ctx)
	}
	if err != nil {
		db.close()
		return nil, fmt.Errorf("cannot reach the database at %s: %s", db.display, oneLine(err))
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		db.close()
		return nil, fmt.Errorf("cannot reach the database at %s: %s", db.display, oneLine(err))
	}
	db.version, err = migrateIfBehind(ctx, conn.Conn())
	if err == nil && use == poolServer && db.cluster != nil {
		err = ensureServerRole(ctx, conn.Conn())
	}
	conn.Release()
	if err != nil {
		db.close()
		return nil, err
	}
	if use == poolServer && db.cluster != nil {
		db.pool.Close()
		pcfg.ConnConfig.User = serverRole
		if db.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err == nil {
			err = db.pool.Ping(ctx)
		}
		if err != nil {
			db.close()
			return nil, fmt.Errorf("connect as %s: %s", serverRole, oneLine(err))
		}
		db.role = serverRole
	}
	return db, nil
}

// migrateIfBehind applies pending migrations, and only reads the version when there are none,
// so a server connecting as a role that may not run migrations (least privilege, see the
// README) starts once an owner has migrated.
func migrateIfBehind(ctx context.Context, conn *pgx.Conn) (int32, error) {
	var v int32
	err := conn.QueryRow(ctx, `select version from `+storage.VersionTable).Scan(&v)
	if err == nil && v == storage.LatestVersion() {
		return v, nil
	}
	return storage.Migrate(ctx, conn)
}

// ensureServerRole creates serverRole when missing and makes it what the server needs, and no
// more: login, no superuser, no BYPASSRLS, membership in the request roles and storage_server.
// The embedded cluster trusts its private socket, so the role needs no password.
func ensureServerRole(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.Exec(ctx, `
do $$
begin
  if not exists (select from pg_roles where rolname = '`+serverRole+`') then
    create role `+serverRole+` login inherit;
  end if;
end
$$;
alter role `+serverRole+` login inherit nosuperuser nocreatedb nocreaterole noreplication nobypassrls;
grant anon, authenticated, service_role, storage_server to `+serverRole+`;`)
	if err != nil {
		return fmt.Errorf("create the server's role %s: %s", serverRole, oneLine(err))
	}
	return nil
}

// clusterDir returns where the embedded cluster lives: <data>/pg. When we are root and the
// postgres OS user cannot reach that path (a parent such as /root or a mktemp directory has
// mode 0700), the cluster goes to /var/lib/storage/<hash of the path> instead and <data>/pg
// becomes a symlink to it, so the data dir still leads to everything and restarts find it.
func clusterDir(dataDir string, logOut io.Writer) (string, error) {
	pgDir := filepath.Join(dataDir, "pg")
	if target, err := filepath.EvalSymlinks(pgDir); err == nil {
		return target, nil
	}
	blocked := cluster.Reachable(pgDir)
	if blocked == nil {
		return pgDir, nil
	}
	sum := sha256.Sum256([]byte(pgDir))
	alt := filepath.Join(altClusterRoot, hex.EncodeToString(sum[:8]))
	if err := cluster.Reachable(alt); err != nil {
		return "", blocked
	}
	if err := os.MkdirAll(altClusterRoot, 0o755); err != nil {
		return "", fmt.Errorf("%v; and %s cannot be created: %v", blocked, altClusterRoot, err)
	}
	if err := os.Symlink(alt, pgDir); err != nil {
		return "", fmt.Errorf("%v; and %s cannot link to %s: %v", blocked, pgDir, alt, err)
	}
	fmt.Fprintf(logOut, "storage: %s is not reachable by the postgres OS user; the cluster lives in %s (linked from %s)\n", pgDir, alt, pgDir)
	return alt, nil
}

// altClusterRoot holds embedded clusters whose data dir the postgres OS user cannot reach.
const altClusterRoot = "/var/lib/storage"

func (db *database) close() {
	if db.pool != nil {
		db.pool.Close()
	}
	if db.cluster != nil {
		db.cluster.Stop()
	}
}

// oneLine flattens an error whose text spans lines (pgx lists each connection attempt on its
// own line), so configuration errors stay one line.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// displayURL renders a connection string without its password.
func displayURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		if strings.Contains(s, "password") {
			return "the configured database"
		}
		return s // keyword/value form without a secret, e.g. the embedded cluster's socket
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// jwtSecret returns AUTH_JWT_SECRET, or for the embedded default the secret kept in the data
// dir, generated on first use when create is set.
func jwtSecret(cfg Config, create bool) (string, error) {
	if cfg.JWTSecret != "" {
		return cfg.JWTSecret, nil
	}
	path := cfg.secretFile()
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) || !create {
		return "", fmt.Errorf("no JWT secret: set AUTH_JWT_SECRET or run `storage serve` once to create %s (%v)", path, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("keep JWT secret: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(secret + "\n"); err != nil {
		return "", fmt.Errorf("keep JWT secret: %w", err)
	}
	return secret, f.Sync()
}

// apiKeys mints the anon and service_role keys for secret. They carry no expiry (the server
// does not require one), so the same secret always yields the same keys.
func apiKeys(secret, alg string) (anon, service string, err error) {
	mint := func(role string) (string, error) {
		return jwt.NewWithClaims(jwt.GetSigningMethod(alg), jwt.MapClaims{"iss": "storage", "role": role}).SignedString([]byte(secret))
	}
	if anon, err = mint("anon"); err != nil {
		return "", "", err
	}
	service, err = mint("service_role")
	return anon, service, err
}

// keysCmd prints the keys as shell assignments: eval "$(storage keys)".
func keysCmd(_ context.Context, cfg Config, stdout, _ io.Writer) error {
	secret, err := jwtSecret(cfg, false)
	if err != nil {
		return err
	}
	anon, service, err := apiKeys(secret, cfg.JWTAlgorithm)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "ANON_KEY=%s\nSERVICE_ROLE_KEY=%s\n", anon, service)
	return err
}

// migrateCmd applies pending migrations and reports the version.
func migrateCmd(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	db, err := openDatabase(ctx, cfg, stderr, poolAdmin)
	if err != nil {
		return err
	}
	defer db.close()
	_, err = fmt.Fprintf(stdout, "schema version %d (latest %d) at %s\n", db.version, storage.LatestVersion(), db.display)
	return err
}
