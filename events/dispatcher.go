package events

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults of Config.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultRetention     = 168 * time.Hour
	DefaultMinBackoff    = time.Second
	DefaultMaxBackoff    = 5 * time.Minute
	DefaultPollInterval  = time.Second
	DefaultLeaseTTL      = 15 * time.Second
	DefaultBatch         = 100
	DefaultLanes         = 8
	DefaultPruneInterval = 10 * time.Minute
	// DefaultBacklogInterval: counting the undelivered events reads the partial index, which a
	// long outage of the receiver makes large.
	DefaultBacklogInterval = 15 * time.Second
)

// leaseName is the dispatcher's lease in storage_internal.leases.
const leaseName = "events"

// pruneBatch is how many events one events_prune call deletes at most (one short transaction).
const pruneBatch = 10000

// Config configures a Dispatcher. Zero fields take the defaults above.
type Config struct {
	// DB: its connection settings are used for the dispatcher's own connections (a small pool
	// and the LISTEN connection), so requests never wait for it. The role must be able to
	// execute the storage_server functions.
	DB *pgxpool.Pool
	// URL is WEBHOOK_URL. Empty: nothing is delivered; the leader only prunes (events are still
	// recorded and notified, for SQL consumers).
	URL string
	// APIKey is WEBHOOK_API_KEY, sent as "Authorization: Bearer <key>" when not empty.
	APIKey string
	// Timeout bounds one delivery attempt (WEBHOOK_TIMEOUT).
	Timeout time.Duration
	// Retention: events recorded longer ago are deleted, delivered or not (EVENTS_RETENTION).
	Retention time.Duration
	// MinBackoff, MaxBackoff: after a failed attempt an object's next one waits MinBackoff,
	// doubling with each failure up to MaxBackoff (WEBHOOK_MAX_RETRY_INTERVAL). When no
	// delivery of a batch succeeds (the receiver is down), the whole dispatcher waits so.
	MinBackoff, MaxBackoff time.Duration
	// PollInterval: how often the leader looks for new events (EVENTS_POLL_INTERVAL; an index
	// probe that finds nothing costs next to nothing). Notifications, when the database sends
	// them (storage.events_notify), wake it at once.
	PollInterval time.Duration
	// LeaseTTL: how long a leader's lease lasts without renewal; it renews every third of it. A
	// killed leader's successor takes over within about this long. At least twice Timeout.
	LeaseTTL time.Duration
	// Batch: events fetched per query. Lanes: objects delivered at once.
	Batch, Lanes int
	// PruneInterval: time between the leader's pruning runs. BacklogInterval: time between
	// counts of the undelivered events (Stats), on every server.
	PruneInterval, BacklogInterval time.Duration
	Tenant                         Tenant
	Logger                         *slog.Logger
}

// Stats is a snapshot of a Dispatcher, cheap to take (no database access).
type Stats struct {
	Leader         bool   // this server delivers (holds the lease)
	Delivered      uint64 // events this server delivered since it started
	FailedAttempts uint64 // attempts this server made that failed (non-2xx, network error, timeout)
	// Backlog is the number of undelivered events at the last check (every BacklogInterval, on
	// every server); -1 before the first, and always without a webhook URL.
	Backlog int64
	// OldestUndelivered is the age of the oldest undelivered event at the last check; 0 when
	// none.
	OldestUndelivered time.Duration
}

// Dispatcher delivers storage.events to the webhook; see the package documentation.
type Dispatcher struct {
	cfg    Config
	client *http.Client
	holder string
	log    *slog.Logger

	leader         atomic.Bool
	delivered      atomic.Uint64
	failedAttempts atomic.Uint64
	backlog        atomic.Int64
	oldest         atomic.Int64 // unix nanoseconds of the oldest undelivered event; 0 = none

	// The leader's state, touched only by its work loop.
	leaseUntil  atomic.Pointer[time.Time] // local (monotonic) clock: attempts end before it
	keys        map[string]retry
	down        retry // the whole receiver: set when no delivery of a batch succeeded
	lastPrune   time.Time
	lastBacklog time.Time
}

// retry is a backoff in progress: attempts failed in a row, and when the next may start.
type retry struct {
	failures int
	at       time.Time
}

