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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// Options tune the suite to a backend.
type Options struct {
	// MaxPutAlloc bounds how many bytes (runtime.MemStats.TotalAlloc growth) a 64 MiB Put may
	// allocate, of known or unknown size. Zero means 8 MiB, plenty for a store that streams
	// through a copy buffer; a store that buffers parts passes its bound plus some slack.
	MaxPutAlloc uint64
}

// Run runs the suite with default Options. newStore is called once per subtest and must return
// an empty store of its own: subtests run in parallel and use the same keys. Run does not call
// t.Parallel itself.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	RunWith(t, newStore, Options{})
}

// RunWith runs the suite. The memory check runs first and alone among the suite's subtests,
// since runtime.MemStats counts every goroutine's allocations; the rest run in parallel.
func RunWith(t *testing.T, newStore func(t *testing.T) blob.Store, o Options) {
	if o.MaxPutAlloc == 0 {
		o.MaxPutAlloc = 8 * mib
	}
	t.Run("PutMemory", func(t *testing.T) { testPutMemory(t, newStore(t), o.MaxPutAlloc) })

	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, st blob.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"Ranges", testRanges},
		{"Missing", testMissing},
		{"Delete", testDelete},
		{"NoOverwrite", testNoOverwrite},
		{"ReaderError", testReaderError},
		{"SizeMismatch", testSizeMismatch},
		{"Canceled", testCanceled},
		{"Slashes", testSlashes},
		{"Concurrent", testConcurrent},
		{"RaceSameKey", testRaceSameKey},
		{"InvalidKeys", testInvalidKeys},
		{"ListEmpty", testListEmpty},
		{"List", testList},
		{"ListNested", testListNested},
		{"ListDelete", testListDelete},
		{"ListStop", testListStop},
		{"ListDeleteInFn", testListDeleteInFn},
		{"ListPrefix", testListPrefix},
		{"ListPrefixVariants", testListPrefixVariants},
		{"LeftoversAfterPuts", testLeftoversAfterPuts},
		{"LeftoversInProgress", testLeftoversInProgress},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

// testPutMemory streams 64 MiB through Put, of unknown and of known size: a store must not
// hold a whole object in memory (uploads can be many GiB). A Put of known size below S3's
// minimum part size must not even buffer a part: it streams through a copy buffer.
func testPutMemory(t *testing.T, st blob.Store, limit uint64) {
	ctx := t.Context()
	// Warm up first, so one-time costs (connections, lazily built clients) are not counted.
	require.NoError(t, st.Put(ctx, "warmup", Reader(strings.NewReader("x")), -1))
	require.NoError(t, st.Put(ctx, "warmup2", Reader(strings.NewReader("x")), 1))

	for i, tc := range []struct {
		name  string
		n     int64
		known bool
		limit uint64
	}{
		{"64MiBUnknownSize", 64 * mib, false, limit},
		{"64MiBKnownSize", 64 * mib, true, limit},
		{"4MiBKnownSize", 4 * mib, true, SmallPutAlloc},
	} {
		size := int64(-1)
		if tc.known {
			size = tc.n
		}
		// MemStats counts every goroutine, and the caller's other tests may be running (a
		// store's constructor alone can allocate a few MiB). Such noise comes and goes, while
		// a store that buffers does so every time: measure up to five times, each from a
		// cold start (two GCs empty sync.Pools), and take the best.
		best := uint64(math.MaxUint64)
		for attempt := range measureAttempts {
			key := fmt.Sprintf("%s-%d", tc.name, attempt)
			runtime.GC()
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			require.NoError(t, st.Put(ctx, key, NewGen(uint64(i), tc.n), size))
			runtime.ReadMemStats(&after)
			best = min(best, after.TotalAlloc-before.TotalAlloc)
			t.Logf("Put %s allocated %.2f MiB (limit %.2f MiB)", key,
				float64(after.TotalAlloc-before.TotalAlloc)/mib, float64(tc.limit)/mib)
			requireGen(t, st, key, uint64(i), tc.n)
			if best <= tc.limit {
				break
			}
		}
		assert.LessOrEqual(t, best, tc.limit, "Put %s allocated more than the store's bound", tc.name)
	}
}

