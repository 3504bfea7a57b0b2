package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// options is the run's configuration: flags for paths, environment for the knobs make passes.
type options struct {
	storageBin, helloBin, out string
	duration, warmup          time.Duration
	keep                      bool
	bigSize                   int64
	listing                   bool // the listing benchmark (BENCH_LISTING=0 skips it)
	profile                   bool // profile the server during each workload (BENCH_PROFILE=0: not)
	keepAutogroup             bool // BENCH_AUTOGROUP=keep: leave autogroup scheduling as it is
	// only (BENCH_ONLY, a regular expression) picks the workloads, transfers ("upload 1 GiB",
	// "resumable upload 1 GiB, 6 MiB chunks", "download 1 GiB") and "listing" to run, and skips
	// the ceilings: for iterating on one workload. nil: all.
	only *regexp.Regexp
}

// runs reports whether the phase named name is part of this run.
func (o options) runs(name string) bool { return o.only == nil || o.only.MatchString(name) }

func main() {
	os.Exit(run())
}

// run returns the exit code, so that every deferred clean-up runs before os.Exit.
func run() int {
	var o options
	flag.StringVar(&o.storageBin, "storage", "bin/storage", "the storage binary to benchmark (make bench builds it)")
	flag.StringVar(&o.helloBin, "hello", "bin/bench-hello", "the hello-world ceiling server (go build -o bin/bench-hello ./bench/hello)")
	flag.StringVar(&o.out, "out", "bench/results/latest.md", "where to write the report (also printed to stdout)")
	flag.Int64Var(&o.bigSize, "big", 1<<30, "size in bytes of the large upload and download")
	soak := flag.Bool("soak", false, "run the soak instead of the benchmarks (make soak; SOAK_* settings, see soak.go)")
	flag.Parse()
	if *soak {
		return soakMain(o)
	}
	var err error
	if o.duration, err = envDuration("BENCH_DURATION", 10*time.Second); err != nil {
		return fail(err)
	}
	if o.warmup, err = envDuration("BENCH_WARMUP", time.Second); err != nil {
		return fail(err)
	}
	o.keep = os.Getenv("BENCH_KEEP") == "1"
	o.listing = os.Getenv("BENCH_LISTING") != "0"
	if v := os.Getenv("BENCH_ONLY"); v != "" {
		if o.only, err = regexp.Compile(v); err != nil {
			return fail(fmt.Errorf("BENCH_ONLY=%q: %v", v, err))
		}
	}
	o.profile = os.Getenv("BENCH_PROFILE") != "0"
	// Read before the run, so that a wrong path costs seconds, not the run.
	baseline, err := readBaseline(os.Getenv("BENCH_BASELINE"))
	if err != nil {
		return fail(err)
	}
	switch v := os.Getenv("BENCH_AUTOGROUP"); v {
	case "", "off":
	case "keep":
		o.keepAutogroup = true
	default:
		return fail(fmt.Errorf("BENCH_AUTOGROUP=%q: must be keep or off (the default)", v))
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		// A second Ctrl-C kills the harness at once; the children still stop through their
		// parent-death signal.
		stop()
	}()
	procs := &procSet{}
	defer procs.stopAll()
	sched, restore := schedulerSetup(o.keepAutogroup)
	defer restore()

	rep, err := bench(ctx, o, procs)
	if rep != nil {
		rep.scheduler = sched
	}
	if err != nil {
		if ctx.Err() != nil {
			err = errors.New("interrupted")
		}
		return fail(err)
	}
	md := rep.markdown()
	if baseline != "" {
		md += compareSection(os.Getenv("BENCH_BASELINE"), baseline, md)
	}
	if err := writeReport(o.out, md); err != nil {
		return fail(err)
	}
	return 0
}

// writeReport prints the report and writes it to out.
func writeReport(out, text string) error {
	fmt.Print("\n" + text)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out, []byte(text), 0o644); err != nil {
		return err
	}
	fmt.Printf("\nreport written to %s\n", out)
	return nil
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "bench:", err)
	return 1
}

// envDuration reads a Go duration from the environment ("5s", "1m").
func envDuration(name string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q: must be a Go duration such as 5s or 1m", name, v)
	}
	return d, nil
}

