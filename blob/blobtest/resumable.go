package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
)

// MaxAppendAlloc bounds what one Append of 64 MiB may allocate (runtime.MemStats.TotalAlloc
// growth): a store streams a body to disk (the file store) or spools one part at a time to a
// temporary file (S3), through copy buffers, so a resumable upload of any size costs the server
// no memory that grows with it.
const MaxAppendAlloc = 4 * mib

// RunResumable runs the resumable-upload suite against stores that implement blob.Resumable.
// newStore is called once per subtest and must return an empty store of its own. Like Run,
// the memory check runs first and alone among the suite's subtests; the rest run in parallel.
func RunResumable(t *testing.T, newStore func(t *testing.T) blob.Store) {
	t.Run("AppendMemory", func(t *testing.T) { testAppendMemory(t, newStore(t)) })
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, st blob.Store)
	}{
		{"Chunks", testResumableChunks},
		{"ShortBody", testResumableShortBody},
		{"ReaderError", testResumableReaderError},
		{"Canceled", testResumableCanceled},
		{"Unrecorded", testResumableUnrecorded},
		{"FinishExists", testResumableFinishExists},
		{"FinishEmpty", testResumableFinishEmpty},
		{"FinishAgain", testResumableFinishAgain},
		{"Discard", testResumableDiscard},
		{"Invisible", testResumableInvisible},
		{"RemoveLeftover", testResumableRemoveLeftover},
		{"Missing", testResumableMissing},
		{"Concurrent", testResumableConcurrent},
		{"InvalidKeys", testResumableInvalidKeys},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

func resumable(t *testing.T, st blob.Store) blob.Resumable {
	t.Helper()
	r, ok := st.(blob.Resumable)
	require.True(t, ok, "%T does not implement blob.Resumable", st)
	return r
}

// piece is a run of NewGen(seed, n)'s bytes; an upload's expected blob is a list of them.
type piece struct {
	seed uint64
	n    int64
}

// upload drives one resumable upload the way the server does: it keeps the recorded progress
// and checks each Append's result, and it remembers the pieces the blob must end up holding.
type upload struct {
	t      *testing.T
	rs     blob.Resumable
	key    string
	offset int64
	state  string
	pieces []piece
}

func newUpload(t *testing.T, st blob.Store, key string) *upload {
	return &upload{t: t, rs: resumable(t, st), key: key}
}

// add appends n bytes of seed, of known size or not, and records the result.
func (u *upload) add(seed uint64, n int64, known bool) {
	u.t.Helper()
	size := int64(-1)
	if known {
		size = n
	}
	off, state, err := u.rs.Append(u.t.Context(), u.key, u.state, u.offset, Chunked(NewGen(seed, n), 100003), size)
	require.NoError(u.t, err, "append %d bytes at %d", n, u.offset)
	require.Equal(u.t, u.offset+n, off, "offset after appending %d bytes at %d", n, u.offset)
	u.record(off, state, piece{seed, n})
}

// record takes an Append's result as the caller records it, the bytes it added being p.
func (u *upload) record(off int64, state string, p piece) {
	u.offset, u.state = off, state
	if p.n > 0 {
		u.pieces = append(u.pieces, p)
	}
}

// lost runs an Append whose result is never recorded: the server died before it could.
func (u *upload) lost(seed uint64, n int64) {
	u.t.Helper()
	off, _, err := u.rs.Append(u.t.Context(), u.key, u.state, u.offset, NewGen(seed, n), n)
	require.NoError(u.t, err)
	require.Equal(u.t, u.offset+n, off)
}

func (u *upload) finish() {
	u.t.Helper()
	require.NoError(u.t, u.rs.Finish(u.t.Context(), u.key, u.state, u.offset))
	requirePieces(u.t, blobOf(u.rs), u.key, u.pieces)
}

func blobOf(rs blob.Resumable) blob.Store { return rs.(blob.Store) }

// requirePieces checks that key holds exactly the pieces' bytes, streaming both sides.
func requirePieces(t *testing.T, st blob.Store, key string, pieces []piece) {
	t.Helper()
	var total int64
	want := sha256.New()
	for _, p := range pieces {
		total += p.n
		_, err := io.Copy(want, NewGen(p.seed, p.n))
		require.NoError(t, err)
	}
	size, err := st.Size(t.Context(), key)
	require.NoError(t, err)
	require.Equal(t, total, size, "size of %q", key)
	rc, err := st.Get(t.Context(), key, 0, -1)
	require.NoError(t, err)
	defer rc.Close()
	got := sha256.New()
	_, err = io.Copy(got, rc)
	require.NoError(t, err)
	require.Equal(t, want.Sum(nil), got.Sum(nil), "bytes of %q differ", key)
}

// requireNoPartials checks that no partial blob (nor any other leftover) remains. It may run
// in a Cleanup, once t.Context() is done.
func requireNoPartials(t *testing.T, st blob.Store) {
	t.Helper()
	var ls []blob.Leftover
	require.NoError(t, st.Leftovers(context.Background(), func(l blob.Leftover) error {
		ls = append(ls, l)
		return nil
	}))
	require.Empty(t, ls, "leftovers")
}

// testAppendMemory appends 64 MiB in one Append, of unknown and of known size: a store must
// not hold a part (let alone the body) in memory.
func testAppendMemory(t *testing.T, st blob.Store) {
	rs := resumable(t, st)
	ctx := t.Context()
	// Warm up: connections, lazily built clients, pools.
	_, state, err := rs.Append(ctx, "warmup", "", 0, NewGen(1, 6*mib), -1)
	require.NoError(t, err)
	require.NoError(t, rs.Discard(ctx, "warmup", state))

	for i, known := range []bool{false, true} {
		const n = 64 * mib
		size := int64(-1)
		if known {
			size = n
		}
		// As in testPutMemory: the best of up to measureAttempts cold measurements, since MemStats
		// counts every goroutine's allocations.
		best := uint64(math.MaxUint64)
		for attempt := range measureAttempts {
			key := fmt.Sprintf("mem-%v-%d", known, attempt)
			runtime.GC()
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			off, state, err := rs.Append(ctx, key, "", 0, NewGen(uint64(i), n), size)
			runtime.ReadMemStats(&after)
			require.NoError(t, err)
			require.EqualValues(t, n, off)
			best = min(best, after.TotalAlloc-before.TotalAlloc)
			t.Logf("Append of %s allocated %.2f MiB (limit %.2f MiB)", key,
				float64(after.TotalAlloc-before.TotalAlloc)/mib, float64(MaxAppendAlloc)/mib)
			require.NoError(t, rs.Finish(ctx, key, state, off))
			requireGen(t, st, key, uint64(i), n)
			if best <= MaxAppendAlloc {
				break
			}
		}
		assert.LessOrEqual(t, best, uint64(MaxAppendAlloc), "Append (known size %v) allocated more than the bound", known)
	}
}

// testResumableChunks: uploads cut into chunks of many sizes, below S3's 5 MiB minimum part
// size and across part boundaries, of known and unknown size, make exactly their bytes.
func testResumableChunks(t *testing.T, st blob.Store) {
	for _, tc := range []struct {
		name   string
		chunks []int64
	}{
		{"Tiny", []int64{1, 1000, 3 * kib}},
		{"SixMiB", []int64{6 * mib, 6 * mib, mib}},
		// 20 MiB as 6 MiB + 1 KiB + 7 MiB + the rest: a part, a tail, a tail-and-body part,
		// and a last piece.
		{"CrossParts", []int64{6 * mib, kib, 7 * mib, 20*mib - 13*mib - kib}},
		{"OneLong", []int64{20*mib + 3}},
		{"SmallThenLong", []int64{3 * mib, 17 * mib}},
		{"Empties", []int64{0, 5, 0, 3, 0}},
		{"ManySmall", []int64{700 * kib, 700 * kib, 700 * kib, 700 * kib, 700 * kib, 700 * kib, 700 * kib, 700 * kib}},
	} {
		for _, known := range []bool{false, true} {
			name := tc.name + map[bool]string{false: "UnknownSize", true: "KnownSize"}[known]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				u := newUpload(t, st, name)
				for i, n := range tc.chunks {
					// Alternate known and unknown sizes within one upload too.
					u.add(uint64(i+1), n, known == (i%2 == 0))
					requireNotFound(t, st, name)
				}
				u.finish()
			})
		}
	}
	// Every upload finished: no partial blob remains.
	t.Cleanup(func() { requireNoPartials(t, st) })
}

