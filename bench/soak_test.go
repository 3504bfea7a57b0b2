package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The soak's arithmetic and judgements: what decides its exit code.

func TestSoakClassify(t *testing.T) {
	t.Parallel()
	body := func(code string) []byte { return []byte(`{"statusCode":"` + code + `","error":"x","message":"m"}`) }
	for _, c := range []struct {
		name       string
		status     int
		retryAfter bool
		body       []byte
		expect     []int
		want       class
		logical    int
	}{
		{"200", 200, false, nil, nil, classOK, 200},
		{"206", 206, false, nil, nil, classOK, 206},
		{"404 in a 400, expected", 400, false, body("404"), []int{404}, classExpected4xx, 404},
		{"404 in a 400, not expected", 400, false, body("404"), nil, classWrong, 404},
		{"409 expected among others", 400, false, body("409"), []int{404, 409}, classExpected4xx, 409},
		{"400 without a storage body", 400, false, []byte("bad"), nil, classWrong, 400},
		{"400 with a non-numeric statusCode", 400, false, body("x"), []int{400}, classExpected4xx, 400},
		{"503 in a 400 with Retry-After", 400, true, body("503"), nil, classBusy, 503},
		{"503 in a 400 without Retry-After", 400, false, body("503"), nil, classServerError, 503},
		{"503 status line with Retry-After", 503, true, nil, nil, classBusy, 503},
		{"500", 500, false, body("500"), nil, classServerError, 500},
		{"544 statement timeout", 544, false, body("544"), nil, classServerError, 544},
		{"500 in a 400", 400, false, body("500"), nil, classServerError, 500},
		{"416 explicit", 416, false, body("416"), nil, classWrong, 416},
		{"408", 400, false, body("408"), []int{408}, classExpected4xx, 408},
	} {
		got, logical := classify(c.status, c.retryAfter, c.body, c.expect...)
		require.Equal(t, c.want, got, c.name)
		require.Equal(t, c.logical, logical, c.name)
	}
}

func TestSoakPercentile(t *testing.T) {
	t.Parallel()
	ms := func(v ...int) []time.Duration {
		d := make([]time.Duration, len(v))
		for i, x := range v {
			d[i] = time.Duration(x) * time.Millisecond
		}
		return d
	}
	require.Equal(t, time.Duration(0), percentile(nil, 99))
	require.Equal(t, 7*time.Millisecond, percentile(ms(7), 50))
	require.Equal(t, 7*time.Millisecond, percentile(ms(7), 99))
	// Nearest rank: p50 of 1..10 is the 5th, p99 the 10th, p90 the 9th.
	ten := ms(10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
	require.Equal(t, 5*time.Millisecond, percentile(ten, 50))
	require.Equal(t, 10*time.Millisecond, percentile(ten, 99))
	require.Equal(t, 9*time.Millisecond, percentile(ten, 90))
	require.Equal(t, 1*time.Millisecond, percentile(ten, 1))
	// p99 of 1..200 is the 198th.
	var many []time.Duration
	for i := 200; i >= 1; i-- {
		many = append(many, time.Duration(i)*time.Millisecond)
	}
	require.Equal(t, 198*time.Millisecond, percentile(many, 99))
}

func TestSoakIntervals(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, 10, intervals(10*time.Minute, time.Minute))
	require.Equal(t, 2, intervals(90*time.Second, time.Minute))
	require.Equal(t, 0, bucketIndex(start, time.Minute, 10, start.Add(-time.Second)))
	require.Equal(t, 0, bucketIndex(start, time.Minute, 10, start.Add(59*time.Second)))
	require.Equal(t, 1, bucketIndex(start, time.Minute, 10, start.Add(time.Minute)))
	require.Equal(t, 9, bucketIndex(start, time.Minute, 10, start.Add(9*time.Minute+59*time.Second)))
	// After the end (an operation's second request): the last interval.
	require.Equal(t, 9, bucketIndex(start, time.Minute, 10, start.Add(12*time.Minute)))

	r := newRecorder(start, time.Minute, 3*time.Minute)
	r.request("get", start.Add(10*time.Second), 5*time.Millisecond, classOK, "")
	r.request("get", start.Add(70*time.Second), 9*time.Millisecond, classServerError, "GET → 500")
	r.request("get", start.Add(75*time.Second), time.Second, classClientError, "reset")
	r.episode("cut", start.Add(130*time.Second), true, false, "nothing stored")
	r.episode("cut", start.Add(131*time.Second), false, false, "stored")
	require.Len(t, r.buckets, 3)
	require.Equal(t, 1, r.buckets[0].counts[classOK])
	require.Equal(t, 1, r.buckets[1].counts[classServerError])
	require.Equal(t, 1, r.buckets[1].counts[classClientError])
	// A request without an answer has no latency.
	require.Equal(t, []time.Duration{9 * time.Millisecond}, r.buckets[1].latencies)
	require.Equal(t, 1, r.buckets[2].slowOK)
	require.Equal(t, 1, r.buckets[2].slowWrong)
	require.Equal(t, map[string]int{"nothing stored": 1}, r.slowHow["cut"])
	require.Equal(t, 1, r.nfind[classNames[classServerError]+"\x00get"])
	require.Equal(t, 1, r.nfind[classNames[classClientError]+"\x00get"])
}

