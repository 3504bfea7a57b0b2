package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Targets from the issue: at least 10× the reference on every small-request workload with p99
// under 10 ms; 1 GiB upload ≥ 400 MB/s, download ≥ 1.5 GB/s, server peak RSS ≤ 64 MiB; the
// resumable upload of 1 GiB at least 90% of the REST upload's rate in the same run (the
// reference's resumable figure is not known on this machine), within the same RSS.
const (
	targetFactor    = 10
	targetP99       = 10 * time.Millisecond
	targetUpload    = 400.0  // MB/s
	targetDownload  = 1500.0 // MB/s
	targetRSS       = 64 << 20
	targetResumable = 0.90 // of the REST upload's MB/s
	// The reference server's 1 GiB numbers on this machine.
	refUpload   = 126.0 // MB/s
	refDownload = 183.0 // MB/s
	refRSS      = 599e6 // bytes ("599 MB")
)

// report is everything one run measured.
type report struct {
	started  time.Time
	elapsed  time.Duration
	machine  []string // "name: value" header lines
	settings wrkSettings
	warmup   time.Duration
	hello    *wrkResult
	helloErr error
	pg       *pgbenchResult
	pgErr    error
	// helloOthers, pgOthers: share of the machine's CPU other programs used during each ceiling.
	helloOthers, pgOthers float64
	disk                  float64 // MB/s of the disk write ceiling
	diskErr               error
	// The small upload's halves alone (nil: not run): the blob store's Put, and pgbench of
	// its SQL.
	put             *putCeiling
	putErr          error
	uploadSQL       *pgbenchResult
	uploadSQLErr    error
	uploadSQLOthers float64
	rows            []outcome
	smallRSS        rssPeak
	bigSize         int64
	upload          *transferResult
	download        *transferResult
	resumable       *transferResult // the resumable (TUS) upload of bigSize
	s3Upload        *transferResult // bigSize through the S3 protocol's multipart upload
	s3Download      *transferResult // and back with GetObject
	listing         *listingResult  // nil: not run
	render          *renderResult   // nil: not run
	dataDir         string
	profileDir      string // where the workloads' profiles were saved ("": profiling off)
	// /proc/loadavg at the start and the end of the run.
	loadStart, loadEnd string
	scheduler          string // what the run did about autogroup scheduling (sched.go)
	hwmExact           bool
}