// testResumableShortBody: a body that ends before its announced size is not an error: Append
// reports what it got.
func testResumableShortBody(t *testing.T, st blob.Store) {
	u := newUpload(t, st, "short")
	off, state, err := u.rs.Append(t.Context(), u.key, u.state, u.offset, NewGen(1, 3000), 5000)
	require.NoError(t, err)
	require.EqualValues(t, 3000, off)
	u.record(off, state, piece{1, 3000})
	u.add(2, 1000, true)
	u.finish()
	requireNoPartials(t, st)
}

// testResumableReaderError: a body that breaks off keeps what was read (durable, in the
// returned size and state) and fails with the reader's error; the next Append continues from
// there.
func testResumableReaderError(t *testing.T, st blob.Store) {
	for _, tc := range []struct {
		name   string
		before int64 // appended first
		after  int64 // bytes the failing body yields before its error
		size   int64 // announced size of the failing body: -1 or more than after
	}{
		{"Immediately", 0, 0, -1},
		{"ImmediatelyAfterATail", 3 * kib, 0, 100},
		{"Small", 3 * kib, 1000, -1},
		{"MakesAPart", 3 * kib, 7 * mib, 8 * mib},
		{"Long", 6 * mib, 20 * mib, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := newUpload(t, st, tc.name)
			if tc.before > 0 {
				u.add(1, tc.before, true)
			}
			off, state, err := u.rs.Append(t.Context(), u.key, u.state, u.offset, FailAfter(NewGen(2, tc.after), errBoom), tc.size)
			require.ErrorIs(t, err, errBoom)
			require.Equal(t, u.offset+tc.after, off, "the bytes read before the error are kept")
			u.record(off, state, piece{2, tc.after})
			requireNotFound(t, st, tc.name)
			u.add(3, 2*mib, false)
			u.finish()
		})
	}
	t.Cleanup(func() { requireNoPartials(t, st) })
}

