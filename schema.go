// Package storage holds the database schema of the storage server: the tern migrations under
// sql/ (with the code-package snapshots they install) and tern.conf, embedded so that the
// binary, the tests and the tern CLI all apply exactly the same files with the same [data].
package storage

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
	ini "github.com/vaughan0/go-ini"
)

// VersionTable is the table tern records the applied migration version in (as in tern.conf).
const VersionTable = "public.storage_schema_version"

//go:embed tern.conf sql/*.sql sql/api sql/snapshots
var files embed.FS

// Migrations returns the migrations directory (tern's layout: NNN_name.sql plus snapshots/).
func Migrations() fs.FS {
	sub, err := fs.Sub(files, "sql")
	if err != nil {
		panic(err) // impossible: the directory is embedded
	}
	return sub
}

// Data returns the [data] section of tern.conf, the template data every migration sees.
func Data() (map[string]any, error) {
	f, err := ini.Load(mustOpen("tern.conf"))
	if err != nil {
		return nil, fmt.Errorf("tern.conf: %w", err)
	}
	data := map[string]any{}
	for k, v := range f.Section("data") {
		data[k] = v
	}
	return data, nil
}

func mustOpen(name string) fs.File {
	f, err := files.Open(name)
	if err != nil {
		panic(err) // impossible: the file is embedded
	}
	return f
}

// Hash identifies the schema the migrations produce: a SHA-256 over the path and content of
// every embedded file (all of sql/, snapshots and code package included, and tern.conf), so a
// change anywhere yields a new test template database.
func Hash() string {
	var paths []string
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			paths = append(paths, p)
		}
		return err
	})
	sort.Strings(paths)
	h := sha256.New()
	for _, p := range paths {
		b, _ := files.ReadFile(p)
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// NewMigrator returns a tern migrator over conn with every migration loaded and tern.conf's
// [data] set.
func NewMigrator(ctx context.Context, conn *pgx.Conn) (*migrate.Migrator, error) {
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return nil, fmt.Errorf("migrator: %w", err)
	}
	if m.Data, err = Data(); err != nil {
		return nil, err
	}
	if err := m.LoadMigrations(Migrations()); err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	return m, nil
}

// Migrate applies every pending migration (under tern's advisory lock, so concurrent servers
// starting together are safe) and returns the version the database is at.
func Migrate(ctx context.Context, conn *pgx.Conn) (int32, error) {
	m, err := NewMigrator(ctx, conn)
	if err != nil {
		return 0, err
	}
	if err := m.Migrate(ctx); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	return m.GetCurrentVersion(ctx)
}

// LatestVersion is the number of the newest migration.
func LatestVersion() int32 {
	names, err := migrate.FindMigrations(Migrations())
	if err != nil {
		panic(err) // impossible: the embedded migrations are well-formed or the build is broken
	}
	return int32(len(names))
}

// APIFunctions lists the functions the sql/api code package defines, schema-qualified
// (storage.* and storage_internal.*), by reading its CREATE statements; tests compare it with
// pg_proc and with the proxy's wrappers. Overloads appear once.
func APIFunctions() []string {
	var out []string
	entries, _ := fs.ReadDir(files, "sql/api")
	for _, e := range entries {
		b, _ := files.ReadFile("sql/api/" + e.Name())
		for _, line := range strings.Split(string(b), "\n") {
			const prefix = "create or replace function "
			if strings.HasPrefix(line, prefix+"storage.") || strings.HasPrefix(line, prefix+"storage_internal.") {
				name := line[len(prefix):]
				out = append(out, name[:strings.IndexByte(name, '(')])
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}