// New returns a Dispatcher for cfg, with defaults filled in.
func New(cfg Config) *Dispatcher {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Timeout, DefaultTimeout)
	def(&cfg.Retention, DefaultRetention)
	def(&cfg.MinBackoff, DefaultMinBackoff)
	def(&cfg.MaxBackoff, DefaultMaxBackoff)
	def(&cfg.PollInterval, DefaultPollInterval)
	def(&cfg.LeaseTTL, DefaultLeaseTTL)
	def(&cfg.PruneInterval, DefaultPruneInterval)
	def(&cfg.BacklogInterval, DefaultBacklogInterval)
	// A renewal every third of the ttl leaves at least two thirds of it to any attempt.
	cfg.LeaseTTL = max(cfg.LeaseTTL, 2*cfg.Timeout)
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Lanes <= 0 {
		cfg.Lanes = DefaultLanes
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	host, _ := os.Hostname()
	d := &Dispatcher{cfg: cfg, client: newClient(cfg.Lanes), log: log,
		holder: fmt.Sprintf("%s/%d/%s", host, os.Getpid(), rand.Text()), keys: map[string]retry{}}
	d.backlog.Store(-1)
	return d
}

// Stats returns what the dispatcher has done and seen.
func (d *Dispatcher) Stats() Stats {
	s := Stats{Leader: d.leader.Load(), Delivered: d.delivered.Load(), FailedAttempts: d.failedAttempts.Load(),
		Backlog: d.backlog.Load()}
	if o := d.oldest.Load(); o != 0 {
		s.OldestUndelivered = max(time.Since(time.Unix(0, o)), 0)
	}
	return s
}

// Run takes part in the election until ctx is done, and delivers while it leads. Errors are
// logged and retried.
func (d *Dispatcher) Run(ctx context.Context) {
	pcfg := d.cfg.DB.Config().Copy()
	pcfg.MaxConns, pcfg.MinConns = 2, 0 // the work loop and the lease's renewal
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		d.log.Error("events: connection pool", "error", err)
		return
	}
	defer pool.Close()
	for {
		ok, err := d.takeLease(ctx, pool)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			d.log.Warn("events: leader lease", "error", err)
		case ok:
			d.lead(ctx, pool)
			if ctx.Err() != nil {
				return
			}
		}
		d.refreshBacklog(ctx, pool)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d.cfg.LeaseTTL / 3):
		}
	}
}

// takeLease takes or renews the lease; on success the local lease deadline moves to the start
// of the call plus the ttl, which is never later than the database's expiry.
func (d *Dispatcher) takeLease(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	start := time.Now()
	var ok bool
	err := pool.QueryRow(ctx, `select storage_internal.lease_take($1, $2, $3)`, leaseName, d.holder, d.cfg.LeaseTTL).Scan(&ok)
	if err != nil {
		return false, err
	}
	if ok {
		until := start.Add(d.cfg.LeaseTTL)
		d.leaseUntil.Store(&until)
	}
	return ok, nil
}

// errLeaseLost ends a leadership whose renewal failed.
var errLeaseLost = errors.New("events: lease lost")

// lead delivers while the lease holds: renewals in the background, the LISTEN connection, and
// the work loop. It returns when ctx is done or a renewal fails, after every attempt ended, and
// gives the lease up.
func (d *Dispatcher) lead(ctx context.Context, pool *pgxpool.Pool) {
	d.leader.Store(true)
	d.log.Info("events: leading", "holder", d.holder, "webhook", d.cfg.URL != "")
	leadCtx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wake := make(chan struct{}, 1)
	wg.Go(func() {
		t := time.NewTicker(d.cfg.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-leadCtx.Done():
				return
			case <-t.C:
			}
			ok, err := d.takeLease(leadCtx, pool)
			if leadCtx.Err() != nil {
				return
			}
			if err != nil || !ok {
				d.log.Warn("events: lease renewal failed; stopping deliveries", "error", err, "taken", !ok)
				cancel(errLeaseLost)
				return
			}
		}
	})
	if d.cfg.URL != "" {
		wg.Go(func() { d.listen(leadCtx, wake) })
	}
	d.work(leadCtx, pool, wake)
	cancel(nil)
	wg.Wait()
	d.leader.Store(false)
	d.keys, d.down = map[string]retry{}, retry{}
	giveUp, stop := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer stop()
	if _, err := pool.Exec(giveUp, `select storage_internal.lease_give_up($1, $2)`, leaseName, d.holder); err != nil {
		d.log.Warn("events: give up the lease", "error", err) // it expires anyway
	}
}

