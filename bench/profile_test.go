package main

import (
	"bytes"
	"math"
	"testing"

	"github.com/google/pprof/profile"
)

// These pin the CPU split's /proc parsing and the profile summaries on fixed inputs. Like
// parse_test.go they run no benchmark.

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	// A comm with a space and a parenthesis: fields count from the last ')'. utime 150,
	// stime 30, cutime 1000, cstime 200.
	line := "4242 (postgres: a) b) S 4100 4100 4100 0 -1 4194560 1234 0 0 0 150 30 1000 200 20 0 1 0 5000 200000000 3000 18446744073709551615\n"
	pid, p, ok := parseProcStat(line)
	if !ok || pid != 4242 || p != (procStat{ppid: 4100, self: 180, reaped: 1200}) {
		t.Fatalf("parseProcStat = %d, %+v, %v", pid, p, ok)
	}
	for _, bad := range []string{"", "4242 no parens", "x (comm) S 1 2", "4242 (comm) S 1 2 3"} {
		if _, _, ok := parseProcStat(bad); ok {
			t.Errorf("parseProcStat accepted %q", bad)
		}
	}
}

func TestCPUSplit(t *testing.T) {
	t.Parallel()
	// harness 1 → server 2 → postmaster 3 → backend 4; harness 1 → wrk 5; 9 is not ours.
	tree := procTree{
		1: {ppid: 0, self: 10},
		2: {ppid: 1, self: 100},
		3: {ppid: 2, self: 20, reaped: 5},
		4: {ppid: 3, self: 30},
		5: {ppid: 1, self: 40},
		9: {ppid: 0, self: 1000},
	}
	if got, ok := tree.ticks(2); !ok || got != 155 {
		t.Fatalf("ticks(server) = %v, %v, want 155", got, ok)
	}
	if _, ok := tree.ticks(7); ok {
		t.Fatal("ticks of a missing root succeeded")
	}
	snap := func(t procTree) cpuSnap {
		s := cpuSnap{ok: true, serverOK: true, server: t[2].self}
		s.ours, _ = t.ticks(1)
		s.serverTree, _ = t.ticks(2)
		return s
	}
	a := snap(tree)
	// Then: the server ran 200 more ticks; backend 4 ran 50 more and exited, reaped into the
	// postmaster; wrk ran 100 more and exited, reaped into the harness, which ran 10 more.
	tree[1] = procStat{ppid: 0, self: 20, reaped: 140}
	tree[2] = procStat{ppid: 1, self: 300}
	tree[3] = procStat{ppid: 2, self: 20, reaped: 85}
	delete(tree, 4)
	delete(tree, 5)
	got := cpuSplit(a, snap(tree))
	if want := (cpuUse{server: 2, postgres: 0.5, loadgen: 1.1, ok: true}); !near(got, want) {
		t.Fatalf("cpuSplit = %+v, want %+v", got, want)
	}
	if cpuSplit(cpuSnap{ok: true}, snap(tree)).ok {
		t.Fatal("cpuSplit without the server's times succeeded")
	}
}

func near(a, b cpuUse) bool {
	eq := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	return a.ok == b.ok && eq(a.server, b.server) && eq(a.postgres, b.postgres) && eq(a.loadgen, b.loadgen)
}

func TestSymbolNames(t *testing.T) {
	t.Parallel()
	for fn, want := range map[string][2]string{
		"github.com/jackc/pgx/v5/pgconn.(*PgConn).Exec":      {"github.com/jackc/pgx/v5/pgconn", "pgconn.(*PgConn).Exec"},
		"internal/runtime/syscall.Syscall6":                  {"internal/runtime/syscall", "syscall.Syscall6"},
		"runtime.mallocgc":                                   {"runtime", "runtime.mallocgc"},
		"github.com/a/b.F[go.shape.*github.com/c/d.T].func1": {"github.com/a/b", "b.F[go.shape.*github.com/c/d.T].func1"},
	} {
		if got := packagePath(fn); got != want[0] {
			t.Errorf("packagePath(%q) = %q, want %q", fn, got, want[0])
		}
		if got := shortFunction(fn); got != want[1] {
			t.Errorf("shortFunction(%q) = %q, want %q", fn, got, want[1])
		}
	}
	if got := slug("list v1 (page of 100 from a 2,000-object folder)"); got != "list-v1-page-of-100-from-a-2-000-object-folder" {
		t.Errorf("slug = %q", got)
	}
}

