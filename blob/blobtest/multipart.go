package blobtest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
)

// MaxPartAlloc bounds what a PutPart of 64 MiB, and the CompleteMultipart of an upload of that
// part, may allocate (runtime.MemStats.TotalAlloc growth): parts stream to a file or to S3
// through copy buffers, and completing joins them on disk or in S3, so a multipart upload of
// any size costs the server no memory that grows with it.
const MaxPartAlloc = 4 * mib

// RunMultipart runs the multipart-upload suite against stores that implement blob.Multipart.
// newStore is called once per subtest and must return an empty store of its own. Like Run,
// the memory check runs first and alone among the suite's subtests; the rest run in parallel.
func RunMultipart(t *testing.T, newStore func(t *testing.T) blob.Store) {
	t.Run("PartMemory", func(t *testing.T) { testPartMemory(t, newStore(t)) })
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, st blob.Store)
	}{
		{"MultipartRoundTrip", testMultipartRoundTrip},
		{"MultipartReplace", testMultipartReplace},
		{"MultipartCopyPart", testMultipartCopyPart},
		{"MultipartInvalidPart", testMultipartInvalidPart},
		{"MultipartExists", testMultipartExists},
		{"MultipartAbort", testMultipartAbort},
		{"MultipartRemoveLeftover", testMultipartRemoveLeftover},
		{"MultipartReaderError", testMultipartReaderError},
		{"MultipartBadArguments", testMultipartBadArguments},
		{"MultipartInvalidKeys", testMultipartInvalidKeys},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

func multipart(t *testing.T, st blob.Store) blob.Multipart {
	t.Helper()
	m, ok := st.(blob.Multipart)
	require.True(t, ok, "%T does not implement blob.Multipart", st)
	return m
}

// mpUpload drives one multipart upload as the server does: it keeps the state and the ETag
// PutPart returned for each part number.
type mpUpload struct {
	t     *testing.T
	st    blob.Store
	m     blob.Multipart
	key   string
	state string
	mu    sync.Mutex
	etags map[int]string
}

func newMPUpload(t *testing.T, st blob.Store, key string) *mpUpload {
	t.Helper()
	m := multipart(t, st)
	state, err := m.CreateMultipart(t.Context(), key)
	require.NoError(t, err, "create multipart %q", key)
	return &mpUpload{t: t, st: st, m: m, key: key, state: state, etags: map[int]string{}}
}

// put puts part n, p's bytes, and checks that its ETag is their MD5 (what both stores return,
// and what the S3 door makes the object's multipart ETag from).
func (u *mpUpload) put(n int, p piece) error {
	etag, err := u.m.PutPart(u.t.Context(), u.key, u.state, n, Chunked(NewGen(p.seed, p.n), 100003), p.n)
	if err != nil {
		return fmt.Errorf("put part %d: %w", n, err)
	}
	if want := md5Of(NewGen(p.seed, p.n)); etag != want {
		return fmt.Errorf("part %d: ETag %q, want the MD5 %q", n, etag, want)
	}
	u.mu.Lock()
	u.etags[n] = etag
	u.mu.Unlock()
	return nil
}

func (u *mpUpload) mustPut(n int, p piece) {
	u.t.Helper()
	require.NoError(u.t, u.put(n, p))
}

// parts lists the given part numbers with their recorded ETags.
func (u *mpUpload) parts(nums ...int) []blob.Part {
	ps := make([]blob.Part, len(nums))
	for i, n := range nums {
		ps[i] = blob.Part{Number: n, ETag: u.etags[n]}
	}
	return ps
}

func (u *mpUpload) complete(parts []blob.Part) error {
	return u.m.CompleteMultipart(u.t.Context(), u.key, u.state, parts)
}

func md5Of(r io.Reader) string {
	h := md5.New()
	if _, err := io.Copy(h, r); err != nil {
		panic(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// requireUploadLeftover checks that the upload of key is among the leftovers, with its key and
// a recent Started, and returns its leftovers.
func requireUploadLeftover(t *testing.T, st blob.Store, key string, since time.Time) []blob.Leftover {
	t.Helper()
	var mine []blob.Leftover
	for _, l := range leftovers(t, st) {
		if l.Key == key {
			require.NotEmpty(t, l.ID)
			require.WithinDuration(t, since, l.Started, time.Minute)
			mine = append(mine, l)
		}
	}
	require.NotEmpty(t, mine, "no leftover with key %q", key)
	return mine
}

// requireNoUploadLeftover checks that no leftover has key.
func requireNoUploadLeftover(t *testing.T, st blob.Store, key string) {
	t.Helper()
	for _, l := range leftovers(t, st) {
		require.NotEqual(t, key, l.Key, "a leftover of the upload of %q", key)
	}
}

// testPartMemory puts a 64 MiB part and completes the upload: neither may hold the part in
// memory.
func testPartMemory(t *testing.T, st blob.Store) {
	ctx := t.Context()
	m := multipart(t, st)
	// Warm up: connections, lazily built clients, pools.
	u := newMPUpload(t, st, "warmup")
	u.mustPut(1, piece{1, 6 * mib})
	require.NoError(t, u.complete(u.parts(1)))

	const n = 64 * mib
	// As in testPutMemory: the best of up to measureAttempts cold measurements, since MemStats
	// counts every goroutine's allocations.
	bestPut, bestComplete := uint64(math.MaxUint64), uint64(math.MaxUint64)
	for attempt := range measureAttempts {
		key := fmt.Sprintf("mem-%d", attempt)
		state, err := m.CreateMultipart(ctx, key)
		require.NoError(t, err)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&before)
		etag, err := m.PutPart(ctx, key, state, 1, NewGen(2, n), n)
		runtime.ReadMemStats(&after)
		require.NoError(t, err)
		bestPut = min(bestPut, after.TotalAlloc-before.TotalAlloc)
		t.Logf("PutPart of 64 MiB allocated %.2f MiB (limit %.2f MiB)", float64(after.TotalAlloc-before.TotalAlloc)/mib, float64(MaxPartAlloc)/mib)

		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&before)
		err = m.CompleteMultipart(ctx, key, state, []blob.Part{{Number: 1, ETag: etag}})
		runtime.ReadMemStats(&after)
		require.NoError(t, err)
		bestComplete = min(bestComplete, after.TotalAlloc-before.TotalAlloc)
		t.Logf("CompleteMultipart of 64 MiB allocated %.2f MiB (limit %.2f MiB)", float64(after.TotalAlloc-before.TotalAlloc)/mib, float64(MaxPartAlloc)/mib)
		requireGen(t, st, key, 2, n)
		if bestPut <= MaxPartAlloc && bestComplete <= MaxPartAlloc {
			break
		}
	}
	assert.LessOrEqual(t, bestPut, uint64(MaxPartAlloc), "PutPart allocated more than the bound")
	assert.LessOrEqual(t, bestComplete, uint64(MaxPartAlloc), "CompleteMultipart allocated more than the bound")
	requireNoPartials(t, st)
}

// testMultipartRoundTrip: parts put concurrently and in reverse order, of mixed sizes (every
// one but the last at least S3's 5 MiB minimum), numbered with gaps, make exactly their bytes
// in the order of their numbers. Until completed the upload is no blob but a leftover with its
// key; afterwards nothing of it remains.
func testMultipartRoundTrip(t *testing.T, st blob.Store) {
	for _, tc := range []struct {
		name   string
		nums   []int
		pieces []piece
	}{
		{"Mixed", []int{1, 2, 3, 4}, []piece{{1, 5 * mib}, {2, 6*mib + 1}, {3, 5*mib + 7}, {4, 1000}}},
		{"EmptyLast", []int{1, 2, 3}, []piece{{5, 5*mib + 3}, {6, 5 * mib}, {7, 0}}},
		{"Gaps", []int{2, 7, blob.MaxPartNumber}, []piece{{8, 5 * mib}, {9, 6 * mib}, {10, 3}}},
		{"OnePart", []int{1}, []piece{{11, 12345}}},
		{"OneEmptyPart", []int{1}, []piece{{12, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key := "mp/" + tc.name
			before := time.Now()
			u := newMPUpload(t, st, key)
			var wg sync.WaitGroup
			errs := make([]error, len(tc.nums))
			for i := len(tc.nums) - 1; i >= 0; i-- {
				wg.Go(func() { errs[i] = u.put(tc.nums[i], tc.pieces[i]) })
			}
			wg.Wait()
			for _, err := range errs {
				require.NoError(t, err)
			}
			requireNotFound(t, st, key)
			require.NotContains(t, keysOf(list(t, st)), key, "an upload in progress is no blob")
			requireUploadLeftover(t, st, key, before)

			require.NoError(t, u.complete(u.parts(tc.nums...)))
			requirePieces(t, st, key, tc.pieces)
			require.Contains(t, keysOf(list(t, st)), key)
			requireNoUploadLeftover(t, st, key)
		})
	}
	t.Cleanup(func() { requireNoPartials(t, st) })
}

// testMultipartReplace: a part put again replaces the earlier one (last writer wins): the
// earlier ETag no longer completes, the later one does, with the later bytes.
func testMultipartReplace(t *testing.T, st blob.Store) {
	u := newMPUpload(t, st, "replace")
	u.mustPut(1, piece{1, 5 * mib})
	u.mustPut(2, piece{2, 3000})
	old := u.parts(1, 2)
	u.mustPut(2, piece{3, 7000})
	u.mustPut(1, piece{4, 6 * mib})
	require.ErrorIs(t, u.complete(old), blob.ErrInvalidPart, "the replaced parts' ETags")
	requireNotFound(t, st, u.key)
	require.NoError(t, u.complete(u.parts(1, 2)))
	requirePieces(t, st, u.key, []piece{{4, 6 * mib}, {3, 7000}})
	requireNoPartials(t, st)
}

// testMultipartCopyPart: parts copied from ranges of blobs (the first, the middle, the last
// bytes, all of one, none) mix with put parts; a source that holds no blob is ErrNotFound.
func testMultipartCopyPart(t *testing.T, st blob.Store) {
	ctx := t.Context()
	const srcLen = 12 * mib
	// Characters that a copy source must escape, and "+", which some servers unescape as a
	// space.
	src := "src/big blob+%20ü?query#frag&amp=~:@!$'()*,;[]"
	require.NoError(t, st.Put(ctx, src, NewGen(1, srcLen), srcLen))
	require.NoError(t, st.Put(ctx, "src/small", NewGen(2, 10), 10))
	srcBytes := Bytes(srcLen, 1)

	copyPart := func(u *mpUpload, n int, src string, offset, length int64, want []byte) {
		t.Helper()
		etag, err := u.m.CopyPart(ctx, u.key, u.state, n, src, offset, length)
		require.NoError(t, err, "copy part %d", n)
		require.Equal(t, md5Of(bytes.NewReader(want)), etag, "ETag of copied part %d", n)
		u.etags[n] = etag
	}
	u := newMPUpload(t, st, "copied")
	copyPart(u, 1, src, 0, 5*mib, srcBytes[:5*mib])
	u.mustPut(2, piece{3, 5 * mib})
	copyPart(u, 3, src, mib+17, 5*mib+1, srcBytes[mib+17:6*mib+18])
	copyPart(u, 4, src, srcLen-5*mib, 5*mib, srcBytes[srcLen-5*mib:])
	copyPart(u, 5, "src/small", 0, 10, Bytes(10, 2))

	_, err := u.m.CopyPart(ctx, u.key, u.state, 6, "src/none", 0, 10)
	require.ErrorIs(t, err, blob.ErrNotFound, "a source that holds no blob")
	_, err = u.m.CopyPart(ctx, u.key, u.state, 6, "src/none", 0, 0)
	require.ErrorIs(t, err, blob.ErrNotFound, "an empty range of a source that holds no blob")

	require.NoError(t, u.complete(u.parts(1, 2, 3, 4, 5)))
	want := append([]byte{}, srcBytes[:5*mib]...)
	want = append(want, Bytes(5*mib, 3)...)
	want = append(want, srcBytes[mib+17:6*mib+18]...)
	want = append(want, srcBytes[srcLen-5*mib:]...)
	want = append(want, Bytes(10, 2)...)
	requireBlob(t, st, u.key, want)
	requireGen(t, st, src, 1, srcLen)

	empty := newMPUpload(t, st, "copied-empty")
	copyPart(empty, 1, src, 100, 0, nil)
	require.NoError(t, empty.complete(empty.parts(1)))
	requireBlob(t, st, empty.key, []byte{})
	requireNoPartials(t, st)
}

// testMultipartInvalidPart: a completion that lists a missing part, a part with a wrong ETag,
// parts out of order or none fails with ErrInvalidPart, makes no blob, and leaves the upload
// as it was: the right list completes it afterwards. (Every part listed before the last is
// at least 5 MiB, so that S3 does not refuse the list for that first.)
func testMultipartInvalidPart(t *testing.T, st blob.Store) {
	u := newMPUpload(t, st, "ab/invalid")
	u.mustPut(2, piece{1, 5 * mib})
	u.mustPut(3, piece{2, 5 * mib})
	u.mustPut(4, piece{3, 100})
	good := u.parts(2, 3, 4)
	wrong := func(i int, etag string) []blob.Part {
		ps := u.parts(2, 3, 4)
		ps[i].ETag = etag
		return ps
	}
	for name, parts := range map[string][]blob.Part{
		"WrongETag":      wrong(1, md5Of(strings.NewReader("other bytes"))),
		"OtherPartsETag": wrong(2, good[0].ETag),
		"EmptyETag":      wrong(0, ""),
		"MissingFirst":   append([]blob.Part{{Number: 1, ETag: good[0].ETag}}, good...),
		"MissingMiddle":  {good[0], good[1], {Number: 5, ETag: good[2].ETag}, {Number: 6, ETag: good[2].ETag}},
		"MissingLast":    {good[0], good[1], {Number: 5, ETag: good[2].ETag}},
		"Descending":     {good[1], good[0], good[2]},
		"Repeated":       {good[0], good[0], good[2]},
		"None":           nil,
		"NumberZero":     {{Number: 0, ETag: good[0].ETag}},
		"NumberTooHigh":  {good[0], {Number: blob.MaxPartNumber + 1, ETag: good[1].ETag}},
	} {
		err := u.complete(parts)
		require.ErrorIs(t, err, blob.ErrInvalidPart, name)
		requireNotFound(t, st, u.key)
		require.Empty(t, list(t, st), name)
	}
	// Quotes around ETags, as S3 clients send them, are fine.
	quoted := u.parts(2, 3, 4)
	for i := range quoted {
		quoted[i].ETag = `"` + quoted[i].ETag + `"`
	}
	require.NoError(t, u.complete(quoted))
	requirePieces(t, st, u.key, []piece{{1, 5 * mib}, {2, 5 * mib}, {3, 100}})
	requireNoPartials(t, st)
}

// testMultipartExists: a key that holds a blob is never overwritten: completing fails with
// ErrExists and leaves the blob and the upload, which AbortMultipart then removes. Completing
// an upload again once it made its blob is ErrExists too.
func testMultipartExists(t *testing.T, st blob.Store) {
	ctx := t.Context()
	orig := Bytes(100, 7)
	require.NoError(t, st.Put(ctx, "taken", NewGen(7, 100), 100))
	before := time.Now()
	u := newMPUpload(t, st, "taken")
	u.mustPut(1, piece{1, 5 * mib})
	u.mustPut(2, piece{2, 10})
	require.ErrorIs(t, u.complete(u.parts(1, 2)), blob.ErrExists)
	requireBlob(t, st, "taken", orig)
	requireUploadLeftover(t, st, "taken", before)
	require.NoError(t, u.m.AbortMultipart(ctx, u.key, u.state))
	requireBlob(t, st, "taken", orig)

	again := newMPUpload(t, st, "twice")
	again.mustPut(1, piece{3, 1000})
	require.NoError(t, again.complete(again.parts(1)))
	require.ErrorIs(t, again.complete(again.parts(1)), blob.ErrExists, "the same completion again")
	requireGen(t, st, "twice", 3, 1000)
	requireNoPartials(t, st)
}

// testMultipartAbort: AbortMultipart removes every piece, and again is no error; the upload is
// gone for PutPart, CopyPart and CompleteMultipart (ErrNotFound), and no blob appears.
func testMultipartAbort(t *testing.T, st blob.Store) {
	ctx := t.Context()
	require.NoError(t, st.Put(ctx, "src", NewGen(9, 10), 10))
	for _, tc := range []struct {
		name  string
		parts []piece
	}{
		{"NoParts", nil},
		{"Parts", []piece{{1, 5 * mib}, {2, 3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			before := time.Now()
			u := newMPUpload(t, st, "abort/"+tc.name)
			var nums []int
			for i, p := range tc.parts {
				u.mustPut(i+1, p)
				nums = append(nums, i+1)
			}
			requireUploadLeftover(t, st, u.key, before)
			require.NoError(t, u.m.AbortMultipart(ctx, u.key, u.state))
			requireNoUploadLeftover(t, st, u.key)
			require.NoError(t, u.m.AbortMultipart(ctx, u.key, u.state), "again")

			_, err := u.m.PutPart(ctx, u.key, u.state, 1, NewGen(1, 10), 10)
			require.ErrorIs(t, err, blob.ErrNotFound, "PutPart after abort")
			_, err = u.m.CopyPart(ctx, u.key, u.state, 1, "src", 0, 10)
			require.ErrorIs(t, err, blob.ErrNotFound, "CopyPart after abort")
			if len(nums) > 0 {
				require.ErrorIs(t, u.complete(u.parts(nums...)), blob.ErrNotFound, "complete after abort")
			}
			requireNotFound(t, st, u.key)
			requireNoUploadLeftover(t, st, u.key)
		})
	}
	t.Cleanup(func() {
		requireNoPartials(t, st)
		require.NoError(t, st.List(context.Background(), "", func(info blob.Info) error {
			if info.Key != "src" {
				return fmt.Errorf("an aborted upload made blob %q", info.Key)
			}
			return nil
		}))
	})
}

// testMultipartRemoveLeftover: the collector removes the upload the database no longer has
// through its leftover; the upload is then gone as if aborted.
func testMultipartRemoveLeftover(t *testing.T, st blob.Store) {
	ctx := t.Context()
	before := time.Now()
	empty := newMPUpload(t, st, "ab/created")
	u := newMPUpload(t, st, "ab/collected")
	u.mustPut(1, piece{1, 5 * mib})
	u.mustPut(2, piece{2, kib})
	requireUploadLeftover(t, st, empty.key, before)
	for _, l := range requireUploadLeftover(t, st, u.key, before) {
		require.NoError(t, st.RemoveLeftover(ctx, l.ID))
		require.NoError(t, st.RemoveLeftover(ctx, l.ID), "again")
	}
	requireNoUploadLeftover(t, st, u.key)
	requireUploadLeftover(t, st, empty.key, before)
	_, err := u.m.PutPart(ctx, u.key, u.state, 3, NewGen(3, 10), 10)
	require.ErrorIs(t, err, blob.ErrNotFound)
	require.ErrorIs(t, u.complete(u.parts(1, 2)), blob.ErrNotFound)
	requireNotFound(t, st, u.key)

	for _, l := range requireUploadLeftover(t, st, empty.key, before) {
		require.NoError(t, st.RemoveLeftover(ctx, l.ID))
	}
	requireNoPartials(t, st)
}

// testMultipartReaderError: a part whose body fails (an error, a body shorter or longer than
// its size, the context ending) fails the PutPart with the reader's error where there is one,
// and leaves the earlier part of its number intact, or none.
func testMultipartReaderError(t *testing.T, st blob.Store) {
	for _, tc := range []struct {
		name string
		body func(cancel func()) io.Reader
		size int64
		want error // what the error wraps, if anything in particular
	}{
		{"Immediately", func(func()) io.Reader { return FailAfter(NewGen(9, 0), errBoom) }, 100, errBoom},
		{"Small", func(func()) io.Reader { return FailAfter(NewGen(9, 1000), errBoom) }, 5000, errBoom},
		{"Large", func(func()) io.Reader { return FailAfter(NewGen(9, 6*mib), errBoom) }, 7 * mib, errBoom},
		{"LastByte", func(func()) io.Reader { return FailAfter(NewGen(9, 6*mib-1), errBoom) }, 6 * mib, errBoom},
		{"Short", func(func()) io.Reader { return NewGen(9, 6*mib-1) }, 6 * mib, nil},
		{"Long", func(func()) io.Reader { return NewGen(9, 6*mib+1) }, 6 * mib, nil},
		{"LongEmpty", func(func()) io.Reader { return NewGen(9, 1) }, 0, nil},
		{"Canceled", func(cancel func()) io.Reader {
			return io.MultiReader(NewGen(9, 3*mib), cancelReader(cancel), NewGen(10, 20*mib))
		}, 6 * mib, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := newMPUpload(t, st, "fail/"+tc.name)
			u.mustPut(1, piece{1, 5 * mib})
			u.mustPut(2, piece{2, 100})
			for _, n := range []int{2, 3} { // over an earlier part, and a new number
				ctx, cancel := context.WithCancel(t.Context())
				_, err := u.m.PutPart(ctx, u.key, u.state, n, tc.body(cancel), tc.size)
				cancel()
				require.Error(t, err, "part %d", n)
				if tc.want != nil {
					require.ErrorIs(t, err, tc.want, "part %d", n)
				}
			}
			require.ErrorIs(t, u.complete([]blob.Part{u.parts(1)[0], {Number: 3, ETag: md5Of(NewGen(9, 0))}}), blob.ErrInvalidPart,
				"a failed PutPart left a part 3")
			requireNotFound(t, st, u.key)
			require.NoError(t, u.complete(u.parts(1, 2)))
			requirePieces(t, st, u.key, []piece{{1, 5 * mib}, {2, 100}})
		})
	}
	t.Cleanup(func() { requireNoPartials(t, st) })
}

// testMultipartBadArguments: part numbers outside 1..10000 and negative sizes or ranges are
// refused, and change nothing.
func testMultipartBadArguments(t *testing.T, st blob.Store) {
	ctx := t.Context()
	require.NoError(t, st.Put(ctx, "src", NewGen(1, 10), 10))
	u := newMPUpload(t, st, "bad")
	for _, n := range []int{0, -1, blob.MaxPartNumber + 1} {
		_, err := u.m.PutPart(ctx, u.key, u.state, n, NewGen(1, 10), 10)
		require.Error(t, err, "PutPart number %d", n)
		_, err = u.m.CopyPart(ctx, u.key, u.state, n, "src", 0, 10)
		require.Error(t, err, "CopyPart number %d", n)
	}
	_, err := u.m.PutPart(ctx, u.key, u.state, 1, NewGen(1, 10), -1)
	require.Error(t, err, "unknown size")
	_, err = u.m.CopyPart(ctx, u.key, u.state, 1, "src", -1, 5)
	require.Error(t, err, "negative offset")
	_, err = u.m.CopyPart(ctx, u.key, u.state, 1, "src", 0, -1)
	require.Error(t, err, "negative length")
	_, err = u.m.CopyPart(ctx, u.key, u.state, 1, "src", 5, 6)
	require.Error(t, err, "a range past the source's end")
	require.ErrorIs(t, u.complete([]blob.Part{{Number: 1, ETag: md5Of(NewGen(1, 10))}}), blob.ErrInvalidPart, "no part was put")
	require.NoError(t, u.m.AbortMultipart(ctx, u.key, u.state))
	require.Equal(t, []string{"src"}, keysOf(list(t, st)))
	requireNoPartials(t, st)
}

func testMultipartInvalidKeys(t *testing.T, st blob.Store) {
	ctx := t.Context()
	m := multipart(t, st)
	u := newMPUpload(t, st, "valid")
	require.NoError(t, st.Put(ctx, "src", NewGen(1, 10), 10))
	for _, key := range InvalidKeys {
		_, err := m.CreateMultipart(ctx, key)
		require.ErrorIs(t, err, blob.ErrInvalidKey, "CreateMultipart %q", key)
		_, err = m.PutPart(ctx, key, u.state, 1, NewGen(1, 10), 10)
		require.ErrorIs(t, err, blob.ErrInvalidKey, "PutPart %q", key)
		_, err = m.CopyPart(ctx, key, u.state, 1, "src", 0, 10)
		require.ErrorIs(t, err, blob.ErrInvalidKey, "CopyPart to %q", key)
		_, err = m.CopyPart(ctx, u.key, u.state, 1, key, 0, 10)
		require.ErrorIs(t, err, blob.ErrInvalidKey, "CopyPart from %q", key)
		require.ErrorIs(t, m.CompleteMultipart(ctx, key, u.state, []blob.Part{{Number: 1, ETag: "x"}}), blob.ErrInvalidKey, "CompleteMultipart %q", key)
		require.ErrorIs(t, m.AbortMultipart(ctx, key, u.state), blob.ErrInvalidKey, "AbortMultipart %q", key)
	}
	require.NoError(t, m.AbortMultipart(ctx, u.key, u.state))
	require.Equal(t, []string{"src"}, keysOf(list(t, st)))
	requireNoPartials(t, st)
}
