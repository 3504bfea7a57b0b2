package file_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/blob/blobtest"
	"github.com/pgstorage/storage/blob/file"
)

// newStore returns a store in a fresh directory and checks, when the test ends, that no
// temporary file was left behind, after successful and failed Puts alike, and no partial blob
// of a resumable upload (their directories stay, like root's).
func newStore(t *testing.T) *file.Store {
	st, err := file.New(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() {
		require.Empty(t, tempFiles(t, st), "files left in %s", file.TempDir)
	})
	return st
}

// tempFiles lists the files (not directories) under TempDir, relative to it.
func tempFiles(t *testing.T, st *file.Store) []string {
	tmp := filepath.Join(st.Root(), file.TempDir)
	var files []string
	require.NoError(t, filepath.WalkDir(tmp, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(tmp, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	}))
	return files
}

func TestStore(t *testing.T) {
	t.Parallel()
	blobtest.Run(t, func(t *testing.T) blob.Store { return newStore(t) })
	// Here, so that its memory check runs before the suites' parallel subtests.
	blobtest.RunResumable(t, func(t *testing.T) blob.Store { return newStore(t) })
	blobtest.RunMultipart(t, func(t *testing.T) blob.Store { return newStore(t) })
}

// TestLayout pins the mapping key → root/key that the documentation (and `reconcile`) rely on.
func TestLayout(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	require.NoError(t, st.Put(t.Context(), "ab/abcdef", strings.NewReader("hi"), 2))
	b, err := os.ReadFile(filepath.Join(st.Root(), "ab", "abcdef"))
	require.NoError(t, err)
	require.Equal(t, "hi", string(b))
	fi, err := os.Stat(filepath.Join(st.Root(), file.TempDir))
	require.NoError(t, err)
	require.True(t, fi.IsDir())
}

// TestNoEscape tries every refused key and checks that nothing appeared anywhere: not outside
// the root, not inside it.
func TestNoEscape(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	st, err := file.New(root)
	require.NoError(t, err)
	ctx := t.Context()
	keys := append([]string{"../outside", "../../outside", "/tmp/abs", "a/../../outside", "..\\outside"},
		blobtest.InvalidKeys...)
	for _, key := range keys {
		require.ErrorIs(t, st.Put(ctx, key, strings.NewReader("x"), 1), blob.ErrInvalidKey, "%q", key)
		require.ErrorIs(t, st.Delete(ctx, key), blob.ErrInvalidKey, "%q", key)
	}
	var found []string
	require.NoError(t, filepath.WalkDir(parent, func(p string, d os.DirEntry, err error) error {
		found = append(found, p)
		return err
	}))
	require.Equal(t, []string{parent, root, filepath.Join(root, file.TempDir)}, found)
}

// TestNoPartialBlob holds a Put midway and checks that its key shows nothing until Put returns:
// the bytes sit in a temporary file meanwhile.
func TestNoPartialBlob(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := t.Context()
	reached, release := make(chan struct{}), make(chan struct{})
	body := io.MultiReader(
		blobtest.NewGen(1, 1<<20),
		gate{reached, release},
		blobtest.NewGen(2, 1<<20),
	)
	done := make(chan error, 1)
	go func() { done <- st.Put(ctx, "ab/slow", body, -1) }()

	<-reached
	_, err := os.Lstat(filepath.Join(st.Root(), "ab", "slow"))
	require.ErrorIs(t, err, os.ErrNotExist, "partial blob visible under its key")
	_, err = st.Size(ctx, "ab/slow")
	require.ErrorIs(t, err, blob.ErrNotFound)
	tmp, err := os.ReadDir(filepath.Join(st.Root(), file.TempDir))
	require.NoError(t, err)
	require.Len(t, tmp, 1, "the upload in progress is one temporary file")
	info, err := tmp[0].Info()
	require.NoError(t, err)
	require.EqualValues(t, 1<<20, info.Size())
	// Leftovers reports it, by the temporary file's name.
	var left []blob.Leftover
	require.NoError(t, st.Leftovers(ctx, func(l blob.Leftover) error { left = append(left, l); return nil }))
	require.Equal(t, []blob.Leftover{{ID: tmp[0].Name(), Started: info.ModTime()}}, left)

	close(release)
	require.NoError(t, <-done)
	size, err := st.Size(ctx, "ab/slow")
	require.NoError(t, err)
	require.EqualValues(t, 2<<20, size)
}

// gate signals reached when first read, then blocks until release is closed.
type gate struct{ reached, release chan struct{} }

func (g gate) Read(p []byte) (int, error) {
	close(g.reached)
	<-g.release
	return 0, io.EOF
}

