package main

import (
	"strings"
	"testing"
)

// Two reports as markdown() renders them, cut to the tables a comparison reads.
const (
	baselineBefore = `# storage benchmarks

- date: 2026-12-03 09:09 UTC (run took 6m48s)
- software: storage commit 5309d25, go1.26.8

## Ceilings (same machine, same run)

| ceiling | rate | p50 | p99 | errors | others' CPU |
|---|---:|---:|---:|---:|---:|
| fasthttp hello-world, wrk with the same settings | 69,130 req/s | 0.23 ms | 6.63 ms | 0 | 2% |
| disk: write 1 GiB in 256 KiB writes + fsync, in the data dir | 1,199 MB/s | | | | |

## Where the time goes

| workload | req/s | server µs/req | PostgreSQL µs/req | load generator µs/req | CPU ceiling (req/s) | allocs/req | KiB/req | CPU by bucket | top functions (flat CPU) |
|---|---:|---:|---:|---:|---:|---:|---:|---|---|
| object info | 6,746 | 103 | 135 | 38.8 | 7,233 | 107 | 5.7 | GC 12% | x 1% |
| sign URL | 4,861 | 107 | 245 | 40.8 | 5,090 | 84 | 6.5 | GC 14% | x 1% |
`
	baselineAfter = `# storage benchmarks

- date: 2026-12-03 10:44 UTC (run took 6m44s)
- software: storage commit 9062aed, go1.26.8

## Ceilings (same machine, same run)

| ceiling | rate | p50 | p99 | errors | others' CPU |
|---|---:|---:|---:|---:|---:|
| fasthttp hello-world, wrk with the same settings | 71,282 req/s | 0.21 ms | 7.14 ms | 0 | 2% |
| disk: write 1 GiB in 256 KiB writes + fsync, in the data dir | 1,088 MB/s | | | | |

## Where the time goes

| workload | req/s | server µs/req | PostgreSQL µs/req | load generator µs/req | CPU ceiling (req/s) | allocs/req | KiB/req | CPU by bucket | top functions (flat CPU) |
|---|---:|---:|---:|---:|---:|---:|---:|---|---|
| object info | 8,149 | 101 | 101 | 30.4 | 8,604 | 105 | 5.8 | GC 11% | x 1% |
| sign URL | 7,178 | 98.8 | 138 | 31.2 | 7,469 | 91 | 6.2 | GC 11% | x 1% |
| list v1 | 1,935 | 259 | 660 | 94.2 | 1,974 | 104 | 8.2 | GC 7.0% | x 1% |
`
)

func TestCompareSection(t *testing.T) {
	t.Parallel()
	got := compareSection("before.md", baselineBefore, baselineAfter)
	want := `
## Against the baseline

Baseline: before.md (2026-12-03 09:09 UTC (run took 6m48s); storage commit 5309d25, go1.26.8). Each run is compared with its own ceilings below: on a shared machine only ratios within one run are comparable.

| workload | req/s before → after | server µs/req before → after | PostgreSQL µs/req before → after | load generator µs/req before → after | all CPU µs/req before → after |
|---|---:|---:|---:|---:|---:|
| object info | 6,746 → 8,149 | 103 → 101 | 135 → 101 | 38.8 → 30.4 | 277 → 232 |
| sign URL | 4,861 → 7,178 | 107 → 98.8 | 245 → 138 | 40.8 → 31.2 | 393 → 268 |
| list v1 | not in the baseline | | | | |

| ceiling | before | after |
|---|---:|---:|
| fasthttp hello-world, wrk with the same settings | 69,130 req/s | 71,282 req/s |
| disk: write 1 GiB in 256 KiB writes + fsync, in the data dir | 1,199 MB/s | 1,088 MB/s |
`
	if got != want {
		t.Fatalf("compareSection:\n%s\nwant:\n%s", got, want)
	}
	if _, err := readBaseline("doc.go"); err == nil || !strings.Contains(err.Error(), "not a report of this benchmark") {
		t.Fatalf("readBaseline of a file that is no report: %v", err)
	}
}
