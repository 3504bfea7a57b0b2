package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// Profiles say why a workload costs what it costs. The server serves Go's pprof endpoints on a
// separate loopback listener (STORAGE_PPROF_ADDR); during each small-request workload's
// measured run the harness records a CPU profile of the server covering the run, and
// snapshots its cumulative allocation counts just before and just after it. The files are
// saved for `go tool pprof`, and summarised in the report: allocations per request, the
// functions that use the most CPU, and the CPU share of a few named buckets.

// profiler fetches the server's profiles and saves them in dir.
type profiler struct {
	base   string // http://127.0.0.1:<port>/debug/pprof/
	dir    string
	err    error // non-nil: no profile can be taken this run, and why (every row says it)
	client *http.Client
}

// errProfilingOff fills the profile cells of a run with BENCH_PROFILE=0.
var errProfilingOff = errors.New("off (BENCH_PROFILE=0)")

// newProfiler picks the port for the server's pprof listener and returns the address to give
// it as STORAGE_PPROF_ADDR ("" when profiling is not possible). The port is found free and
// released before the server binds it; another program taking it in between would fail the
// server's start, a race unlikely enough that a rerun is the answer.
func newProfiler(dir string) (*profiler, string) {
	p := &profiler{dir: dir, client: &http.Client{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.err = fmt.Errorf("no free port for the server's pprof listener: %w", err)
		return p, ""
	}
	addr := ln.Addr().String()
	ln.Close()
	p.base = "http://" + addr + "/debug/pprof/"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.err = err
		return p, ""
	}
	// An earlier run's files must not pass for this run's when a workload's profile fails.
	old, _ := filepath.Glob(filepath.Join(dir, "*.pprof"))
	for _, f := range old {
		os.Remove(f)
	}
	return p, addr
}

// another is a profiler for a second server, saving into the same directory (whose earlier
// files newProfiler already removed), and the address to give that server.
func (p *profiler) another() (*profiler, string) {
	q := &profiler{dir: p.dir, client: &http.Client{}, err: p.err}
	if q.err != nil {
		return q, ""
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		q.err = fmt.Errorf("no free port for the server's pprof listener: %w", err)
		return q, ""
	}
	addr := ln.Addr().String()
	ln.Close()
	q.base = "http://" + addr + "/debug/pprof/"
	return q, addr
}

// check confirms the server answers on its pprof listener, so that a binary built without
// STORAGE_PPROF_ADDR support says so once instead of as a timeout per workload.
func (p *profiler) check(ctx context.Context) {
	if p.err != nil {
		return
	}
	if _, err := p.get(ctx, "", 10*time.Second); err != nil {
		p.err = fmt.Errorf("the server does not serve pprof (built before STORAGE_PPROF_ADDR?): %w", err)
	}
}

// get fetches one pprof endpoint.
func (p *profiler) get(ctx context.Context, path string, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", p.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s answered %d: %s", path, resp.StatusCode, short(b))
	}
	return b, err
}

// profRun is the profiling of one measured run, between begin and end.
type profRun struct {
	p          *profiler
	slug       string
	allocsBase []byte
	allocErr   error
	cpu        chan fetched // the CPU profile, fetched concurrently with the run
}

type fetched struct {
	b   []byte
	err error
}

// begin snapshots the allocation counts and starts a CPU profile of whole seconds that fits
// in a run of d (wrk rounds its duration up, so the profile never outlasts the load).
func (p *profiler) begin(ctx context.Context, slug string, d time.Duration) *profRun {
	r := &profRun{p: p, slug: slug, cpu: make(chan fetched, 1)}
	if p.err != nil {
		r.allocErr = p.err
		r.cpu <- fetched{err: p.err}
		return r
	}
	r.allocsBase, r.allocErr = p.get(ctx, "allocs", 30*time.Second)
	secs := max(int(d/time.Second), 1)
	go func() {
		b, err := p.get(ctx, fmt.Sprintf("profile?seconds=%d", secs), time.Duration(secs)*time.Second+30*time.Second)
		r.cpu <- fetched{b, err}
	}()
	return r
}

// profResult is one run's profiles, summarised per request.
type profResult struct {
	allocs, bytes float64 // heap allocations and bytes allocated per request
	allocErr      error
	top           []flatShare // the functions with the most flat CPU, most first
	buckets       []flatShare // cpuBuckets' shares, in their order
	cpuErr        error
}

