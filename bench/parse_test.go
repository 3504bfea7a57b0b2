package main

import (
	"testing"
	"time"
)

// The parsers read other programs' text; these pin the formats they were written against
// (wrk 4.1.0, pgbench 15). They check parsing only: no benchmark runs under go test.

const wrkOutput = `Running 5s test @ http://127.0.0.1:41234/object/authenticated/b/k
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    1.20ms  40.00ms   90.00%
    Req/Sec     7.50k   500.00    8.10k    70.00%
  Latency Distribution
     50%  421.00us
     75%    1.00ms
     90%    3.00ms
     99%    1.50s
  74812 requests in 5.00s, 90.00MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 12
Requests/sec:  14962.40
Transfer/sec:     18.00MB
`

func TestParseWrk(t *testing.T) {
	t.Parallel()
	r, err := parseWrk(wrkOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{requests: 74812, rps: 14962.40, p50: 421 * time.Microsecond, p99: 1500 * time.Millisecond,
		non2xx: 12, sockErrs: 5, sockDetail: "read 3, timeout 2"}
	if r != want {
		t.Fatalf("parseWrk = %+v, want %+v", r, want)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Fatal("parseWrk accepted output without results")
	}
}

func TestParsePgbench(t *testing.T) {
	t.Parallel()
	out := `transaction type: /tmp/noop.sql
scaling factor: 1
query mode: prepared
number of clients: 32
number of threads: 2
maximum number of tries: 1
duration: 5 s
number of transactions actually processed: 400000
number of failed transactions: 0 (0.000%)
latency average = 0.391 ms
initial connection time = 20.000 ms
tps = 81734.250351 (without initial connection time)
`
	r, err := parsePgbench(out, pgbenchResult{})
	if err != nil {
		t.Fatal(err)
	}
	if r.tps != 81734.250351 || r.latency != 391*time.Microsecond || r.failed != 0 {
		t.Fatalf("parsePgbench = %+v", r)
	}
}

func TestWrkDuration(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{0: "1s", 500 * time.Millisecond: "1s", 5 * time.Second: "5s", 90 * time.Second: "90s"} {
		if got := wrkDuration(d); got != want {
			t.Errorf("wrkDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
