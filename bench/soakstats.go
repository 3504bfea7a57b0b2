package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The soak's accounting: every request is recorded under the interval it started in, by
// outcome class; the server's resources are sampled into the same intervals; the judgements at
// the end (server errors, flat RSS and fds, p99 drift) are pure functions of these records, so
// they are unit-tested.

// class is the outcome class of one request.
type class int

const (
	classOK          class = iota // 2xx with the expected answer
	classExpected4xx              // a 4xx the request was meant to get (missing key, duplicate)
	classWrong                    // a 4xx nobody expected, or a 2xx with a wrong body: a finding
	classBusy                     // 503 with Retry-After: the server shedding load as designed
	classServerError              // any other 5xx (544 included): the target is 0
	classClientError              // no answer: reset, timeout, refused (well-behaved clients only)
	numClasses
)

var classNames = [numClasses]string{"2xx", "expected 4xx", "unexpected", "503+Retry-After", "5xx (server error)", "client error"}

// logicalStatus is the status a storage client reads: the HTTP status, except that the
// reference's error model sends most errors as HTTP 400 with the real status in the body's
// statusCode string (API.md §1.1).
func logicalStatus(httpStatus int, body []byte) int {
	if httpStatus != http.StatusBadRequest {
		return httpStatus
	}
	var e struct {
		StatusCode string `json:"statusCode"`
	}
	if json.Unmarshal(body, &e) != nil {
		return httpStatus
	}
	if n, err := strconv.Atoi(e.StatusCode); err == nil && n >= 100 && n <= 999 {
		return n
	}
	return httpStatus
}

// classify sorts one answer. expect lists the 4xx statuses the request was meant to get; a 2xx
// is OK here (the caller checks the body and may demote it to classWrong).
func classify(httpStatus int, retryAfter bool, body []byte, expect ...int) (class, int) {
	st := logicalStatus(httpStatus, body)
	switch {
	case st >= 200 && st < 300:
		return classOK, st
	case st == http.StatusServiceUnavailable && retryAfter:
		return classBusy, st
	case st >= 500:
		return classServerError, st
	case slices.Contains(expect, st):
		return classExpected4xx, st
	default:
		return classWrong, st
	}
}

// bucket is one interval's counts and the well-behaved requests' latencies.
type bucket struct {
	counts    [numClasses]int
	latencies []time.Duration // well-behaved requests that got an answer
	// misbehaving clients' episodes: as expected, not as expected, and server errors among them
	slowOK, slowWrong, slowServerErr int
	samples                          []resourceSample
}

// resourceSample is one reading of the server's resources.
type resourceSample struct {
	rss        int64   // VmRSS in bytes
	fds        int     // entries in /proc/<pid>/fd
	dbConns    int     // pg_stat_activity rows of the server's database, the sampler's own excluded
	goroutines int     // go_goroutines from /metrics (-1: unknown)
	others     float64 // share of the machine's CPU other programs used since the previous sample (-1: unknown)
	serverCPU  float64 // CPU seconds of the server process since the previous sample
	pgCPU      float64 // CPU seconds of its PostgreSQL since the previous sample
	dt         float64 // seconds since the previous sample
}

// opStats is one kind of request's totals over the run.
type opStats struct {
	counts    [numClasses]int
	latencies []time.Duration
}

// finding is one example of something that went wrong, for the report.
type finding struct {
	at   time.Duration
	op   string
	what string
}

// recorder collects the soak's records; safe for concurrent use.
type recorder struct {
	start    time.Time
	interval time.Duration
	n        int // intervals in the run: a record after the end counts in the last

	mu       sync.Mutex
	buckets  []*bucket
	ops      map[string]*opStats
	slow     map[string]*[3]int        // misbehaving kinds: as expected, not, server errors
	slowHow  map[string]map[string]int // misbehaving kinds' episodes as expected, by how they ended
	findings map[string][]finding
	nfind    map[string]int
}

// maxFindings bounds the examples kept per (class, operation).
const maxFindings = 5

func newRecorder(start time.Time, interval, duration time.Duration) *recorder {
	return &recorder{start: start, interval: interval, n: intervals(duration, interval), ops: map[string]*opStats{},
		slow: map[string]*[3]int{}, slowHow: map[string]map[string]int{}, findings: map[string][]finding{}, nfind: map[string]int{}}
}