// markdown renders the report.
func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("# storage benchmarks\n\n")
	p("- date: %s (run took %s)\n", r.started.UTC().Format("2006-01-02 15:04 MST"), r.elapsed.Round(time.Second))
	for _, m := range r.machine {
		p("- %s\n", m)
	}
	p("- load average (1, 5, 15 min) at start: %s; at end: %s (the machine is not reserved for the run: anything else running shows here and in the numbers)\n", r.loadStart, r.loadEnd)
	p("- settings: wrk -t%d -c%d -d%s --latency --timeout %s, after a %s warm-up per workload; server: storage serve, "+
		"file backend and embedded PostgreSQL in a fresh directory under %s, LOG_LEVEL=%s\n",
		r.settings.threads, r.settings.conns, wrkDuration(r.settings.duration), wrkDuration(r.settings.timeout), r.warmup, filepath.Dir(r.dataDir), logLevel())
	if r.scheduler != "" {
		p("- %s\n", r.scheduler)
	}

	p("\n## Ceilings (same machine, same run)\n\n")
	p("| ceiling | rate | p50 | p99 | errors | others' CPU |\n|---|---:|---:|---:|---:|---:|\n")
	if r.hello != nil {
		p("| fasthttp hello-world, wrk with the same settings | %s req/s | %s | %s | %s | %s |\n",
			thousands(r.hello.rps), latency(r.hello.p50), latency(r.hello.p99), errorsCell(*r.hello), share(r.helloOthers))
	} else {
		p("| fasthttp hello-world | not measured: %s | | | | |\n", cell(r.helloErr))
	}
	if r.pg != nil {
		p("| pgbench `select bench_noop()` (plpgsql), -c%d -j%d -M prepared | %s calls/s | avg %s | – | %d | %s |\n",
			r.settings.conns, r.settings.threads, thousands(r.pg.tps), latency(r.pg.latency), r.pg.failed, share(r.pgOthers))
	} else {
		p("| pgbench `select bench_noop()` | not measured: %s | | | | |\n", cell(r.pgErr))
	}
	if r.diskErr == nil {
		p("| disk: write %s in 256 KiB writes + fsync, in the data dir | %s MB/s | | | | |\n", sizeName(r.bigSize), thousands(r.disk))
	} else {
		p("| disk write | not measured: %s | | | | |\n", cell(r.diskErr))
	}

	if r.put != nil {
		if r.putErr == nil {
			p("| blob store: %s Puts (temporary file + fsync, link, directory fsync) into one folder, %d at a time, in the data dir | %s puts/s, %s µs CPU each | | | 0 | %s |\n",
				strconv.Itoa(smallSize/1024)+" KiB", r.settings.conns, thousands(r.put.rate), thousands(r.put.cpu*1e6), share(r.put.others))
		} else {
			p("| blob store Puts | not measured: %s | | | | |\n", cell(r.putErr))
		}
	}
	if r.uploadSQL != nil {
		if r.uploadSQLErr == nil {
			p("| pgbench: an upload's SQL (object_upload_prepare, then object_upload_commit: two transactions), fresh keys, -c%d -j%d -M prepared | %s uploads/s | avg %s | – | %d | %s |\n",
				r.settings.conns, r.settings.threads, thousands(r.uploadSQL.tps), latency(r.uploadSQL.latency), r.uploadSQL.failed, share(r.uploadSQLOthers))
		} else {
			p("| pgbench: an upload's SQL | not measured: %s | | | | |\n", cell(r.uploadSQLErr))
		}
	}
	if r.put != nil && r.putErr == nil && r.uploadSQL != nil && r.uploadSQLErr == nil {
		both := 1 / (1/r.put.rate + 1/r.uploadSQL.tps)
		p("\nA small upload is both halves on the same machine. If each half alone uses the machine up at its rate above, an upload costs 1/puts + 1/SQL seconds of it: about %s uploads/s, before any HTTP.\n", thousands(both))
	}

	p("\n## Small requests\n\n")
	p("| workload | req/s | p50 | p99 | errors | × reference (ref req/s) | of hello-world | of pgbench | target: ≥ 10× ref, p99 < 10 ms | others' CPU |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|\n")
	for _, o := range r.rows {
		if o.skipped != "" {
			p("| %s | %s | | | | (%s) | | | | |\n", o.w.name, cell(o.skipped), o.w.refText)
			continue
		}
		res := o.res
		ratio := "—"
		if o.w.ref > 0 {
			ratio = fmt.Sprintf("%.1f×", res.rps/o.w.ref)
		}
		p("| %s | %s | %s | %s | %s | %s (%s) | %s | %s | %s | %s |\n",
			o.w.name, thousands(res.rps), latency(res.p50), latency(res.p99), errorsCell(res),
			ratio, o.w.refText, r.fraction(res.rps, r.hello != nil, func() float64 { return r.hello.rps }),
			r.fraction(res.rps, r.pg != nil, func() float64 { return r.pg.tps }), smallTarget(res, o.w.ref), share(o.others))
	}
	p("\nServer peak RSS over the small-request workloads: %s.\n", rssCell(r.smallRSS))

	r.whereTimeGoes(&b)

	r.render.markdown(&b)

	r.transferTable(&b)

	r.listing.markdown(&b)

	peak := "VmHWM, reset at the start of each phase"
	if !r.hwmExact {
		peak = "the highest VmRSS sampled every 10 ms (VmHWM could not be reset: clear_refs refused)"
	}
	p("\nNotes:\n\n")
	p("- reference: the reference server (Supabase Storage) on this machine, as given in the issue; midpoints where a range. " +
		"Its p99 was 50–150 ms and its 1 GiB peak RSS 599 MB. Small-request callers use the service key.\n")
	p("- \"of hello-world\" and \"of pgbench\": the workload's rate as a fraction of each ceiling (every request is one " +
		"HTTP round trip and at least one plpgsql call). MB = 10⁶ bytes.\n")
	p("- ¹ %s: one POST /upload/resumable, then PATCHes of %s in sequence (each answered before the next is sent) "+
		"over one keep-alive connection, the time covering them all; the bytes are the REST upload's, to another key. "+
		"The reference's figure for it on this machine is not known (the issue gives its REST upload and download only): "+
		"no × reference, and its target is %.0f%% of the REST upload's rate in the same run instead.%s\n",
		resumableName(r.bigSize), sizeName(resumableChunk), 100*targetResumable, r.resumable.requestsNote())
	p("- ¹ S3 transfers: the AWS SDK for Go's upload manager (%d parts of %s, %d at a time: a multipart upload, session-token "+
		"mode) and one GetObject, to and from another key than the REST upload's. The reference's /s3 was not measured on this "+
		"machine: no × reference; the REST targets stand in.\n", (r.bigSize+s3PartSize-1)/s3PartSize, sizeName(s3PartSize), s3Concurrency)
	p("- peak RSS: the storage process alone (its PostgreSQL backends are separate processes): %s. Go keeps freed heap "+
		"for a while, so a phase starts from what the previous one left.\n", peak)
	p("- where the time goes: CPU time of each part over the measured run (from /proc: the server process alone; "+
		"its PostgreSQL, i.e. every process under the server including exited backends; the load generator, i.e. wrk and "+
		"this harness) divided by the requests completed. The CPU ceiling is the rate at which the sum of the three would "+
		"keep all %d CPUs busy: a workload running near it is bound by CPU, and its largest part is the one to make "+
		"cheaper; one well below it waits on something else (locks, fsync, round trips). The 1 GiB transfers report the "+
		"same split in CPU seconds.\n", runtime.NumCPU())
	if r.profileDir != "" {
		p("- profiles: the server's CPU profile over each measured run and its allocation counts right before and after "+
			"it are in %[1]s (<workload>.cpu.pprof, .allocs.pprof, .allocs-base.pprof). Look at them with "+
			"`go tool pprof -top %[1]s/<workload>.cpu.pprof` and `go tool pprof -sample_index=alloc_space -top "+
			"-base %[1]s/<workload>.allocs-base.pprof %[1]s/<workload>.allocs.pprof` (bin/storage as the first argument "+
			"after the flags adds source lines; -http=: opens the web view). allocs/req and KiB/req are that difference "+
			"over the requests completed (sampled by the runtime: estimates). The buckets classify each CPU sample: GC = "+
			"a GC worker, assist, sweeper or runtime.mallocgc anywhere on its stack; otherwise by the leaf function's "+
			"package: syscall = the system-call wrappers (the kernel side of the server's I/O, the netpoller's "+
			"epoll_wait included, the scheduler's futex not), pgx = github.com/jackc/pgx, fasthttp = github.com/valyala/fasthttp. Top functions "+
			"are by flat (self) time.\n", r.profileDir)
	} else {
		p("- profiles: not taken (BENCH_PROFILE=0).\n")
	}
	p("- others' CPU: the share of the machine's CPU used during the measurement by processes outside this run (anything " +
		"but the harness, the server, its PostgreSQL, wrk and pgbench). Above a few percent the numbers are disturbed")
	if n := r.disturbed(); n > 0 {
		p("; %d measurement(s) of this run were above 10%%: rerun on a quiet machine before comparing them", n)
	}
	p(".\n")
	return b.String()
}