// fakeProfile builds a profile with one sample per stack (leaf first) and its values.
func fakeProfile(types []string, samples map[string][]int64, stacks map[string][]string) *profile.Profile {
	p := &profile.Profile{}
	for _, typ := range types {
		p.SampleType = append(p.SampleType, &profile.ValueType{Type: typ, Unit: "count"})
	}
	funcs := map[string]*profile.Function{}
	for key, values := range samples {
		s := &profile.Sample{Value: values}
		for _, name := range stacks[key] {
			f := funcs[name]
			if f == nil {
				f = &profile.Function{ID: uint64(len(p.Function) + 1), Name: name}
				funcs[name] = f
				p.Function = append(p.Function, f)
			}
			loc := &profile.Location{ID: uint64(len(p.Location) + 1), Line: []profile.Line{{Function: f}}}
			p.Location = append(p.Location, loc)
			s.Location = append(s.Location, loc)
		}
		p.Sample = append(p.Sample, s)
	}
	return p
}

func TestCPUSummary(t *testing.T) {
	t.Parallel()
	stacks := map[string][]string{
		"write":  {"internal/runtime/syscall/linux.Syscall6", "syscall.RawSyscall6", "github.com/valyala/fasthttp.(*Server).serveConn"},
		"alloc":  {"runtime.memclrNoHeapPointers", "runtime.mallocgc", "github.com/jackc/pgx/v5/pgconn.(*PgConn).Exec"},
		"mark":   {"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker"},
		"parse":  {"github.com/valyala/fasthttp.(*RequestHeader).parse", "main.handler"},
		"decode": {"github.com/jackc/pgx/v5/pgproto3.(*Frontend).Receive"},
		"futex":  {"runtime.futex", "runtime.findRunnable"},
		"json":   {"encoding/json.Marshal"},
	}
	p := fakeProfile([]string{"samples", "cpu"}, map[string][]int64{
		"write": {1, 40}, "alloc": {1, 10}, "mark": {1, 10}, "parse": {1, 15}, "decode": {1, 5}, "futex": {1, 12}, "json": {1, 8},
	}, stacks)
	top, buckets, err := cpuSummary(p, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := []flatShare{{"internal/runtime/syscall/linux.Syscall6", 0.40}, {"github.com/valyala/fasthttp.(*RequestHeader).parse", 0.15}, {"runtime.futex", 0.12}}
	if !sharesEqual(top, want) {
		t.Errorf("top = %v, want %v", top, want)
	}
	// GC takes the allocation under pgx (stack rule first); the futex and json are in no bucket.
	wantB := []flatShare{{"GC", 0.20}, {"syscall", 0.40}, {"pgx", 0.05}, {"fasthttp", 0.15}}
	if !sharesEqual(buckets, wantB) {
		t.Errorf("buckets = %v, want %v", buckets, wantB)
	}
	if got := shares(top[:2], true); got != "linux.Syscall6 40%, fasthttp.(*RequestHeader).parse 15%" {
		t.Errorf("shares = %q", got)
	}
	if _, _, err := cpuSummary(fakeProfile([]string{"samples", "cpu"}, nil, nil), 3); err == nil {
		t.Error("cpuSummary accepted an empty profile")
	}
}

func sharesEqual(a, b []flatShare) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].name != b[i].name || math.Abs(a[i].share-b[i].share) > 1e-9 {
			return false
		}
	}
	return true
}

func TestAllocsPerRequest(t *testing.T) {
	t.Parallel()
	types := []string{"alloc_objects", "alloc_space", "inuse_objects", "inuse_space"}
	stacks := map[string][]string{"a": {"main.a"}, "b": {"main.b"}}
	encode := func(p *profile.Profile) []byte {
		var buf bytes.Buffer
		if err := p.Write(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	before := encode(fakeProfile(types, map[string][]int64{"a": {100, 10000, 1, 1}, "b": {50, 5000, 1, 1}}, stacks))
	after := encode(fakeProfile(types, map[string][]int64{"a": {1100, 110000, 1, 1}, "b": {1050, 205000, 1, 1}}, stacks))
	allocs, bytes, err := allocsPerRequest(before, after, 100)
	if err != nil || allocs != 20 || bytes != 3000 {
		t.Fatalf("allocsPerRequest = %v, %v, %v; want 20, 3000", allocs, bytes, err)
	}
	if _, _, err := allocsPerRequest(before, after, 0); err == nil {
		t.Error("allocsPerRequest accepted zero requests")
	}
}
