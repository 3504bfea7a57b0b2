package tests

// The blob lifecycle end to end, on both blob stores: after any mix of REST and SQL deletes,
// overwrites, copies, moves, prefix deletes and bucket empties, a collector with retention 0
// leaves exactly the blobs rows reference; with a retention, freed blobs stay and a restore
// inside the window finds them; collectors racing never double-delete or delete a live blob;
// reconcile finds and repairs what crashes leave.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/blob/file"
	"github.com/pgstorage/storage/blob/s3"
	"github.com/pgstorage/storage/lifecycle"
)

// newCollector returns a collector over o's database and store.
func (o *objEnv) newCollector(retention time.Duration) *lifecycle.Collector {
	return &lifecycle.Collector{DB: o.db.Pool, Blobs: o.blobs, Retention: retention, Interval: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// collect runs c until it has been the leader for a run (the test server's own collector may
// hold the lock for a moment) and returns that run's stats.
func collect(t *testing.T, c *lifecycle.Collector) lifecycle.Stats {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := c.RunOnce(context.Background())
		require.NoError(t, err)
		if st.Leader {
			return st
		}
		require.True(t, time.Now().Before(deadline), "the collector never got the leader lock")
		time.Sleep(20 * time.Millisecond)
	}
}

// liveKeys are the blob keys the rows reference, sorted and distinct.
func (o *objEnv) liveKeys(t *testing.T) []string {
	t.Helper()
	var keys []string
	for _, v := range o.column(t, `select distinct version from storage.objects where version is not null`) {
		keys = append(keys, blob.VersionKey(v))
	}
	slices.Sort(keys)
	return keys
}

// storeKeys lists the store through the listing the product uses.
func storeKeys(t *testing.T, s blob.Store) []string {
	t.Helper()
	var keys []string
	require.NoError(t, s.List(context.Background(), "", func(b blob.Info) error {
		keys = append(keys, b.Key)
		return nil
	}))
	return keys
}

func (o *objEnv) queued(t *testing.T) []string {
	t.Helper()
	return o.column(t, `select distinct version from storage.blobs_freed order by 1`)
}

func TestLifecycleCollectorLeavesExactlyLiveBlobs(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newObjEnv(t, be)
		o.mkBucket(t, `{"name":"e"}`)
		for _, k := range []string{"over", "orig", "sqldel", "restdel", "moved", "f/1", "f/2", "f/g/3", "f2/keep"} {
			o.mustUpload(t, "b", k, "bytes of "+k)
		}
		for _, k := range []string{"x", "y/z"} {
			o.mustUpload(t, "e", k, "in e: "+k)
		}
		all := len(o.liveKeys(t))
		require.Equal(t, 11, all)
		require.Equal(t, o.liveKeys(t), storeKeys(t, o.blobs))

		// Overwrite, copy then delete the source, plain SQL delete, REST delete, move, prefix
		// delete in SQL, empty through REST.
		requireUploaded(t, o.upload(t, "POST", "b", "over", o.service, "new bytes", withHeader("x-upsert", "true")), "b/over")
		requireOKJSON(t, o.copyObject(t, o.service, `{"bucketId":"b","sourceKey":"orig","destinationKey":"copy"}`))
		require.Equal(t, 200, o.do(t, "DELETE", "/object/b/orig", o.service, "").Status)
		admin(t, o.db, `delete from storage.objects where bucket_id = 'b' and name = 'sqldel'`)
		require.Equal(t, 200, o.do(t, "DELETE", "/object/b/restdel", o.service, "").Status)
		requireMoved(t, o.move(t, o.service, `{"bucketId":"b","sourceKey":"moved","destinationKey":"m/moved"}`))
		var n int64
		require.NoError(t, o.db.Pool.QueryRow(context.Background(),
			`select storage.object_delete_prefix(bucket_id => 'b', prefix => 'f')`).Scan(&n))
		require.EqualValues(t, 3, n)
		requireOKBody(t, o.do(t, "POST", "/bucket/e/empty", o.service, ""), msgEmptied)
		require.Eventually(t, func() bool { return objectCount(t, o.db, "e") == 0 }, 20*time.Second, 20*time.Millisecond)

		// Before collection every blob is still there, plus the overwrite's new one. Queued:
		// over's old bytes, orig (still used by copy), sqldel, restdel, f/1, f/2, f/g/3, x and
		// y/z; all but orig's are collectable.
		require.Len(t, storeKeys(t, o.blobs), all+1)
		require.Len(t, o.queued(t), 9)

		st := collect(t, o.newCollector(0))
		require.Equal(t, 8, st.Deleted)
		require.Zero(t, st.Failed)
		require.Equal(t, o.liveKeys(t), storeKeys(t, o.blobs), "the store must hold exactly the live blobs")
		require.Empty(t, o.queued(t))
		if fs, ok := o.blobs.(*file.Store); ok {
			tmp, err := os.ReadDir(filepath.Join(fs.Root(), file.TempDir))
			require.NoError(t, err)
			require.Empty(t, tmp)
		}

		// Every survivor downloads with its bytes; copy shares orig's blob.
		require.Equal(t, "new bytes", o.content(t, "b", "over"))
		require.Equal(t, "bytes of orig", o.content(t, "b", "copy"))
		require.Equal(t, "bytes of moved", o.content(t, "b", "m/moved"))
		require.Equal(t, "bytes of f2/keep", o.content(t, "b", "f2/keep"))

		// Deleting the last reference of the shared blob frees it.
		require.Equal(t, 200, o.do(t, "DELETE", "/object/b/copy", o.service, "").Status)
		require.Equal(t, 1, collect(t, o.newCollector(0)).Deleted)
		require.Equal(t, o.liveKeys(t), storeKeys(t, o.blobs))
		require.Equal(t, 3, len(o.liveKeys(t)))
	})
}

