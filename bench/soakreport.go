package main

import (
	"fmt"
	"strings"
	"time"
)

// soakDefinitions explains the report's columns and targets once, above the backends.
const soakDefinitions = `Classes: **2xx**; **expected 4xx** (requests meant to fail: a missing key's 404, a duplicate's
409); **unexpected** (any other 4xx, or a 2xx whose body was wrong: a finding); **503+Retry-After**
(load shed as designed); **5xx** (any other 5xx, 544 included: server errors); **client error** (no
answer: reset, refused, timeout after 60 s). A 400 is classed by the body's statusCode (API.md §1.1).
Latencies are the well-behaved clients' requests that got an answer, by the interval they started
in. Misbehaving clients are counted in episodes: as expected (a slow transfer completed; a stalled
one answered 408 or was dropped; a cut-off upload stored nothing), not as expected, or a server error.
RSS, fds, DB connections (pg_stat_activity rows of the server's database, the harness's own left
out) and goroutines (go_goroutines from /metrics) are means of the samples taken every 5 s.
CPU columns: share of one core used by the server and by its PostgreSQL, and the share of the
machine other programs took (the machine is shared).

Targets: 0 server errors (all clients); RSS and fds flat: the last interval's mean at most 10 %
(or 16 MiB / 16 fds, whichever is larger) above the second interval's (the first is warm-up); p99 of
every interval at most 2 × the first interval's; after the load stops and in-flight work settles,
lifecycle.Reconcile with grace 0 finds no row whose blob is missing and no orphan blob.

`

// pass reports whether the run met every target (a target not judged is not missed).
func (r *soakResult) pass() bool {
	if r.exitReason != "" || r.reconErr != nil {
		return false
	}
	for _, j := range r.judgements() {
		if j.judged && !j.pass {
			return false
		}
	}
	return true
}

func (r *soakResult) judgements() []judgement {
	b := r.rec.buckets
	return []judgement{
		judgeServerErrors(b),
		judgeFlat("RSS flat after warm-up", b, rssOf, rssFlat, func(v float64) string { return mib(int64(v)) }),
		judgeFlat("open fds flat after warm-up", b, fdsOf, fdsFlat, func(v float64) string { return fmt.Sprintf("%.0f", v) }),
		judgeP99(b),
	}
}