// listen wakes the work loop on every notification of channel storage_events, on a connection
// of its own, reconnecting (with a backoff) when it is lost. Each (re)connection wakes it too:
// what was notified while it was away is in the table.
func (d *Dispatcher) listen(ctx context.Context, wake chan<- struct{}) {
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	var failures int
	for ctx.Err() == nil {
		conn, err := pgx.ConnectConfig(ctx, d.cfg.DB.Config().ConnConfig.Copy())
		if err == nil {
			if _, err = conn.Exec(ctx, `listen storage_events`); err == nil {
				failures = 0
				poke()
				for err == nil {
					if _, err = conn.WaitForNotification(ctx); err == nil {
						poke()
					}
				}
			}
			conn.Close(context.WithoutCancel(ctx))
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		d.log.Warn("events: LISTEN connection lost; polling until it is back", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(d.backoff(failures)):
		}
	}
}

// work delivers, prunes and counts until ctx ends.
func (d *Dispatcher) work(ctx context.Context, pool *pgxpool.Pool, wake <-chan struct{}) {
	for ctx.Err() == nil {
		if d.cfg.URL != "" {
			if err := d.pass(ctx, pool); err != nil && ctx.Err() == nil {
				d.log.Warn("events: delivery", "error", err)
			}
		}
		if time.Since(d.lastPrune) >= d.cfg.PruneInterval {
			d.prune(ctx, pool)
		}
		d.refreshBacklog(ctx, pool)
		wait := d.cfg.PollInterval
		now := time.Now()
		if d.down.at.After(now) {
			wait = d.down.at.Sub(now)
		} else {
			for _, r := range d.keys {
				if r.at.After(now) {
					wait = min(wait, r.at.Sub(now))
				}
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-wake:
			// The receiver is down: a new event waits with the others.
			if d.down.at.After(time.Now()) {
				select {
				case <-ctx.Done():
				case <-t.C:
				}
			}
		}
		t.Stop()
	}
}

// pass delivers batch after batch until nothing can be delivered now: no event waits, or every
// waiting one belongs to an object in backoff, or the receiver seems down.
func (d *Dispatcher) pass(ctx context.Context, pool *pgxpool.Pool) error {
	for ctx.Err() == nil {
		now := time.Now()
		if d.down.at.After(now) {
			return nil
		}
		var buckets, names []string
		for k, r := range d.keys {
			switch {
			case r.at.After(now):
				b, n := splitKey(k)
				buckets, names = append(buckets, b), append(names, n)
			case now.Sub(r.at) > 2*d.cfg.MaxBackoff:
				delete(d.keys, k) // its events are gone (deleted by retention, or by a DBA)
			}
		}
		rows, _ := pool.Query(ctx, `select id, type, bucket_id, name, payload, created_at, attempts
			from storage_internal.events_next($1, $2, $3)`, d.cfg.Batch, buckets, names)
		batch, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Event])
		if err != nil {
			return fmt.Errorf("fetch events: %w", err)
		}
		if len(batch) == 0 {
			return nil
		}
		ok, failed := d.deliver(ctx, batch)
		if err := d.record(ctx, pool, batch, ok, failed); err != nil {
			return err
		}
		// Nothing went through, for several objects: the receiver is down (or refuses
		// everything), and the whole dispatcher waits. One object refused alone waits alone.
		if len(ok) == 0 && failedObjects(batch, failed) > 1 {
			d.down = retry{failures: d.down.failures + 1}
			d.down.at = time.Now().Add(d.backoff(d.down.failures))
			if d.down.failures == 1 || d.down.failures%10 == 0 {
				d.log.Warn("events: webhook deliveries fail; retrying with backoff", "failures_in_a_row", d.down.failures,
					"retry_in", time.Until(d.down.at).Round(time.Millisecond), "error", firstError(failed))
			}
			return nil
		}
		if d.down.failures > 0 {
			d.log.Info("events: webhook deliveries succeed again", "after_failed_batches", d.down.failures)
		}
		d.down = retry{}
	}
	return nil
}

