// Command bench is the benchmark harness behind `make bench`. It is a measurement, never a
// pass/fail test: `make test` does not run it and it exits non-zero only when it cannot measure.
//
// One run:
//
//  1. starts bin/storage serve in a fresh temporary data dir (file backend, its own embedded
//     PostgreSQL, a free loopback port, LOG_LEVEL=warn, an upload limit above 1 GiB) and reads
//     the keys and the database connection string from its stdout;
//  2. creates the fixtures over HTTP: private bucket b and public bucket pb, each with a 1 KiB
//     object k;
//  3. measures the machine's own ceilings with the same settings: a fasthttp hello-world
//     (bench/hello) under wrk, pgbench calling a trivial plpgsql function in the server's
//     cluster, and the data dir's disk writing 1 GiB and fsyncing it (the upload's ceiling);
//     and the two halves of a small upload alone: the file store's own Put of 1 KiB from 32
//     goroutines (with its CPU per Put), and pgbench running an upload's two SQL calls for
//     fresh keys (these two also run under BENCH_ONLY when it picks the 1 KiB upload);
//  4. drives each small-request workload with wrk (2 threads, 32 connections, --latency) after
//     a short warm-up: authenticated GET, public GET, object info, bucket get, sign URL, list
//     v1 (page of 100 from a 2,000-object folder), 1 KiB upload to fresh keys. A workload
//     marked planned is probed first and reported as "not implemented yet" until its route
//     answers in the expected shape; it then runs without a change here;
//  5. image transformation (render.go): a 2 MP photo-like JPEG (1732×1155, generated) in the
//     public bucket, rendered to a 200×200 WebP through /render/image/public at 8 and 32
//     connections, warm (the main server, its variant cached by one request first) and cold (a
//     second server started with IMAGE_TRANSFORMATION_CACHE=false, stopped after), each run with
//     the server's peak RSS and CPU split;
//  6. uploads 1 GiB streamed from a generator, then the same bytes again as a resumable (TUS)
//     upload to another key (resumable.go: one create, then PATCHes of 6 MiB in sequence over
//     one keep-alive connection, as Supabase's clients send them), and downloads the first
//     object again, timing MB/s and the server's peak RSS (VmHWM, reset before each phase
//     through /proc/<pid>/clear_refs);
//  7. last (a million inserted rows must not disturb the rest): the listing benchmark
//     (listing.go) fills buckets of 1k, 100k and 1M objects directly in SQL (one INSERT …
//     generate_series each, tree tNNN/sNN/fNNNN.txt with leaf folders of 500), times 200 calls of
//     each listing (v1, v2 with and without delimiter: a page of 100 from a folder; v1 and v2 at
//     the bucket root) inside PostgreSQL with clock_timestamp(), drives the 1M bucket's folder
//     pages over HTTP with wrk, and captures EXPLAIN (ANALYZE, BUFFERS) of the statements the
//     listing functions run on the 1M bucket through auto_explain, flagging any Seq Scan or any
//     sort of more than a page;
//  8. prints a markdown report (machine header, ceilings, per-workload req/s, p50, p99, errors,
//     ratio to the reference server, fraction of each ceiling, and the share of the machine's
//     CPU other programs took during each measurement, since a shared machine disturbs the
//     numbers) and writes it to bench/results/latest.md.
//
// Where the time goes (cpu.go, profile.go): around each measured run (small requests and the
// 1 GiB transfers) the harness reads from /proc the CPU time of the server process, of its
// PostgreSQL (everything under the server) and of the load generator (wrk and the harness),
// and reports each per request with the rate their sum allows on this machine's CPUs. Unless
// BENCH_PROFILE=0, the server also runs with STORAGE_PPROF_ADDR on a free loopback port, and
// each small-request workload's run is profiled: a CPU profile covering it and allocation
// snapshots before and after, saved in bench/results/profiles/ (beside -out) and summarised
// in the report as allocations and bytes per request, top functions and CPU buckets.
//
// Environment: BENCH_DURATION (wrk and pgbench duration per workload, default 10s),
// BENCH_WARMUP (unmeasured wrk run before each workload, default 1s; 0 skips it), BENCH_KEEP=1
// (keep the temporary directory: server log, PostgreSQL log, blobs), BENCH_LISTING=0 (skip the
// listing benchmark), BENCH_PROFILE=0 (no profiles), BENCH_LOG_LEVEL (the server's LOG_LEVEL,
// default warn: info adds its line per request), BENCH_ONLY=<regexp> (run only the
// workloads, image transformation runs ("render …": BENCH_ONLY=render picks the four,
// BENCH_ONLY='render.*cold' the cold ones), transfers ("upload 1 GiB", "resumable upload 1 GiB, 6 MiB chunks", "S3 upload 1 GiB …", "download
// 1 GiB") and "listing" whose names match, and no ceilings but the small upload's; a picked
// download or resumable upload brings the REST upload with it, since the one reads its object
// and the other's target is a share of its rate: BENCH_ONLY=resumable measures both uploads,
// BENCH_ONLY=upload both and the small upload, BENCH_ONLY='1 GiB' the three transfers),
// BENCH_AUTOGROUP=keep (leave Linux's autogroup scheduling on; by default, as root, the harness
// turns it off for the run and back on after, as a database host is tuned: every PostgreSQL
// backend is a session of its own and would weigh as much as the whole server; see sched.go).
// BENCH_BASELINE=<report> (an earlier run's report, e.g. a copy of bench/results/latest.md:
// the new report ends with the two runs side by side, per workload the rate and the CPU one
// request costs on each side, and each run's ceilings).
// TMPDIR chooses where the temporary directory (and so the two 1 GiB blobs) lives. Flags name
// the binaries and the output file; see -help.
//
// Every child runs in its own process group with a parent-death signal, and all of them are
// stopped on exit, on error and on Ctrl-C.
//
// To add a workload, add an entry to workloads (workloads.go): its request, its reference
// rate, and optionally a fixture and a response check.
//
// Soak mode (-soak, `make soak`; soak*.go) is a pass/fail test instead: for each backend
// (SOAK_BACKENDS, default "file,s3": the embedded default, and S3 on a versitygw it starts) it
// starts the server with 10 s inactivity timeouts and the collector freeing blobs at once, and
// keeps SOAK_CONNECTIONS (default 256) clients on it for SOAK_DURATION (default 10m). Fifteen in
// sixteen are well-behaved, each on its own keep-alive connection, looping over a weighted mix
// of operations (soakMix) on a bounded set of objects of their own; the rest misbehave
// (misbehavingKinds: slow and stalled uploads and downloads, transfers cut halfway). Every
// SOAK_INTERVAL (default 1m) it reports requests by outcome class, p50/p99, and the server's
// RSS, fds, database connections and goroutines sampled every 5 s; after the load it waits for
// in-flight work to drain, runs lifecycle.Reconcile with grace 0, and judges the targets
// (soakstats.go). The report goes to stdout and bench/results/soak.md (-out), and the exit
// code is 1 when a target is missed. SOAK_KEEP=1 keeps the temporary directories.
package main
