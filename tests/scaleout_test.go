package tests

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob/s3/s3test"
	"github.com/pgstorage/storage/tests/testdb"
)

// scaleLeader reads the collector's lease: the PID in its holder's name ("host/pid/random"),
// 0 when nobody holds it (between runs).
func scaleLeader(t *testing.T, ctx context.Context, pool *pgxpool.Pool) int {
	t.Helper()
	rows, _ := pool.Query(ctx, `select holder from storage_internal.leases where name = 'collector' and expires_at > now()`)
	holders, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.LessOrEqual(t, len(holders), 1, "collector leases: %v", holders)
	if len(holders) == 0 {
		return 0
	}
	parts := strings.Split(holders[0], "/")
	require.Len(t, parts, 3, "lease holder %q", holders[0])
	pid, err := strconv.Atoi(parts[1])
	require.NoError(t, err, "lease holder %q", holders[0])
	return pid
}

// TestScaleOut runs three `storage serve` on one PostgreSQL database and one S3 bucket
// (versitygw) with one JWT secret, and sprays a mixed workload across them: uploads and
// upserts of the same keys from all three (REST, TUS, S3 PutObject and multipart), moves,
// copies, deletes, listings, signed URLs minted on one server and fetched from another, and
// bucket-empty jobs, while every server's collector runs (no retention). The collector's lease
// is only ever held by one of the servers; the test kills the one holding it with SIGKILL, in
// the middle of its run, and another server takes the lease within seconds and drains the
// queue. No client ever gets a 5xx; afterwards every row's blob exists, every blob in the
// bucket is referenced, and every object downloads as one whole version sent to its key (or
// moved or copied there).
func TestScaleOut(t *testing.T) {
	bin := cliBinary(t)
	t.Parallel()
	const workers = 4
	seed := chaosSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	ctx := context.Background()
	db := testdb.New(t)
	s3cfg := s3test.Start(t)
	common := []string{"DATABASE_URL=" + db.URL, "AUTH_JWT_SECRET=scale-out-secret", "SERVER_HOST=127.0.0.1", "LOG_LEVEL=warn",
		"STORAGE_BACKEND=s3", "STORAGE_S3_BUCKET=" + s3cfg.Bucket, "STORAGE_S3_ENDPOINT=" + s3cfg.Endpoint,
		"STORAGE_S3_REGION=" + s3cfg.Region, "STORAGE_S3_FORCE_PATH_STYLE=true",
		"AWS_ACCESS_KEY_ID=" + s3cfg.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + s3cfg.SecretAccessKey,
		"STORAGE_BLOB_RETENTION=0s", "STORAGE_GC_INTERVAL=200ms",
		"S3_PROTOCOL_ACCESS_KEY_ID=scale-key", "S3_PROTOCOL_ACCESS_KEY_SECRET=scale-key-secret"}
	servers := make([]*cliServer, 3)
	for i := range servers {
		dir := cliTempDir(t)
		servers[i] = cliServe(t, bin, "", cliEnv(append(common, "SERVER_PORT="+cliFreePort(t),
			"STORAGE_DATA_DIR="+filepath.Join(dir, "data"), "STORAGE_S3_SPOOL_DIR="+dir)...))
	}
	for _, s := range servers {
		s.waitReady()
	}
	c := newChaosClient(servers[0].service, "scale-key", "scale-key-secret")
	for i, b := range []string{"b", "e"} {
		a := c.do(ctx, "POST", servers[i].url+"/bucket", []byte(`{"name":"`+b+`"}`), "Content-Type", "application/json")
		require.NoError(t, a.err)
		require.Equal(t, 200, a.status, "%s", a.body)
	}

	// Requests go to the servers alive (all three, then the two left).
	var dead atomic.Int32 // index+1 of the killed server; 0: none yet
	alive := func(rng *rand.Rand) string {
		for {
			i := rng.IntN(len(servers))
			if int(dead.Load()) != i+1 {
				return servers[i].url
			}
		}
	}
	var started atomic.Int64
	halfway := int64(20 + rng.IntN(40))
	reached := make(chan struct{})
	tick := func() {
		if started.Add(1) == halfway {
			close(reached)
		}
	}
	work, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	mix := chaosMix{buckets: []string{"b", "e"}, emptied: "e", multipart: true, base: alive}
	for w := range workers {
		wrng := rand.New(rand.NewPCG(seed, uint64(1+w)))
		wg.Go(func() { c.work(work, wrng, mix, tick) })
	}
	select {
	case <-reached:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%d operations did not start within 2 minutes", halfway)
	}

	// All along, the lease is held by one of the servers at most: the holders seen, in turn
	// (PIDs; a dead leader's expired lease counts as none).
	type sample struct {
		at  time.Time // before the read
		pid int
	}
	var (
		holders   []sample // a sample each time the holder changes
		strangers []int
	)
	sampling, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		pids := map[int]bool{}
		for _, s := range servers {
			pids[s.cmd.Process.Pid] = true
		}
		for {
			select {
			case <-sampling:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var holder string
			at := time.Now()
			err := db.Pool.QueryRow(ctx, `select coalesce(max(holder), '') from storage_internal.leases where name = 'collector' and expires_at > now()`).Scan(&holder)
			if err != nil || holder == "" {
				continue
			}
			parts := strings.Split(holder, "/")
			pid, _ := strconv.Atoi(parts[min(1, len(parts)-1)])
			if !pids[pid] {
				strangers = append(strangers, pid)
			}
			if len(holders) == 0 || holders[len(holders)-1].pid != pid {
				holders = append(holders, sample{at, pid})
			}
		}
	}()

	// Kill the leader as it works: the first holder of the lease seen from now on.
	index := func(pid int) int {
		for i, s := range servers {
			if s.cmd.Process.Pid == pid {
				return i
			}
		}
		t.Fatalf("the collector lease is held by PID %d, none of the servers", pid)
		return -1
	}
	var leader int
	cliRcWaitFor(t, 30*time.Second, "a collector to hold the lease", func() bool {
		leader = scaleLeader(t, ctx, db.Pool)
		return leader != 0
	})
	killed := index(leader)
	require.NoError(t, syscall.Kill(leader, syscall.SIGKILL))
	dead.Store(int32(killed + 1))
	killedAt := time.Now()
	t.Logf("killed server %d (PID %d), the collector's leader, as operation %d of %d started", killed, leader, halfway, started.Load())
	select {
	case <-servers[killed].exited:
	case <-time.After(cliStopTimeout):
		t.Fatalf("storage serve did not exit within %v of SIGKILL", cliStopTimeout)
	}
	var next int
	cliRcWaitFor(t, 30*time.Second, "another server to take the collector's lease", func() bool {
		next = scaleLeader(t, ctx, db.Pool)
		return next != 0 && next != leader
	})
	tookOver := time.Now()
	t.Logf("server %d took the lease %v after the kill", index(next), tookOver.Sub(killedAt).Round(time.Millisecond))

	// A little more work on the two left, then the workload stops.
	goal := started.Load() + 2*workers
	cliRcWaitFor(t, 2*time.Minute, "the workload to go on", func() bool { return started.Load() >= goal })
	stop()
	wg.Wait()
	close(sampling)
	<-sampled
	c.requireClean(t)
	require.Empty(t, strangers, "the collector's lease was held by none of the servers")
	var turns []string
	for _, h := range holders {
		turns = append(turns, "server "+strconv.Itoa(index(h.pid)))
		require.False(t, h.pid == leader && h.at.After(tookOver), "the killed leader held the lease after another server took it")
	}
	t.Logf("lease holders, in turn: %s", strings.Join(turns, ", "))

	// The collector of the survivors drains the queue and finishes the bucket-empty jobs.
	cliRcWaitFor(t, 30*time.Second, "the queue of freed blobs to drain", func() bool {
		var queued, jobs int
		require.NoError(t, db.Pool.QueryRow(ctx, `select (select count(*) from storage.blobs_freed),
			(select count(*) from storage.bucket_empty_jobs where finished_at is null)`).Scan(&queued, &jobs))
		return queued == 0 && jobs == 0
	})
	// What an operator runs beside the live servers: the invariants hold.
	chk := cliRun(t, bin, servers[(killed+1)%len(servers)].env, "check", "--grace", "0s")
	require.Equal(t, 0, chk.code, "storage check\nstdout:\n%s\nstderr:\n%s", chk.stdout, cliTail(chk.stderr))
	// (The killed server's upload in flight, and resumable uploads the workload abandoned, are
	// reported too: they break nothing, and expire.)
	lines := cliRcLines(t, chk.stdout)
	require.Regexp(t, `^check \(grace 0s\): \d+ stale uploads?, \d+ leftovers?, 0 orphan blobs, 0 rows whose blob is missing`,
		lines[len(lines)-1], "%s", chk.stdout)
	for i, s := range servers {
		if i != killed {
			t.Logf("%d objects download whole from server %d", c.requireDownloads(t, ctx, db.Pool, s.url), i)
		}
	}
	for i, s := range servers {
		if i != killed {
			require.Equal(t, 0, s.stop(syscall.SIGTERM))
		}
	}
}
