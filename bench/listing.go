package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The listing benchmark: buckets of 1k, 100k and 1M objects filled directly in SQL, then the
// latency of one page of each listing function measured inside PostgreSQL, the largest bucket
// also over HTTP with wrk, and the plans of the functions' inner queries on the largest bucket
// (EXPLAIN ANALYZE through auto_explain) to show each page is a handful of index probes, never
// a scan or a sort of the bucket.

// listTree is the shape of a listing bucket: tops folders at the root, each with subs
// folders of files objects: tNNN/sNN/fNNNN.txt (depth 3, leaf folders of 500).
type listTree struct {
	bucket            string
	tops, subs, files int
}

func (l listTree) objects() int { return l.tops * l.subs * l.files }

// listTrees are the sizes measured, smallest first.
var listTrees = []listTree{
	{bucket: "list1k", tops: 1, subs: 2, files: 500},
	{bucket: "list100k", tops: 10, subs: 20, files: 500},
	{bucket: "list1m", tops: 100, subs: 20, files: 500},
}

const (
	listCalls  = 200 // measured calls per listing and size
	listWarmup = 20  // unmeasured calls first (the plpgsql plan cache settles after 5)
	// listSample is the number of leaf folders the calls cycle through.
	listSample = 50
)

// listQuery is one listing call measured in SQL: q counts the rows of one page; $1 is a leaf
// folder ("t007/s13", no trailing slash).
type listQuery struct {
	name string
	q    string // %s: the bucket
	want func(l listTree) int
	root bool // lists the bucket root instead of a leaf folder ($1 unused)
}

var listQueries = []listQuery{
	{name: "list v1, page of 100 from a folder", want: page(100),
		q: `select count(*) from storage.object_list(bucket_id => '%s', prefix => $1, limits => 100, offsets => 0)`},
	{name: "list v2, no delimiter, page of 100", want: page(101),
		q: `select count(*) from storage.object_list_v2(bucket_id => '%s', prefix => $1 || '/', limits => 101)`},
	{name: "list v2, delimiter, page of 100", want: page(101),
		q: `select count(*) from storage.object_list_v2(bucket_id => '%s', prefix => $1 || '/', limits => 101, with_delimiter => true)`},
	{name: "list v1, bucket root (folders only)", root: true, want: func(l listTree) int { return min(100, l.tops) },
		q: `select count(*) from storage.object_list(bucket_id => '%s', prefix => '' || left($1, 0), limits => 100, offsets => 0)`},
	{name: "list v2, delimiter, bucket root (folders only)", root: true, want: func(l listTree) int { return min(101, l.tops) },
		q: `select count(*) from storage.object_list_v2(bucket_id => '%s', prefix => '' || left($1, 0), limits => 101, with_delimiter => true)`},
}

// page is the row count of a full page (v2 asks for limit+1 rows, as the server does).
func page(n int) func(listTree) int { return func(listTree) int { return n } }

// latencyFunction measures a listing query inside PostgreSQL: n calls timed with
// clock_timestamp(), cycling through the folders; it returns p50, p99, mean (ms) and the
// smallest and largest row count seen. Runs as the benchmark's superuser (bypasses RLS like
// the server's service_role); plpgsql caches the listing functions' plans per connection, as
// the server's pooled connections do.
const latencyFunction = `create or replace function public.bench_list_latency(q text, folders text[], n int)
returns table (p50 float8, p99 float8, mean float8, rows_min int, rows_max int)
language plpgsql as $$
declare
  t0 timestamptz;
  ms float8[] := '{}';
  c int;
  lo int;
  hi int;
begin
  for i in 0 .. n - 1 loop
    t0 := clock_timestamp();
    execute q into c using folders[1 + i % cardinality(folders)];
    ms := ms || (extract(epoch from clock_timestamp() - t0) * 1000)::float8;
    lo := least(lo, c);
    hi := greatest(hi, c);
  end loop;
  return query
    select percentile_cont(0.5) within group (order by x), percentile_cont(0.99) within group (order by x),
           avg(x), lo, hi
    from unnest(ms) x;
end $$`