// intervals is how many intervals a run of duration has (a last partial one included).
func intervals(duration, interval time.Duration) int {
	return int((duration + interval - 1) / interval)
}

// bucketIndex is the interval of n that t falls in; times before the start count in the
// first, times after the end (the second request of an operation begun in time) in the last.
func bucketIndex(start time.Time, interval time.Duration, n int, t time.Time) int {
	if t.Before(start) {
		return 0
	}
	return min(int(t.Sub(start)/interval), n-1)
}

// bucketLocked returns the interval t falls in, creating it (and any before it).
func (r *recorder) bucketLocked(t time.Time) *bucket {
	i := bucketIndex(r.start, r.interval, r.n, t)
	for len(r.buckets) <= i {
		r.buckets = append(r.buckets, &bucket{})
	}
	return r.buckets[i]
}

// request records one well-behaved request that started at start and took d.
func (r *recorder) request(op string, start time.Time, d time.Duration, c class, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.bucketLocked(start)
	b.counts[c]++
	o := r.ops[op]
	if o == nil {
		o = &opStats{}
		r.ops[op] = o
	}
	o.counts[c]++
	if c != classClientError {
		b.latencies = append(b.latencies, d)
		o.latencies = append(o.latencies, d)
	}
	if c != classOK && c != classExpected4xx {
		r.noteLocked(classNames[c], op, start, detail)
	}
}

// episode records one misbehaving client's episode (a slow transfer, an abrupt disconnect).
func (r *recorder) episode(kind string, start time.Time, asExpected, serverErr bool, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.bucketLocked(start)
	k := r.slow[kind]
	if k == nil {
		k = &[3]int{}
		r.slow[kind] = k
	}
	switch {
	case serverErr:
		b.slowServerErr++
		k[2]++
		r.noteLocked(classNames[classServerError], kind, start, detail)
	case asExpected:
		b.slowOK++
		k[0]++
		if r.slowHow[kind] == nil {
			r.slowHow[kind] = map[string]int{}
		}
		r.slowHow[kind][detail]++
	default:
		b.slowWrong++
		k[1]++
		r.noteLocked("misbehaving client, not as expected", kind, start, detail)
	}
}

func (r *recorder) noteLocked(cls, op string, start time.Time, detail string) {
	key := cls + "\x00" + op
	r.nfind[key]++
	keep := maxFindings
	if cls == classNames[classBusy] {
		keep = 1 // shedding is allowed: one example says why
	}
	if len(r.findings[key]) < keep {
		r.findings[key] = append(r.findings[key], finding{at: start.Sub(r.start), op: op, what: detail})
	}
}

// sample records one resource reading taken at t.
func (r *recorder) sample(t time.Time, s resourceSample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.bucketLocked(t)
	b.samples = append(b.samples, s)
}

// percentile returns the p-th percentile (0 < p ≤ 100) of d by the nearest-rank method, and 0
// for no data. d is sorted in place.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	rank := int(math.Ceil(p / 100 * float64(len(d))))
	return d[min(max(rank, 1), len(d))-1]
}

// meanOf averages f over the samples that have a value (f returns ok false for unknowns).
func meanOf(ss []resourceSample, f func(resourceSample) (float64, bool)) (float64, bool) {
	sum, n := 0.0, 0
	for _, s := range ss {
		if v, ok := f(s); ok {
			sum += v
			n++
		}
	}
	if n == 0 {
		return 0, false
	}
	return sum / float64(n), true
}

func rssOf(s resourceSample) (float64, bool) { return float64(s.rss), s.rss > 0 }
func fdsOf(s resourceSample) (float64, bool) { return float64(s.fds), s.fds > 0 }
func dbOf(s resourceSample) (float64, bool)  { return float64(s.dbConns), s.dbConns >= 0 }
func goroutinesOf(s resourceSample) (float64, bool) {
	return float64(s.goroutines), s.goroutines >= 0
}

// flatness is how a resource is judged flat: the last interval's mean may exceed the reference
// interval's (the second: the first is warm-up) by at most rel of it or by abs, whichever is
// larger. A fall is always flat.
type flatness struct {
	rel, abs float64
}