// flatBuckets makes one interval per value, each with two samples around it.
func flatBuckets(rss ...int64) []*bucket {
	var bs []*bucket
	for _, v := range rss {
		bs = append(bs, &bucket{samples: []resourceSample{{rss: v - 1<<20, fds: 100}, {rss: v + 1<<20, fds: 100}}})
	}
	return bs
}

func TestSoakJudgeFlat(t *testing.T) {
	t.Parallel()
	const mb = 1 << 20
	unit := func(v float64) string { return mib(int64(v)) }
	// Too short: not judged, which is not a failure.
	j := judgeFlat("rss", flatBuckets(100*mb, 100*mb), rssOf, rssFlat, unit)
	require.False(t, j.judged)
	require.Equal(t, "not judged", j.verdict())

	// The warm-up interval does not count: a jump from minute 1 to 2 is fine.
	j = judgeFlat("rss", flatBuckets(50*mb, 200*mb, 205*mb, 210*mb), rssOf, rssFlat, unit)
	require.True(t, j.judged)
	require.True(t, j.pass, j.detail)

	// 10 % of 200 MiB is 20 MiB: 220 passes, 221 fails.
	j = judgeFlat("rss", flatBuckets(50*mb, 200*mb, 300*mb, 220*mb), rssOf, rssFlat, unit)
	require.True(t, j.pass, j.detail)
	j = judgeFlat("rss", flatBuckets(50*mb, 200*mb, 210*mb, 221*mb), rssOf, rssFlat, unit)
	require.False(t, j.pass, j.detail)
	require.Equal(t, "FAIL", j.verdict())
	require.Contains(t, j.detail, "interval 2 mean 200.0 MiB, last (4) mean 221.0 MiB, limit 220.0 MiB")

	// Small values: the absolute margin (16 MiB) is larger than 10 %.
	j = judgeFlat("rss", flatBuckets(10*mb, 60*mb, 60*mb, 76*mb), rssOf, rssFlat, unit)
	require.True(t, j.pass, j.detail)
	j = judgeFlat("rss", flatBuckets(10*mb, 60*mb, 60*mb, 77*mb), rssOf, rssFlat, unit)
	require.False(t, j.pass, j.detail)

	// A fall is flat.
	j = judgeFlat("rss", flatBuckets(10*mb, 300*mb, 100*mb), rssOf, rssFlat, unit)
	require.True(t, j.pass, j.detail)

	// fds: 10 % of 300 is 30, above the absolute 16.
	fd := func(v ...int) []*bucket {
		var bs []*bucket
		for _, n := range v {
			bs = append(bs, &bucket{samples: []resourceSample{{fds: n}}})
		}
		return bs
	}
	count := func(v float64) string { return "n" }
	require.True(t, judgeFlat("fds", fd(10, 300, 330), fdsOf, fdsFlat, count).pass)
	require.False(t, judgeFlat("fds", fd(10, 300, 331), fdsOf, fdsFlat, count).pass)
	require.True(t, judgeFlat("fds", fd(10, 100, 116), fdsOf, fdsFlat, count).pass)
	require.False(t, judgeFlat("fds", fd(10, 100, 117), fdsOf, fdsFlat, count).pass)

	// Unreadable samples (0) are left out of the mean; none at all: not judged.
	require.False(t, judgeFlat("fds", fd(10, 0, 100), fdsOf, fdsFlat, count).judged)
	mixed := fd(10, 100, 100)
	mixed[2].samples = append(mixed[2].samples, resourceSample{fds: 0})
	require.True(t, judgeFlat("fds", mixed, fdsOf, fdsFlat, count).pass)
}