// disturbed counts the measurements during which other programs took more than 10% of the CPU.
func (r *report) disturbed() int {
	shares := []float64{r.helloOthers, r.pgOthers}
	for _, o := range r.rows {
		if o.skipped == "" {
			shares = append(shares, o.others)
		}
	}
	for _, t := range []*transferResult{r.upload, r.resumable, r.download, r.s3Upload, r.s3Download} {
		if t != nil {
			shares = append(shares, t.others)
		}
	}
	n := 0
	for _, f := range shares {
		if f > 0.10 {
			n++
		}
	}
	return n
}

// rateOf is a transfer's MB/s, 0 when it did not run or failed.
func rateOf(t *transferResult) float64 {
	if t == nil || t.err != nil {
		return 0
	}
	return t.mbps()
}

// transferTable renders the large transfers: the REST upload, the resumable upload beside
// it, the download.
func (r *report) transferTable(b *strings.Builder) {
	fmt.Fprintf(b, "\n## %s transfer\n\n", sizeName(r.bigSize))
	fmt.Fprintf(b, "| transfer | MB/s | time | server peak RSS | × reference (ref MB/s) | of disk write | target | others' CPU | CPU s: server / PostgreSQL / client |\n|---|---:|---:|---:|---:|---:|---|---:|---:|\n")
	ofDisk := func(t *transferResult) string {
		return r.fraction(rateOf(t), r.diskErr == nil, func() float64 { return r.disk })
	}
	r.transferRow(b, transferSpec{label: "upload " + sizeName(r.bigSize), t: r.upload, ref: refUpload, refRSS: true,
		ofDisk: ofDisk, target: rateTarget(targetUpload)})
	r.transferRow(b, transferSpec{label: resumableName(r.bigSize), t: r.resumable, ofDisk: ofDisk,
		target: func(t *transferResult) string { return resumableTarget(t, r.upload) }})
	r.transferRow(b, transferSpec{label: "download " + sizeName(r.bigSize), t: r.download, ref: refDownload, refRSS: true,
		target: rateTarget(targetDownload)})
	// The reference's /s3 was not measured on this machine: no × reference; the REST targets
	// stand in for the (3× the reference both ways, RSS ≤ 64 MiB).
	r.transferRow(b, transferSpec{label: s3UploadLabel(r.bigSize), t: r.s3Upload, ofDisk: ofDisk, target: rateTarget(targetUpload)})
	r.transferRow(b, transferSpec{label: s3DownloadLabel(r.bigSize), t: r.s3Download, target: rateTarget(targetDownload)})
}