// TestGetFile: whole-blob reads (and reads to the end) hand out the *os.File, so the HTTP
// server can sendfile; bounded ranges are limited readers.
func TestGetFile(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := t.Context()
	data := blobtest.Bytes(1000, 1)
	require.NoError(t, st.Put(ctx, "f", bytes.NewReader(data), 1000))

	rc, err := st.Get(ctx, "f", 0, -1)
	require.NoError(t, err)
	require.IsType(t, (*os.File)(nil), rc)
	require.NoError(t, rc.Close())

	rc, err = st.Get(ctx, "f", 900, -1)
	require.NoError(t, err)
	require.IsType(t, (*os.File)(nil), rc)
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.Equal(t, data[900:], b)
	require.NoError(t, rc.Close())

	rc, err = st.Get(ctx, "f", 10, 20)
	require.NoError(t, err)
	_, isFile := rc.(*os.File)
	require.False(t, isFile, "a bounded range must not be the bare file")
	b, err = io.ReadAll(rc)
	require.NoError(t, err)
	require.Equal(t, data[10:30], b)
	require.NoError(t, rc.Close())

	_, err = st.Get(ctx, "f", -1, 5)
	require.Error(t, err)
}

// TestParentIsBlob: on a file system "a" cannot be both a blob and the directory of "a/b".
// The Put fails, leaves nothing, and reads of "a/b" say not found.
func TestParentIsBlob(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := t.Context()
	require.NoError(t, st.Put(ctx, "a", strings.NewReader("x"), 1))
	err := st.Put(ctx, "a/b", strings.NewReader("y"), 1)
	require.Error(t, err)
	require.NotErrorIs(t, err, blob.ErrExists)
	_, err = st.Get(ctx, "a/b", 0, -1)
	require.ErrorIs(t, err, blob.ErrNotFound)
	_, err = st.Size(ctx, "a/b")
	require.ErrorIs(t, err, blob.ErrNotFound)
	require.NoError(t, st.Delete(ctx, "a/b"))
}

