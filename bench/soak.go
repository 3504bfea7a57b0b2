package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/blob/file"
	"github.com/pgstorage/storage/blob/s3"
	"github.com/pgstorage/storage/blob/s3/s3test"
	"github.com/pgstorage/storage/lifecycle"
)

// The soak (`go run ./bench -soak`, `make soak`): for each backend in turn, the real server
// under a steady mixed load for SOAK_DURATION, watched from outside; see soakOptions for the
// knobs and soakload.go for the clients.

// soakOptions is the soak's configuration, from the environment.
type soakOptions struct {
	storageBin, out string
	duration        time.Duration // SOAK_DURATION, default 10m: per backend
	interval        time.Duration // SOAK_INTERVAL, default 1m: the report's rows
	conns           int           // SOAK_CONNECTIONS, default 256: clients, each on its own connection
	backends        []string      // SOAK_BACKENDS, default "file,s3"
	keep            bool          // SOAK_KEEP=1 (or BENCH_KEEP=1): keep the temporary directories
}

const (
	// soakTimeout is the server's header, read and write inactivity timeout during the soak:
	// short, so that the stalled clients' episodes take seconds and the slow ones still stay
	// well inside it.
	soakTimeout = 10 * time.Second
	// sampleEvery is how often the server's RSS, fds, database connections and goroutines are read.
	sampleEvery = 5 * time.Second
	// stopGrace bounds the wait for clients to finish their last operation once the duration is
	// over (a stalled or slow episode takes up to ~35 s); then they are cut off.
	stopGrace = time.Minute
	// settleLimit bounds the wait for in-flight work (uploads, downloads, the collector's
	// backlog) to drain before the invariants are checked.
	settleLimit = 2 * time.Minute
	// soakProbeApp is the application_name of the harness's own database connections, which
	// the connection count leaves out.
	soakProbeApp = "storage-soak-probe"
)

func soakOptionsFromEnv(storageBin, out string) (soakOptions, error) {
	o := soakOptions{storageBin: storageBin, out: out, conns: 256, backends: []string{"file", "s3"}}
	var err error
	if o.duration, err = envDuration("SOAK_DURATION", 10*time.Minute); err != nil {
		return o, err
	}
	if o.interval, err = envDuration("SOAK_INTERVAL", time.Minute); err != nil {
		return o, err
	}
	if o.interval <= 0 || o.duration < o.interval {
		return o, fmt.Errorf("SOAK_INTERVAL=%s must be positive and at most SOAK_DURATION=%s", o.interval, o.duration)
	}
	if v := os.Getenv("SOAK_CONNECTIONS"); v != "" {
		if o.conns, err = strconv.Atoi(v); err != nil || o.conns < len(misbehavingKinds)+1 {
			return o, fmt.Errorf("SOAK_CONNECTIONS=%q: must be a number of at least %d", v, len(misbehavingKinds)+1)
		}
	}
	if v := os.Getenv("SOAK_BACKENDS"); v != "" {
		o.backends = nil
		for _, b := range strings.Split(v, ",") {
			if b = strings.TrimSpace(b); b != "file" && b != "s3" {
				return o, fmt.Errorf("SOAK_BACKENDS=%q: a comma-separated list of file and s3", v)
			}
			o.backends = append(o.backends, strings.TrimSpace(b))
		}
	}
	o.keep = os.Getenv("SOAK_KEEP") == "1" || os.Getenv("BENCH_KEEP") == "1"
	return o, nil
}

// misbehavingCount is how many of conns clients misbehave: one in sixteen, at least one of
// each kind.
func misbehavingCount(conns int) int {
	return max(len(misbehavingKinds), conns/16)
}