// fillSQL inserts a listing bucket's objects in one statement; $1 bucket, $2 subs, $3 files,
// $4 objects.
const fillSQL = `insert into storage.objects (bucket_id, name, version, metadata, user_metadata)
select $1::text,
       't' || lpad((i / ($2::int * $3::int))::text, 3, '0') || '/s' || lpad(((i / $3::int) % $2::int)::text, 2, '0') ||
         '/f' || lpad((i % $3::int)::text, 4, '0') || '.txt',
       $1::text || '-' || i,
       '{"eTag":"\"0f343b0931126a20f133d67c2b018a3b\"","size":1024,"mimetype":"application/octet-stream","cacheControl":"no-cache","lastModified":"2026-01-01T00:00:00.000Z","contentLength":1024,"httpStatusCode":200}'::jsonb,
       '{}'::jsonb
from generate_series(0, $4::int - 1) i`

// listingRow is one listing at one size: measured in SQL, and over HTTP for the largest size.
type listingRow struct {
	tree       listTree
	query      listQuery
	p50, p99   time.Duration
	mean       time.Duration
	rowsLo     int
	rowsHi     int
	err        error
	http       *outcome // wrk, largest bucket only
	httpReason string
}

// listingResult is the whole listing benchmark.
type listingResult struct {
	fills   []string // "list1m: 1,000,000 objects in 21.3 s"
	rows    []listingRow
	plans   []listPlan
	planErr error
	err     error // nothing measured
}

// listPlan is the plan of one inner query of a listing function, as auto_explain logged it
// during one call on the largest bucket.
type listPlan struct {
	call     string // the listing call
	plan     string // the first inner query's plan (EXPLAIN ANALYZE BUFFERS text)
	plans    int    // inner queries logged during the call
	problems []string
	bad      string // the first plan with a problem
	// smallSorts counts sorts of at most a page of rows (a generic plan's ORDER BY CASE …
	// over an index lookup); small is the first plan with one.
	smallSorts int
	small      string
}

// runListing runs the listing benchmark against the server's cluster.
func runListing(ctx context.Context, s *server, st wrkSettings, warmup time.Duration, scripts map[string]string) *listingResult {
	res := &listingResult{}
	conn, err := pgx.Connect(ctx, s.dbConn)
	if err != nil {
		res.err = err
		return res
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, latencyFunction); err != nil {
		res.err = err
		return res
	}
	for _, l := range listTrees {
		progress("listing: fill %s with %s objects", l.bucket, thousands(float64(l.objects())))
		d, err := fillListBucket(ctx, conn, l)
		if err != nil {
			res.err = fmt.Errorf("fill %s: %w", l.bucket, err)
			return res
		}
		res.fills = append(res.fills, fmt.Sprintf("%s: %s objects in %.1f s (one INSERT … generate_series, then ANALYZE)",
			l.bucket, thousands(float64(l.objects())), d.Seconds()))
	}
	for _, l := range listTrees {
		folders := sampleFolders(l)
		for _, q := range listQueries {
			progress("listing: %s, %s (SQL, %d calls)", l.bucket, q.name, listCalls)
			res.rows = append(res.rows, measureSQL(ctx, conn, l, q, folders))
			if ctx.Err() != nil {
				res.err = ctx.Err()
				return res
			}
		}
	}
	largest := listTrees[len(listTrees)-1]
	for i := range res.rows {
		r := &res.rows[i]
		if r.tree != largest {
			continue
		}
		w, ok := listHTTPWorkload(largest, r.query)
		if !ok {
			r.httpReason = "–"
			continue
		}
		progress("listing: %s, %s (wrk)", largest.bucket, r.query.name)
		// No profile: this section is about plans and latency; the small-request table's
		// workloads carry the profiles.
		o := runWorkload(ctx, s, st, warmup, scripts, w, nil)
		r.http = &o
		if ctx.Err() != nil {
			res.err = ctx.Err()
			return res
		}
	}
	progress("listing: EXPLAIN (ANALYZE, BUFFERS) of the inner queries on %s", largest.bucket)
	res.plans, res.planErr = explainListing(ctx, conn, largest)
	return res
}