// The blobs are private (root and temporary directory: no access for group or others), but
// parents New creates stay traversable: the embedded PostgreSQL cluster, run as another OS
// user, lives beside them.
func TestNewDirectoryModes(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	st, err := file.New(filepath.Join(base, "data", "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	mode := func(dir string) os.FileMode {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	if m := mode(filepath.Join(base, "data")); m&0o001 == 0 {
		t.Errorf("data dir mode %04o: others cannot traverse it", m)
	}
	for _, dir := range []string{st.Root(), filepath.Join(st.Root(), file.TempDir)} {
		if m := mode(dir); m&0o077 != 0 {
			t.Errorf("%s: mode %04o, want no access for group and others", dir, m)
		}
	}
}

// TestLeftovers: a temporary file that a crashed Put left in TempDir is reported with its
// name as ID and its modification time as Started, and RemoveLeftover deletes it.
func TestLeftovers(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := t.Context()
	f, err := os.CreateTemp(filepath.Join(st.Root(), file.TempDir), "put-*")
	require.NoError(t, err)
	_, err = f.WriteString("half a blob")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	mtime := time.Now().Add(-time.Hour).Truncate(time.Second)
	require.NoError(t, os.Chtimes(f.Name(), mtime, mtime))
	id := filepath.Base(f.Name())

	left := leftovers(t, st)
	require.Len(t, left, 1)
	require.Equal(t, id, left[0].ID)
	require.Empty(t, left[0].Key, "a temporary file does not know its key")
	require.WithinDuration(t, mtime, left[0].Started, time.Second)
	require.Empty(t, list(t, st), "a leftover is not a blob")

	// A blob whose key looks like a leftover's id is not one: ids name files in TempDir only.
	require.NoError(t, st.Put(ctx, id, strings.NewReader("blob"), 4))

	require.NoError(t, st.RemoveLeftover(ctx, id))
	_, err = os.Stat(f.Name())
	require.ErrorIs(t, err, os.ErrNotExist)
	require.Empty(t, leftovers(t, st))
	require.NoError(t, st.RemoveLeftover(ctx, id), "removing it again")
	size, err := st.Size(ctx, id)
	require.NoError(t, err, "the blob named like the leftover")
	require.EqualValues(t, 4, size)
}

// TestRemoveLeftoverRefuses: only names Leftovers can report are taken; nothing else is touched.
func TestRemoveLeftoverRefuses(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := t.Context()
	require.NoError(t, st.Put(ctx, "x", strings.NewReader("x"), 1))
	require.NoError(t, st.Put(ctx, "a/b", strings.NewReader("b"), 1))
	for _, id := range []string{
		"", "x", "a/b", "../x", "..", ".", "put-../x", "put-a/b", "put-..", "/put-x",
		"put-x/", `put-a\b`, "put-x/../../x", "../" + file.TempDir + "/put-x", "put-x\x00",
	} {
		require.ErrorIs(t, st.RemoveLeftover(ctx, id), blob.ErrInvalidKey, "%q", id)
	}
	require.Equal(t, []string{"a/b", "x"}, keysOf(list(t, st)))
}

// TestListSkips: List yields regular files under keys CheckKey accepts, and nothing else it
// finds under root: dot names (TempDir and its leftovers), symlinks, names no key can have.
func TestListSkips(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := t.Context()
	require.NoError(t, st.Put(ctx, "ab/blob", strings.NewReader("x"), 1))
	root := st.Root()
	write := func(rel string) {
		p := filepath.Join(root, filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
		require.NoError(t, os.WriteFile(p, []byte("junk"), 0o600))
	}
	write(".hidden")
	write("ab/.hidden")
	write(".dir/file")
	write(`ab/back\slash`)
	write("ab/ctl\x01")
	require.NoError(t, os.Symlink(filepath.Join(root, "ab", "blob"), filepath.Join(root, "ab", "link")))
	require.NoError(t, os.Mkdir(filepath.Join(root, "empty"), 0o700))
	require.Equal(t, []string{"ab/blob"}, keysOf(list(t, st)))
}

// TestListByteOrder: keys made of characters that sort around "/" ('!', '-', '.' below it,
// '0' and letters above), at random depths: List yields them in byte order, which a
// directory-by-directory walk in name order does not.
func TestListByteOrder(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "a-0.!bü"
	chars := []rune(alphabet)
	var keys []string
	for range 200 {
		var segs []string
		for range 1 + rng.IntN(3) {
			seg := ""
			for range 1 + rng.IntN(3) {
				seg += string(chars[rng.IntN(len(chars))])
			}
			if seg[0] == '.' {
				seg = "a" + seg
			}
			segs = append(segs, seg)
		}
		key := strings.Join(segs, "/")
		// A key that is another's directory, or below another (or the same) key, is refused.
		if st.Put(ctx, key, strings.NewReader(key), int64(len(key))) == nil {
			keys = append(keys, key)
		}
	}
	require.Greater(t, len(keys), 100, "enough keys stored")
	slices.Sort(keys)
	require.Equal(t, keys, keysOf(list(t, st)))
}

func list(t *testing.T, st blob.Store) []blob.Info {
	t.Helper()
	var infos []blob.Info
	require.NoError(t, st.List(t.Context(), "", func(info blob.Info) error {
		infos = append(infos, info)
		return nil
	}))
	return infos
}

func keysOf(infos []blob.Info) []string {
	keys := []string{}
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

// TestPartialLayout pins where a resumable upload's bytes sit before Finish (TempDir/PartialDir
// /key, so no key shows them), how Leftovers reports them, and that RemoveLeftover takes only
// the ids it reports.
func TestPartialLayout(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := t.Context()
	off, state, err := st.Append(ctx, "ab/cdef", "", 0, strings.NewReader("hello"), 5)
	require.NoError(t, err)
	require.EqualValues(t, 5, off)
	require.Equal(t, []string{"partial/ab/cdef"}, tempFiles(t, st))
	b, err := os.ReadFile(filepath.Join(st.Root(), file.TempDir, file.PartialDir, "ab", "cdef"))
	require.NoError(t, err)
	require.Equal(t, "hello", string(b))

	// Started is the time of the last write.
	p := filepath.Join(st.Root(), file.TempDir, file.PartialDir, "ab", "cdef")
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	require.NoError(t, os.Chtimes(p, old, old))
	left := leftovers(t, st)
	require.Equal(t, []blob.Leftover{{ID: "partial/ab/cdef", Key: "ab/cdef", Started: old}}, left)
	off, state, err = st.Append(ctx, "ab/cdef", state, off, strings.NewReader("!"), -1)
	require.NoError(t, err)
	require.EqualValues(t, 6, off)
	left = leftovers(t, st)
	require.Len(t, left, 1)
	require.WithinDuration(t, time.Now(), left[0].Started, time.Minute)

	for _, id := range []string{
		"partial/", "partial/../x", "partial/ab/../x", "partial/.tmp/x", "partial//ab/cdef", "partial/ab/cdef/",
		"partial/ab\\cdef", "partial/ab/cdef\x00", "partial", "partialab/cdef", "/partial/ab/cdef",
	} {
		require.ErrorIs(t, st.RemoveLeftover(ctx, id), blob.ErrInvalidKey, "%q", id)
	}
	require.NoError(t, st.RemoveLeftover(ctx, "partial/ab"), "a directory of partial blobs is none")
	require.Len(t, leftovers(t, st), 1)
	require.NoError(t, st.Finish(ctx, "ab/cdef", state, off))
	require.Empty(t, tempFiles(t, st))
	require.Empty(t, leftovers(t, st))
}

// TestFinishAfterCrash: a server that died inside Finish, after linking the partial blob under
// its key but before removing the partial blob's name, left a second link to the blob. The
// retried Finish recognizes its own blob, succeeds, and removes the partial name; the same
// situation with another file under the key is ErrExists.
func TestFinishAfterCrash(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := t.Context()
	partial := func(key string) string {
		return filepath.Join(st.Root(), file.TempDir, file.PartialDir, filepath.FromSlash(key))
	}

	off, state, err := st.Append(ctx, "ab/crashed", "", 0, strings.NewReader("hello"), 5)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(st.Root(), "ab"), 0o700))
	require.NoError(t, os.Link(partial("ab/crashed"), filepath.Join(st.Root(), "ab", "crashed")))
	require.NoError(t, st.Finish(ctx, "ab/crashed", state, off))
	_, err = os.Lstat(partial("ab/crashed"))
	require.ErrorIs(t, err, os.ErrNotExist)
	rc, err := st.Get(ctx, "ab/crashed", 0, -1)
	require.NoError(t, err)
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	require.Equal(t, "hello", string(b))

	off, state, err = st.Append(ctx, "ab/other", "", 0, strings.NewReader("hello"), 5)
	require.NoError(t, err)
	require.NoError(t, st.Put(ctx, "ab/other", strings.NewReader("hello"), 5))
	require.ErrorIs(t, st.Finish(ctx, "ab/other", state, off), blob.ErrExists)
	require.NoError(t, st.Discard(ctx, "ab/other", state))
}

// TestVariantDirectoryRemoved: a version's variant directory goes with its last variant, so
// that deleted versions leave no empty directory each behind; the shard directories above it,
// and those of version keys, stay as they are.
func TestVariantDirectoryRemoved(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := t.Context()
	const v = "ab12cd34-0000-4000-8000-000000000000"
	for _, key := range []string{blob.VersionKey(v), blob.VariantKey(v, "1.webp"), blob.VariantKey(v, "2.png")} {
		require.NoError(t, st.Put(ctx, key, strings.NewReader("x"), 1))
	}
	dir := filepath.Join(st.Root(), "render", "ab", v)
	require.NoError(t, st.Delete(ctx, blob.VariantKey(v, "1.webp")))
	require.DirExists(t, dir, "a variant is left in it")
	require.NoError(t, st.Delete(ctx, blob.VariantKey(v, "2.png")))
	require.NoDirExists(t, dir)
	require.DirExists(t, filepath.Join(st.Root(), "render", "ab"))
	require.NoError(t, st.Delete(ctx, blob.VariantKey(v, "2.png")), "deleting it again")
	require.NoError(t, st.Delete(ctx, blob.VersionKey(v)))
	require.DirExists(t, filepath.Join(st.Root(), "ab"))
	require.Empty(t, list(t, st))
}

// TestVariantPutRacesDirectoryRemoval: Puts of a version's variants while other variants of
// it are deleted, emptying (and so removing) its directory over and over: every Put succeeds,
// making the directory again when a Delete removed it under it.
func TestVariantPutRacesDirectoryRemoval(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := t.Context()
	const v = "cd12cd34-0000-4000-8000-000000000000"
	const rounds = 2000
	var (
		wg       sync.WaitGroup
		churnErr error
	)
	wg.Go(func() {
		for i := range rounds {
			key := blob.VariantKey(v, fmt.Sprintf("churn-%d", i))
			if churnErr = st.Put(ctx, key, strings.NewReader("x"), 1); churnErr != nil {
				return
			}
			if churnErr = st.Delete(ctx, key); churnErr != nil {
				return
			}
		}
	})
	defer wg.Wait() // also when the test fails midway: its Puts must end before the cleanup checks
	for i := range rounds {
		key := blob.VariantKey(v, fmt.Sprintf("put-%d", i))
		require.NoError(t, st.Put(ctx, key, strings.NewReader("x"), 1))
		require.NoError(t, st.Delete(ctx, key))
	}
	wg.Wait()
	require.NoError(t, churnErr)
	require.Empty(t, list(t, st))
}

// TestListPrefixSkipsTemp: no prefix reaches TempDir or other dot names, even with files there.
func TestListPrefixSkipsTemp(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := t.Context()
	require.NoError(t, st.Put(ctx, "ab/blob", strings.NewReader("x"), 1))
	f, err := os.CreateTemp(filepath.Join(st.Root(), file.TempDir), "put-*")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	defer os.Remove(f.Name())
	require.NoError(t, os.WriteFile(filepath.Join(st.Root(), "ab", ".hidden"), []byte("junk"), 0o600))
	for _, prefix := range []string{file.TempDir + "/", file.TempDir + "/put-", ".", "ab/.", "ab/.hidden"} {
		var got []string
		require.NoError(t, st.List(ctx, prefix, func(info blob.Info) error { got = append(got, info.Key); return nil }))
		require.Empty(t, got, "prefix %q", prefix)
	}
}