// measureAttempts is how many times the memory checks measure before they fail: the parallel
// tests of a package (and a machine shared with other work) keep the first measurements noisy
// for a few seconds.
const measureAttempts = 5

// SmallPutAlloc bounds what a Put of known size below 5 MiB may allocate (see testPutMemory).
const SmallPutAlloc = 1 * mib

// requireGen checks that key holds exactly NewGen(seed, n)'s bytes, streaming both sides.
func requireGen(t *testing.T, st blob.Store, key string, seed uint64, n int64) {
	t.Helper()
	size, err := st.Size(t.Context(), key)
	require.NoError(t, err)
	require.EqualValues(t, n, size)
	rc, err := st.Get(t.Context(), key, 0, -1)
	require.NoError(t, err)
	defer rc.Close()
	got := sha256.New()
	_, err = io.Copy(got, rc)
	require.NoError(t, err)
	want := sha256.New()
	_, err = io.Copy(want, NewGen(seed, n))
	require.NoError(t, err)
	require.Equal(t, want.Sum(nil), got.Sum(nil), "bytes of %q differ", key)
}

func testRoundTrip(t *testing.T, st blob.Store) {
	for _, tc := range []struct {
		name  string
		n     int
		known bool
	}{
		{"Empty", 0, true},
		{"EmptyUnknownSize", 0, false},
		{"OneByte", 1, true},
		{"OneByteUnknownSize", 1, false},
		{"3MiB", 3 * mib, true},
		{"3MiBUnknownSize", 3 * mib, false},
		// Past any part size: multipart uploads on S3, with and without a known size.
		{"20MiB", 20*mib + 3, true},
		{"20MiBUnknownSize", 20*mib + 3, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			data := Bytes(int64(tc.n), uint64(tc.n))
			size := int64(-1)
			if tc.known {
				size = int64(tc.n)
			}
			// Odd-sized short reads, as from a network body.
			require.NoError(t, st.Put(ctx, tc.name, Chunked(bytes.NewReader(data), 7919), size))
			got, err := st.Size(ctx, tc.name)
			require.NoError(t, err)
			require.EqualValues(t, tc.n, got)
			requireBlob(t, st, tc.name, data)
		})
	}
}

func testRanges(t *testing.T, st blob.Store) {
	ctx := t.Context()
	const n = mib + 17
	data := Bytes(n, 42)
	require.NoError(t, st.Put(ctx, "r", Reader(bytes.NewReader(data)), n))
	for _, tc := range []struct {
		name           string
		offset, length int64
	}{
		{"Start", 0, 10},
		{"Middle", 1000, 5000},
		{"End", n - 10, 10},
		{"SingleByte", n / 2, 1},
		{"FirstByte", 0, 1},
		{"LastByte", n - 1, 1},
		{"ToEnd", 12345, -1},
		{"LastByteToEnd", n - 1, -1},
		{"WholeExplicit", 0, n},
		{"Whole", 0, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := data[tc.offset:]
			if tc.length >= 0 {
				want = want[:tc.length]
			}
			require.Equal(t, want, read(t, st, "r", tc.offset, tc.length))
		})
	}
}

func testMissing(t *testing.T, st blob.Store) {
	ctx := t.Context()
	requireNotFound(t, st, "nope")
	_, err := st.Get(ctx, "nope", 5, 10)
	require.ErrorIs(t, err, blob.ErrNotFound)
	_, err = st.Get(ctx, "nope", 5, -1)
	require.ErrorIs(t, err, blob.ErrNotFound)
	// A key that is only a prefix of other keys holds no blob either.
	require.NoError(t, st.Put(ctx, "dir/leaf", Reader(strings.NewReader("x")), 1))
	requireNotFound(t, st, "dir")
	requireNotFound(t, st, "di")
}

