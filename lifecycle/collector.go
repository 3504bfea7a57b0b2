// Package lifecycle keeps the blob store in step with the database: the Collector deletes the
// blobs rows no longer reference (after a retention window), with their cached variants, and
// works the bucket-empty jobs; Reconcile finds and repairs what crashes or operators left
// behind.
//
// The database decides; this package only acts on its answers. Blobs are queued for deletion
// by triggers in the same transaction that drops their last reference (storage.blobs_freed),
// and the SQL functions storage_internal.blob_collect_* re-check, when the collector gets to them, that
// no row references them again.
package lifecycle

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgstorage/storage/blob"
)

// Defaults of the Collector's settings.
const (
	DefaultRetention    = 168 * time.Hour
	DefaultInterval     = 30 * time.Second
	DefaultUploadExpiry = 24 * time.Hour
)

// leaseTTL is how long the leader's lease lasts without renewal: a collector gives it up after
// its run, so this only matters when a leader dies in a run (a server killed, its machine
// lost): another server, or the same one restarted, takes over this long after. While a run
// works the lease is renewed every third of it (keepLease), however long one step takes.
const leaseTTL = 10 * time.Second

// Sizes of the collector's steps: one batch of queue entries per SQL call, one batch of rows
// per empty-job call, and the deletes in flight at once against the blob store.
const (
	collectBatch   = 1000
	emptyBatch     = 1000
	deleteParallel = 8
)

// Collector drains the queue of freed blobs and works bucket-empty jobs, in the background of
// a server. Any number of servers may run one against the same database: a lease in the
// database (storage_internal.collector_lease, which request roles cannot touch) lets exactly
// one work at a time, the others skip their turn.
type Collector struct {
	DB    *pgxpool.Pool // its connection settings are used for a dedicated connection
	Blobs blob.Store
	// Retention is how long a freed blob stays in the store before deletion, so that a
	// database restored to any point inside the window finds every blob its rows reference.
	// Zero deletes at the next run.
	Retention time.Duration
	// Interval is the time between runs; Kick starts one early.
	Interval time.Duration
	// UploadExpiry is the age after which an upload still marked in flight is taken for the
	// leftover of a crash and its blob queued; 0 means DefaultUploadExpiry. Larger than any
	// upload may take: a commit after expiry is refused.
	UploadExpiry time.Duration
	Logger       *slog.Logger

	// LeftoverGrace is the age after which leftovers of interrupted writes are removed (see
	// leftovers.go); 0 means DefaultLeftoverGrace.
	LeftoverGrace time.Duration

	// Observe, when set, is told what each run of Run did and the work left after it
	// (metrics); backlog is nil when it could not be read. It must not block.
	Observe func(st Stats, err error, backlog *Backlog)

	kickOnce sync.Once
	kick     chan struct{}
	idOnce   sync.Once
	id       string // this collector's name as the lease's holder
}

// Stats says what one run did.
type Stats struct {
	Leader       bool  // false: another collector held the lease, nothing was done
	Deleted      int   // freed versions whose blobs were deleted from the store
	FreedBytes   int64 // their sizes, as their rows recorded them
	Variants     int   // cached variants deleted with them (blob.VariantPrefix)
	Failed       int   // versions whose deletes failed (retried after a backoff)
	Expired      int   // in-flight uploads expired
	EmptyDeleted int64 // rows deleted by bucket-empty jobs
	EmptyDone    int   // bucket-empty jobs finished
	Leftovers    int   // leftovers of interrupted writes removed from the store
}

// Backlog is the collector's work waiting, as Run reads it after every run (on every server,
// leader or not) for Observe.
type Backlog struct {
	Queued    int64         // blobs queued for deletion
	Due       int64         // of them, those past the retention window: deletable now
	Oldest    time.Duration // age of the oldest queued blob; 0 when none
	EmptyJobs int64         // bucket-empty jobs not finished
}

func (c *Collector) kickChan() chan struct{} {
	c.kickOnce.Do(func() { c.kick = make(chan struct{}, 1) })
	return c.kick
}

// Kick asks for a run as soon as possible (e.g. a bucket-empty job was queued). It never
// blocks.
func (c *Collector) Kick() {
	select {
	case c.kickChan() <- struct{}{}:
	default:
	}
}

// Run works every Interval (and when kicked) until ctx is done. Errors are logged; the next
// run tries again.
func (c *Collector) Run(ctx context.Context) {
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		start := time.Now()
		st, err := c.RunOnce(ctx)
		took := time.Since(start).Round(time.Millisecond)
		if c.Observe != nil && ctx.Err() == nil {
			c.Observe(st, err, c.backlog(ctx))
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			c.log().Warn("blob collector", "error", err)
		case st.Deleted+st.Failed+st.Expired+st.EmptyDone > 0 || st.EmptyDeleted > 0:
			c.log().Info("blob collector", "deleted", st.Deleted, "freed_bytes", st.FreedBytes, "variants", st.Variants, "failed", st.Failed,
				"expired_uploads", st.Expired, "empty_rows", st.EmptyDeleted, "empty_jobs_done", st.EmptyDone, "took", took)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.kickChan():
		}
	}
}