// transferSpec is one row of the transfer table: the transfer and what it compares with.
type transferSpec struct {
	label string
	t     *transferResult // nil: not run
	// ref is the reference's MB/s on this machine, 0 when it is not known: the × reference
	// cell is then "–¹" (the notes explain).
	ref    float64
	refRSS bool                           // the reference's peak RSS is known for it
	ofDisk func(t *transferResult) string // its fraction of the disk write ceiling (nil: "–")
	target func(t *transferResult) string // its target cell, when it ran
}

func (r *report) transferRow(b *strings.Builder, s transferSpec) {
	t := s.t
	refCell := "–¹"
	if s.ref > 0 {
		refCell = fmt.Sprintf("(%.0f)", s.ref)
	}
	if t == nil {
		fmt.Fprintf(b, "| %s | not run | | | %s | | | | |\n", s.label, refCell)
		return
	}
	if t.err != nil {
		fmt.Fprintf(b, "| %s | failed: %s | | %s | %s | | | | |\n", s.label, cell(t.err), rssCell(t.rss), refCell)
		return
	}
	if s.ref > 0 {
		refCell = fmt.Sprintf("%.1f× (%.0f)", t.mbps()/s.ref, s.ref)
	}
	rss := rssCell(t.rss)
	if s.refRSS {
		rss += fmt.Sprintf("; ref %.0f MB", refRSS/1e6)
	}
	ofDisk := "–"
	if s.ofDisk != nil {
		ofDisk = s.ofDisk(t)
	}
	cpu := "?"
	if t.cpu.ok {
		cpu = fmt.Sprintf("%.2f / %.2f / %.2f", t.cpu.server, t.cpu.postgres, t.cpu.loadgen)
	}
	fmt.Fprintf(b, "| %s | %s | %.2f s | %s | %s | %s | %s | %s | %s |\n",
		s.label, thousands(t.mbps()), t.elapsed.Seconds(), rss, refCell, ofDisk, s.target(t), share(t.others), cpu)
}

// rateTarget is the target cell of a transfer that must reach target MB/s within targetRSS.
func rateTarget(target float64) func(t *transferResult) string {
	return func(t *transferResult) string {
		var missed []string
		if t.mbps() < target {
			missed = append(missed, fmt.Sprintf("rate < %s MB/s", thousands(target)))
		}
		if t.rss.bytes > targetRSS {
			missed = append(missed, "RSS > 64 MiB")
		}
		verdict := "met"
		if len(missed) > 0 {
			verdict = "missed: " + strings.Join(missed, ", ")
		}
		return fmt.Sprintf("≥ %s MB/s, ≤ 64 MiB: %s", thousands(target), verdict)
	}
}

