package lifecycle

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgstorage/storage/blob"
)

// ReconcileOptions says how far Reconcile goes.
type ReconcileOptions struct {
	// Grace: only what is older than this is touched, so uploads in progress are left alone.
	Grace time.Duration
	// Apply repairs what it finds; without it Reconcile only reports.
	Apply bool
	// Out receives one line per finding (nil: discarded).
	Out io.Writer
}

// Report counts Reconcile's findings; with Apply, the stale uploads, leftovers and orphans
// counted are also gone (Errors counts those that could not be removed).
type Report struct {
	StaleUploads int // uploads marked in flight for longer than the grace period
	Leftovers    int // pieces of interrupted Puts (temporary files, unfinished multipart uploads)
	// Blobs that no row, queue entry or upload references, and cached variants (see
	// blob.VariantPrefix) whose source version none references: the collector deletes
	// variants with their version, so these are left by a render that finished as its source
	// was freed, or by a crash.
	Orphans      int
	OrphanBytes  int64
	MissingBlobs int // rows whose blob is not in the store (reported, never deleted)
	// Cached variants that are not orphans (their source version is referenced, or they are
	// younger than the grace period) and their bytes: reported as a total, not one by one.
	Variants     int
	VariantBytes int64
	// Resumable uploads in progress (reported; they expire on their own) and the bytes they hold.
	Resumable      int
	ResumableBytes int64
	// S3 multipart uploads in progress (reported; they expire on their own) and the bytes of
	// their parts.
	Multipart      int
	MultipartBytes int64
	Errors         int
}

// Reconcile compares the blob store with the database and reports, and with Apply repairs, what
// a crash or an operator could leave behind:
//   - uploads still marked in flight after the grace period (their server died): the entry is
//     ended and whatever the upload wrote is deleted;
//   - leftovers of interrupted Puts older than the grace period;
//   - orphan blobs: in the store, older than the grace period, and referenced by no row, no
//     queue entry and no upload in flight; a cached variant (blob.VariantVersion) is an orphan
//     when it is older than the grace period and its source version is referenced by none;
//   - rows whose blob is missing: reported only; the row may be the only record of what was
//     lost, so deciding is left to people;
//   - orphan inline bytes (storage.inline_blobs) that no row holds and no queue entry waits
//     for, counted with the orphans.
//
// Blobs queued for collection are not orphans: the collector deletes them when their retention
// ends. The store and the database are walked side by side in key order (a merge), so memory
// stays flat however many objects there are. The database's view is read first and the store
// listed after it: a blob older than the grace period was written before that view was taken,
// so whatever references it is in the view.
func Reconcile(ctx context.Context, db *pgxpool.Pool, store blob.Store, o ReconcileOptions) (Report, error) {
	var r Report
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	cutoff := time.Now().Add(-o.Grace)
	// The uploads in flight before the store is listed: their partial blobs (resumable
	// uploads) are not leftovers, whatever their age.
	rows, _ := db.Query(ctx, `select version from storage.blob_uploads`)
	versions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return r, fmt.Errorf("read uploads in flight: %w", err)
	}
	inFlight := make(map[string]bool, len(versions))
	for _, v := range versions {
		inFlight[blob.VersionKey(v)] = true
	}
	if err := reconcileUploads(ctx, db, store, o, out, &r); err != nil {
		return r, err
	}
	if err := reconcileMultipart(ctx, db, out, &r); err != nil {
		return r, err
	}
	if err := reconcileResumable(ctx, db, out, &r); err != nil {
		return r, err
	}
	err = eachStaleLeftover(ctx, store, cutoff, inFlight, func(l blob.Leftover) error {
		r.Leftovers++
		what := l.ID
		if l.Key != "" {
			what += " (key " + l.Key + ")"
		}
		fmt.Fprintf(out, "leftover      %s started %s%s\n", what, stamp(l.Started), r.apply(o, func() error {
			return store.RemoveLeftover(ctx, l.ID)
		}, "removed"))
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("list leftovers: %w", err)
	}
	if err := reconcileBlobs(ctx, db, store, o, cutoff, out, &r); err != nil {
		return r, err
	}
	return r, reconcileInline(ctx, db, o, out, &r)
}