var (
	rssFlat = flatness{rel: 0.10, abs: 16 << 20} // 10 % or 16 MiB
	fdsFlat = flatness{rel: 0.10, abs: 16}       // 10 % or 16 descriptors
)

// judgement is one target's verdict.
type judgement struct {
	name   string
	judged bool // false: not enough data (a run shorter than three intervals); not a failure
	pass   bool
	detail string
}

func (j judgement) verdict() string {
	switch {
	case !j.judged:
		return "not judged"
	case j.pass:
		return "PASS"
	default:
		return "FAIL"
	}
}

// judgeFlat compares the last interval with the second. buckets must be the run's intervals in
// order; unit renders a value.
func judgeFlat(name string, buckets []*bucket, of func(resourceSample) (float64, bool), f flatness, unit func(float64) string) judgement {
	j := judgement{name: name}
	if len(buckets) < 3 {
		j.detail = fmt.Sprintf("needs 3 intervals (warm-up, reference, last), have %d", len(buckets))
		return j
	}
	ref, ok1 := meanOf(buckets[1].samples, of)
	last, ok2 := meanOf(buckets[len(buckets)-1].samples, of)
	if !ok1 || !ok2 {
		j.detail = "no samples in the reference or the last interval"
		return j
	}
	limit := ref + max(ref*f.rel, f.abs)
	j.judged, j.pass = true, last <= limit
	j.detail = fmt.Sprintf("interval 2 mean %s, last (%d) mean %s, limit %s (+%.0f %% or +%s)",
		unit(ref), len(buckets), unit(last), unit(limit), f.rel*100, unit(f.abs))
	return j
}

// judgeP99 checks every interval's p99 against twice the first's.
func judgeP99(buckets []*bucket) judgement {
	j := judgement{name: "p99 per interval ≤ 2 × the first interval's"}
	if len(buckets) < 2 || len(buckets[0].latencies) == 0 {
		j.detail = "needs 2 intervals with requests"
		return j
	}
	first := percentile(buckets[0].latencies, 99)
	limit := 2 * first
	// The machine is shared: each interval over the limit says how much of the machine other
	// programs took then, beside the first interval's share.
	others := func(b *bucket) string {
		return meanCell(b.samples, func(s resourceSample) (float64, bool) { return s.others, s.others >= 0 }, share)
	}
	var over []string
	for i, b := range buckets[1:] {
		if len(b.latencies) == 0 {
			continue
		}
		if p := percentile(b.latencies, 99); p > limit {
			over = append(over, fmt.Sprintf("interval %d: %s (others' CPU %s; %s in the first)", i+2, latency(p), others(b), others(buckets[0])))
		}
	}
	j.judged, j.pass = true, len(over) == 0
	j.detail = fmt.Sprintf("first %s, limit %s", latency(first), latency(limit))
	if len(over) > 0 {
		j.detail += "; over: " + strings.Join(over, ", ")
	}
	return j
}

// judgeServerErrors counts the 5xx answers that were not 503 with Retry-After, from every
// client, well-behaved or not.
func judgeServerErrors(buckets []*bucket) judgement {
	n := 0
	for _, b := range buckets {
		n += b.counts[classServerError] + b.slowServerErr
	}
	return judgement{name: "0 server errors", judged: true, pass: n == 0, detail: fmt.Sprintf("%d", n)}
}

// parseGauge finds an unlabelled sample of name in a Prometheus text exposition.
func parseGauge(text, name string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ') {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
			return v, true
		}
	}
	return 0, false
}

// serverErrorsByRoute sums storage_http_requests_total's status_class="5xx" samples by their
// other labels (protocol, operation): the server's own count of the answers it sent with a 5xx
// status line. That includes 503s sent with their own status line (the connection and upload
// caps); the clients' classes tell those apart by Retry-After.
func serverErrorsByRoute(text string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, "storage_http_requests_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		var keep []string
		is5xx := false
		for _, l := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(l, "=")
			v = strings.Trim(v, `"`)
			if k == "status_class" {
				is5xx = v == "5xx"
				continue
			}
			keep = append(keep, k+"="+v)
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if is5xx && err == nil && n > 0 {
			out[strings.Join(keep, " ")] += n
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