func TestLifecycleRetentionAndRestore(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newObjEnv(t, be)
		o.mustUpload(t, "b", "a", "alpha")
		o.mustUpload(t, "b", "c", "gamma")
		before := storeKeys(t, o.blobs)
		// A "backup": the rows as they are now.
		admin(t, o.db, `create table public.backup as select * from storage.objects`)

		require.Equal(t, 200, o.do(t, "DELETE", "/object/b/a", o.service, "").Status)
		admin(t, o.db, `delete from storage.objects where name = 'c'`)
		requireAPIError(t, o.get(t, "/object/authenticated/b/a", o.service), 400, errNoSuchKey)

		// Inside the retention window nothing is deleted.
		st := collect(t, o.newCollector(time.Hour))
		require.Zero(t, st.Deleted)
		require.Equal(t, before, storeKeys(t, o.blobs))
		require.Len(t, o.queued(t), 2)

		// Restore the rows (as a PITR or a backup would): they download again, and the
		// collector, even with no retention left, drops their queue entries and keeps the blobs.
		admin(t, o.db, `insert into storage.objects (id, bucket_id, name, owner, owner_id, version, metadata,
			user_metadata, created_at, updated_at, last_accessed_at)
			select id, bucket_id, name, owner, owner_id, version, metadata, user_metadata, created_at,
			updated_at, last_accessed_at from public.backup`)
		require.Equal(t, "alpha", o.content(t, "b", "a"))
		require.Equal(t, "gamma", o.content(t, "b", "c"))
		st = collect(t, o.newCollector(0))
		require.Zero(t, st.Deleted)
		require.Empty(t, o.queued(t))
		require.Equal(t, before, storeKeys(t, o.blobs))
		require.Equal(t, "alpha", o.content(t, "b", "a"))
	})
}

// countingStore counts Delete calls per key and slows them down, so that racing collectors
// overlap.
type countingStore struct {
	blob.Store
	mu      sync.Mutex
	deletes map[string]int
}

func (c *countingStore) Delete(ctx context.Context, key string) error {
	time.Sleep(2 * time.Millisecond)
	c.mu.Lock()
	c.deletes[key]++
	c.mu.Unlock()
	return c.Store.Delete(ctx, key)
}