// resumableTarget is the resumable upload's target cell, met or missed with its numbers: at
// least targetResumable of the REST upload's rate in the same run (rest), and at most
// targetRSS. Without a REST upload to compare with, the rate is not judged.
func resumableTarget(t, rest *transferResult) string {
	want := fmt.Sprintf("≥ %.0f%% of the REST upload", 100*targetResumable)
	rss := "RSS " + mib(t.rss.bytes)
	rssOK := t.rss.bytes <= targetRSS
	if !rssOK {
		rss += " > 64 MiB"
	}
	var rate string
	rateOK, judged := false, true
	switch {
	case rest == nil:
		rate, judged = "REST upload not run", false
	case rest.err != nil:
		rate, judged = "REST upload failed", false
	default:
		want += fmt.Sprintf(" (≥ %s of %s MB/s)", thousands(targetResumable*rest.mbps()), thousands(rest.mbps()))
		f := t.mbps() / rest.mbps()
		rateOK = f >= targetResumable
		rate = fmt.Sprintf("%.0f%% of REST", 100*f)
		if !rateOK {
			rate += fmt.Sprintf(" < %.0f%%", 100*targetResumable)
		}
	}
	verdict := "met"
	switch {
	case !rssOK || (judged && !rateOK):
		verdict = "missed"
	case !judged:
		verdict = "rate not judged"
	}
	return fmt.Sprintf("%s, ≤ 64 MiB: %s: %s, %s", want, verdict, rate, rss)
}

// requestsNote says, for the notes, how the resumable upload's PATCHes went ("" when it did
// not run).
func (t *transferResult) requestsNote() string {
	if t == nil || t.requests == 0 {
		return ""
	}
	conns := "one connection"
	if t.conns != 1 {
		conns = fmt.Sprintf("%d connections (the server closed some between PATCHes)", t.conns)
	}
	return fmt.Sprintf(" This run: %d PATCHes over %s.", t.requests, conns)
}

// fraction renders rate as a percentage of a ceiling, or "–" when that ceiling is missing.
func (r *report) fraction(rate float64, have bool, ceiling func() float64) string {
	if !have || ceiling() <= 0 {
		return "–"
	}
	f := 100 * rate / ceiling()
	if f < 10 {
		return fmt.Sprintf("%.1f%%", f)
	}
	return fmt.Sprintf("%.0f%%", f)
}

// smallTarget says whether a workload meets the target, and if not, by what.
func smallTarget(res wrkResult, ref float64) string {
	var missed []string
	if res.rps < targetFactor*ref {
		missed = append(missed, fmt.Sprintf("rate < %s", thousands(targetFactor*ref)))
	}
	if res.p99 >= targetP99 {
		missed = append(missed, "p99 ≥ 10 ms")
	}
	if res.errors() > 0 {
		missed = append(missed, "errors")
	}
	if len(missed) == 0 {
		return "met"
	}
	return "missed: " + strings.Join(missed, ", ")
}

func errorsCell(res wrkResult) string {
	if res.errors() == 0 {
		return "0"
	}
	var parts []string
	if res.non2xx > 0 {
		parts = append(parts, fmt.Sprintf("%d non-2xx", res.non2xx))
	}
	if res.sockErrs > 0 {
		parts = append(parts, fmt.Sprintf("%d socket (%s)", res.sockErrs, res.sockDetail))
	}
	return fmt.Sprintf("%d of %d: %s", res.errors(), res.requests, strings.Join(parts, ", "))
}

// cell makes text safe for one markdown table cell.
func cell(v any) string {
	s := fmt.Sprint(v)
	s = strings.Join(strings.Fields(s), " ")
	return strings.ReplaceAll(s, "|", "\\|")
}