// end snapshots the allocation counts again, waits for the CPU profile, saves the three files
// and summarises them over the run's completed requests.
func (r *profRun) end(ctx context.Context, requests int64) profResult {
	var res profResult
	res.allocErr = r.allocErr
	if res.allocErr == nil {
		var after []byte
		after, res.allocErr = r.p.get(ctx, "allocs", 30*time.Second)
		if res.allocErr == nil {
			res.allocErr = r.save("allocs-base", r.allocsBase)
		}
		if res.allocErr == nil {
			res.allocErr = r.save("allocs", after)
		}
		if res.allocErr == nil {
			res.allocs, res.bytes, res.allocErr = allocsPerRequest(r.allocsBase, after, requests)
		}
	}
	cpu := <-r.cpu
	res.cpuErr = cpu.err
	if res.cpuErr == nil {
		res.cpuErr = r.save("cpu", cpu.b)
	}
	if res.cpuErr == nil {
		var p *profile.Profile
		if p, res.cpuErr = profile.ParseData(cpu.b); res.cpuErr == nil {
			res.top, res.buckets, res.cpuErr = cpuSummary(p, 6)
		}
	}
	return res
}

// save writes a profile as <slug>.<kind>.pprof, as the server sent it (gzipped protobuf).
func (r *profRun) save(kind string, b []byte) error {
	return os.WriteFile(filepath.Join(r.p.dir, r.slug+"."+kind+".pprof"), b, 0o644)
}

// allocsPerRequest divides the growth of the heap profile's cumulative alloc_objects and
// alloc_space between two snapshots by the requests served in between. The runtime updates
// these counts at each GC, which under load runs every few milliseconds: a lag that is noise
// next to a run of seconds. The counts are sampled (one per 512 KiB by default) and scaled by
// the runtime, so they are estimates, good to a few percent over a run.
func allocsPerRequest(before, after []byte, requests int64) (allocs, bytes float64, err error) {
	if requests <= 0 {
		return 0, 0, errors.New("no requests completed")
	}
	var sum [2][2]int64 // [before, after][objects, space]
	for i, b := range [][]byte{before, after} {
		p, err := profile.ParseData(b)
		if err != nil {
			return 0, 0, err
		}
		for j, typ := range []string{"alloc_objects", "alloc_space"} {
			k := sampleIndex(p, typ)
			if k < 0 {
				return 0, 0, fmt.Errorf("allocs profile without %s", typ)
			}
			for _, s := range p.Sample {
				sum[i][j] += s.Value[k]
			}
		}
	}
	n := float64(requests)
	return float64(sum[1][0]-sum[0][0]) / n, float64(sum[1][1]-sum[0][1]) / n, nil
}

// sampleIndex is the index of a sample type in p's values, -1 when p has none of that type.
func sampleIndex(p *profile.Profile, typ string) int {
	return slices.IndexFunc(p.SampleType, func(v *profile.ValueType) bool { return v.Type == typ })
}

// flatShare is a function's or a bucket's share of a CPU profile's samples.
type flatShare struct {
	name  string
	share float64 // 0..1
}

// cpuBuckets names the kinds of CPU time worth telling apart in this server. A sample goes to
// the first bucket that claims it, and to none when none does:
//
//   - GC: the garbage collector and the allocator it paces: any frame of the stack is a mark
//     worker (runtime.gcBgMarkWorker), a mark assist (runtime.gcAssistAlloc), the background
//     sweeper or scavenger, or the allocator (runtime.mallocgc, which also sweeps and assists).
//     Only this bucket looks beyond the leaf: GC work has no package of its own.
//   - syscall: the leaf is a system call wrapper: package syscall, golang.org/x/sys/unix, or
//     the runtime's internal/runtime/syscall (…/linux since Go 1.26; runtime/internal/syscall
//     before Go 1.23), which the syscall package and the netpoller's epoll_wait both go through.
//     That is the time in the kernel of the server's reads, writes, opens and fsyncs, which the
//     profiler charges to the wrapper. The scheduler's futex calls (runtime.futex) are not in it.
//   - pgx: the leaf's package is under github.com/jackc/pgx (the PostgreSQL driver).
//   - fasthttp: the leaf's package is under github.com/valyala/fasthttp (the HTTP server).
var cpuBuckets = []struct {
	name  string
	claim func(s *profile.Sample, leafPkg string) bool
}{
	{"GC", func(s *profile.Sample, _ string) bool { return onStack(s, gcFrames) }},
	{"syscall", func(_ *profile.Sample, pkg string) bool {
		return pkg == "syscall" || pkg == "golang.org/x/sys/unix" ||
			strings.HasPrefix(pkg, "internal/runtime/syscall") || pkg == "runtime/internal/syscall"
	}},
	{"pgx", func(_ *profile.Sample, pkg string) bool { return strings.HasPrefix(pkg, "github.com/jackc/pgx") }},
	{"fasthttp", func(_ *profile.Sample, pkg string) bool { return strings.HasPrefix(pkg, "github.com/valyala/fasthttp") }},
}