func testDelete(t *testing.T, st blob.Store) {
	ctx := t.Context()
	require.NoError(t, st.Put(ctx, "d", Reader(strings.NewReader("hello")), 5))
	require.NoError(t, st.Delete(ctx, "d"))
	requireNotFound(t, st, "d")
	require.NoError(t, st.Delete(ctx, "d"), "second delete")
	require.NoError(t, st.Delete(ctx, "never-was"))
	require.NoError(t, st.Put(ctx, "a/b/c", Reader(strings.NewReader("x")), 1))
	require.NoError(t, st.Delete(ctx, "a/b"), "delete of a key that is only a prefix")
	requireBlob(t, st, "a/b/c", []byte("x"))
	require.NoError(t, st.Delete(ctx, "a/b/c"))
	requireNotFound(t, st, "a/b/c")
}

func testNoOverwrite(t *testing.T, st blob.Store) {
	ctx := t.Context()
	orig := []byte("original bytes")
	require.NoError(t, st.Put(ctx, "k", Reader(bytes.NewReader(orig)), int64(len(orig))))
	for _, tc := range []struct {
		name string
		n    int64
		size int64
	}{
		{"Small", 3, 3},
		{"SmallUnknownSize", 3, -1},
		{"Empty", 0, 0},
		{"LargeUnknownSize", 20 * mib, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := st.Put(ctx, "k", NewGen(7, tc.n), tc.size)
			require.ErrorIs(t, err, blob.ErrExists)
			requireBlob(t, st, "k", orig)
		})
	}
}

var errBoom = errors.New("boom: reader failed")

// testReaderError: a body that breaks off (client gone, size limit hit) stores nothing, and
// Put's error wraps the reader's so the caller can tell why (e.g. 413 for a size limit).
func testReaderError(t *testing.T, st blob.Store) {
	for _, tc := range []struct {
		name        string
		after, size int64
	}{
		{"Immediately", 0, -1},
		{"Small", 1000, -1},
		{"SmallKnownSize", 1000, 5000},
		// Within one S3 part: a single streamed request cut off midway.
		{"MediumKnownSize", 4 * mib, 5 * mib},
		{"LargeUnknownSize", 12 * mib, -1},
		{"LargeKnownSize", 12 * mib, 20 * mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			err := st.Put(ctx, tc.name, FailAfter(NewGen(3, tc.after), errBoom), tc.size)
			require.ErrorIs(t, err, errBoom)
			requireNotFound(t, st, tc.name)
		})
	}
}

func testSizeMismatch(t *testing.T, st blob.Store) {
	for _, tc := range []struct {
		name    string
		size, n int64
	}{
		{"Short", 10, 5},
		{"Long", 5, 10},
		{"EmptyButSaysOne", 1, 0},
		{"SaysEmpty", 0, 1},
		{"MediumShort", 5 * mib, 4 * mib},
		{"MediumLong", 4 * mib, 5 * mib},
		{"LargeShort", 20 * mib, 12 * mib},
		{"LargeLong", 9 * mib, 10 * mib},
		{"PartBoundary", 8 * mib, 8*mib + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			err := st.Put(ctx, tc.name, NewGen(5, tc.n), tc.size)
			require.Error(t, err)
			requireNotFound(t, st, tc.name)
		})
	}
}

// testCanceled: the request's context ends (client disconnect) mid-upload; nothing is stored.
func testCanceled(t *testing.T, st blob.Store) {
	for _, tc := range []struct {
		name        string
		after, size int64
	}{
		{"Before", -1, -1},
		{"Small", 1000, -1},
		{"Large", 12 * mib, -1},
		{"MediumKnownSize", 3 * mib, 5 * mib},
		{"LargeKnownSize", 12 * mib, 20 * mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var r io.Reader
			if tc.after < 0 {
				cancel()
				r = NewGen(9, 10)
			} else {
				// Keeps yielding bytes after the cancel: the store must notice the context.
				r = io.MultiReader(NewGen(9, tc.after), cancelReader(cancel), NewGen(10, 20*mib))
			}
			err := st.Put(ctx, tc.name, r, tc.size)
			require.Error(t, err)
			requireNotFound(t, st, tc.name)
		})
	}
}