// runSoak runs the soak on every backend and writes the report; the exit code is 1 when a
// target was missed or a backend could not be soaked.
func runSoak(ctx context.Context, o soakOptions, procs *procSet) int {
	storageBin, _ := filepath.Abs(o.storageBin)
	if _, err := os.Stat(storageBin); err != nil {
		return fail(fmt.Errorf("%v; run make soak, which builds bin/storage", err))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Soak (%s)\n\n", time.Now().Format("2006-01-02 15:04 MST"))
	for _, line := range machineInfo(ctx, "") {
		if !strings.Contains(line, "PostgreSQL") {
			fmt.Fprintf(&b, "- %s\n", line)
		}
	}
	fmt.Fprintf(&b, "- %d connections per backend (%d well-behaved, %d misbehaving), %s per backend, rows of %s; "+
		"server timeouts (header, read, write) %s\n\n", o.conns, o.conns-misbehavingCount(o.conns), misbehavingCount(o.conns),
		o.duration, o.interval, soakTimeout)
	b.WriteString(soakDefinitions)
	failed := false
	for _, backend := range o.backends {
		progress("soak: %s backend for %s with %d connections", backend, o.duration, o.conns)
		res, err := soakBackend(ctx, o, procs, storageBin, backend)
		if err != nil {
			if ctx.Err() != nil {
				return fail(errors.New("interrupted"))
			}
			failed = true
			fmt.Fprintf(&b, "## %s backend\n\nNOT SOAKED: %v\n\n", backend, err)
			progress("soak: %s backend failed: %v", backend, err)
			continue
		}
		res.markdown(&b)
		if !res.pass() {
			failed = true
		}
	}
	if err := writeReport(o.out, b.String()); err != nil {
		return fail(err)
	}
	if failed {
		fmt.Fprintln(os.Stderr, "soak: a target was missed (see the report)")
		return 1
	}
	return 0
}

// soakResult is one backend's run.
type soakResult struct {
	backend    string
	rec        *recorder
	reconcile  lifecycle.Report
	reconErr   error
	settled    string             // how the drain went
	server5xx  map[string]float64 // the server's own count of 5xx answers, by protocol and operation
	errorLines []string           // the server's first log lines of requests answered 5xx (503 aside)
	errorCount int                // and how many there were
	reconLines []string           // reconcile's finding lines (the first 20)
	exitReason string             // non-empty: the server exited during the run
}

// soakBackend starts the server on one backend, loads it, settles, checks the invariants.
func soakBackend(ctx context.Context, o soakOptions, procs *procSet, storageBin, backend string) (res *soakResult, err error) {
	dir, err := os.MkdirTemp("", "storage-soak-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil { // the embedded PostgreSQL's OS user reaches inside
		return nil, err
	}
	defer func() {
		if o.keep || (err != nil && ctx.Err() == nil) || (res != nil && !res.pass()) {
			progress("kept %s (server.log, data/pg/postgres.log, blobs)", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	extra := []string{
		"METRICS_ENABLED=true",
		"SERVER_HEADER_TIMEOUT=" + soakTimeout.String(),
		"SERVER_READ_TIMEOUT=" + soakTimeout.String(),
		"SERVER_WRITE_TIMEOUT=" + soakTimeout.String(),
		// The collector frees what deletes and overwrites drop while the load runs (it is part of
		// what is soaked), so the data set on disk stays bounded too.
		"STORAGE_BLOB_RETENTION=0s",
		"STORAGE_GC_INTERVAL=10s",
	}
	var openStore func() (blob.Store, error)
	if backend == "s3" {
		vgw, err := s3test.StartServer()
		if err != nil {
			return nil, err
		}
		defer vgw.Stop() // after the server (deferred below), which writes to it
		cfg, err := vgw.NewBucket(ctx)
		if err != nil {
			return nil, err
		}
		extra = append(extra, "STORAGE_BACKEND=s3", "STORAGE_S3_BUCKET="+cfg.Bucket, "STORAGE_S3_ENDPOINT="+cfg.Endpoint,
			"STORAGE_S3_REGION="+cfg.Region, "STORAGE_S3_FORCE_PATH_STYLE=true", "AWS_ACCESS_KEY_ID="+cfg.AccessKeyID,
			"AWS_SECRET_ACCESS_KEY="+cfg.SecretAccessKey, "STORAGE_S3_SPOOL_DIR="+filepath.Join(dir, "spool"))
		if err := os.Mkdir(filepath.Join(dir, "spool"), 0o755); err != nil {
			return nil, err
		}
		openStore = func() (blob.Store, error) { return s3.New(ctx, cfg) }
	} else {
		openStore = func() (blob.Store, error) { return file.New(filepath.Join(dir, "data", "blobs")) }
	}
	s, err := startServer(ctx, procs, storageBin, dir, 64<<20, "", extra...)
	if err != nil {
		return nil, err
	}
	defer s.proc.stop()
	pool, err := pgxpool.New(ctx, s.dbConn+" application_name="+soakProbeApp+" pool_max_conns=2")
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	store, err := openStore()
	if err != nil {
		return nil, err
	}
	if err := soakFixtures(ctx, s); err != nil {
		return nil, fmt.Errorf("%w (server log: %s)", err, s.logTail(5))
	}

	start := time.Now()
	rec := newRecorder(start, o.interval, o.duration)
	run := &soakRun{s: s, rec: rec, timeout: soakTimeout}
	res = &soakResult{backend: backend, rec: rec}

	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() {
		defer sampling.Done()
		sampleLoop(sampleCtx, s, pool, rec)
	}()

	loadCtx, cutOff := context.WithCancel(ctx)
	defer cutOff()
	var clients sync.WaitGroup
	bad := misbehavingCount(o.conns)
	for i := range o.conns {
		clients.Add(1)
		go func() {
			defer clients.Done()
			c := newClient(run, i)
			if i < bad {
				(&misbehaver{id: i, r: run, http: c}).loop(loadCtx, i%len(misbehavingKinds))
				return
			}
			c.loop(loadCtx)
		}()
	}
	select {
	case <-time.After(o.duration):
	case <-ctx.Done():
	case <-s.proc.done:
	}
	run.stopping.Store(true)
	// The samples describe the load: the wind-down (clients leaving) is not part of it.
	stopSampling()
	sampling.Wait()
	done := make(chan struct{})
	go func() { clients.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(stopGrace):
		progress("soak: clients still busy %s after the end; cutting them off", stopGrace)
		cutOff()
		<-done
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if s.proc.exited() {
		res.exitReason = s.exitReason()
		return res, nil
	}

	progress("soak: load stopped after %s; waiting for in-flight work to settle", time.Since(start).Round(time.Second))
	res.settled = settle(ctx, s)
	if text, err := scrape(ctx, s); err == nil {
		res.server5xx = serverErrorsByRoute(text)
	}
	res.errorLines, res.errorCount = serverErrorLines(s.logPath, 5)
	progress("soak: checking the invariants (reconcile, grace 0)")
	var out bytes.Buffer
	res.reconcile, res.reconErr = lifecycle.Reconcile(ctx, pool, store, lifecycle.ReconcileOptions{Grace: 0, Out: &out})
	res.reconLines = firstLines(out.String(), 20)
	if res.reconErr == nil && (res.reconcile.MissingBlobs > 0 || res.reconcile.Orphans > 0) {
		res.reconErr = errors.New("rows whose blob is missing, or orphan blobs (listed above)")
	}
	return res, nil
}

// soakFixtures creates the buckets and the objects the clients read.
func soakFixtures(ctx context.Context, s *server) error {
	for _, b := range []struct {
		name   string
		public bool
	}{{soakBucket, false}, {soakPubBucket, true}} {
		body := fmt.Sprintf(`{"name":%q,"public":%t}`, b.name, b.public)
		if err := s.mustOK(ctx, "create bucket "+b.name, "POST", "/bucket", s.service, jsonHeader, []byte(body)); err != nil {
			return err
		}
	}
	large := bytes.Repeat(pattern, largeSize/len(pattern))
	put := []struct {
		bucket, key string
		body        []byte
	}{
		{soakBucket, smallKey, soakPayload[:smallSize]},
		{soakBucket, mediumKey, soakPayload[:mediumSize]},
		{soakBucket, largeKey, large},
		{soakPubBucket, smallKey, soakPayload[:smallSize]},
		{soakPubBucket, mediumKey, soakPayload[:mediumSize]},
	}
	for i := range sharedKeys {
		put = append(put, struct {
			bucket, key string
			body        []byte
		}{soakBucket, fmt.Sprintf("shared/%d", i), soakPayload[:4<<10]})
	}
	for i := range listObjects {
		put = append(put, struct {
			bucket, key string
			body        []byte
		}{soakBucket, fmt.Sprintf("listdir/o%03d", i), soakPayload[:smallSize]})
	}
	for _, p := range put {
		if err := s.mustOK(ctx, "fixture "+p.bucket+"/"+p.key, "POST", "/object/"+p.bucket+"/"+p.key, s.service, binaryHeader, p.body); err != nil {
			return err
		}
	}
	return nil
}

// sampleLoop reads the server's resources every sampleEvery until ctx ends.
func sampleLoop(ctx context.Context, s *server, pool *pgxpool.Pool, rec *recorder) {
	pid := s.proc.pid()
	prev, prevAt := takeCPUSnap(pid), time.Now()
	t := time.NewTicker(sampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		snap := takeCPUSnap(pid)
		split := cpuSplit(prev, snap)
		smp := resourceSample{fds: countFDs(pid), dbConns: -1, goroutines: -1, others: othersShare(prev, snap),
			serverCPU: split.server, pgCPU: split.postgres, dt: now.Sub(prevAt).Seconds()}
		_, smp.rss = procMem(pid)
		prev, prevAt = snap, now
		qctx, cancel := context.WithTimeout(ctx, sampleEvery)
		_ = pool.QueryRow(qctx, `select count(*) from pg_stat_activity
			where datname = current_database() and application_name <> $1`, soakProbeApp).Scan(&smp.dbConns)
		if text, err := scrape(qctx, s); err == nil {
			if g, ok := parseGauge(text, "go_goroutines"); ok {
				smp.goroutines = int(g)
			}
		}
		cancel()
		rec.sample(now, smp)
	}
}

// countFDs counts pid's open file descriptors (0 when unreadable).
func countFDs(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(ents)
}

// scrape reads the server's /metrics.
func scrape(ctx context.Context, s *server) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", s.base+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("/metrics answered %d", resp.StatusCode)
	}
	return string(b), err
}

// settle waits until no upload or download is in flight and a collector run that started
// after the load has left no backlog, so that the invariants see a quiet store. It returns
// how that went, for the report.
func settle(ctx context.Context, s *server) string {
	const led = `storage_collector_runs_total{result="led"}`
	start := time.Now()
	text, _ := scrape(ctx, s)
	runsAtStop, _ := parseGauge(text, led)
	for {
		text, err := scrape(ctx, s)
		up, ok1 := parseGauge(text, "storage_uploads_in_flight")
		down, ok2 := parseGauge(text, "storage_downloads_in_flight")
		due, ok3 := parseGauge(text, "storage_collector_due_blobs")
		runs, ok4 := parseGauge(text, led)
		if err == nil && ok1 && ok2 && ok3 && ok4 && up == 0 && down == 0 && due == 0 && runs > runsAtStop {
			return fmt.Sprintf("settled in %s (no upload or download in flight, a collector run with no backlog)", time.Since(start).Round(time.Second))
		}
		if time.Since(start) > settleLimit {
			return fmt.Sprintf("NOT settled after %s: uploads in flight %v, downloads %v, collector backlog %v, collector runs since the load %v (%v)",
				settleLimit, up, down, due, runs-runsAtStop, err)
		}
		if !sleepCtx(ctx, time.Second) {
			return "interrupted"
		}
	}
}

// soakMain is main's soak mode: the same children's handling as the benchmark's, the soak's
// own report file unless -out names one.
func soakMain(bo options) int {
	out := filepath.Join(filepath.Dir(bo.out), "soak.md")
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "out" {
			out = bo.out
		}
	})
	o, err := soakOptionsFromEnv(bo.storageBin, out)
	if err != nil {
		return fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills the harness at once; the children stop by their parent-death signal
	}()
	procs := &procSet{}
	defer procs.stopAll()
	return runSoak(ctx, o, procs)
}

// firstLines returns s's first n non-empty lines, and a count of the rest.
func firstLines(s string, n int) []string {
	var out []string
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i, l := range lines {
		if l == "" {
			continue
		}
		if i == n {
			out = append(out, fmt.Sprintf("… and %d more", len(lines)-n))
			break
		}
		out = append(out, l)
	}
	return out
}

// serverErrorLines returns the first n lines of the server's JSON log for requests it
// answered with a 5xx other than 503, and how many there were: the server's own account of
// each server error (its error field names the cause).
func serverErrorLines(path string, n int) ([]string, int) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0
	}
	var lines []string
	count := 0
	for _, l := range strings.Split(string(b), "\n") {
		i := strings.Index(l, `"status":5`)
		if i < 0 || strings.HasPrefix(l[i:], `"status":503`) {
			continue
		}
		count++
		if len(lines) < n {
			lines = append(lines, l)
		}
	}
	return lines, count
}