// inlineOrphan selects the inline bytes (storage.inline_blobs) of version $1, or of every
// version when $1 is NULL, that no row holds and no queue entry waits for.
const inlineOrphan = `from storage.inline_blobs i
	where ($1::text is null or i.version = $1)
	  and not exists (select from storage.objects o where o.version = i.version)
	  and not exists (select from storage.blobs_freed f where f.version = i.version)`

// reconcileInline reports, and with Apply deletes, inline bytes that no row holds and no queue
// entry waits for: left by rows deleted with the freeing triggers disabled, or by a restore.
// They need no grace period: inline bytes are written in their row's transaction. The delete
// checks again, in its own statement.
func reconcileInline(ctx context.Context, db *pgxpool.Pool, o ReconcileOptions, out io.Writer, r *Report) error {
	type orphan struct {
		version string
		size    int64
	}
	rows, _ := db.Query(ctx, `select i.version, length(i.data)::bigint `+inlineOrphan+` order by i.version`, nil)
	orphans, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (orphan, error) {
		var x orphan
		return x, row.Scan(&x.version, &x.size)
	})
	if err != nil {
		return fmt.Errorf("read inline bytes: %w", err)
	}
	for _, x := range orphans {
		r.Orphans++
		r.OrphanBytes += x.size
		fmt.Fprintf(out, "orphan inline version %s %d bytes, which no row holds%s\n", x.version, x.size, r.apply(o, func() error {
			_, err := db.Exec(ctx, `delete `+inlineOrphan, x.version)
			return err
		}, "deleted"))
	}
	return nil
}