func testSlashes(t *testing.T, st blob.Store) {
	ctx := t.Context()
	for i, key := range []string{
		"ab/abcdef0123456789",
		"ab/abcdef0123456790",
		"x/y/z/deep/key",
		"spaces and+plus/%25percent?query#frag&amp=~:@!$'()*,;[]",
		"ünïcødé/κλειδί/键",
	} {
		data := []byte(fmt.Sprintf("blob %d under %s", i, key))
		require.NoError(t, st.Put(ctx, key, Reader(bytes.NewReader(data)), int64(len(data))), key)
		requireBlob(t, st, key, data)
		size, err := st.Size(ctx, key)
		require.NoError(t, err)
		require.EqualValues(t, len(data), size)
		require.Equal(t, data[2:5], read(t, st, key, 2, 3))
	}
	require.NoError(t, st.Delete(ctx, "x/y/z/deep/key"))
	requireNotFound(t, st, "x/y/z/deep/key")
	// Deleting one key leaves its siblings alone.
	requireBlob(t, st, "ab/abcdef0123456789", []byte("blob 0 under ab/abcdef0123456789"))
	require.NoError(t, st.Put(ctx, "x/y/z/deep/key", Reader(strings.NewReader("again")), -1),
		"a deleted key's directories can take a new blob")
}

func testConcurrent(t *testing.T, st blob.Store) {
	ctx := t.Context()
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Same directory for all, so file stores race on creating it.
			key := fmt.Sprintf("cc/%02d", i)
			errs[i] = st.Put(ctx, key, NewGen(uint64(i), 100*kib+int64(i)), -1)
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "put %d", i)
		requireBlob(t, st, fmt.Sprintf("cc/%02d", i), Bytes(100*kib+int64(i), uint64(i)))
	}
}

// testRaceSameKey: Puts racing for one key (which callers never do on purpose) end with
// exactly one winner; the others get ErrExists and the winner's bytes stay whole.
func testRaceSameKey(t *testing.T, st blob.Store) {
	ctx := t.Context()
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = st.Put(ctx, "same", NewGen(uint64(100+i), 256*kib), 256*kib)
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		if err == nil {
			require.Equal(t, -1, winner, "two Puts of one key succeeded")
			winner = i
			continue
		}
		require.ErrorIs(t, err, blob.ErrExists, "put %d", i)
	}
	require.NotEqual(t, -1, winner, "no Put succeeded")
	requireGen(t, st, "same", uint64(100+winner), 256*kib)
}

// InvalidKeys lists keys every store refuses with blob.ErrInvalidKey (see blob.CheckKey).
var InvalidKeys = []string{
	"",
	"a\x00b",
	"..",
	".",
	"../x",
	"a/../b",
	"a/..",
	"./a",
	"/abs",
	"a//b",
	"a/",
	"a\\b",
	"..\\x",
	".tmp/x",
	"a\nb",
	"\x7f",
	"\xff\xfe",
	"a\uffffb",
	"\ufffe",
	strings.Repeat("k", blob.MaxKeyLen+1),
	strings.Repeat("s", blob.MaxSegmentLen+1) + "/x",
}

func testInvalidKeys(t *testing.T, st blob.Store) {
	ctx := t.Context()
	for _, key := range InvalidKeys {
		err := st.Put(ctx, key, Reader(strings.NewReader("x")), 1)
		require.ErrorIs(t, err, blob.ErrInvalidKey, "Put %q", key)
		_, err = st.Get(ctx, key, 0, -1)
		require.ErrorIs(t, err, blob.ErrInvalidKey, "Get %q", key)
		_, err = st.Size(ctx, key)
		require.ErrorIs(t, err, blob.ErrInvalidKey, "Size %q", key)
		require.ErrorIs(t, st.Delete(ctx, key), blob.ErrInvalidKey, "Delete %q", key)
	}
	// The limits themselves are fine.
	long := strings.Repeat("s", blob.MaxSegmentLen) + "/" + strings.Repeat("t", blob.MaxSegmentLen)
	require.NoError(t, st.Put(ctx, long, Reader(strings.NewReader("x")), 1))
	requireBlob(t, st, long, []byte("x"))
}