var gcFrames = map[string]bool{
	"runtime.gcBgMarkWorker": true, "runtime.gcAssistAlloc": true, "runtime.bgsweep": true,
	"runtime.bgscavenge": true, "runtime.mallocgc": true,
}

// onStack reports whether any frame of s, inlined ones included, is one of names.
func onStack(s *profile.Sample, names map[string]bool) bool {
	for _, loc := range s.Location {
		for _, l := range loc.Line {
			if l.Function != nil && names[l.Function.Name] {
				return true
			}
		}
	}
	return false
}

// leafFunction is the function a sample's flat time belongs to: the innermost frame, which is
// the first line of the first location (an inlined callee comes before its caller).
func leafFunction(s *profile.Sample) string {
	if len(s.Location) == 0 || len(s.Location[0].Line) == 0 || s.Location[0].Line[0].Function == nil {
		return "?"
	}
	return s.Location[0].Line[0].Function.Name
}

// cpuSummary returns the n functions with the most flat CPU time and every bucket's share.
func cpuSummary(p *profile.Profile, n int) (top, buckets []flatShare, err error) {
	k := sampleIndex(p, "cpu")
	if k < 0 {
		return nil, nil, errors.New("CPU profile without cpu samples")
	}
	var total float64
	flat := map[string]float64{}
	inBucket := make([]float64, len(cpuBuckets))
	for _, s := range p.Sample {
		v := float64(s.Value[k])
		total += v
		fn := leafFunction(s)
		flat[fn] += v
		pkg := packagePath(fn)
		for i, b := range cpuBuckets {
			if b.claim(s, pkg) {
				inBucket[i] += v
				break
			}
		}
	}
	if total == 0 {
		return nil, nil, errors.New("CPU profile without samples (the server was idle?)")
	}
	for fn, v := range flat {
		top = append(top, flatShare{fn, v / total})
	}
	slices.SortFunc(top, func(a, b flatShare) int {
		if a.share != b.share {
			if a.share > b.share {
				return -1
			}
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	top = top[:min(n, len(top))]
	for i, b := range cpuBuckets {
		buckets = append(buckets, flatShare{b.name, inBucket[i] / total})
	}
	return top, buckets, nil
}

// packagePath returns the import path of a Go symbol's package: "github.com/jackc/pgx/v5/
// pgconn.(*PgConn).Exec" → "github.com/jackc/pgx/v5/pgconn". The path ends at the first dot
// after its last slash; type arguments ("F[…]") may hold slashes of their own and are cut first.
func packagePath(fn string) string {
	base, _, _ := strings.Cut(fn, "[")
	slash := strings.LastIndexByte(base, '/') + 1
	if dot := strings.IndexByte(base[slash:], '.'); dot >= 0 {
		return base[:slash+dot]
	}
	return base
}

// shortFunction drops the import path's directories from a symbol, for a compact report:
// "github.com/jackc/pgx/v5/pgconn.(*PgConn).Exec" → "pgconn.(*PgConn).Exec".
func shortFunction(fn string) string {
	base, _, _ := strings.Cut(fn, "[")
	return fn[strings.LastIndexByte(base, '/')+1:]
}

// slug makes a workload name a file name: "list v1 (page of 100…)" → "list-v1-page-of-100…".
func slug(name string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(name) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(c)
			dash = false
		} else {
			dash = true
		}
	}
	return b.String()
}