// thousands renders a rate rounded to an integer with thousands separators: 12,345.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// latency renders a latency in ms with about three significant digits.
func latency(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.0f ms", ms)
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// share renders a fraction of the machine as a percentage ("?" when unknown).
func share(f float64) string {
	if f < 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f%%", 100*f)
}

// rssCell renders a phase's peak and the RSS it started from: Go keeps freed heap for a while,
// so a phase's peak is never below what the previous phase left.
func rssCell(p rssPeak) string {
	return fmt.Sprintf("%s%s (%s at start)", mib(p.bytes), approx(p), mib(p.start))
}

// approx marks a sampled (not exact) peak.
func approx(p rssPeak) string {
	if p.exact {
		return ""
	}
	return " (sampled)"
}

func sizeName(n int64) string {
	if n >= 1<<30 && n%(1<<30) == 0 {
		return fmt.Sprintf("%d GiB", n>>30)
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

// loadAverage returns the 1, 5 and 15 minute load averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// machineInfo describes the machine and the software under test for the report header.
func machineInfo(ctx context.Context, pgVersion string) []string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, val, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
				cpu = strings.TrimSpace(val)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				mem = fmt.Sprintf(", %.1f GiB RAM", float64(kb)/(1<<20))
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	lines := []string{fmt.Sprintf("machine: %s, %d CPUs%s%s", cpu, runtime.NumCPU(), mem, kernel)}

	wrk := "wrk"
	if out, err := runTool(ctx, 10*time.Second, os.Environ(), "wrk", "-v"); err == nil || out != "" {
		// "wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer" (wrk -v exits 1)
		if f := strings.Fields(out); len(f) >= 2 {
			wrk = f[0] + " " + f[1]
		}
	}
	pg := "PostgreSQL " + pgVersion
	if pgVersion == "" {
		pg = "PostgreSQL (version unknown)"
	}
	commit := "unknown commit"
	if out, err := runTool(ctx, 10*time.Second, os.Environ(), "git", "rev-parse", "--short", "HEAD"); err == nil {
		commit = "commit " + strings.TrimSpace(out)
		if st, err := runTool(ctx, 10*time.Second, os.Environ(), "git", "status", "--porcelain", "--untracked-files=no"); err == nil && strings.TrimSpace(st) != "" {
			commit += " (with uncommitted changes)"
		}
	}
	lines = append(lines, fmt.Sprintf("software: storage %s, %s, %s, %s", commit, runtime.Version(), wrk, pg))
	return lines
}

// whereTimeGoes renders, per workload, what one request costs in CPU on each side, the rate
// that cost allows on this machine, and what the server's profile says about it.
func (r *report) whereTimeGoes(b *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("\n## Where the time goes\n\n")
	p("| workload | req/s | server µs/req | PostgreSQL µs/req | load generator µs/req | CPU ceiling (req/s) | allocs/req | KiB/req | CPU by bucket | top functions (flat CPU) |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, o := range r.rows {
		if o.skipped != "" {
			p("| %s | not measured | | | | | | | | |\n", o.w.name)
			continue
		}
		n := float64(o.res.requests)
		srv, pg, lg, ceiling := "?", "?", "?", "?"
		if o.cpu.ok && n > 0 {
			us := func(sec float64) float64 { return sec * 1e6 / n }
			srv, pg, lg = micros(us(o.cpu.server)), micros(us(o.cpu.postgres)), micros(us(o.cpu.loadgen))
			if sum := us(o.cpu.server + o.cpu.postgres + o.cpu.loadgen); sum > 0 {
				ceiling = thousands(float64(runtime.NumCPU()) * 1e6 / sum)
			}
		}
		// A profile that could not be taken leaves the reason in its cell, not a failed run.
		allocs, kib := profCell(o.prof.allocErr), "–"
		if o.prof.allocErr == nil {
			allocs, kib = fmt.Sprintf("%.0f", o.prof.allocs), fmt.Sprintf("%.1f", o.prof.bytes/1024)
		}
		buckets, top := "–", profCell(o.prof.cpuErr)
		if o.prof.cpuErr == nil {
			buckets, top = shares(o.prof.buckets, false), shares(o.prof.top, true)
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			o.w.name, thousands(o.res.rps), srv, pg, lg, ceiling, allocs, kib, buckets, top)
	}
}

// profCell says why a profile is missing.
func profCell(err error) string {
	if err == nil || err == errProfilingOff {
		return cell(err)
	}
	return "failed: " + cell(err)
}

// micros renders microseconds with about three significant digits.
func micros(us float64) string {
	if us < 100 {
		return fmt.Sprintf("%.1f", us)
	}
	return fmt.Sprintf("%.0f", us)
}

// shares renders "name 22%, name 6%, …"; short drops functions' import directories.
func shares(s []flatShare, short bool) string {
	var parts []string
	for _, f := range s {
		name := f.name
		if short {
			name = shortFunction(name)
		}
		pct := fmt.Sprintf("%.0f%%", 100*f.share)
		if f.share < 0.095 {
			pct = fmt.Sprintf("%.1f%%", 100*f.share)
		}
		parts = append(parts, cell(name+" "+pct))
	}
	return strings.Join(parts, ", ")
}