// testListEmpty: a new store lists no blob and no leftover.
func testListEmpty(t *testing.T, st blob.Store) {
	require.Empty(t, list(t, st))
	require.Empty(t, leftovers(t, st))
}

// listKeys are keys whose byte order differs from the order of a walk that visits directories
// in name order: '!', '-' and '.' sort before '/', '0' after it, and multi-byte UTF-8 after all
// of ASCII. S3 lists them in byte order, and so does versitygw 1.8.0, which the S3 tests use.
var listKeys = []string{
	"z",
	"a0",
	"a/b",
	"a-b",
	"a.b",
	"a!",
	"ab/c",
	"ab/cd/ef",
	"ab/cd-ef",
	"ab/cd0",
	"ab/cd.ef",
	"ü/κλειδί",
	"u/v",
	"spaces and+plus/%25percent?query#frag",
	"Z",
	blob.VersionKey("0123456789abcdef0123456789abcdef"),
	blob.VersionKey("01ffffffffffffffffffffffffffffff"),
	blob.VersionKey("ff23456789abcdef0123456789abcdef"),
}

// testList: List yields exactly the blobs put, in byte order of their keys, with their sizes
// and a write time of about now.
func testList(t *testing.T, st blob.Store) {
	ctx := t.Context()
	sizes := make(map[string]int64)
	for i, key := range listKeys {
		n := int64(i * 100) // the first is empty
		require.NoError(t, st.Put(ctx, key, NewGen(uint64(i), n), n), key)
		sizes[key] = n
	}
	got := list(t, st)
	want := slices.Sorted(slices.Values(listKeys))
	require.Equal(t, want, keysOf(got), "keys, in byte order")
	now := time.Now()
	for _, info := range got {
		require.Equal(t, sizes[info.Key], info.Size, "size of %q", info.Key)
		require.WithinDuration(t, now, info.Modified, time.Minute, "modified of %q", info.Key)
	}
}

// testListNested: keys several directories deep sort among their parents' siblings by the
// whole key, and directories that only ever held other directories list nothing of their own.
func testListNested(t *testing.T, st blob.Store) {
	ctx := t.Context()
	keys := []string{
		"x/y/z/1", "x/y/z/2", "x/y/z0", "x/y/z-", "x/y0", "x/y-/q", "x/y.q/r", "x/yy/z/1",
		"x/y/z/deep/er/still", "x/y/z/deep-er", "x0", "w/x/y/z",
	}
	for _, key := range keys {
		require.NoError(t, st.Put(ctx, key, Reader(strings.NewReader(key)), int64(len(key))), key)
	}
	got := list(t, st)
	require.Equal(t, slices.Sorted(slices.Values(keys)), keysOf(got))
	for _, info := range got {
		require.EqualValues(t, len(info.Key), info.Size, "size of %q", info.Key)
	}
}

// testListDelete: a deleted blob leaves the listing, and one whose directories are now empty
// leaves nothing behind there either.
func testListDelete(t *testing.T, st blob.Store) {
	ctx := t.Context()
	for _, key := range []string{"a/b/c", "a/b/d", "a/e", "f"} {
		require.NoError(t, st.Put(ctx, key, Reader(strings.NewReader("x")), 1))
	}
	require.NoError(t, st.Delete(ctx, "a/b/c"))
	require.Equal(t, []string{"a/b/d", "a/e", "f"}, keysOf(list(t, st)))
	require.NoError(t, st.Delete(ctx, "a/b/d"))
	require.NoError(t, st.Delete(ctx, "f"))
	require.Equal(t, []string{"a/e"}, keysOf(list(t, st)))
	require.NoError(t, st.Delete(ctx, "a/e"))
	require.Empty(t, list(t, st))
}