func TestLifecycleTwoCollectorsAtOnce(t *testing.T) {
	t.Parallel()
	o := newObjEnv(t, objectBackends[0])
	// 60 objects; 40 are deleted, 20 (and a copy sharing one deleted object's blob) stay.
	for i := range 60 {
		o.mustUpload(t, "b", fmt.Sprintf("k%02d", i), fmt.Sprintf("content %d", i))
	}
	requireOKJSON(t, o.copyObject(t, o.service, `{"bucketId":"b","sourceKey":"k00","destinationKey":"shared"}`))
	admin(t, o.db, `delete from storage.objects where name < 'k40'`)
	live := o.liveKeys(t)
	require.Len(t, live, 21)

	counter := &countingStore{Store: o.blobs, deletes: map[string]int{}}
	var wg sync.WaitGroup
	leaders := make([]int, 2)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := o.newCollector(0)
			c.Blobs = counter
			for range 20 {
				st, err := c.RunOnce(context.Background())
				if !assertNoError(t, err) {
					return
				}
				if st.Leader {
					leaders[w]++
				}
			}
		}()
	}
	wg.Wait()
	require.Positive(t, leaders[0]+leaders[1])
	require.Len(t, counter.deletes, 39, "every freed blob but the shared one is deleted")
	for k, n := range counter.deletes {
		require.Equal(t, 1, n, "blob %s deleted %d times", k, n)
		require.NotContains(t, live, k, "a live blob was deleted")
	}
	require.Equal(t, live, storeKeys(t, o.blobs))
	require.Equal(t, "content 0", o.content(t, "b", "shared"))
}

// assertNoError reports err from a goroutine (require must not be called off the test's
// goroutine) and says whether it was nil.
func assertNoError(t *testing.T, err error) bool {
	if err != nil {
		t.Errorf("unexpected error: %v", err)
		return false
	}
	return true
}

// failingStore fails Delete for keys in fail.
type failingStore struct {
	blob.Store
	fail map[string]bool
}

func (f failingStore) Delete(ctx context.Context, key string) error {
	if f.fail[key] {
		return fmt.Errorf("injected failure for %s", key)
	}
	return f.Store.Delete(ctx, key)
}

func TestLifecycleFailedDeleteIsRetried(t *testing.T) {
	t.Parallel()
	o := newObjEnv(t, objectBackends[0])
	o.mustUpload(t, "b", "a", "a")
	o.mustUpload(t, "b", "b", "b")
	va := o.version(t, "b", "a")
	admin(t, o.db, `delete from storage.objects`)

	c := o.newCollector(0)
	c.Blobs = failingStore{o.blobs, map[string]bool{blob.VersionKey(va): true}}
	st := collect(t, c)
	require.Equal(t, 1, st.Deleted)
	require.Equal(t, 1, st.Failed)
	require.Equal(t, []string{va}, o.queued(t))
	row := o.column(t, `select attempts || ' ' || last_error || ' ' || (retry_at > now()) from storage.blobs_freed`)
	require.Equal(t, []string{"1 injected failure for " + blob.VersionKey(va) + " true"}, row)
	require.Equal(t, []string{blob.VersionKey(va)}, storeKeys(t, o.blobs))

	// Still backing off: the next run leaves it; once due, a working store deletes it.
	require.Zero(t, collect(t, o.newCollector(0)).Deleted)
	admin(t, o.db, `update storage.blobs_freed set retry_at = now() - interval '1 second'`)
	require.Equal(t, 1, collect(t, o.newCollector(0)).Deleted)
	require.Empty(t, storeKeys(t, o.blobs))
	require.Empty(t, o.queued(t))
}

func TestLifecycleCollectorExpiresStaleUploads(t *testing.T) {
	t.Parallel()
	o := newObjEnv(t, objectBackends[0])
	// An upload in flight whose server died: its entry and a partial blob.
	var version string
	require.NoError(t, o.db.Pool.QueryRow(context.Background(), `select version from storage_internal.object_upload_prepare('b', 'lost')`).Scan(&version))
	require.NoError(t, o.blobs.Put(context.Background(), blob.VersionKey(version), strings.NewReader("part"), 4))
	var young string
	require.NoError(t, o.db.Pool.QueryRow(context.Background(), `select version from storage_internal.object_upload_prepare('b', 'young')`).Scan(&young))
	admin(t, o.db, `update storage.blob_uploads set started_at = now() - interval '2 hours' where version = $1`, version)

	c := o.newCollector(0)
	c.UploadExpiry = time.Hour
	st := collect(t, c)
	require.Equal(t, 1, st.Expired)
	require.Equal(t, 1, st.Deleted)
	require.Equal(t, []string{young}, o.inFlight(t))
	require.Empty(t, storeKeys(t, o.blobs))
}