func (r *soakResult) markdown(b *strings.Builder) {
	rec := r.rec
	rec.mu.Lock()
	defer rec.mu.Unlock()
	fmt.Fprintf(b, "## %s backend\n\n", r.backendName())
	if r.exitReason != "" {
		fmt.Fprintf(b, "**The server exited during the run:** %s\n\n", r.exitReason)
	}

	b.WriteString("| interval | 2xx | exp. 4xx | unexp. | 503+RA | 5xx | client err. | req/s | p50 | p99 | misbehaving ok / not / 5xx | RSS | fds | DB conns | goroutines | server CPU | PG CPU | others' CPU |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for i, bk := range rec.buckets {
		total := 0
		for _, n := range bk.counts {
			total += n
		}
		p50, p99 := percentile(bk.latencies, 50), percentile(bk.latencies, 99)
		fmt.Fprintf(b, "| %s | %d | %d | %d | %d | %d | %d | %.0f | %s | %s | %d / %d / %d | %s | %s | %s | %s | %s | %s | %s |\n",
			intervalName(i, rec.interval), bk.counts[classOK], bk.counts[classExpected4xx], bk.counts[classWrong],
			bk.counts[classBusy], bk.counts[classServerError], bk.counts[classClientError],
			float64(total)/rec.interval.Seconds(), latency(p50), latency(p99),
			bk.slowOK, bk.slowWrong, bk.slowServerErr,
			meanCell(bk.samples, rssOf, func(v float64) string { return mib(int64(v)) }),
			meanCell(bk.samples, fdsOf, func(v float64) string { return fmt.Sprintf("%.0f", v) }),
			meanCell(bk.samples, dbOf, func(v float64) string { return fmt.Sprintf("%.1f", v) }),
			meanCell(bk.samples, goroutinesOf, func(v float64) string { return fmt.Sprintf("%.0f", v) }),
			cpuShare(bk.samples, func(s resourceSample) float64 { return s.serverCPU }),
			cpuShare(bk.samples, func(s resourceSample) float64 { return s.pgCPU }),
			meanCell(bk.samples, func(s resourceSample) (float64, bool) { return s.others, s.others >= 0 }, share))
	}

	b.WriteString("\n| operation (well-behaved) | requests | 2xx | exp. 4xx | unexp. | 503+RA | 5xx | client err. | p50 | p99 |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, name := range sortedKeys(rec.ops) {
		o := rec.ops[name]
		total := 0
		for _, n := range o.counts {
			total += n
		}
		fmt.Fprintf(b, "| %s | %d | %d | %d | %d | %d | %d | %d | %s | %s |\n", name, total,
			o.counts[classOK], o.counts[classExpected4xx], o.counts[classWrong], o.counts[classBusy],
			o.counts[classServerError], o.counts[classClientError],
			latency(percentile(o.latencies, 50)), latency(percentile(o.latencies, 99)))
	}

	b.WriteString("\n| misbehaving client | episodes | as expected | how | not as expected | server errors |\n|---|---|---|---|---|---|\n")
	for _, k := range misbehavingKinds {
		n := rec.slow[k.name]
		if n == nil {
			n = &[3]int{}
		}
		var how []string
		for _, h := range sortedKeys(rec.slowHow[k.name]) {
			how = append(how, fmt.Sprintf("%s: %d", h, rec.slowHow[k.name][h]))
		}
		fmt.Fprintf(b, "| %s | %d | %d | %s | %d | %d |\n", k.name, n[0]+n[1]+n[2], n[0], strings.Join(how, ", "), n[1], n[2])
	}

	if len(rec.findings) > 0 {
		b.WriteString("\nFindings (up to 5 examples each; time from the start):\n\n")
		for _, key := range sortedKeys(rec.findings) {
			cls, op, _ := strings.Cut(key, "\x00")
			fmt.Fprintf(b, "- **%s**, %s: %d\n", cls, op, rec.nfind[key])
			for _, f := range rec.findings[key] {
				fmt.Fprintf(b, "  - at %s: %s\n", f.at.Round(time.Second), f.what)
			}
		}
	}
	if len(r.server5xx) > 0 {
		b.WriteString("\nThe server's own count of answers sent with a 5xx status line (storage_http_requests_total; 503s of the connection and upload caps included):\n\n")
		for _, k := range sortedKeys(r.server5xx) {
			fmt.Fprintf(b, "- %s: %.0f\n", k, r.server5xx[k])
		}
	}
	if r.errorCount > 0 {
		fmt.Fprintf(b, "\nThe server's log has %d requests answered 5xx (503 aside); the first:\n\n```\n%s\n```\n", r.errorCount, strings.Join(r.errorLines, "\n"))
	}

	if r.exitReason == "" {
		fmt.Fprintf(b, "\nAfter the load: %s.\n\n", r.settled)
		rc := r.reconcile
		fmt.Fprintf(b, "Invariants (lifecycle.Reconcile, grace 0): missing blobs %d, orphans %d (%s); also stale uploads %d, leftovers %d, resumable uploads in progress %d, multipart uploads %d, cached variants %d",
			rc.MissingBlobs, rc.Orphans, mib(rc.OrphanBytes), rc.StaleUploads, rc.Leftovers, rc.Resumable, rc.Multipart, rc.Variants)
		if r.reconErr != nil {
			fmt.Fprintf(b, " — **FAIL**: %v\n\n", r.reconErr)
		} else {
			b.WriteString(" — **PASS**\n\n")
		}
		if rc.StaleUploads > 0 {
			fmt.Fprintf(b, "**Finding** (not one of the targets): %d uploads still marked in flight after the load settled: the server never ended them, "+
				"so their rows in storage.blob_uploads (and whatever they wrote) stay until the collector expires them (lifecycle.DefaultUploadExpiry, 24 h). "+
				"Their keys and start times are below; compare with the intervals' 503s and the misbehaving clients.\n\n", rc.StaleUploads)
		}
		if len(r.reconLines) > 0 {
			b.WriteString("```\n" + strings.Join(r.reconLines, "\n") + "\n```\n\n")
		}
	}
	b.WriteString("| target | verdict | detail |\n|---|---|---|\n")
	for _, j := range r.judgements() {
		fmt.Fprintf(b, "| %s | %s | %s |\n", j.name, j.verdict(), j.detail)
	}
	verdict := "PASS"
	if !r.pass() {
		verdict = "FAIL"
	}
	fmt.Fprintf(b, "\n**%s backend: %s**\n\n", r.backendName(), verdict)
}

func (r *soakResult) backendName() string {
	if r.backend == "s3" {
		return "S3 (versitygw)"
	}
	return "embedded (PostgreSQL + file blobs)"
}

// intervalName labels interval i: "1" … for minutes, else its start offset.
func intervalName(i int, interval time.Duration) string {
	if interval == time.Minute {
		return fmt.Sprintf("min %d", i+1)
	}
	return fmt.Sprintf("%d (%s–)", i+1, time.Duration(i)*interval)
}

// meanCell renders the mean of a sampled value, or "–".
func meanCell(ss []resourceSample, of func(resourceSample) (float64, bool), unit func(float64) string) string {
	v, ok := meanOf(ss, of)
	if !ok {
		return "–"
	}
	return unit(v)
}

// cpuShare renders CPU seconds over the samples' span as a share of one core.
func cpuShare(ss []resourceSample, of func(resourceSample) float64) string {
	cpu, span := 0.0, 0.0
	for _, s := range ss {
		cpu += of(s)
		span += s.dt
	}
	if span == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f %%", 100*cpu/span)
}