// testListStop: fn's error ends the listing at once and comes back from List unwrapped.
func testListStop(t *testing.T, st blob.Store) {
	ctx := t.Context()
	for _, key := range []string{"a", "b/c", "b/d", "e"} {
		require.NoError(t, st.Put(ctx, key, Reader(strings.NewReader("x")), 1))
	}
	errStop := errors.New("stop")
	var seen []string
	err := st.List(ctx, "", func(info blob.Info) error {
		seen = append(seen, info.Key)
		if info.Key == "b/c" {
			return errStop
		}
		return nil
	})
	require.Equal(t, errStop, err)
	require.Equal(t, []string{"a", "b/c"}, seen)
}

// testListDeleteInFn: fn may delete the blob it is given (reconcile does), and the listing
// still sees every blob exactly once.
func testListDeleteInFn(t *testing.T, st blob.Store) {
	ctx := t.Context()
	var keys []string
	for i := range 30 {
		key := fmt.Sprintf("%02x/%02x%d", i%4, i%4, i)
		keys = append(keys, key)
		require.NoError(t, st.Put(ctx, key, Reader(strings.NewReader("x")), 1))
	}
	var seen []string
	require.NoError(t, st.List(ctx, "", func(info blob.Info) error {
		seen = append(seen, info.Key)
		return st.Delete(ctx, info.Key)
	}))
	require.Equal(t, slices.Sorted(slices.Values(keys)), seen)
	require.Empty(t, list(t, st))
	for _, key := range keys {
		requireNotFound(t, st, key)
	}
}

// testListPrefix: List with a prefix yields exactly the blobs whose keys start with it, in byte
// order: a prefix naming a directory ("ab/"), one ending inside a segment ("ab/c", "ab"), a
// whole key, and prefixes no key has (missing directories, below a blob, text no key can
// start with) that list nothing and are no error.
func testListPrefix(t *testing.T, st blob.Store) {
	ctx := t.Context()
	keys := []string{"ab/c", "ab/cd/e", "ab/cd/f", "ab/cde", "ab/d", "ab-x", "abc", "b/c", "ab/c-d", "ab/c0"}
	for _, key := range keys {
		require.NoError(t, st.Put(ctx, key, Reader(strings.NewReader(key)), int64(len(key))), key)
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", slices.Sorted(slices.Values(keys))},
		{"ab/", []string{"ab/c", "ab/c-d", "ab/c0", "ab/cd/e", "ab/cd/f", "ab/cde", "ab/d"}},
		{"ab/cd/", []string{"ab/cd/e", "ab/cd/f"}},
		{"ab/c", []string{"ab/c", "ab/c-d", "ab/c0", "ab/cd/e", "ab/cd/f", "ab/cde"}},
		{"ab/cd", []string{"ab/cd/e", "ab/cd/f", "ab/cde"}},
		{"ab", []string{"ab-x", "ab/c", "ab/c-d", "ab/c0", "ab/cd/e", "ab/cd/f", "ab/cde", "ab/d", "abc"}},
		{"ab/cd/e", []string{"ab/cd/e"}},
		{"b/", []string{"b/c"}},
		{"zz/", nil},
		{"ab/zz/", nil},
		{"ab/zz", nil},
		{"ab/cd/e/", nil}, // below a blob
		{"abc/", nil},
		{"q", nil},
		{".tmp/", nil}, // no key starts with a dot: not the file store's temporary files
		{".", nil},
		{"ab//", nil},
		{"../", nil},
		{"ab/../b/", nil},
	} {
		got := listPrefix(t, st, tc.prefix)
		require.Equal(t, tc.want, keysOf(got), "prefix %q", tc.prefix)
		for _, info := range got {
			require.EqualValues(t, len(info.Key), info.Size, "size of %q", info.Key)
		}
	}
}

