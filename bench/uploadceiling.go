package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pgstorage/storage/blob/file"
)

// The two ceilings of a small upload, each half of it measured alone on this machine: the
// durable write of the blob (what the file store's Put does) and the two SQL transactions
// (prepare, commit) that bracket it. An upload pays for both, on the same two CPUs.

// putCeiling is the blob half: 1 KiB Puts into one folder from conns goroutines.
type putCeiling struct {
	rate   float64 // Puts per second
	cpu    float64 // CPU seconds (user + system, this process) per Put
	others float64 // share of the machine's CPU used by other programs meanwhile
}

// blobPutCeiling runs the file store's Put, the server's own code, in a store under dir (the
// data directory's file system) for d, then removes the store.
func blobPutCeiling(ctx context.Context, dir string, conns int, d time.Duration) (putCeiling, error) {
	var r putCeiling
	root := filepath.Join(dir, "put-ceiling")
	defer os.RemoveAll(root)
	s, err := file.New(root)
	if err != nil {
		return r, err
	}
	body := bytes.Repeat([]byte("x"), smallSize)
	var puts atomic.Int64
	var firstErr error
	var once sync.Once
	before, ru0 := takeCPUSnap(0), rusage()
	start := time.Now()
	stop := start.Add(d)
	var wg sync.WaitGroup
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop) && ctx.Err() == nil; i++ {
				key := "bench/folder/put-" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
				if err := s.Put(ctx, key, bytes.NewReader(body), int64(len(body))); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				puts.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed, ru1 := time.Since(start), rusage()
	r.others = othersShare(before, takeCPUSnap(0))
	if firstErr != nil {
		return r, firstErr
	}
	if err := ctx.Err(); err != nil {
		return r, err
	}
	n := puts.Load()
	if n == 0 {
		return r, fmt.Errorf("no Put completed in %s", d)
	}
	r.rate = float64(n) / elapsed.Seconds()
	r.cpu = (ru1 - ru0) / float64(n)
	return r, nil
}

// rusage is this process's CPU time so far (user + system), in seconds.
func rusage() float64 {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano()).Seconds()
}

// uploadSQLScript is the SQL half: the server's two calls for a fresh key (random, so that
// 32 clients never collide), as the superuser (RLS off, like the service key), into a bucket
// of its own: the rows it leaves point at no blob, and nothing else reads that bucket.
const uploadSQLBucket = "bench-upload-sql"

const uploadSQLScript = `\set k random(1, 9000000000000000000)
select version as v from storage_internal.object_upload_prepare(bucket_id => '` + uploadSQLBucket + `', name => 'k/' || :k,
  upsert => false, mimetype => 'application/octet-stream', content_length => 1024, user_metadata => null) \gset
select storage_internal.object_upload_commit(bucket_id => '` + uploadSQLBucket + `', name => 'k/' || :k, version => :v,
  upsert => false, owner_id => null, size => 1024, md5 => '0f343b0931126a20f133d67c2b018a3b',
  mimetype => 'application/octet-stream', cache_control => 'max-age=3600', user_metadata => null, x_robots_tag => null);
`
