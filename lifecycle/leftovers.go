package lifecycle

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgstorage/storage/blob"
)

// DefaultLeftoverGrace is how old a leftover of an interrupted write must be before the
// collector removes it. A Put in progress has a leftover too: in the file store its temporary
// file, whose age counts from its last write; the server ends an upload whose client sends
// nothing for its read or idle timeout (minutes), so an hour without a write means the writer
// is gone. An S3 multipart upload's age counts from its start, and a large upload may take
// longer than that; but those of uploads the database still has in flight are left alone
// whatever their age (until the upload's expiry, DefaultUploadExpiry).
const DefaultLeftoverGrace = time.Hour

// eachStaleLeftover calls fn for each leftover of an interrupted Put that started before cutoff
// and is not that of an upload in flight (inFlight holds their blob keys; nil: none is spared).
// It is what `storage reconcile` reports and removes, and what the collector removes by itself.
func eachStaleLeftover(ctx context.Context, store blob.Store, cutoff time.Time, inFlight map[string]bool,
	fn func(blob.Leftover) error) error {
	return store.Leftovers(ctx, func(l blob.Leftover) error {
		if !l.Started.Before(cutoff) || l.Key != "" && inFlight[l.Key] {
			return nil
		}
		return fn(l)
	})
}

// removeLeftovers is the collector's step that removes the leftovers of interrupted writes
// older than LeftoverGrace (the file store's temporary files, unfinished S3 multipart uploads),
// so that a killed upload's partial bytes do not wait for an operator. Its failures are logged
// and retried at the next run; they do not stop the run. It returns how many it removed.
func (c *Collector) removeLeftovers(ctx context.Context, conn *pgx.Conn) int {
	grace := c.LeftoverGrace
	if grace <= 0 {
		grace = DefaultLeftoverGrace
	}
	// Read the uploads in flight before listing the leftovers: an upload that begins after
	// this has a leftover younger than the grace period.
	cutoff := time.Now().Add(-grace)
	rows, _ := conn.Query(ctx, `select version from storage.blob_uploads`)
	versions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		c.log().Warn("blob collector: read uploads in flight", "error", err)
		return 0
	}
	inFlight := make(map[string]bool, len(versions))
	for _, v := range versions {
		inFlight[blob.VersionKey(v)] = true
	}
	removed := 0
	err = eachStaleLeftover(ctx, c.Blobs, cutoff, inFlight, func(l blob.Leftover) error {
		if err := c.Blobs.RemoveLeftover(ctx, l.ID); err != nil {
			c.log().Warn("blob collector: remove leftover", "leftover", l.ID, "started", l.Started, "error", err)
			return nil
		}
		removed++
		return nil
	})
	if err != nil && ctx.Err() == nil {
		c.log().Warn("blob collector: list leftovers", "error", err)
	}
	if removed > 0 {
		c.log().Info("blob collector: removed leftovers of interrupted uploads", "removed", removed, "grace", grace)
	}
	return removed
}