// testResumableCanceled: the request's context ends (the client went away): before the Append,
// nothing changes; midway, what was read is kept as if the body had failed.
func testResumableCanceled(t *testing.T, st blob.Store) {
	t.Run("Before", func(t *testing.T) {
		t.Parallel()
		u := newUpload(t, st, "before")
		u.add(1, 3*kib, true)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		off, state, err := u.rs.Append(ctx, u.key, u.state, u.offset, NewGen(2, 10), -1)
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, u.offset, off)
		require.Equal(t, u.state, state)
		u.add(3, 100, true)
		u.finish()
	})
	for _, tc := range []struct {
		name          string
		before, after int64
	}{
		{"Small", 3 * kib, 1000},
		{"Large", 1000, 7 * mib},
		{"Longer", 6 * mib, 15 * mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := newUpload(t, st, tc.name)
			u.add(1, tc.before, true)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			// Keeps yielding bytes after the cancel: the store must notice the context. It may
			// read a little of the second run before it does: the returned size tells how much.
			body := io.MultiReader(NewGen(2, tc.after), cancelReader(cancel), NewGen(3, 20*mib))
			off, state, err := u.rs.Append(ctx, u.key, u.state, u.offset, body, -1)
			require.ErrorIs(t, err, context.Canceled)
			require.GreaterOrEqual(t, off, u.offset+tc.after, "the bytes read before the cancel are kept")
			require.Less(t, off, u.offset+tc.after+20*mib, "reading stopped")
			extra := off - u.offset - tc.after
			u.record(u.offset+tc.after, state, piece{2, tc.after})
			u.record(off, state, piece{3, extra})
			u.add(4, mib, false)
			u.finish()
		})
	}
	t.Cleanup(func() { requireNoPartials(t, st) })
}

// testResumableUnrecorded: Appends whose results were never recorded (the server died after
// the Append, before the database knew) are followed by Appends from the recorded progress
// with other bytes, of other lengths: the blob holds the recorded bytes only. The lost Appends
// leave behind a longer file, a part past the recorded ones, tails of other lengths and of the
// same length as the recorded one's.
func testResumableUnrecorded(t *testing.T, st blob.Store) {
	u := newUpload(t, st, "ab/unrecorded")
	u.lost(90, 9*mib) // before anything was recorded
	u.add(1, 3*kib, true)
	u.lost(91, 9*mib) // a part made of the tail and its bytes
	u.lost(92, 2*kib) // a tail at the end the next recorded Append's has
	u.add(2, 2*kib, false)
	u.lost(93, 2*kib) // same end once more
	u.add(3, 6*mib, true)
	u.lost(94, 14*mib) // parts past the recorded ones
	u.add(4, kib, false)
	u.lost(95, 7*mib)
	// Finish from the recorded progress: the lost parts and tails are not in the blob.
	u.finish()
	requireNoPartials(t, st)
}

