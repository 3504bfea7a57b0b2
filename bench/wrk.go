package main

import (
	"bufio"
	"context"
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

//go:embed scripts/*.lua
var luaScripts embed.FS

// writeScripts copies the embedded wrk scripts into dir (wrk reads scripts from files) and
// returns their paths by name.
func writeScripts(dir string) (map[string]string, error) {
	entries, err := luaScripts.ReadDir("scripts")
	if err != nil {
		return nil, err
	}
	paths := map[string]string{}
	for _, e := range entries {
		b, err := luaScripts.ReadFile("scripts/" + e.Name())
		if err != nil {
			return nil, err
		}
		p := filepath.Join(dir, e.Name())
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
		paths[e.Name()] = p
	}
	return paths, nil
}

// wrkSettings are the load settings every wrk run shares, the ceilings' included.
type wrkSettings struct {
	threads, conns int
	duration       time.Duration
	timeout        time.Duration // wrk's per-request timeout: slower answers count as errors
}

// wrkRun is one wrk invocation: the URL, plus the headers and script that shape the request.
type wrkRun struct {
	url        string
	headers    []string // "Name: value"
	script     string   // path of a Lua script, or ""
	scriptArgs []string // passed to the script's init after "--"
}

// wrkResult is what the report needs from wrk's --latency output.
type wrkResult struct {
	requests   int64
	rps        float64
	p50, p99   time.Duration
	non2xx     int64 // "Non-2xx or 3xx responses"
	sockErrs   int64 // connect + read + write + timeout
	sockDetail string
}

// errors is every request that did not succeed.
func (r wrkResult) errors() int64 { return r.non2xx + r.sockErrs }

// runWrk runs wrk with settings st for run, bounded by the duration plus a margin.
func runWrk(ctx context.Context, st wrkSettings, d time.Duration, run wrkRun) (wrkResult, error) {
	args := []string{
		"-t", strconv.Itoa(st.threads),
		"-c", strconv.Itoa(st.conns),
		"-d", wrkDuration(d),
		"--timeout", wrkDuration(st.timeout),
		"--latency",
	}
	for _, h := range run.headers {
		args = append(args, "-H", h)
	}
	if run.script != "" {
		args = append(args, "-s", run.script)
	}
	args = append(args, run.url)
	if len(run.scriptArgs) > 0 {
		args = append(append(args, "--"), run.scriptArgs...)
	}
	out, err := runTool(ctx, d+st.timeout+30*time.Second, os.Environ(), "wrk", args...)
	if err != nil {
		return wrkResult{}, err
	}
	return parseWrk(out)
}

// wrkDuration renders d the way wrk's -d and --timeout parse it: whole seconds (wrk accepts
// a unit suffix, but not Go's compound forms such as 1m30s).
func wrkDuration(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10) + "s"
}

// parseWrk reads wrk's report:
//
//	  Latency Distribution
//	     50%  421.00us
//	     99%    2.10ms
//	  231234 requests in 5.00s, 300.00MB read
//	  Socket errors: connect 0, read 3, write 0, timeout 0
//	  Non-2xx or 3xx responses: 12
//	Requests/sec:  46246.80
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var haveRPS, have50, have99 bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("wrk: bad Requests/sec line %q", line)
			}
			r.rps, haveRPS = v, true
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			d, err := parseWrkTime(f[1])
			if err != nil {
				return r, err
			}
			if f[0] == "50%" {
				r.p50, have50 = d, true
			} else {
				r.p99, have99 = d, true
			}
		case len(f) > 2 && f[1] == "requests" && f[2] == "in":
			r.requests, _ = strconv.ParseInt(f[0], 10, 64)
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			r.non2xx, _ = strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "Non-2xx or 3xx responses:")), 10, 64)
		case strings.HasPrefix(line, "Socket errors:"):
			// "Socket errors: connect 0, read 3, write 0, timeout 0"
			var parts []string
			for _, kv := range strings.Split(strings.TrimPrefix(line, "Socket errors:"), ",") {
				kf := strings.Fields(kv)
				if len(kf) != 2 {
					continue
				}
				n, _ := strconv.ParseInt(kf[1], 10, 64)
				if n > 0 {
					r.sockErrs += n
					parts = append(parts, kf[0]+" "+kf[1])
				}
			}
			r.sockDetail = strings.Join(parts, ", ")
		}
	}
	if !haveRPS || !have50 || !have99 {
		return r, fmt.Errorf("wrk: output without Requests/sec or latency distribution: %s", lastLines(out, 6))
	}
	return r, nil
}

// parseWrkTime parses wrk's latency format: a number and one of us, ms, s, m, h.
func parseWrkTime(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				break
			}
			return time.Duration(v * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("wrk: cannot parse latency %q", s)
}