// backlog reads the work left; nil when the database does not answer (the run's error says
// why, or the next read will).
func (c *Collector) backlog(ctx context.Context) *Backlog {
	var b Backlog
	var oldest *time.Time
	err := c.DB.QueryRow(ctx, `select queued, due, oldest_freed_at, empty_jobs from storage_internal.collector_backlog($1)`,
		c.Retention).Scan(&b.Queued, &b.Due, &oldest, &b.EmptyJobs)
	if err != nil {
		c.log().Debug("blob collector: read the backlog", "error", err)
		return nil
	}
	if oldest != nil {
		b.Oldest = max(time.Since(*oldest), 0)
	}
	return &b
}

func (c *Collector) log() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

// RunOnce makes one run if no other collector is working: bucket-empty jobs first (their rows'
// blobs join the queue), then expired uploads, then the queue, batch after batch until nothing
// is due. It uses a connection of its own, outside the pool, so requests never wait for it.
func (c *Collector) RunOnce(ctx context.Context) (Stats, error) {
	var st Stats
	conn, err := pgx.ConnectConfig(ctx, c.DB.Config().ConnConfig.Copy())
	if err != nil {
		return st, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if st.Leader, err = c.renewLease(ctx, conn); err != nil || !st.Leader {
		return st, err
	}
	// The run works under runCtx, which ends when the lease is lost; after it, the lease is
	// given up (once its keeper has stopped, or the keeper could take it again) so that any
	// server may make the next run at once.
	runCtx, lost := context.WithCancelCause(ctx)
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		c.keepLease(runCtx, lost)
	}()
	defer func() {
		lost(nil)
		<-kept
		conn.Exec(context.WithoutCancel(ctx), `select storage_internal.collector_lease_give_up($1)`, c.holder()) //nolint:errcheck // it expires anyway
	}()
	err = c.run(runCtx, conn, &st)
	if cause := context.Cause(runCtx); err != nil && errors.Is(cause, errLeaseLost) {
		err = cause
	}
	return st, err
}

// keepLease renews the lease every third of leaseTTL until ctx ends, on a connection of its own
// (the run's is busy), opened at the first renewal: most runs end before it. A renewal that
// finds another holder ends the run (lost); one that fails is retried at the next tick. (The
// lease may then expire and another collector start beside this one, as after any stall: the
// SQL functions re-check each blob as they hand it out, and a blob deleted twice is deleted.)
func (c *Collector) keepLease(ctx context.Context, lost context.CancelCauseFunc) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	t := time.NewTicker(leaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var err error
		if conn == nil {
			if conn, err = pgx.ConnectConfig(ctx, c.DB.Config().ConnConfig.Copy()); err != nil {
				conn = nil
				c.log().Warn("blob collector: renew the leader lease", "error", err)
				continue
			}
		}
		ok, err := c.renewLease(ctx, conn)
		switch {
		case err != nil && ctx.Err() == nil:
			c.log().Warn("blob collector: renew the leader lease", "error", err)
			conn.Close(ctx)
			conn = nil
		case err == nil && !ok:
			lost(errLeaseLost)
			return
		}
	}
}

// run is one run's work, as the lease's holder.
func (c *Collector) run(ctx context.Context, conn *pgx.Conn, st *Stats) error {
	if err := c.workEmptyJobs(ctx, conn, st); err != nil {
		return err
	}
	expiry := c.UploadExpiry
	if expiry <= 0 {
		expiry = DefaultUploadExpiry
	}
	if err := conn.QueryRow(ctx, `select count(*) from storage_internal.blob_upload_expire($1)`, expiry).Scan(&st.Expired); err != nil {
		return fmt.Errorf("expire uploads: %w", err)
	}
	// Resumable uploads expire on their own clock; their partial bytes become leftovers,
	// which removeLeftovers takes once they are older than the grace period.
	var resumable int
	if err := conn.QueryRow(ctx, `select count(*) from storage_internal.resumable_expire()`).Scan(&resumable); err != nil {
		return fmt.Errorf("expire resumable uploads: %w", err)
	}
	st.Expired += resumable
	// So do S3 multipart uploads; their parts are discarded here (the store knows them by the
	// upload's state), and anything a failed discard leaves is a leftover like any other.
	n, err := c.expireMultipart(ctx, conn)
	if err != nil {
		return err
	}
	st.Expired += n
	st.Leftovers = c.removeLeftovers(ctx, conn)
	for {
		n, err := c.collectBatch(ctx, conn, st)
		if err != nil || n == 0 {
			return err
		}
	}
}