// fillListBucket creates bucket l and its objects, and analyzes the table.
func fillListBucket(ctx context.Context, conn *pgx.Conn, l listTree) (time.Duration, error) {
	start := time.Now()
	if _, err := conn.Exec(ctx, `insert into storage.buckets (id, name) values ($1, $1)`, l.bucket); err != nil {
		return 0, err
	}
	tag, err := conn.Exec(ctx, fillSQL, l.bucket, l.subs, l.files, l.objects())
	if err != nil {
		return 0, err
	}
	if tag.RowsAffected() != int64(l.objects()) {
		return 0, fmt.Errorf("inserted %d rows, want %d", tag.RowsAffected(), l.objects())
	}
	if _, err := conn.Exec(ctx, `analyze storage.objects`); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// sampleFolders spreads listSample leaf folders over the tree.
func sampleFolders(l listTree) []string {
	seen := map[string]bool{}
	var out []string
	for i := 0; len(out) < listSample && i < 10*listSample; i++ {
		f := fmt.Sprintf("t%03d/s%02d", (i*37)%l.tops, (i*7)%l.subs)
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return out
}

// measureSQL warms q up on l, then times listCalls calls inside PostgreSQL.
func measureSQL(ctx context.Context, conn *pgx.Conn, l listTree, q listQuery, folders []string) listingRow {
	r := listingRow{tree: l, query: q}
	sql := fmt.Sprintf(q.q, l.bucket)
	var p50, p99, mean float64
	var lo, hi int
	if _, err := conn.Exec(ctx, `select * from public.bench_list_latency($1, $2, $3)`, sql, folders, listWarmup); err != nil {
		r.err = err
		return r
	}
	err := conn.QueryRow(ctx, `select * from public.bench_list_latency($1, $2, $3)`, sql, folders, listCalls).
		Scan(&p50, &p99, &mean, &lo, &hi)
	if err != nil {
		r.err = err
		return r
	}
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	r.p50, r.p99, r.mean, r.rowsLo, r.rowsHi = ms(p50), ms(p99), ms(mean), lo, hi
	if want := q.want(l); lo != want || hi != want {
		r.err = fmt.Errorf("pages of %d–%d rows, want %d", lo, hi, want)
	}
	return r
}

// listHTTPWorkload is the HTTP request behind a listing query, for wrk: the same page of
// the same folder as a storage-js client asks for it (v2 with limit 100: the server asks SQL
// for 101 rows).
func listHTTPWorkload(l listTree, q listQuery) (workload, bool) {
	const folder = "t042/s07"
	w := workload{name: q.name + " (HTTP)", method: "POST", token: serviceKey, header: jsonHeader}
	switch {
	case q.root:
		return w, false
	case strings.HasPrefix(q.name, "list v1"):
		w.path = "/object/list/" + l.bucket
		w.body = []byte(fmt.Sprintf(`{"prefix":%q,"limit":100,"offset":0,"sortBy":{"column":"name","order":"asc"}}`, folder))
		w.check = wantJSONArray(100)
	case strings.Contains(q.name, "no delimiter"):
		w.path = "/object/list-v2/" + l.bucket
		w.body = []byte(fmt.Sprintf(`{"prefix":%q,"limit":100}`, folder+"/"))
		w.check = wantV2Page(100)
	default:
		w.path = "/object/list-v2/" + l.bucket
		w.body = []byte(fmt.Sprintf(`{"prefix":%q,"limit":100,"with_delimiter":true}`, folder+"/"))
		w.check = wantV2Page(100)
	}
	return w, true
}

// wantV2Page checks a list-v2 answer: 200, n entries (folders + objects), more to come.
func wantV2Page(n int) func(int, []byte) error {
	return func(status int, body []byte) error {
		var v struct {
			HasNext bool              `json:"hasNext"`
			Folders []json.RawMessage `json:"folders"`
			Objects []json.RawMessage `json:"objects"`
		}
		if status != http.StatusOK || json.Unmarshal(body, &v) != nil || len(v.Folders)+len(v.Objects) != n || !v.HasNext {
			return fmt.Errorf("answered %d: %s", status, short(body))
		}
		return nil
	}
}

// explainListing calls each listing function once on l with auto_explain logging the plans
// of the statements the function runs (EXPLAIN ANALYZE, BUFFERS), sent back as notices, and
// keeps the first inner query's plan of each call plus any scan or sort of the table among
// all of them. Falls back to EXPLAIN of the inner queries written out when auto_explain is
// missing.
func explainListing(ctx context.Context, conn *pgx.Conn, l listTree) ([]listPlan, error) {
	var notices []string
	cfg := conn.Config().Copy()
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.Background())
	const folder = "t042/s07"
	calls := []struct{ name, sql string }{
		{"storage.object_list (v1), page of 100 from a folder", fmt.Sprintf(`select count(*) from storage.object_list('%s', '%s', 100, 0)`, l.bucket, folder)},
		{"storage.object_list_v2, no delimiter, page of 100", fmt.Sprintf(`select count(*) from storage.object_list_v2('%s', '%s/', 101)`, l.bucket, folder)},
		{"storage.object_list_v2, delimiter, page of 100", fmt.Sprintf(`select count(*) from storage.object_list_v2('%s', '%s/', 101, null, true)`, l.bucket, folder)},
	}
	// Settle the connection's plan cache as the measured connections have it.
	for range 10 {
		for _, call := range calls {
			if _, err := c.Exec(ctx, call.sql); err != nil {
				return nil, err
			}
		}
	}
	_, err = c.Exec(ctx, `load 'auto_explain';
		set auto_explain.log_min_duration = 0;
		set auto_explain.log_analyze = on;
		set auto_explain.log_buffers = on;
		set auto_explain.log_timing = on;
		set auto_explain.log_nested_statements = on;
		set client_min_messages = log`)
	if err != nil {
		return explainWritten(ctx, c, l, folder, fmt.Errorf("auto_explain unavailable (%v): the inner queries written out instead", err))
	}
	var out []listPlan
	for _, call := range calls {
		notices = notices[:0]
		if _, err := c.Exec(ctx, call.sql); err != nil {
			return nil, err
		}
		p := listPlan{call: call.name}
		for _, n := range notices {
			if !strings.Contains(n, "Query Text:") || strings.Contains(n, "select count(*)") {
				continue // the outer statement
			}
			p.plans++
			if p.plan == "" && strings.Contains(n, "storage.objects") {
				p.plan = n
			}
			p.smallSorts += smallSorts(n)
			if p.small == "" && smallSorts(n) > 0 {
				p.small = n
			}
			if probs := planProblems(n); len(probs) > 0 {
				p.problems = append(p.problems, probs...)
				if p.bad == "" {
					p.bad = n
				}
			}
		}
		if p.plans == 0 {
			p.problems = append(p.problems, "no inner query plan was logged")
		}
		out = append(out, p)
	}
	return out, nil
}

// explainWritten is the fallback: EXPLAIN (ANALYZE, BUFFERS) of each function's inner query,
// written out with the values of one probe.
func explainWritten(ctx context.Context, c *pgx.Conn, l listTree, folder string, why error) ([]listPlan, error) {
	queries := []struct{ name, sql string }{
		{"object_list (v1) probe", fmt.Sprintf(`select x.* from storage.objects x where x.bucket_id = '%s'
  and (lower(x.name) || E'\x01' || x.name) collate "C" >= '%s/'
  order by (lower(x.name) || E'\x01' || x.name) collate "C" limit 1`, l.bucket, folder)},
		{"object_list_v2 without delimiter", fmt.Sprintf(`select x.name from storage.objects x where x.bucket_id = '%s'
  and x.name collate "C" >= '%s/' and x.name collate "C" < '%s0'
  order by x.name collate "C" limit 101`, l.bucket, folder, folder)},
		{"object_list_v2 with delimiter probe", fmt.Sprintf(`select x.* from storage.objects x where x.bucket_id = '%s'
  and x.name collate "C" >= '%s/' and x.name collate "C" < '%s0'
  order by x.name collate "C" limit 1`, l.bucket, folder, folder)},
	}
	var out []listPlan
	for _, q := range queries {
		rows, err := c.Query(ctx, "explain (analyze, buffers) "+q.sql)
		if err != nil {
			return nil, err
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
		plan := "Query Text: " + q.sql + "\n" + strings.Join(lines, "\n")
		out = append(out, listPlan{call: q.name, plan: plan, plans: 1, problems: planProblems(plan)})
	}
	return out, why
}

var (
	seqScanRe = regexp.MustCompile(`\bSeq Scan\b`)
	sortRe    = regexp.MustCompile(`(?m)^\s*(?:->\s+)?(?:Incremental )?Sort\s+\(cost=[^)]*\)(?:\s+\(actual time=[\d.]+\.\.[\d.]+ rows=(\d+) loops=(\d+)\))?`)
)

// sortRowsLimit is the largest sort a page may do: a sort of a page's own rows costs nothing,
// a sort of the bucket (or of a folder) is what must never happen.
const sortRowsLimit = 1000

// planProblems names what would make a page cost more than a few index probes: a sequential
// scan, or a sort of more rows than a page (or of an unknown number).
func planProblems(plan string) []string {
	var p []string
	if seqScanRe.MatchString(plan) {
		p = append(p, "Seq Scan")
	}
	for _, m := range sortRe.FindAllStringSubmatch(plan, -1) {
		rows, err := strconv.Atoi(m[1])
		if err != nil || rows > sortRowsLimit {
			p = append(p, "Sort of more than a page")
		}
	}
	return p
}

// smallSorts counts the sorts of at most a page of rows in plan (harmless; reported).
func smallSorts(plan string) int {
	n := 0
	for _, m := range sortRe.FindAllStringSubmatch(plan, -1) {
		if rows, err := strconv.Atoi(m[1]); err == nil && rows <= sortRowsLimit {
			n++
		}
	}
	return n
}

// markdown renders the listing section of the report.
func (r *listingResult) markdown(b *strings.Builder) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("\n## Listing\n\n")
	if r == nil {
		p("Not run (BENCH_LISTING=0).\n")
		return
	}
	if r.err != nil && len(r.rows) == 0 {
		p("Not measured: %s\n", cell(r.err))
		return
	}
	p("Buckets of 1k, 100k and 1M objects in a tree `tNNN/sNN/fNNNN.txt` (leaf folders of 500 objects; the root of "+
		"the 1M bucket holds 100 folders of 20 folders each), filled directly in SQL. A \"page of 100\" reads one leaf "+
		"folder (the calls cycle through 50 of them); v2 asks for 101 rows as the server does. SQL latency: %d calls per "+
		"row after %d unmeasured ones, timed inside PostgreSQL with clock_timestamp() around each call (one connection, "+
		"superuser: no RLS, like the server's service_role). HTTP: wrk with the settings above, service key, one folder, "+
		"largest bucket only.\n\n", listCalls, listWarmup)
	for _, f := range r.fills {
		p("- fill %s\n", f)
	}
	p("\n| bucket | listing | rows | SQL p50 | SQL p99 | SQL mean | HTTP req/s | HTTP p50 | HTTP p99 | HTTP errors |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range r.rows {
		httpCells := "| | | |"
		switch {
		case row.http != nil && row.http.skipped != "":
			httpCells = fmt.Sprintf("%s | | | |", cell(row.http.skipped))
		case row.http != nil:
			res := row.http.res
			httpCells = fmt.Sprintf("%s | %s | %s | %s |", thousands(res.rps), latency(res.p50), latency(res.p99), errorsCell(res))
		}
		if row.err != nil && row.p50 == 0 {
			p("| %s (%s) | %s | failed: %s | | | | %s\n", row.tree.bucket, thousands(float64(row.tree.objects())), row.query.name, cell(row.err), httpCells)
			continue
		}
		rows := fmt.Sprint(row.rowsHi)
		if row.err != nil {
			rows = cell(row.err)
		}
		p("| %s (%s) | %s | %s | %s | %s | %s | %s\n", row.tree.bucket, thousands(float64(row.tree.objects())), row.query.name,
			rows, latency(row.p50), latency(row.p99), latency(row.mean), httpCells)
	}
	if r.err != nil {
		p("\nStopped early: %s\n", cell(r.err))
	}
	largest := listTrees[len(listTrees)-1]
	p("\n### Plans on %s (%s objects)\n\n", largest.bucket, thousands(float64(largest.objects())))
	if r.planErr != nil {
		p("%s\n\n", cell(r.planErr))
	}
	if len(r.plans) > 0 {
		p("EXPLAIN (ANALYZE, BUFFERS) of the statements each listing function runs, logged by auto_explain " +
			"(log_nested_statements) during one call after the connection's plan cache settled; the first statement " +
			"of each call that reads storage.objects is shown.\n\n")
	}
	for _, pl := range r.plans {
		verdict := "no Seq Scan, no Sort of more than a page"
		if len(pl.problems) > 0 {
			verdict = "**found: " + strings.Join(dedupe(pl.problems), ", ") + "**"
		}
		if pl.smallSorts > 0 {
			verdict += fmt.Sprintf(" (%d sort(s) of at most a page of rows, shown below)", pl.smallSorts)
		}
		p("- %s: %d statement(s) logged inside the call; %s\n", pl.call, pl.plans, verdict)
	}
	for _, pl := range r.plans {
		p("\n%s:\n\n```\n%s\n```\n", pl.call, strings.TrimSpace(pl.plan))
		if pl.bad != "" && pl.bad != pl.plan {
			p("\nthe first statement of that call with a %s:\n\n```\n%s\n```\n", strings.Join(dedupe(planProblems(pl.bad)), " and a "), strings.TrimSpace(pl.bad))
		}
		if pl.small != "" && pl.small != pl.plan && pl.small != pl.bad {
			p("\nthe first statement of that call with a (small) sort:\n\n```\n%s\n```\n", strings.TrimSpace(pl.small))
		}
	}
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