// testResumableFinishExists: a key that holds a blob is never overwritten: Finish fails with
// ErrExists and leaves both the blob and the partial blob, which Discard then removes.
func testResumableFinishExists(t *testing.T, st blob.Store) {
	for _, tc := range []struct {
		name   string
		chunks []int64
	}{
		{"Tail", []int64{3 * kib}},
		{"Parts", []int64{6 * mib, kib}},
		{"Empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			orig := Bytes(100, 7)
			require.NoError(t, st.Put(ctx, tc.name, Reader(bytes.NewReader(orig)), 100))
			u := newUpload(t, st, tc.name)
			for i, n := range tc.chunks {
				u.add(uint64(i), n, true)
			}
			err := u.rs.Finish(ctx, u.key, u.state, u.offset)
			require.ErrorIs(t, err, blob.ErrExists)
			requireBlob(t, st, tc.name, orig)
			require.NoError(t, u.rs.Discard(ctx, u.key, u.state))
			requireBlob(t, st, tc.name, orig)
		})
	}
	t.Cleanup(func() { requireNoPartials(t, st) })
}

// testResumableFinishEmpty: an upload of no bytes makes an empty blob, whether an empty
// Append ran or none did.
func testResumableFinishEmpty(t *testing.T, st blob.Store) {
	ctx := t.Context()
	rs := resumable(t, st)
	require.NoError(t, rs.Finish(ctx, "none", "", 0))
	requireBlob(t, st, "none", []byte{})

	off, state, err := rs.Append(ctx, "emptyappend", "", 0, NewGen(1, 0), 0)
	require.NoError(t, err)
	require.Zero(t, off)
	require.NoError(t, rs.Finish(ctx, "emptyappend", state, 0))
	requireBlob(t, st, "emptyappend", []byte{})
	require.Equal(t, []string{"emptyappend", "none"}, keysOf(list(t, st)))
	requireNoPartials(t, st)
}

// testResumableFinishAgain: a Finish whose result was not recorded is run again: it succeeds
// and the blob stays as it is.
func testResumableFinishAgain(t *testing.T, st blob.Store) {
	for _, tc := range []struct {
		name   string
		chunks []int64
	}{
		{"Tail", []int64{3 * kib}},
		{"Parts", []int64{6 * mib, kib}},
		{"Empty", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := newUpload(t, st, tc.name)
			for i, n := range tc.chunks {
				u.add(uint64(i), n, true)
			}
			u.finish()
			u.finish()
		})
	}
	t.Cleanup(func() { requireNoPartials(t, st) })
}

// testResumableDiscard: Discard removes the partial blob, whatever it is made of, and again
// is no error; an Append past offset 0 then finds nothing.
func testResumableDiscard(t *testing.T, st blob.Store) {
	ctx := t.Context()
	rs := resumable(t, st)
	require.NoError(t, rs.Discard(ctx, "never", ""), "a partial blob that never was")
	for _, tc := range []struct {
		name   string
		chunks []int64
	}{
		{"Tail", []int64{3 * kib}},
		{"Part", []int64{6 * mib}},
		{"PartsAndTail", []int64{6 * mib, kib}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := newUpload(t, st, "d/"+tc.name)
			for i, n := range tc.chunks {
				u.add(uint64(i), n, true)
			}
			u.lost(9, 6*mib)
			require.NoError(t, rs.Discard(ctx, u.key, u.state))
			require.NoError(t, rs.Discard(ctx, u.key, u.state), "again")
			for _, l := range leftovers(t, st) {
				require.NotEqual(t, u.key, l.Key, "a leftover of the discarded upload")
			}
			_, _, err := rs.Append(ctx, u.key, u.state, u.offset, NewGen(1, 10), 10)
			require.ErrorIs(t, err, blob.ErrNotFound)
			requireNotFound(t, st, u.key)
		})
	}
	t.Cleanup(func() {
		requireNoPartials(t, st)
		require.NoError(t, st.List(context.Background(), "", func(info blob.Info) error {
			return fmt.Errorf("a discarded upload made blob %q", info.Key)
		}))
	})
}

