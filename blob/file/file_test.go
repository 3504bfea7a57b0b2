package file_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/blob/blobtest"
	"github.com/pgstorage/storage/blob/file"
)

// newStore returns a store in a fresh directory and checks, when the test ends, that no
// temporary file was left behind, after successful and failed Puts alike.
func newStore(t *testing.T) *file.Store {
	st, err := file.New(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() {
		left, err := os.ReadDir(filepath.Join(st.Root(), file.TempDir))
		require.NoError(t, err)
		require.Empty(t, left, "temporary files left in %s", file.TempDir)
	})
	return st
}

func TestStore(t *testing.T) {
	t.Parallel()
	blobtest.Run(t, func(t *testing.T) blob.Store { return newStore(t) })
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
