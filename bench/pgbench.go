package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// noopFunction is the trivial plpgsql function of the database ceiling. plpgsql, not SQL: the
// storage API's functions are plpgsql, so a call pays the same interpreter entry.
const noopFunction = `create or replace function public.bench_noop() returns int
language plpgsql as $$ begin return 1; end $$;`

// pgbenchResult is the database ceiling: trivial function calls per second.
type pgbenchResult struct {
	tps     float64
	latency time.Duration // pgbench's "latency average"
	failed  int64
	version string // the server's version, for the report header
}

// findPGTool finds a PostgreSQL client program: on PATH, else in the newest
// /usr/lib/postgresql/<version>/bin (Debian installs pgbench there too).
func findPGTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (it comes with PostgreSQL: apt-get install -y postgresql)", name)
}

func pgMajor(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

// runPgbench creates bench_noop in the server's database and calls it from clients
// connections for d. Prepared mode, because the storage server's pgx pool prepares and
// caches its statements too; -n because there are no pgbench tables to vacuum.
func runPgbench(ctx context.Context, conn, scriptDir string, clients, threads int, d time.Duration) (pgbenchResult, error) {
	return runPgbenchScript(ctx, conn, scriptDir, "noop.sql", noopFunction, "select bench_noop();\n", clients, threads, d)
}

// runPgbenchScript runs setup once with psql, then script from clients connections for d.
func runPgbenchScript(ctx context.Context, conn, scriptDir, name, setup, body string, clients, threads int, d time.Duration) (pgbenchResult, error) {
	var r pgbenchResult
	psql, err := findPGTool("psql")
	if err != nil {
		return r, err
	}
	pgbench, err := findPGTool("pgbench")
	if err != nil {
		return r, err
	}
	if err := psqlExec(ctx, conn, requestTimeout, setup); err != nil {
		return r, err
	}
	if out, err := runTool(ctx, requestTimeout, os.Environ(), psql, "-X", "-A", "-t", "-c", "show server_version", conn); err == nil {
		r.version = strings.TrimSpace(out)
	}
	script := filepath.Join(scriptDir, name)
	if err := os.WriteFile(script, []byte(body), 0o644); err != nil {
		return r, err
	}
	secs := int((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	out, err := runTool(ctx, d+time.Minute, os.Environ(), pgbench,
		"-n", "-M", "prepared",
		"-c", strconv.Itoa(clients), "-j", strconv.Itoa(threads),
		"-T", strconv.Itoa(secs), "-f", script, conn)
	if err != nil {
		return r, err
	}
	return parsePgbench(out, r)
}

// psqlExec runs sql in the server's database with psql, stopping at the first error. psql (like
// pgbench) takes the keyword/value connection string as its database name and expands it.
func psqlExec(ctx context.Context, conn string, timeout time.Duration, sql string) error {
	psql, err := findPGTool("psql")
	if err != nil {
		return err
	}
	_, err = runTool(ctx, timeout, os.Environ(), psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql, conn)
	return err
}

// parsePgbench reads pgbench's summary:
//
//	number of failed transactions: 0 (0.000%)
//	latency average = 0.391 ms
//	tps = 81734.250351 (without initial connection time)
func parsePgbench(out string, r pgbenchResult) (pgbenchResult, error) {
	haveTPS := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "tps = ") && len(f) >= 3:
			v, err := strconv.ParseFloat(f[2], 64)
			if err != nil {
				return r, fmt.Errorf("pgbench: bad tps line %q", line)
			}
			r.tps, haveTPS = v, true
		case strings.HasPrefix(line, "latency average = ") && len(f) >= 5 && f[4] == "ms":
			v, _ := strconv.ParseFloat(f[3], 64)
			r.latency = time.Duration(v * float64(time.Millisecond))
		case strings.HasPrefix(line, "number of failed transactions:") && len(f) >= 5:
			r.failed, _ = strconv.ParseInt(f[4], 10, 64)
		}
	}
	if !haveTPS {
		return r, fmt.Errorf("pgbench: no tps line in its output: %s", lastLines(out, 6))
	}
	return r, nil
}