// testResumableInvisible: a partial blob is no blob (Get, Size, List do not see it) but a
// leftover, with its key, until Finish.
func testResumableInvisible(t *testing.T, st blob.Store) {
	ctx := t.Context()
	u := newUpload(t, st, "ab/partial")
	before := time.Now()
	u.add(1, 6*mib, true)
	u.add(2, kib, false)
	requireNotFound(t, st, u.key)
	require.Empty(t, list(t, st))
	left := leftovers(t, st)
	require.NotEmpty(t, left)
	for _, l := range left {
		require.Equal(t, u.key, l.Key)
		require.NotEmpty(t, l.ID)
		require.WithinDuration(t, before, l.Started, time.Minute)
	}
	// Leftovers stops at fn's first error.
	errStop := errors.New("stop")
	calls := 0
	require.Equal(t, errStop, st.Leftovers(ctx, func(blob.Leftover) error { calls++; return errStop }))
	require.Equal(t, 1, calls)
	u.finish()
	require.Equal(t, []string{u.key}, keysOf(list(t, st)))
	requireNoPartials(t, st)
}

// testResumableRemoveLeftover: the collector removes the partial blob of an upload it no
// longer has in flight through RemoveLeftover; the upload then finds nothing to continue.
func testResumableRemoveLeftover(t *testing.T, st blob.Store) {
	ctx := t.Context()
	u := newUpload(t, st, "ab/collected")
	u.add(1, 6*mib, true)
	u.add(2, kib, true)
	for _, l := range leftovers(t, st) {
		require.NoError(t, st.RemoveLeftover(ctx, l.ID))
		require.NoError(t, st.RemoveLeftover(ctx, l.ID), "again")
	}
	requireNoPartials(t, st)
	_, _, err := u.rs.Append(ctx, u.key, u.state, u.offset, NewGen(3, 10), 10)
	require.ErrorIs(t, err, blob.ErrNotFound)
	require.ErrorIs(t, u.rs.Finish(ctx, u.key, u.state, u.offset), blob.ErrNotFound)
	requireNotFound(t, st, u.key)
}

// testResumableMissing: an Append past offset 0 of a partial blob that was never created is
// ErrNotFound, even with an empty body.
func testResumableMissing(t *testing.T, st blob.Store) {
	ctx := t.Context()
	rs := resumable(t, st)
	for _, n := range []int64{0, 10, 6 * mib} {
		off, state, err := rs.Append(ctx, "missing", "", 1000, NewGen(1, n), n)
		require.ErrorIs(t, err, blob.ErrNotFound, "%d bytes", n)
		require.EqualValues(t, 1000, off)
		require.Empty(t, state)
	}
	require.ErrorIs(t, rs.Finish(ctx, "missing", "", 1000), blob.ErrNotFound)
	requireNotFound(t, st, "missing")
	requireNoPartials(t, st)
}

// testResumableConcurrent: uploads of different keys proceed side by side.
func testResumableConcurrent(t *testing.T, st blob.Store) {
	const n = 6
	var wg sync.WaitGroup
	ups := make([]*upload, n)
	for i := range n {
		ups[i] = newUpload(t, st, fmt.Sprintf("cc/%02d", i))
	}
	for round := range 3 {
		errs := make([]error, n)
		for i, u := range ups {
			wg.Go(func() {
				size := int64(100*kib + i*round)
				off, state, err := u.rs.Append(t.Context(), u.key, u.state, u.offset, NewGen(uint64(10*i+round), size), -1)
				if err == nil && off != u.offset+size {
					err = fmt.Errorf("offset %d, want %d", off, u.offset+size)
				}
				errs[i] = err
				u.record(off, state, piece{uint64(10*i + round), size})
			})
		}
		wg.Wait()
		for i := range n {
			require.NoError(t, errs[i], "upload %d round %d", i, round)
		}
	}
	for _, u := range ups {
		u.finish()
	}
	requireNoPartials(t, st)
}

func testResumableInvalidKeys(t *testing.T, st blob.Store) {
	ctx := t.Context()
	rs := resumable(t, st)
	for _, key := range InvalidKeys {
		_, _, err := rs.Append(ctx, key, "", 0, NewGen(1, 10), 10)
		require.ErrorIs(t, err, blob.ErrInvalidKey, "Append %q", key)
		require.ErrorIs(t, rs.Finish(ctx, key, "", 0), blob.ErrInvalidKey, "Finish %q", key)
		require.ErrorIs(t, rs.Discard(ctx, key, ""), blob.ErrInvalidKey, "Discard %q", key)
	}
	require.Empty(t, list(t, st))
	requireNoPartials(t, st)
}