// testListPrefixVariants: the variants of one version list under its VariantPrefix, and no
// other blob does: not its version's blob, not another version's variants, even one whose
// version starts like it. Once they are deleted the prefix lists nothing.
func testListPrefixVariants(t *testing.T, st blob.Store) {
	ctx := t.Context()
	const (
		v     = "0123abcd-0000-4000-8000-000000000000"
		other = "0123abcd-0000-4000-8000-000000000001"
	)
	keys := []string{
		blob.VersionKey(v), blob.VersionKey(other),
		blob.VariantKey(v, "b.webp"), blob.VariantKey(v, "a.png"), blob.VariantKey(v, "a-2.png"),
		blob.VariantKey(other, "a.png"),
	}
	for _, key := range keys {
		require.NoError(t, st.Put(ctx, key, Reader(strings.NewReader(key)), int64(len(key))), key)
	}
	require.Equal(t, []string{blob.VariantKey(v, "a-2.png"), blob.VariantKey(v, "a.png"), blob.VariantKey(v, "b.webp")},
		keysOf(listPrefix(t, st, blob.VariantPrefix(v))))
	require.Equal(t, []string{blob.VariantKey(other, "a.png")}, keysOf(listPrefix(t, st, blob.VariantPrefix(other))))
	// Every version's blob lists before every variant.
	require.Equal(t, []string{blob.VersionKey(v), blob.VersionKey(other), blob.VariantKey(v, "a-2.png"),
		blob.VariantKey(v, "a.png"), blob.VariantKey(v, "b.webp"), blob.VariantKey(other, "a.png")}, keysOf(list(t, st)))

	for _, info := range listPrefix(t, st, blob.VariantPrefix(v)) {
		require.NoError(t, st.Delete(ctx, info.Key))
	}
	require.Empty(t, listPrefix(t, st, blob.VariantPrefix(v)))
	require.Equal(t, []string{blob.VersionKey(v), blob.VersionKey(other), blob.VariantKey(other, "a.png")}, keysOf(list(t, st)))
	// The version's directory may be gone: a variant put again makes it anew.
	require.NoError(t, st.Put(ctx, blob.VariantKey(v, "c"), Reader(strings.NewReader("c")), 1))
	require.Equal(t, []string{blob.VariantKey(v, "c")}, keysOf(listPrefix(t, st, blob.VariantPrefix(v))))
}

// testLeftoversAfterPuts: Puts that completed or failed (a reader error, a size mismatch, small
// or multipart) leave no leftover behind, and the listings agree on what is stored.
func testLeftoversAfterPuts(t *testing.T, st blob.Store) {
	ctx := t.Context()
	require.NoError(t, st.Put(ctx, "ok/small", NewGen(1, 1000), 1000))
	require.NoError(t, st.Put(ctx, "ok/large", NewGen(2, 20*mib), -1))
	for _, tc := range []struct {
		name string
		r    io.Reader
		size int64
	}{
		{"ReaderErrorSmall", FailAfter(NewGen(3, 1000), errBoom), -1},
		{"ReaderErrorLarge", FailAfter(NewGen(3, 12*mib), errBoom), -1},
		{"ShortSmall", NewGen(4, 10), 20},
		{"LongSmall", NewGen(4, 20), 10},
		{"ShortLarge", NewGen(4, 12*mib), 20 * mib},
		{"LongLarge", NewGen(4, 10*mib), 9 * mib},
	} {
		require.Error(t, st.Put(ctx, "failed/"+tc.name, tc.r, tc.size), tc.name)
	}
	// A duplicate is refused too.
	require.ErrorIs(t, st.Put(ctx, "ok/large", NewGen(5, 20*mib), -1), blob.ErrExists)
	require.Empty(t, leftovers(t, st))
	require.Equal(t, []string{"ok/large", "ok/small"}, keysOf(list(t, st)))
	// An id no leftover can have is refused, and nothing changes.
	require.ErrorIs(t, st.RemoveLeftover(ctx, ""), blob.ErrInvalidKey)
}