// deliver sends a batch: lanes by object hash run concurrently, each sending its events in id
// order; after a failure a lane sends nothing more of this batch (what it skips comes back in
// the next one, in order). It returns the ids delivered and the errors of the failed attempts.
func (d *Dispatcher) deliver(ctx context.Context, batch []Event) (ok []int64, failed map[int64]error) {
	lanes := make([][]Event, d.cfg.Lanes)
	for _, e := range batch {
		h := fnv.New32a()
		h.Write([]byte(key(e.BucketID, e.Name)))
		i := int(h.Sum32() % uint32(len(lanes)))
		lanes[i] = append(lanes[i], e)
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	failed = map[int64]error{}
	for _, lane := range lanes {
		if len(lane) == 0 {
			continue
		}
		wg.Go(func() {
			for _, e := range lane {
				err := d.attempt(ctx, e)
				mu.Lock()
				if err == nil {
					ok = append(ok, e.ID)
				} else {
					failed[e.ID] = err
				}
				mu.Unlock()
				if err != nil {
					d.failedAttempts.Add(1)
					k := key(e.BucketID, e.Name)
					mu.Lock()
					r := d.keys[k]
					r.failures++
					r.at = time.Now().Add(d.backoff(r.failures))
					d.keys[k] = r
					mu.Unlock()
					return
				}
				d.delivered.Add(1)
				mu.Lock()
				delete(d.keys, key(e.BucketID, e.Name))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ok, failed
}

// attempt sends one event within the attempt timeout and the lease: an attempt never outlives
// the lease it started under, so a successor never sends while this one still is.
func (d *Dispatcher) attempt(ctx context.Context, e Event) error {
	deadline := time.Now().Add(d.cfg.Timeout)
	if lease := d.leaseUntil.Load(); lease != nil && lease.Before(deadline) {
		deadline = *lease
	}
	if time.Until(deadline) <= 0 {
		return context.DeadlineExceeded
	}
	actx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return d.post(actx, e)
}

// record marks what was delivered and what failed. It runs even when the leadership ends
// meanwhile, so that deliveries already made are not repeated needlessly.
func (d *Dispatcher) record(ctx context.Context, pool *pgxpool.Pool, batch []Event, ok []int64, failed map[int64]error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if len(ok) > 0 {
		if _, err := pool.Exec(rctx, `select storage_internal.events_delivered($1)`, ok); err != nil {
			return fmt.Errorf("mark events delivered: %w", err)
		}
	}
	if len(failed) > 0 {
		ids, msgs := make([]int64, 0, len(failed)), make([]string, 0, len(failed))
		for _, e := range batch {
			if err, ok := failed[e.ID]; ok {
				msg := err.Error()
				if len(msg) > 500 {
					msg = msg[:500]
				}
				ids, msgs = append(ids, e.ID), append(msgs, msg)
			}
		}
		if _, err := pool.Exec(rctx, `select storage_internal.events_failed($1, $2)`, ids, msgs); err != nil {
			return fmt.Errorf("record failed deliveries: %w", err)
		}
	}
	return nil
}

// prune deletes the events older than the retention, batch after batch, and warns when some
// were never delivered.
func (d *Dispatcher) prune(ctx context.Context, pool *pgxpool.Pool) {
	d.lastPrune = time.Now()
	var total, lost int64
	for ctx.Err() == nil {
		var deleted, undelivered int64
		err := pool.QueryRow(ctx, `select deleted, undelivered from storage_internal.events_prune($1, $2)`,
			d.cfg.Retention, pruneBatch).Scan(&deleted, &undelivered)
		if err != nil {
			d.log.Warn("events: prune", "error", err)
			return
		}
		total, lost = total+deleted, lost+undelivered
		if deleted < pruneBatch {
			break
		}
	}
	if lost > 0 && d.cfg.URL != "" {
		d.log.Warn("events: undelivered events reached EVENTS_RETENTION and were deleted", "count", lost)
	}
	if total > 0 {
		d.log.Debug("events: pruned", "count", total)
	}
}

// refreshBacklog counts the undelivered events for Stats, at most every BacklogInterval.
// Without a webhook nothing is ever delivered, and the count would only grow: it stays -1.
func (d *Dispatcher) refreshBacklog(ctx context.Context, pool *pgxpool.Pool) {
	if d.cfg.URL == "" || time.Since(d.lastBacklog) < d.cfg.BacklogInterval {
		return
	}
	d.lastBacklog = time.Now()
	var n int64
	var oldest *time.Time
	if err := pool.QueryRow(ctx, `select undelivered, oldest from storage_internal.events_backlog()`).Scan(&n, &oldest); err != nil {
		if ctx.Err() == nil {
			d.log.Warn("events: backlog", "error", err)
		}
		return
	}
	d.backlog.Store(n)
	if oldest == nil {
		d.oldest.Store(0)
	} else {
		d.oldest.Store(oldest.UnixNano())
	}
}

// backoff is the wait after the nth failure in a row: MinBackoff doubled n-1 times, at most
// MaxBackoff.
func (d *Dispatcher) backoff(n int) time.Duration {
	b := d.cfg.MinBackoff
	for i := 1; i < n && b < d.cfg.MaxBackoff; i++ {
		b *= 2
	}
	return min(b, d.cfg.MaxBackoff)
}

// key names an object; bucket ids never hold a NUL.
func key(bucket, name string) string { return bucket + "\x00" + name }

func splitKey(k string) (bucket, name string) {
	for i := 0; i < len(k); i++ {
		if k[i] == 0 {
			return k[:i], k[i+1:]
		}
	}
	return k, ""
}

// failedObjects counts the objects of batch with a failed attempt.
func failedObjects(batch []Event, failed map[int64]error) int {
	seen := map[string]bool{}
	for _, e := range batch {
		if _, ok := failed[e.ID]; ok {
			seen[key(e.BucketID, e.Name)] = true
		}
	}
	return len(seen)
}

func firstError(failed map[int64]error) error {
	var first int64 = -1
	for id := range failed {
		if first < 0 || id < first {
			first = id
		}
	}
	return failed[first]
}