func TestLifecycleEmptyJobSurvivesRestart(t *testing.T) {
	t.Parallel()
	// No collector kicks: the job waits, durable, for whichever server works next.
	o := newObjEnv(t, objectBackends[0], func(c *serverConfig) { c.EmptyQueued = func() {} })
	for i := range 25 {
		o.mustUpload(t, "b", fmt.Sprintf("f/%02d", i), "x")
	}
	requireOKBody(t, o.do(t, "POST", "/bucket/b/empty", o.service, ""), msgEmptied)
	require.Equal(t, []string{"b service_role 0 false"},
		o.column(t, `select bucket_id || ' ' || role || ' ' || deleted || ' ' || (finished_at is not null) from storage.bucket_empty_jobs`))
	require.Equal(t, 25, objectCount(t, o.db, "b"))

	st := collect(t, o.newCollector(0))
	require.EqualValues(t, 25, st.EmptyDeleted)
	require.Equal(t, 1, st.EmptyDone)
	require.Equal(t, 25, st.Deleted)
	require.Zero(t, objectCount(t, o.db, "b"))
	require.Empty(t, storeKeys(t, o.blobs))
	require.Equal(t, []string{"25 true"},
		o.column(t, `select deleted || ' ' || (finished_at is not null) from storage.bucket_empty_jobs`))
	requireOKBody(t, o.do(t, "DELETE", "/bucket/b", o.service, ""), msgDeleted)
}

func TestLifecycleReconcile(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newObjEnv(t, be)
		ctx := context.Background()
		o.mustUpload(t, "b", "live", "live bytes")
		o.mustUpload(t, "b", "lost", "lost bytes")
		o.mustUpload(t, "b", "queued", "queued bytes")
		// A row whose blob an operator deleted by hand.
		lost := o.version(t, "b", "lost")
		require.NoError(t, o.blobs.Delete(ctx, blob.VersionKey(lost)))
		// A freed blob inside its retention window: not an orphan.
		queued := o.version(t, "b", "queued")
		admin(t, o.db, `delete from storage.objects where name = 'queued'`)
		// An orphan: bytes no row, queue entry or upload knows.
		orphan := blob.VersionKey("0123456789abcdef0123456789abcdef")
		require.NoError(t, o.blobs.Put(ctx, orphan, strings.NewReader("orphan"), 6))
		// A stale upload (its server died) with a partial blob, and a leftover of a Put cut
		// short: a temporary file, or an unfinished multipart upload.
		var stale string
		require.NoError(t, o.db.Pool.QueryRow(ctx, `select version from storage_internal.object_upload_prepare('b', 'cut')`).Scan(&stale))
		admin(t, o.db, `update storage.blob_uploads set started_at = now() - interval '2 hours'`)
		require.NoError(t, o.blobs.Put(ctx, blob.VersionKey(stale), strings.NewReader("partial"), 7))
		makeLeftover(t, o.blobs)

		// With the default grace everything young is left alone, even in report mode.
		var out strings.Builder
		r, err := lifecycle.Reconcile(ctx, o.db.Pool, o.blobs, lifecycle.ReconcileOptions{Grace: time.Hour, Out: &out})
		require.NoError(t, err)
		require.Equal(t, lifecycle.Report{StaleUploads: 1, MissingBlobs: 1}, r, out.String())

		// Report mode changes nothing.
		keys := storeKeys(t, o.blobs)
		out.Reset()
		r, err = lifecycle.Reconcile(ctx, o.db.Pool, o.blobs, lifecycle.ReconcileOptions{Grace: 0, Out: &out})
		require.NoError(t, err)
		require.Equal(t, lifecycle.Report{StaleUploads: 1, Leftovers: 1, Orphans: 1, OrphanBytes: 6, MissingBlobs: 1}, r, out.String())
		require.Contains(t, out.String(), "missing blob  b/lost version "+lost)
		require.Contains(t, out.String(), "orphan blob   "+orphan+" 6 bytes")
		require.Contains(t, out.String(), "stale upload  b/cut version "+stale)
		require.Equal(t, keys, storeKeys(t, o.blobs))
		require.Equal(t, []string{stale}, o.inFlight(t))
		require.Equal(t, 1, countLeftovers(t, o.blobs))

		// Apply repairs all but the missing blob, which stays reported.
		out.Reset()
		r, err = lifecycle.Reconcile(ctx, o.db.Pool, o.blobs, lifecycle.ReconcileOptions{Grace: 0, Apply: true, Out: &out})
		require.NoError(t, err)
		require.Equal(t, lifecycle.Report{StaleUploads: 1, Leftovers: 1, Orphans: 1, OrphanBytes: 6, MissingBlobs: 1}, r, out.String())
		require.Zero(t, countLeftovers(t, o.blobs))
		require.Empty(t, o.inFlight(t))
		require.Equal(t, []string{"b/live", "b/lost"}, o.objectNames(t))
		want := []string{blob.VersionKey(o.version(t, "b", "live")), blob.VersionKey(queued)}
		slices.Sort(want)
		require.Equal(t, want, storeKeys(t, o.blobs))
		require.Equal(t, []string{queued}, o.queued(t))
		// A commit of the expired upload is refused: no row can point at its deleted blob.
		_, err = o.db.Pool.Exec(ctx, `select storage_internal.object_upload_commit(bucket_id => 'b', name => 'cut', version => $1,
			upsert => false, owner_id => null, size => 7, md5 => 'x', mimetype => 'text/plain', cache_control => null,
			user_metadata => null)`, stale)
		require.ErrorContains(t, err, "no longer in progress")

		out.Reset()
		r, err = lifecycle.Reconcile(ctx, o.db.Pool, o.blobs, lifecycle.ReconcileOptions{Grace: 0, Apply: true, Out: &out})
		require.NoError(t, err)
		require.Equal(t, lifecycle.Report{MissingBlobs: 1}, r, out.String())
	})
}