// expireMultipart ends the S3 multipart uploads whose expiry passed and discards their parts.
func (c *Collector) expireMultipart(ctx context.Context, conn *pgx.Conn) (int, error) {
	rows, _ := conn.Query(ctx, `select version, blob_state from storage_internal.s3_multipart_expire()`)
	type upload struct{ Version, State string }
	gone, err := pgx.CollectRows(rows, pgx.RowToStructByPos[upload])
	if err != nil {
		return 0, fmt.Errorf("expire multipart uploads: %w", err)
	}
	if mp, ok := c.Blobs.(blob.Multipart); ok {
		for _, u := range gone {
			if err := mp.AbortMultipart(ctx, blob.VersionKey(u.Version), u.State); err != nil {
				c.log().Warn("collector: discard the parts of an expired multipart upload", "version", u.Version, "error", err)
			}
		}
	}
	return len(gone), nil
}

// holder names this collector in the lease: unique per process and collector.
func (c *Collector) holder() string {
	c.idOnce.Do(func() {
		host, _ := os.Hostname()
		c.id = fmt.Sprintf("%s/%d/%s", host, os.Getpid(), rand.Text())
	})
	return c.id
}

// renewLease takes or renews the leader lease; false when another collector holds it.
func (c *Collector) renewLease(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var ok bool
	err := conn.QueryRow(ctx, `select storage_internal.collector_lease_take($1, $2)`, c.holder(), leaseTTL).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("leader lease: %w", err)
	}
	return ok, nil
}

// errLeaseLost ends a run whose lease another collector took (this one stalled past leaseTTL).
var errLeaseLost = errors.New("leader lease lost to another collector")

// stillLeader renews the lease before a batch.
func (c *Collector) stillLeader(ctx context.Context, conn *pgx.Conn) error {
	ok, err := c.renewLease(ctx, conn)
	if err == nil && !ok {
		err = errLeaseLost
	}
	return err
}

// workEmptyJobs runs batches of pending bucket-empty jobs until none is left. A batch that
// fails is recorded on its job by SQL; the run moves on to the queue and retries next time.
func (c *Collector) workEmptyJobs(ctx context.Context, conn *pgx.Conn, st *Stats) error {
	var prevJob, prevDeleted int64
	for ctx.Err() == nil {
		if err := c.stillLeader(ctx, conn); err != nil {
			return err
		}
		var (
			job, deleted int64
			done         bool
			jobErr       *string
		)
		err := conn.QueryRow(ctx, `select job_id, deleted, done, error from storage_internal.bucket_empty_work($1)`, emptyBatch).
			Scan(&job, &deleted, &done, &jobErr)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("bucket empty job: %w", err)
		}
		if job == prevJob {
			st.EmptyDeleted += deleted - prevDeleted
		} else {
			st.EmptyDeleted += deleted
		}
		prevJob, prevDeleted = job, deleted
		if done {
			st.EmptyDone++
			prevJob = 0
		}
		if jobErr != nil {
			c.log().Warn("bucket empty job failed a batch", "job", job, "error", *jobErr, "gave_up", done)
			if !done {
				return nil
			}
		}
	}
	return ctx.Err()
}

// collectBatch deletes one batch of due versions' blobs (each with its cached variants, see
// deleteVersion) and reports the outcomes to SQL. It returns how many versions it deleted: 0
// means nothing more to do in this run (a batch whose deletes all failed ends the run too;
// the failures are retried after their backoff).
func (c *Collector) collectBatch(ctx context.Context, conn *pgx.Conn, st *Stats) (int, error) {
	if err := c.stillLeader(ctx, conn); err != nil {
		return 0, err
	}
	rows, _ := conn.Query(ctx, `select v from storage_internal.blob_collect_next($1, $2) v`, c.Retention, collectBatch)
	versions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, fmt.Errorf("collect: %w", err)
	}
	if len(versions) == 0 {
		return 0, nil
	}
	errs := make([]error, len(versions))
	variants := make([]int, len(versions))
	var wg sync.WaitGroup
	sem := make(chan struct{}, deleteParallel)
	for i, v := range versions {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			variants[i], errs[i] = deleteVersion(ctx, c.Blobs, v)
		}()
	}
	wg.Wait()
	for _, n := range variants {
		st.Variants += n // those of failed versions too: they are gone
	}
	var done []string
	for i, v := range versions {
		if errs[i] == nil {
			done = append(done, v)
			continue
		}
		st.Failed++
		if ctx.Err() != nil {
			continue // cancelled, not failed: the entry stays due
		}
		c.log().Warn("blob collector: delete failed", "version", v, "error", errs[i])
		if _, err := conn.Exec(ctx, `select storage_internal.blob_collect_failed($1, $2)`, v, errs[i].Error()); err != nil {
			return 0, fmt.Errorf("collect: record failure: %w", err)
		}
	}
	if len(done) > 0 {
		var freed int64
		if err := conn.QueryRow(ctx, `select storage_internal.blob_collect_done($1)`, done).Scan(&freed); err != nil {
			return 0, fmt.Errorf("collect: %w", err)
		}
		st.FreedBytes += freed
	}
	st.Deleted += len(done)
	return len(done), ctx.Err()
}