// progress tells the operator what is running: a run takes minutes.
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// bench does one whole run and returns its report. Only failures that leave nothing to
// measure (no wrk, a server that does not start, fixtures refused) are errors; a workload
// that cannot run becomes a row saying why.
func bench(ctx context.Context, o options, procs *procSet) (*report, error) {
	if _, err := exec.LookPath("wrk"); err != nil {
		return nil, errors.New("wrk not found; install it with apt-get install -y wrk (make bench does this when root)")
	}
	for _, bin := range []string{o.storageBin, o.helloBin} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("%v; run make bench, which builds bin/storage and bin/bench-hello", err)
		}
	}
	storageBin, _ := filepath.Abs(o.storageBin)
	helloBin, _ := filepath.Abs(o.helloBin)

	rep := &report{
		started:   time.Now(),
		settings:  wrkSettings{threads: 2, conns: 32, duration: o.duration, timeout: 5 * time.Second},
		warmup:    o.warmup,
		bigSize:   o.bigSize,
		loadStart: loadAverage(),
	}
	dir, err := os.MkdirTemp("", "storage-bench-")
	if err != nil {
		return nil, err
	}
	// As root the embedded PostgreSQL runs as the postgres OS user, which must reach the data
	// dir inside; MkdirTemp makes the directory 0700.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	rep.dataDir = dir
	failed := true
	defer func() {
		// The processes first: PostgreSQL must stop before its files go.
		procs.stopAll()
		// A failed run keeps its logs for a look; an interrupted one keeps nothing (it may hold
		// a partial 1 GiB blob).
		if o.keep || (failed && ctx.Err() == nil) {
			progress("kept %s (server.log, data/pg/postgres.log, blobs)", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	scripts, err := writeScripts(dir)
	if err != nil {
		return nil, err
	}

	// Profiles go beside the report: bench/results/profiles by default.
	var prof *profiler
	pprofAddr := ""
	if o.profile {
		prof, pprofAddr = newProfiler(filepath.Join(filepath.Dir(o.out), "profiles"))
		rep.profileDir = prof.dir
	}

	progress("starting %s serve in %s", o.storageBin, dir)
	// The upload limit leaves room above the large object so a limit is never what is measured.
	s, err := startServer(ctx, procs, storageBin, dir, 2*o.bigSize, pprofAddr)
	if err != nil {
		return nil, err
	}
	if prof != nil {
		prof.check(ctx)
	}
	if err := s.createFixtures(ctx); err != nil {
		return nil, fmt.Errorf("%w (server log: %s)", err, s.logTail(5))
	}

	var pg pgbenchResult
	if o.only != nil {
		skipped := fmt.Errorf("skipped (BENCH_ONLY=%s)", o.only)
		rep.helloErr, rep.pgErr, rep.diskErr = skipped, skipped, skipped
	} else {
		progress("ceiling: fasthttp hello-world")
		before := takeCPUSnap(0)
		if r, err := helloCeiling(ctx, procs, helloBin, rep.settings); err != nil {
			rep.helloErr = err
		} else {
			rep.hello = &r
		}
		rep.helloOthers = othersShare(before, takeCPUSnap(0))
		progress("ceiling: pgbench select bench_noop()")
		before = takeCPUSnap(0)
		pg, err = runPgbench(ctx, s.dbConn, dir, rep.settings.conns, rep.settings.threads, o.duration)
		rep.pgOthers = othersShare(before, takeCPUSnap(0))
		if err != nil {
			rep.pgErr = err
		} else {
			rep.pg = &pg
		}
		progress("ceiling: disk write %s + fsync", sizeName(o.bigSize))
		rep.disk, rep.diskErr = diskCeiling(ctx, dir, o.bigSize)
	}
	if o.runs(uploadWorkload) {
		progress("ceiling: blob store Puts of %d KiB", smallSize/1024)
		put, err := blobPutCeiling(ctx, dir, rep.settings.conns, o.duration)
		rep.put, rep.putErr = &put, err
		progress("ceiling: pgbench the upload's SQL")
		before := takeCPUSnap(0)
		setup := `insert into storage.buckets (id, name) values ('` + uploadSQLBucket + `', '` + uploadSQLBucket + `') on conflict do nothing`
		r, err := runPgbenchScript(ctx, s.dbConn, dir, "upload.sql", setup, uploadSQLScript, rep.settings.conns, rep.settings.threads, o.duration)
		rep.uploadSQL, rep.uploadSQLErr, rep.uploadSQLOthers = &r, err, othersShare(before, takeCPUSnap(0))
		// The script leaves tens of thousands of new rows. Vacuum them now, or autovacuum
		// does it during a later workload and bills that workload's PostgreSQL CPU for it.
		if err == nil {
			err = psqlExec(ctx, s.dbConn, time.Minute, "vacuum analyze")
		}
		if err != nil {
			rep.uploadSQLErr = err
		}
	}
	rep.machine = machineInfo(ctx, pg.version)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	w := watchRSS(s.proc.pid())
	rep.hwmExact = w.exact
	for _, wl := range workloads {
		if !o.runs(wl.name) {
			continue
		}
		progress("workload: %s", wl.name)
		rep.rows = append(rep.rows, runWorkload(ctx, s, rep.settings, o.warmup, scripts, wl, prof))
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if s.proc.exited() {
			return nil, fmt.Errorf("storage serve exited during %s: %s", wl.name, s.logTail(10))
		}
	}
	rep.smallRSS = w.done()

	// Image transformation (the rows BENCH_ONLY picks, if any), before the large transfers.
	rep.render = runRender(ctx, o, procs, s, storageBin, dir, rep.settings, prof)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	// The resumable upload follows the REST upload at once, so the two see the same machine.
	up, resumable, down := o.transfers()
	if up {
		rep.upload = measureTransfer(s, "upload "+sizeName(o.bigSize), func() transferResult { return uploadBig(ctx, s, o.bigSize) })
	}
	if resumable {
		rep.resumable = measureTransfer(s, resumableName(o.bigSize), func() transferResult {
			return uploadResumable(ctx, s, o.bigSize, resumableChunk)
		})
	}
	if down && rep.upload.err == nil {
		rep.download = measureTransfer(s, "download "+sizeName(o.bigSize), func() transferResult { return downloadBig(ctx, s, o.bigSize) })
	}
	if s3up, s3down := o.s3Transfers(); s3up {
		rep.s3Upload = measureTransfer(s, s3UploadLabel(o.bigSize), func() transferResult { return uploadS3(ctx, s, o.bigSize) })
		if s3down && rep.s3Upload.err == nil {
			rep.s3Download = measureTransfer(s, s3DownloadLabel(o.bigSize), func() transferResult { return downloadS3(ctx, s, o.bigSize) })
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	// Last: filling a million rows must not disturb the other measurements.
	if o.listing && o.runs("listing") {
		rep.listing = runListing(ctx, s, rep.settings, o.warmup, scripts)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if warn := serverWarnings(s); warn != "" {
		progress("the server logged warnings or errors (%s): %s", s.logPath, warn)
	}
	rep.elapsed = time.Since(rep.started)
	rep.loadEnd = loadAverage()
	failed = false
	return rep, nil
}

// transfers says which large transfers run: those BENCH_ONLY picks, plus the REST upload
// when a picked one needs it (the download reads its object; the resumable upload's target
// is a share of its rate).
func (o options) transfers() (upload, resumable, download bool) {
	resumable = o.runs(resumableName(o.bigSize))
	download = o.runs("download " + sizeName(o.bigSize))
	upload = o.runs("upload "+sizeName(o.bigSize)) || resumable || download
	return upload, resumable, download
}

// s3Transfers says whether the S3 protocol's transfers run (the download reads what the
// upload put).
func (o options) s3Transfers() (upload, download bool) {
	download = o.runs(s3DownloadLabel(o.bigSize))
	return o.runs(s3UploadLabel(o.bigSize)) || download, download
}

// measureTransfer runs one large transfer with the server's CPU split around it.
func measureTransfer(s *server, name string, transfer func() transferResult) *transferResult {
	progress("%s", name)
	before := takeCPUSnap(s.proc.pid())
	t := transfer()
	after := takeCPUSnap(s.proc.pid())
	t.others, t.cpu = othersShare(before, after), cpuSplit(before, after)
	return &t
}

// helloCeiling starts the hello-world server and drives it with the workloads' settings.
func helloCeiling(ctx context.Context, procs *procSet, bin string, st wrkSettings) (wrkResult, error) {
	cmd := exec.Command(bin)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return wrkResult{}, err
	}
	p, err := procs.start("hello", cmd, syscall.SIGKILL, time.Second)
	if err != nil {
		return wrkResult{}, err
	}
	defer p.stop() // before the storage workloads: it must not compete with them for CPU
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			addr <- strings.TrimSpace(sc.Text())
		}
		close(addr)
	}()
	var a string
	select {
	case a = <-addr:
	case <-time.After(10 * time.Second):
	case <-ctx.Done():
		return wrkResult{}, ctx.Err()
	}
	if a == "" {
		return wrkResult{}, errors.New("hello did not print its address")
	}
	return runWrk(ctx, st, st.duration, wrkRun{url: "http://" + a + "/"})
}

// serverWarnings returns the first lines the server logged at warn or above, if any: errors
// under load (a full pool, a refused upload) explain bad numbers.
func serverWarnings(s *server) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		// LOG_FORMAT json (the default) or text.
		if strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) ||
			strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	more := ""
	if len(lines) > 3 {
		more = fmt.Sprintf(" … (%d lines)", len(lines))
		lines = lines[:3]
	}
	return strings.Join(lines, " | ") + more
}