// putVariants puts a cached variant of version under each name (as the renderer caches them,
// blob.VariantKey) and returns their keys.
func putVariants(t *testing.T, s blob.Store, version string, names ...string) []string {
	t.Helper()
	var keys []string
	for _, name := range names {
		key := blob.VariantKey(version, name)
		require.NoError(t, s.Put(context.Background(), key, strings.NewReader("variant "+name), int64(len("variant "+name))))
		keys = append(keys, key)
	}
	return keys
}

// TestLifecycleCollectorDeletesVariants: a freed version's cached variants go with its blob in
// one run; the variants of versions still referenced (by a row, or by a copy whose source was
// deleted) stay.
func TestLifecycleCollectorDeletesVariants(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newObjEnv(t, be)
		o.mustUpload(t, "b", "gone", "gone bytes")
		o.mustUpload(t, "b", "live", "live bytes")
		o.mustUpload(t, "b", "orig", "shared bytes")
		requireOKJSON(t, o.copyObject(t, o.service, `{"bucketId":"b","sourceKey":"orig","destinationKey":"copy"}`))
		gone, live, shared := o.version(t, "b", "gone"), o.version(t, "b", "live"), o.version(t, "b", "orig")
		putVariants(t, o.blobs, gone, "1a2b.webp", "3c4d.png")
		liveVariants := putVariants(t, o.blobs, live, "5e6f.webp")
		sharedVariants := putVariants(t, o.blobs, shared, "7a8b.avif")
		require.Len(t, storeKeys(t, o.blobs), 7)

		require.Equal(t, 200, o.do(t, "DELETE", "/object/b/gone", o.service, "").Status)
		require.Equal(t, 200, o.do(t, "DELETE", "/object/b/orig", o.service, "").Status)
		require.Equal(t, sorted([]string{gone, shared}), o.queued(t))

		st := collect(t, o.newCollector(0))
		require.Equal(t, 1, st.Deleted)
		require.Equal(t, 2, st.Variants)
		require.Zero(t, st.Failed)
		require.Empty(t, o.queued(t))
		want := append(o.liveKeys(t), liveVariants[0], sharedVariants[0])
		slices.Sort(want)
		require.Equal(t, want, storeKeys(t, o.blobs), "the freed version's blob and variants are gone, the others stay")
		require.Empty(t, listPrefix(t, o.blobs, blob.VariantPrefix(gone)))
		if fs, ok := o.blobs.(*file.Store); ok {
			require.NoDirExists(t, filepath.Join(fs.Root(), filepath.FromSlash(blob.VariantPrefix(gone))))
		}
		require.Equal(t, "live bytes", o.content(t, "b", "live"))
		require.Equal(t, "shared bytes", o.content(t, "b", "copy"))
	})
}