// apply runs fix when repairing and says how it went, as a suffix for the finding's line.
func (r *Report) apply(o ReconcileOptions, fix func() error, done string) string {
	if !o.Apply {
		return ""
	}
	if err := fix(); err != nil {
		r.Errors++
		return " — NOT " + done + ": " + err.Error()
	}
	return " — " + done
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// reconcileUploads deals with uploads marked in flight for longer than the grace period. With
// Apply they are expired through SQL (their entries move to the blob queue) and their blobs
// deleted at once: no row ever referenced them, so no restore can need them.
func reconcileUploads(ctx context.Context, db *pgxpool.Pool, store blob.Store, o ReconcileOptions, out io.Writer, r *Report) error {
	// Resumable and S3 multipart uploads stay in flight until they complete or expire
	// (reconcileResumable, reconcileMultipart).
	rows, _ := db.Query(ctx, `select version, bucket_id, name, started_at from storage.blob_uploads u
		where started_at < now() - $1::interval
		  and not exists (select from storage.resumable_uploads r where r.version = u.version)
		  and not exists (select from storage.s3_multipart_uploads m where m.version = u.version)
		order by started_at`, o.Grace)
	type upload struct {
		Version, BucketID, Name string
		StartedAt               time.Time
	}
	stale, err := pgx.CollectRows(rows, pgx.RowToStructByPos[upload])
	if err != nil {
		return fmt.Errorf("read uploads in flight: %w", err)
	}
	for _, u := range stale {
		r.StaleUploads++
		fmt.Fprintf(out, "stale upload  %s/%s version %s started %s%s\n", u.BucketID, u.Name, u.Version, stamp(u.StartedAt),
			r.apply(o, func() error { return expireUpload(ctx, db, store, u.Version, o.Grace) }, "ended, its blob deleted"))
	}
	return nil
}

// reconcileMultipart reports the S3 multipart uploads in progress: each is in flight (its
// parts are no leftovers) until it completes, is aborted, or expires, when the collector ends it.
func reconcileMultipart(ctx context.Context, db *pgxpool.Pool, out io.Writer, r *Report) error {
	rows, _ := db.Query(ctx, `select u.version, u.bucket_id, u.name, count(p.part_number), coalesce(sum(p.size), 0)::bigint, u.expires_at
		from storage.s3_multipart_uploads u left join storage.s3_multipart_parts p on p.version = u.version
		group by u.version order by u.created_at`)
	var (
		version, bucket, name string
		parts                 int
		size                  int64
		expires               time.Time
	)
	_, err := pgx.ForEachRow(rows, []any{&version, &bucket, &name, &parts, &size, &expires}, func() error {
		r.Multipart++
		r.MultipartBytes += size
		fmt.Fprintf(out, "multipart     %s/%s upload %s: %d parts, %d bytes, expires %s\n", bucket, name, version, parts, size, stamp(expires))
		return nil
	})
	if err != nil {
		return fmt.Errorf("read multipart uploads: %w", err)
	}
	return nil
}

// reconcileResumable reports the unfinished resumable uploads: each is in flight (its partial
// blob is no leftover) until it completes, is terminated, or expires, when the collector ends it.
func reconcileResumable(ctx context.Context, db *pgxpool.Pool, out io.Writer, r *Report) error {
	rows, _ := db.Query(ctx, `select version, bucket_id, name, upload_offset, upload_length, expires_at
		from storage.resumable_uploads where completed_at is null order by created_at`)
	var (
		version, bucket, name string
		offset                int64
		length                *int64
		expires               time.Time
	)
	_, err := pgx.ForEachRow(rows, []any{&version, &bucket, &name, &offset, &length, &expires}, func() error {
		r.Resumable++
		r.ResumableBytes += offset
		of := "length not declared yet"
		if length != nil {
			of = fmt.Sprintf("of %d", *length)
		}
		fmt.Fprintf(out, "resumable     %s/%s version %s at %d bytes %s, expires %s\n", bucket, name, version, offset, of, stamp(expires))
		return nil
	})
	if err != nil {
		return fmt.Errorf("read resumable uploads: %w", err)
	}
	return nil
}

// expireUpload ends one stale upload: queue it (SQL refuses a later commit), delete its blob
// (and any variant, as the collector would), then drop the queue entry. If the delete fails
// the entry stays for the collector.
func expireUpload(ctx context.Context, db *pgxpool.Pool, store blob.Store, version string, grace time.Duration) error {
	rows, _ := db.Query(ctx, `select v from storage_internal.blob_upload_expire($1, $2) v`, grace, version)
	queued, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(queued) == 0 {
		return err // not queued: committed or ended meanwhile, nothing to delete
	}
	if _, err := deleteVersion(ctx, store, version); err != nil {
		return err
	}
	_, err = db.Exec(ctx, `select storage_internal.blob_collect_done(array[$1])`, version)
	return err
}

// ref is one reference to a blob from the database, in version order.
type ref struct {
	version, kind, bucket, name string
}

// reconcileBlobs merges the store's listing with every version the database references.
// Variants stay out of the merge (no row references them): each is judged by its source
// version, looked up once per version (variantSources). They all list after the versions'
// blobs, but the merge does not depend on it.
func reconcileBlobs(ctx context.Context, db *pgxpool.Pool, store blob.Store, o ReconcileOptions, cutoff time.Time, out io.Writer, r *Report) error {
	// Rows without a version have no blob at all.
	rows, _ := db.Query(ctx, `select bucket_id, name from storage.objects where version is null order by bucket_id, name`)
	var bucket, name string
	_, err := pgx.ForEachRow(rows, []any{&bucket, &name}, func() error {
		r.MissingBlobs++
		fmt.Fprintf(out, "missing blob  %s/%s has no version\n", bucket, name)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read objects: %w", err)
	}

	conn, err := db.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	// Versions are compared as blob keys; ordering by version in byte order ("C") is ordering
	// by key, since blob.VersionKey prefixes a version with its own first characters.
	// A row whose bytes are inline (storage.inline_blobs) has no blob: it is never missing one.
	refs, _ := conn.Query(ctx, `select version, kind, bucket_id, coalesce(name, '') from (
			select o.version, case when i.version is null then 'row' else 'inline' end as kind, o.bucket_id, o.name
			from storage.objects o left join storage.inline_blobs i on i.version = o.version
			where o.version is not null
			union all select version, 'queued', bucket_id, null from storage.blobs_freed
			union all select version, 'upload', bucket_id, name from storage.blob_uploads
		) r order by version collate "C"`)
	defer refs.Close()
	var (
		cur     ref
		curKey  string
		haveCur bool
	)
	next := func() error {
		if haveCur = refs.Next(); haveCur {
			if err := refs.Scan(&cur.version, &cur.kind, &cur.bucket, &cur.name); err != nil {
				return err
			}
			curKey = blob.VersionKey(cur.version)
		}
		return refs.Err()
	}
	missing := func() {
		if cur.kind == "row" {
			r.MissingBlobs++
			fmt.Fprintf(out, "missing blob  %s/%s version %s (key %s)\n", cur.bucket, cur.name, cur.version, curKey)
		}
	}
	if err := next(); err != nil {
		return fmt.Errorf("read references: %w", err)
	}
	prev := ""
	sources := variantSources{db: db}
	defer sources.close(context.WithoutCancel(ctx))
	err = store.List(ctx, "", func(b blob.Info) error {
		if prev != "" && b.Key <= prev {
			return fmt.Errorf("the blob store listed %q after %q: keys must come in byte order", b.Key, prev)
		}
		prev = b.Key
		if version, ok := blob.VariantVersion(b.Key); ok {
			return reconcileVariant(ctx, &sources, store, o, cutoff, out, r, b, version)
		}
		for haveCur && curKey < b.Key {
			missing()
			if err := next(); err != nil {
				return err
			}
		}
		referenced := false
		for haveCur && curKey == b.Key {
			referenced = true
			if err := next(); err != nil {
				return err
			}
		}
		if referenced || !b.Modified.Before(cutoff) {
			return nil
		}
		r.Orphans++
		r.OrphanBytes += b.Size
		fmt.Fprintf(out, "orphan blob   %s %d bytes written %s%s\n", b.Key, b.Size, stamp(b.Modified),
			r.apply(o, func() error { return store.Delete(ctx, b.Key) }, "deleted"))
		return nil
	})
	if err != nil {
		return fmt.Errorf("list blobs: %w", err)
	}
	for haveCur {
		missing()
		if err := next(); err != nil {
			return fmt.Errorf("read references: %w", err)
		}
	}
	return nil
}

// reconcileVariant counts the variant b of version, and reports (with Apply, deletes) it when
// it is an orphan.
func reconcileVariant(ctx context.Context, sources *variantSources, store blob.Store, o ReconcileOptions,
	cutoff time.Time, out io.Writer, r *Report, b blob.Info, version string) error {
	if b.Modified.Before(cutoff) {
		referenced, err := sources.isReferenced(ctx, version)
		if err != nil {
			return err
		}
		if !referenced {
			r.Orphans++
			r.OrphanBytes += b.Size
			fmt.Fprintf(out, "orphan blob   %s %d bytes written %s, a variant of version %s, which nothing references%s\n",
				b.Key, b.Size, stamp(b.Modified), version,
				r.apply(o, func() error { return store.Delete(ctx, b.Key) }, "deleted"))
			return nil
		}
	}
	r.Variants++
	r.VariantBytes += b.Size
	return nil
}

// Summary renders the report as one line for people.
func (r Report) Summary(applied bool) string {
	var parts []string
	add := func(n int, one, many string) {
		if n == 1 {
			parts = append(parts, "1 "+one)
		} else {
			parts = append(parts, fmt.Sprintf("%d %s", n, many))
		}
	}
	add(r.StaleUploads, "stale upload", "stale uploads")
	add(r.Leftovers, "leftover", "leftovers")
	add(r.Orphans, "orphan blob", "orphan blobs")
	add(r.MissingBlobs, "row whose blob is missing", "rows whose blob is missing")
	s := strings.Join(parts, ", ")
	switch {
	case !applied && r.StaleUploads+r.Leftovers+r.Orphans > 0:
		s += "; storage reconcile --apply repairs them"
	case applied && r.Errors > 0:
		s += fmt.Sprintf("; %d repairs failed", r.Errors)
	case applied && r.StaleUploads+r.Leftovers+r.Orphans > 0:
		s += "; repaired"
	}
	if r.MissingBlobs > 0 {
		s += "; rows with missing blobs are left as they are (restore the blobs, or delete the rows)"
	}
	if r.Resumable > 0 {
		n := "1 resumable upload"
		if r.Resumable > 1 {
			n = fmt.Sprintf("%d resumable uploads", r.Resumable)
		}
		s += fmt.Sprintf("; %s in progress (%d bytes; they expire on their own)", n, r.ResumableBytes)
	}
	if r.Variants > 0 {
		n := "1 cached variant"
		if r.Variants > 1 {
			n = fmt.Sprintf("%d cached variants", r.Variants)
		}
		s += fmt.Sprintf("; %s (%d bytes; deleted with their version)", n, r.VariantBytes)
	}
	if r.Multipart > 0 {
		n := "1 S3 multipart upload"
		if r.Multipart > 1 {
			n = fmt.Sprintf("%d S3 multipart uploads", r.Multipart)
		}
		s += fmt.Sprintf("; %s in progress (%d bytes; they expire on their own)", n, r.MultipartBytes)
	}
	return s
}
