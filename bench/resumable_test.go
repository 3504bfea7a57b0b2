package main

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// These pin the resumable upload's request shapes, its row of the transfer table and which
// transfers BENCH_ONLY picks. Like parse_test.go they run no benchmark.

func TestResumableRequests(t *testing.T) {
	t.Parallel()
	require.Equal(t, "resumable upload 1 GiB, 6 MiB chunks", resumableName(1<<30))
	// 170 full chunks of 6 MiB and a last one of 4 MiB.
	require.Equal(t, 171, resumablePatches(1<<30, resumableChunk))
	require.Equal(t, 1, resumablePatches(resumableChunk, resumableChunk))
	require.Equal(t, 0, resumablePatches(0, resumableChunk))
	require.Equal(t, "bucketName Yg==,objectName YmlnLzFnLXJlc3VtYWJsZQ==",
		uploadMetadata("bucketName", "b", "objectName", "big/1g-resumable"))
}

func TestTransfersPicked(t *testing.T) {
	t.Parallel()
	cases := []struct {
		only                        string
		upload, resumable, download bool
	}{
		{"", true, true, true},
		{"1 GiB", true, true, true},
		// The REST upload comes with the transfers that need it.
		{"resumable", true, true, false},
		{"download", true, false, true},
		{"upload", true, true, false},
		{"^upload 1 GiB$", true, false, false},
		{"listing", false, false, false},
	}
	for _, c := range cases {
		o := options{bigSize: 1 << 30}
		if c.only != "" {
			o.only = regexp.MustCompile(c.only)
		}
		up, res, down := o.transfers()
		require.Equal(t, [3]bool{c.upload, c.resumable, c.download}, [3]bool{up, res, down}, "BENCH_ONLY=%q", c.only)
	}
}

func TestResumableTarget(t *testing.T) {
	t.Parallel()
	rss := func(mib int64) rssPeak { return rssPeak{bytes: mib << 20, exact: true} }
	rest := &transferResult{bytes: 1 << 30, elapsed: time.Second, rss: rss(20)}
	cases := []struct {
		name string
		t    transferResult
		rest *transferResult
		want string
	}{
		{"met", transferResult{bytes: 1 << 30, elapsed: 1100 * time.Millisecond, rss: rss(30)}, rest,
			"≥ 90% of the REST upload (≥ 966 of 1,074 MB/s), ≤ 64 MiB: met: 91% of REST, RSS 30.0 MiB"},
		{"slow", transferResult{bytes: 1 << 30, elapsed: 1250 * time.Millisecond, rss: rss(30)}, rest,
			"≥ 90% of the REST upload (≥ 966 of 1,074 MB/s), ≤ 64 MiB: missed: 80% of REST < 90%, RSS 30.0 MiB"},
		{"large", transferResult{bytes: 1 << 30, elapsed: time.Second, rss: rss(70)}, rest,
			"≥ 90% of the REST upload (≥ 966 of 1,074 MB/s), ≤ 64 MiB: missed: 100% of REST, RSS 70.0 MiB > 64 MiB"},
		{"no REST", transferResult{bytes: 1 << 30, elapsed: time.Second, rss: rss(30)}, nil,
			"≥ 90% of the REST upload, ≤ 64 MiB: rate not judged: REST upload not run, RSS 30.0 MiB"},
		{"REST failed, large", transferResult{bytes: 1 << 30, elapsed: time.Second, rss: rss(70)}, &transferResult{err: errors.New("reset")},
			"≥ 90% of the REST upload, ≤ 64 MiB: missed: REST upload failed, RSS 70.0 MiB > 64 MiB"},
	}
	for _, c := range cases {
		require.Equal(t, c.want, resumableTarget(&c.t, c.rest), c.name)
	}
}

func TestTransferTable(t *testing.T) {
	t.Parallel()
	peak := rssPeak{bytes: 20 << 20, start: 10 << 20, exact: true}
	cpu := cpuUse{server: 1.5, postgres: 0.25, loadgen: 0.5, ok: true}
	r := &report{
		bigSize:   1 << 30,
		disk:      2000,
		upload:    &transferResult{bytes: 1 << 30, elapsed: time.Second, rss: peak, cpu: cpu, others: 0.03},
		resumable: &transferResult{bytes: 1 << 30, elapsed: 1250 * time.Millisecond, rss: peak, cpu: cpu, others: 0.03, requests: 171, conns: 1},
		s3Upload:  &transferResult{bytes: 1 << 30, elapsed: 2 * time.Second, rss: peak, cpu: cpu, others: 0.03},
	}
	var b strings.Builder
	r.transferTable(&b)
	require.Equal(t, []string{
		"",
		"## 1 GiB transfer",
		"",
		"| transfer | MB/s | time | server peak RSS | × reference (ref MB/s) | of disk write | target | others' CPU | CPU s: server / PostgreSQL / client |",
		"|---|---:|---:|---:|---:|---:|---|---:|---:|",
		"| upload 1 GiB | 1,074 | 1.00 s | 20.0 MiB (10.0 MiB at start); ref 599 MB | 8.5× (126) | 54% | ≥ 400 MB/s, ≤ 64 MiB: met | 3% | 1.50 / 0.25 / 0.50 |",
		"| resumable upload 1 GiB, 6 MiB chunks | 859 | 1.25 s | 20.0 MiB (10.0 MiB at start) | –¹ | 43% | " +
			"≥ 90% of the REST upload (≥ 966 of 1,074 MB/s), ≤ 64 MiB: missed: 80% of REST < 90%, RSS 20.0 MiB | 3% | 1.50 / 0.25 / 0.50 |",
		"| download 1 GiB | not run | | | (183) | | | | |",
		"| S3 upload 1 GiB (upload manager, 8 × 16 MiB parts) | 537 | 2.00 s | 20.0 MiB (10.0 MiB at start) | –¹ | 27% | ≥ 400 MB/s, ≤ 64 MiB: met | 3% | 1.50 / 0.25 / 0.50 |",
		"| S3 download 1 GiB (GetObject) | not run | | | –¹ | | | | |",
		"",
	}, strings.Split(b.String(), "\n"))
	require.Equal(t, " This run: 171 PATCHes over one connection.", r.resumable.requestsNote())

	// Not run, and failed: the × reference cell still says the reference is not known.
	r.resumable = nil
	b.Reset()
	r.transferTable(&b)
	require.Contains(t, b.String(), "\n| resumable upload 1 GiB, 6 MiB chunks | not run | | | –¹ | | | | |\n")
	r.resumable = &transferResult{err: errors.New("PATCH at offset 0: connection reset"), rss: peak}
	b.Reset()
	r.transferTable(&b)
	require.Contains(t, b.String(), "\n| resumable upload 1 GiB, 6 MiB chunks | failed: PATCH at offset 0: connection reset | | 20.0 MiB (10.0 MiB at start) | –¹ | | | | |\n")
	require.Empty(t, r.resumable.requestsNote())
}