// TestLifecycleFailedVariantDeleteIsRetried: a variant that cannot be deleted fails its
// version's delete like its blob would: the version's blob stays (variants go first), the
// queue entry stays with the error, and a later run finishes the job.
func TestLifecycleFailedVariantDeleteIsRetried(t *testing.T) {
	t.Parallel()
	o := newObjEnv(t, objectBackends[0])
	o.mustUpload(t, "b", "a", "a")
	va := o.version(t, "b", "a")
	keys := putVariants(t, o.blobs, va, "1.webp", "2.webp")
	admin(t, o.db, `delete from storage.objects`)

	c := o.newCollector(0)
	c.Blobs = failingStore{o.blobs, map[string]bool{keys[1]: true}}
	st := collect(t, c)
	require.Zero(t, st.Deleted)
	require.Equal(t, 1, st.Failed)
	require.Equal(t, []string{va}, o.queued(t))
	require.Equal(t, []string{"1 true"}, o.column(t, `select attempts || ' ' || (retry_at > now()) from storage.blobs_freed`))
	require.Equal(t, []string{"delete the variants of version " + va + ": injected failure for " + keys[1]},
		o.column(t, `select last_error from storage.blobs_freed`))
	require.Equal(t, []string{blob.VersionKey(va), keys[1]}, storeKeys(t, o.blobs))

	admin(t, o.db, `update storage.blobs_freed set retry_at = now() - interval '1 second'`)
	st = collect(t, o.newCollector(0))
	require.Equal(t, 1, st.Deleted)
	require.Equal(t, 1, st.Variants)
	require.Empty(t, storeKeys(t, o.blobs))
	require.Empty(t, o.queued(t))
}

// TestLifecycleReconcileVariants: a cached variant whose source version nothing references (a
// render that finished as its source was freed) is an orphan once older than the grace period:
// reported, and deleted with Apply. The variants of versions a row, a queue entry or an upload
// in flight references are left alone, and a stale upload's variants go with its blob.
func TestLifecycleReconcileVariants(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newObjEnv(t, be)
		ctx := context.Background()
		o.mustUpload(t, "b", "live", "live bytes")
		o.mustUpload(t, "b", "queued", "queued bytes")
		live, queued := o.version(t, "b", "live"), o.version(t, "b", "queued")
		admin(t, o.db, `delete from storage.objects where name = 'queued'`)
		var stale string
		require.NoError(t, o.db.Pool.QueryRow(ctx, `select version from storage_internal.object_upload_prepare('b', 'cut')`).Scan(&stale))
		admin(t, o.db, `update storage.blob_uploads set started_at = now() - interval '2 hours'`)
		require.NoError(t, o.blobs.Put(ctx, blob.VersionKey(stale), strings.NewReader("partial"), 7))

		const orphan = "0badc0de-0000-4000-8000-000000000000"
		orphanKeys := putVariants(t, o.blobs, orphan, "1.webp", "2.webp") // 14 bytes each
		liveKeys := putVariants(t, o.blobs, live, "3.webp")
		queuedKeys := putVariants(t, o.blobs, queued, "4.webp")
		staleKeys := putVariants(t, o.blobs, stale, "5.webp")

		// Young, every variant is left alone and counted.
		var out strings.Builder
		r, err := lifecycle.Reconcile(ctx, o.db.Pool, o.blobs, lifecycle.ReconcileOptions{Grace: time.Hour, Out: &out})
		require.NoError(t, err)
		require.Equal(t, lifecycle.Report{StaleUploads: 1, Variants: 5, VariantBytes: 70}, r, out.String())
		require.Contains(t, r.Summary(false), "5 cached variants (70 bytes; deleted with their version)")

		// Older than the grace period, the orphan's variants are reported, and nothing changes.
		keys := storeKeys(t, o.blobs)
		out.Reset()
		r, err = lifecycle.Reconcile(ctx, o.db.Pool, o.blobs, lifecycle.ReconcileOptions{Grace: 0, Out: &out})
		require.NoError(t, err)
		require.Equal(t, lifecycle.Report{StaleUploads: 1, Orphans: 2, OrphanBytes: 28, Variants: 3, VariantBytes: 42}, r, out.String())
		for _, k := range orphanKeys {
			require.Contains(t, out.String(), "orphan blob   "+k+" 14 bytes written ")
		}
		require.Contains(t, out.String(), ", a variant of version "+orphan+", which nothing references\n")
		require.NotContains(t, out.String(), "render/"+live[:2]+"/"+live)
		require.Equal(t, keys, storeKeys(t, o.blobs))

		// Apply deletes them, and ends the stale upload with its variant; the others stay.
		out.Reset()
		r, err = lifecycle.Reconcile(ctx, o.db.Pool, o.blobs, lifecycle.ReconcileOptions{Grace: 0, Apply: true, Out: &out})
		require.NoError(t, err)
		require.Equal(t, lifecycle.Report{StaleUploads: 1, Orphans: 2, OrphanBytes: 28, Variants: 2, VariantBytes: 28}, r, out.String())
		require.Contains(t, out.String(), "which nothing references — deleted\n")
		want := []string{blob.VersionKey(live), blob.VersionKey(queued), liveKeys[0], queuedKeys[0]}
		slices.Sort(want)
		require.Equal(t, want, storeKeys(t, o.blobs))
		require.Empty(t, listPrefix(t, o.blobs, blob.VariantPrefix(stale)), "the stale upload's variant %s", staleKeys[0])

		out.Reset()
		r, err = lifecycle.Reconcile(ctx, o.db.Pool, o.blobs, lifecycle.ReconcileOptions{Grace: 0, Apply: true, Out: &out})
		require.NoError(t, err)
		require.Equal(t, lifecycle.Report{Variants: 2, VariantBytes: 28}, r, out.String())
	})
}

