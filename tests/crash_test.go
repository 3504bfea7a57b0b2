package tests

import (
	"context"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob/file"
	"github.com/pgstorage/storage/tests/testdb"
)

// TestCrashKillNine kills `storage serve` with SIGKILL at random points of a mixed workload
// (REST uploads small and multi-MiB, upserts, TUS uploads, S3 PutObject, moves, copies,
// deletes, listings, signed URLs, bucket-empty jobs, and the collector at work with no
// retention), restarting it each time on the same database and blob directory. Whatever the
// kills cut: no client ever gets a 5xx, every download is one whole version that was sent to
// its key (or moved or copied there), uploads cut mid-way resume after the restart, and the
// last server's collector, by itself, brings the store to exactly the blobs rows reference —
// the uploads left in flight (STORAGE_UPLOAD_EXPIRY), their temporary files
// (STORAGE_LEFTOVER_GRACE) and the abandoned resumable uploads (TUS_URL_EXPIRY_MS) all go.
func TestCrashKillNine(t *testing.T) {
	bin := cliBinary(t)
	t.Parallel()
	const (
		rounds  = 3
		workers = 3
	)
	seed := chaosSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	ctx := context.Background()
	db := testdb.New(t)
	blobDir := filepath.Join(t.TempDir(), "blobs")
	env := cliEnv("DATABASE_URL="+db.URL, "AUTH_JWT_SECRET=crash-test-secret", "STORAGE_DATA_DIR="+t.TempDir(),
		"SERVER_HOST=127.0.0.1", "SERVER_PORT="+cliFreePort(t), "LOG_LEVEL=warn",
		"STORAGE_BACKEND=file", "STORAGE_FILE_BACKEND_PATH="+blobDir,
		"STORAGE_BLOB_RETENTION=0s", "STORAGE_GC_INTERVAL=100ms",
		// Long enough for a resumable upload cut by a kill to be resumed after the restart,
		// short enough for the abandoned ones to expire before the test ends.
		"TUS_URL_EXPIRY_MS=6000",
		"S3_PROTOCOL_ACCESS_KEY_ID=crash-key", "S3_PROTOCOL_ACCESS_KEY_SECRET=crash-key-secret")

	var c *chaosClient
	began := time.Now()
	for round := 1; round <= rounds; round++ {
		s := cliServe(t, bin, "", env)
		s.waitReady()
		if round == 1 {
			c = newChaosClient(s.service, "crash-key", "crash-key-secret")
			for _, b := range []string{"b", "e"} {
				a := c.do(ctx, http.MethodPost, s.url+"/bucket", []byte(`{"name":"`+b+`"}`), "Content-Type", "application/json")
				require.NoError(t, a.err)
				require.Equal(t, http.StatusOK, a.status, "%s", a.body)
			}
		}
		// The kill lands as the killAt-th operation of the round starts, plus up to 40ms.
		killAt := int64(8 + rng.IntN(40))
		lag := time.Duration(rng.IntN(40)) * time.Millisecond
		var started atomic.Int64
		reached := make(chan struct{})
		tick := func() {
			if started.Add(1) == killAt {
				close(reached)
			}
		}
		work, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		mix := chaosMix{buckets: []string{"b", "e"}, emptied: "e", base: func(*rand.Rand) string { return s.url }}
		for w := range workers {
			wrng := rand.New(rand.NewPCG(seed, uint64(round*workers+w)))
			wg.Go(func() { c.work(work, wrng, mix, tick) })
		}
		select {
		case <-reached:
		case <-time.After(2 * time.Minute):
			t.Fatalf("round %d: %d operations did not start within 2 minutes", round, killAt)
		}
		<-time.After(lag)
		require.NoError(t, s.cmd.Process.Signal(syscall.SIGKILL))
		select {
		case <-s.exited:
		case <-time.After(cliStopTimeout):
			t.Fatalf("storage serve did not exit within %v of SIGKILL", cliStopTimeout)
		}
		stop()
		wg.Wait()
		t.Logf("round %d: killed as operation %d of %d started, +%v (%v)", round, killAt, started.Load(), lag, time.Since(began).Round(time.Millisecond))
	}

	// The last life: uploads left in flight by a dead server and leftovers expire at once.
	s := cliServe(t, bin, "", append(env, "STORAGE_UPLOAD_EXPIRY=1s", "STORAGE_LEFTOVER_GRACE=1s"))
	s.waitReady()
	c.resumePending(ctx, s.url)
	c.requireClean(t)
	store, err := file.New(blobDir)
	require.NoError(t, err)
	t.Logf("restarted (%v)", time.Since(began).Round(time.Millisecond))
	chaosAwaitClean(t, ctx, db.Pool, store, time.Minute)
	t.Logf("clean (%v)", time.Since(began).Round(time.Millisecond))
	n := c.requireDownloads(t, ctx, db.Pool, s.url)
	t.Logf("%d objects at the end, each one whole version (%v)", n, time.Since(began).Round(time.Millisecond))
	c.requireClean(t)
	require.Equal(t, 0, s.stop(syscall.SIGTERM))
	t.Logf("stopped (%v)", time.Since(began).Round(time.Millisecond))
}