func TestSoakJudgeP99(t *testing.T) {
	t.Parallel()
	lat := func(p99 time.Duration) *bucket {
		// Nearest rank over 100: the 99th value is p99, the 100th above it.
		b := &bucket{}
		for range 98 {
			b.latencies = append(b.latencies, time.Millisecond)
		}
		b.latencies = append(b.latencies, p99, p99+time.Hour)
		return b
	}
	require.False(t, judgeP99([]*bucket{lat(time.Second)}).judged)
	require.False(t, judgeP99([]*bucket{{}, lat(time.Second)}).judged)

	j := judgeP99([]*bucket{lat(100 * time.Millisecond), lat(200 * time.Millisecond), {}, lat(150 * time.Millisecond)})
	require.True(t, j.judged)
	require.True(t, j.pass, j.detail)

	j = judgeP99([]*bucket{lat(100 * time.Millisecond), lat(50 * time.Millisecond), lat(201 * time.Millisecond)})
	require.False(t, j.pass)
	require.Contains(t, j.detail, "first 100 ms, limit 200 ms; over: interval 3: 201 ms")
}

func TestSoakJudgeServerErrors(t *testing.T) {
	t.Parallel()
	b := []*bucket{{}, {}}
	j := judgeServerErrors(b)
	require.True(t, j.pass)
	b[1].counts[classBusy] = 5 // shedding load is not a server error
	b[1].counts[classClientError] = 3
	require.True(t, judgeServerErrors(b).pass)
	b[1].slowServerErr = 1
	j = judgeServerErrors(b)
	require.False(t, j.pass)
	require.Equal(t, "1", j.detail)
	b[0].counts[classServerError] = 2
	require.Equal(t, "3", judgeServerErrors(b).detail)
}

func TestSoakResultPass(t *testing.T) {
	t.Parallel()
	start := time.Now()
	r := &soakResult{rec: newRecorder(start, time.Minute, time.Minute)}
	r.rec.request("get", start, time.Millisecond, classOK, "")
	require.True(t, r.pass())
	r.reconcile.Orphans = 1
	r.reconErr = errContext("orphans")
	require.False(t, r.pass())
	r.reconErr = nil
	r.rec.episode("stall", start, false, true, "500")
	require.False(t, r.pass())
}

type errContext string

func (e errContext) Error() string { return string(e) }

func TestSoakMetricsParsing(t *testing.T) {
	t.Parallel()
	text := strings.Join([]string{
		"# HELP go_goroutines Number of goroutines that currently exist.",
		"# TYPE go_goroutines gauge",
		"go_goroutines 123",
		"go_goroutines_other 7",
		`storage_collector_runs_total{result="led"} 4`,
		`storage_http_requests_total{operation="storage.object.upload",protocol="rest",status_class="2xx"} 100`,
		`storage_http_requests_total{operation="storage.object.upload",protocol="rest",status_class="5xx"} 2`,
		`storage_http_requests_total{operation="storage.object.get",protocol="rest",status_class="5xx"} 0`,
		`storage_http_requests_total{operation="storage.s3.upload",protocol="s3",status_class="5xx"} 1`,
	}, "\n")
	v, ok := parseGauge(text, "go_goroutines")
	require.True(t, ok)
	require.Equal(t, 123.0, v)
	v, ok = parseGauge(text, `storage_collector_runs_total{result="led"}`)
	require.True(t, ok)
	require.Equal(t, 4.0, v)
	_, ok = parseGauge(text, "go_threads")
	require.False(t, ok)
	require.Equal(t, map[string]float64{
		"operation=storage.object.upload protocol=rest": 2,
		"operation=storage.s3.upload protocol=s3":       1,
	}, serverErrorsByRoute(text))
}

func TestSoakMisbehavingCount(t *testing.T) {
	t.Parallel()
	require.Equal(t, 16, misbehavingCount(256))
	require.Equal(t, len(misbehavingKinds), misbehavingCount(20))
}

func TestSoakServerErrorLines(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/server.log"
	log := strings.Join([]string{
		`{"level":"ERROR","msg":"request","status":500,"error":"a"}`,
		`{"level":"ERROR","msg":"request","status":503,"error":"busy"}`,
		`{"level":"WARN","msg":"request","status":404}`,
		`{"level":"ERROR","msg":"request","status":544,"error":"b"}`,
		`{"level":"ERROR","msg":"request","status":500,"error":"c"}`,
	}, "\n")
	require.NoError(t, os.WriteFile(path, []byte(log), 0o644))
	lines, n := serverErrorLines(path, 2)
	require.Equal(t, 3, n)
	require.Equal(t, []string{
		`{"level":"ERROR","msg":"request","status":500,"error":"a"}`,
		`{"level":"ERROR","msg":"request","status":544,"error":"b"}`,
	}, lines)
	lines, n = serverErrorLines(path+".missing", 2)
	require.Empty(t, lines)
	require.Zero(t, n)
}