// TestLifecycleReconcileVariantsPoolOfOne: judging variants needs the database while the merge
// holds a connection for its reading; with a pool of one connection (DATABASE_MAX_CONNECTIONS=1)
// reconcile still finishes. The deadline only turns a hang into a failure.
func TestLifecycleReconcileVariantsPoolOfOne(t *testing.T) {
	t.Parallel()
	o := newObjEnv(t, objectBackends[0])
	o.mustUpload(t, "b", "live", "live bytes")
	live := o.version(t, "b", "live")
	putVariants(t, o.blobs, live, "1.webp")
	orphan := putVariants(t, o.blobs, "0badc0de-0000-4000-8000-000000000000", "2.webp")

	pc, err := pgxpool.ParseConfig(o.db.URL)
	require.NoError(t, err)
	pc.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	require.NoError(t, err)
	defer pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out strings.Builder
	r, err := lifecycle.Reconcile(ctx, pool, o.blobs, lifecycle.ReconcileOptions{Grace: 0, Apply: true, Out: &out})
	require.NoError(t, err)
	require.Equal(t, lifecycle.Report{Orphans: 1, OrphanBytes: 14, Variants: 1, VariantBytes: 14}, r, out.String())
	require.Equal(t, []string{blob.VersionKey(live), blob.VariantKey(live, "1.webp")}, storeKeys(t, o.blobs))
	require.NotContains(t, storeKeys(t, o.blobs), orphan[0])
}

// listPrefix lists the keys under prefix.
func listPrefix(t *testing.T, s blob.Store, prefix string) []string {
	t.Helper()
	var keys []string
	require.NoError(t, s.List(context.Background(), prefix, func(b blob.Info) error {
		keys = append(keys, b.Key)
		return nil
	}))
	return keys
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

// makeLeftover leaves what a Put killed mid-way leaves: a temporary file in the file store, an
// unfinished multipart upload in S3.
func makeLeftover(t *testing.T, s blob.Store) {
	t.Helper()
	switch s := s.(type) {
	case *file.Store:
		f, err := os.CreateTemp(filepath.Join(s.Root(), file.TempDir), "put-*")
		require.NoError(t, err)
		_, err = f.WriteString("half a blob")
		require.NoError(t, err)
		require.NoError(t, f.Close())
	case *s3.Store:
		bucket, prefix := s.Bucket()
		_, err := s.Client().CreateMultipartUpload(context.Background(), &awss3.CreateMultipartUploadInput{
			Bucket: &bucket, Key: ptr(prefix + "ab/ab00000000000000000000000000cut"),
		})
		require.NoError(t, err)
	default:
		t.Fatalf("makeLeftover: unknown store %T", s)
	}
}

func countLeftovers(t *testing.T, s blob.Store) (n int) {
	t.Helper()
	require.NoError(t, s.Leftovers(context.Background(), func(blob.Leftover) error { n++; return nil }))
	return n
}
