package tests

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/proxy"
	"github.com/pgstorage/storage/tests/testdb"
)

// Identities the tests act as. The role comes from the JWT's role claim, as in production.
var (
	asService = proxy.Identity{Role: "service_role", Claims: `{"role":"service_role"}`}
	asAnon    = proxy.Identity{Role: "anon", Claims: `{"role":"anon"}`}
	userA     = proxy.Identity{Role: "authenticated", Sub: "8a5e1a1c-7c7f-4a3c-9d5e-3f3c1b2a4d01",
		Claims: `{"role":"authenticated","sub":"8a5e1a1c-7c7f-4a3c-9d5e-3f3c1b2a4d01"}`}
	userB = proxy.Identity{Role: "authenticated", Sub: "0b7d1e2f-1111-4222-8333-944455556666",
		Claims: `{"role":"authenticated","sub":"0b7d1e2f-1111-4222-8333-944455556666"}`}
)

// asRole runs fn in a transaction opened with the production prelude for id, then rolls back
// unless commit is set. The migrating role owns the tables and bypasses RLS, so a test that
// skipped the prelude would prove nothing.
func asRole(t *testing.T, db *testdb.DB, id proxy.Identity, commit bool, fn func(tx pgx.Tx) error) error {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	sql, args := proxy.Prelude(id, "test")
	_, err = tx.Exec(ctx, sql, args...)
	require.NoError(t, err)
	if err := fn(tx); err != nil {
		return err
	}
	if commit {
		return tx.Commit(ctx)
	}
	return nil
}

// exec runs one statement as id and commits it.
func exec(t *testing.T, db *testdb.DB, id proxy.Identity, sql string, args ...any) error {
	t.Helper()
	return asRole(t, db, id, true, func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), sql, args...)
		return err
	})
}

// admin runs statements as the migrating role (the tables' owner), e.g. to create policies.
func admin(t *testing.T, db *testdb.DB, sql string, args ...any) {
	t.Helper()
	_, err := db.Pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err)
}

// storedBucket is a row of storage.buckets read as the tables' owner (no RLS).
type storedBucket struct {
	ID, Name         string
	Owner, OwnerID   *string
	Public           bool
	FileSizeLimit    *int64
	AllowedMimeTypes []string
	Type             string
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

func loadStoredBucket(t *testing.T, db *testdb.DB, id string) (storedBucket, bool) {
	t.Helper()
	var b storedBucket
	err := db.Pool.QueryRow(context.Background(),
		`select id, name, owner::text, owner_id, public, file_size_limit, allowed_mime_types, type::text,
		        created_at, updated_at
		 from storage.buckets where id = $1`, id).
		Scan(&b.ID, &b.Name, &b.Owner, &b.OwnerID, &b.Public, &b.FileSizeLimit, &b.AllowedMimeTypes,
			&b.Type, &b.CreatedAt, &b.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return b, false
	}
	require.NoError(t, err)
	return b, true
}