// testLeftoversInProgress: Puts held midway (past any multipart part size) are leftovers until
// they finish. Leftovers stops at fn's first error. The Puts then complete, and leave none.
func testLeftoversInProgress(t *testing.T, st blob.Store) {
	ctx := t.Context()
	keys := []string{"p/one", "p/two"}
	var (
		wg      sync.WaitGroup
		errs    = make([]error, len(keys))
		release = make(chan struct{})
	)
	defer wg.Wait()
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	defer releaseAll() // also when the test fails midway: Put must not block forever
	for i, key := range keys {
		reached := make(chan struct{})
		body := io.MultiReader(NewGen(uint64(i), 20*mib), gate{reached, release}, NewGen(uint64(i+10), mib))
		wg.Go(func() { errs[i] = st.Put(ctx, key, body, -1) })
		<-reached
	}
	before := time.Now()
	got := leftovers(t, st)
	require.Len(t, got, len(keys), "a leftover for each Put in progress")
	ids := make(map[string]bool)
	for _, l := range got {
		require.NotEmpty(t, l.ID)
		ids[l.ID] = true
		if l.Key != "" {
			require.Contains(t, keys, l.Key)
		}
		require.WithinDuration(t, before, l.Started, time.Minute)
	}
	require.Len(t, ids, len(keys), "leftovers' ids are distinct")
	errStop := errors.New("stop")
	calls := 0
	err := st.Leftovers(ctx, func(blob.Leftover) error { calls++; return errStop })
	require.Equal(t, errStop, err)
	require.Equal(t, 1, calls)
	for _, key := range keys {
		requireNotFound(t, st, key)
	}
	require.Empty(t, list(t, st), "uploads in progress are not blobs")

	releaseAll()
	wg.Wait()
	for i, key := range keys {
		require.NoError(t, errs[i], key)
		size, err := st.Size(ctx, key)
		require.NoError(t, err)
		require.EqualValues(t, 21*mib, size)
	}
	require.Empty(t, leftovers(t, st))
	require.Equal(t, keys, keysOf(list(t, st)))
}

// list returns everything List yields, checking that keys come in strictly ascending byte order.
func list(t *testing.T, st blob.Store) []blob.Info {
	t.Helper()
	return listPrefix(t, st, "")
}

// listPrefix returns what List yields for prefix, checking that keys come in strictly ascending
// byte order.
func listPrefix(t *testing.T, st blob.Store, prefix string) []blob.Info {
	t.Helper()
	var infos []blob.Info
	require.NoError(t, st.List(t.Context(), prefix, func(info blob.Info) error {
		if n := len(infos); n > 0 {
			require.Less(t, infos[n-1].Key, info.Key, "List out of byte order")
		}
		infos = append(infos, info)
		return nil
	}))
	return infos
}

func keysOf(infos []blob.Info) []string {
	var keys []string
	for _, info := range infos {
		keys = append(keys, info.Key)
	}
	return keys
}

func leftovers(t *testing.T, st blob.Store) []blob.Leftover {
	t.Helper()
	var ls []blob.Leftover
	require.NoError(t, st.Leftovers(t.Context(), func(l blob.Leftover) error {
		ls = append(ls, l)
		return nil
	}))
	return ls
}

// read returns the bytes of a Get.
func read(t *testing.T, st blob.Store, key string, offset, length int64) []byte {
	t.Helper()
	rc, err := st.Get(t.Context(), key, offset, length)
	require.NoError(t, err, "get %q", key)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err, "read %q", key)
	return b
}

func requireBlob(t *testing.T, st blob.Store, key string, want []byte) {
	t.Helper()
	got := read(t, st, key, 0, -1)
	if !bytes.Equal(want, got) {
		require.FailNow(t, "blob differs", "key %q: got %d bytes, want %d", key, len(got), len(want))
	}
}

func requireNotFound(t *testing.T, st blob.Store, key string) {
	t.Helper()
	rc, err := st.Get(t.Context(), key, 0, -1)
	if err == nil {
		rc.Close()
	}
	require.ErrorIs(t, err, blob.ErrNotFound, "Get %q", key)
	_, err = st.Size(t.Context(), key)
	require.ErrorIs(t, err, blob.ErrNotFound, "Size %q", key)
}
