package lifecycle

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgstorage/storage/blob"
)

// deleteVersion deletes a version's blobs for good: every cached variant under its
// blob.VariantPrefix first, then its own blob, and returns how many variants it deleted. The
// caller marks the version done only after it succeeds, so a failure or a crash between the
// steps leaves the queue entry, and the next attempt finds the variants that are left: no
// variant outlives its source's queue entry. Variants written after the listing (a render
// finishing as its source is freed) are found by reconcile.
func deleteVersion(ctx context.Context, store blob.Store, version string) (variants int, err error) {
	err = store.List(ctx, blob.VariantPrefix(version), func(b blob.Info) error {
		if err := store.Delete(ctx, b.Key); err != nil {
			return err
		}
		variants++
		return nil
	})
	if err != nil {
		return variants, fmt.Errorf("delete the variants of version %s: %w", version, err)
	}
	return variants, store.Delete(ctx, blob.VersionKey(version))
}

// variantSources answers, for reconcile, whether the source version of a variant is still
// referenced: by an object row, a queue entry (the collector deletes its variants with it) or
// an upload in flight. List yields a version's variants one after the other (they share its
// prefix), so it remembers the last version's answer only: one lookup per distinct version,
// and memory stays flat. A version nothing references never is again (versions are fresh per
// upload, and a copy needs a row that references it), so asking later than the snapshot the
// merge reads is no race.
//
// The lookups run on a connection of their own, made at the first one: the merge holds a
// pooled connection for its reading, and the pool may have no other (a pool of one).
type variantSources struct {
	db         *pgxpool.Pool
	conn       *pgx.Conn
	version    string
	referenced bool
}

func (v *variantSources) isReferenced(ctx context.Context, version string) (bool, error) {
	if version == v.version {
		return v.referenced, nil
	}
	if v.conn == nil {
		conn, err := pgx.ConnectConfig(ctx, v.db.Config().ConnConfig.Copy())
		if err != nil {
			return false, fmt.Errorf("connect: %w", err)
		}
		v.conn = conn
	}
	var referenced bool
	err := v.conn.QueryRow(ctx, `select exists (select from storage.objects where version = $1)
		or exists (select from storage.blobs_freed where version = $1)
		or exists (select from storage.blob_uploads where version = $1)`, version).Scan(&referenced)
	if err != nil {
		return false, fmt.Errorf("look up version %s: %w", version, err)
	}
	v.version, v.referenced = version, referenced
	return referenced, nil
}

// close closes the lookups' connection, if one was made.
func (v *variantSources) close(ctx context.Context) {
	if v.conn != nil {
		v.conn.Close(ctx)
	}
}
