package file_test

import (
	"crypto/md5"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/blob/blobtest"
	"github.com/pgstorage/storage/blob/file"
)

// TestMultipartLayout pins the layout multipart.go describes: the upload of key is the
// directory TempDir/MultipartDir/key with its marker and its parts, each part file its bytes and
// then their MD5; the uploads of "ab" and "ab/cd" share a directory without meeting; the file
// store has no minimum part size; Leftovers reports each upload once, Started being its last
// write.
func TestMultipartLayout(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := t.Context()
	dir := func(key string) string {
		return filepath.Join(st.Root(), file.TempDir, file.MultipartDir, filepath.FromSlash(key))
	}
	etags := map[string]string{}
	for _, key := range []string{"ab", "ab/cd"} {
		state, err := st.CreateMultipart(ctx, key)
		require.NoError(t, err)
		require.Empty(t, state, "the file store keeps no state")
		for n, s := range []string{"hello ", key} {
			etag, err := st.PutPart(ctx, key, "", n+1, strings.NewReader(s), int64(len(s)))
			require.NoError(t, err)
			sum := md5.Sum([]byte(s))
			require.Equal(t, hex.EncodeToString(sum[:]), etag)
			etags[key+"/"+s] = etag
		}
	}
	require.Equal(t, []string{
		"multipart/ab/.part-1", "multipart/ab/.part-2", "multipart/ab/.upload",
		"multipart/ab/cd/.part-1", "multipart/ab/cd/.part-2", "multipart/ab/cd/.upload",
	}, tempFiles(t, st))
	b, err := os.ReadFile(filepath.Join(dir("ab/cd"), ".part-2"))
	require.NoError(t, err)
	sum := md5.Sum([]byte("ab/cd"))
	require.Equal(t, append([]byte("ab/cd"), sum[:]...), b, "the part's bytes, then their MD5")

	// Started is the last write of any piece.
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, d := range []string{dir("ab"), dir("ab/cd")} {
		for _, name := range []string{".part-1", ".part-2", ".upload", ""} {
			require.NoError(t, os.Chtimes(filepath.Join(d, name), old, old))
		}
	}
	require.Equal(t, []blob.Leftover{
		{ID: "multipart/ab", Key: "ab", Started: old},
		{ID: "multipart/ab/cd", Key: "ab/cd", Started: old},
	}, leftovers(t, st))
	newer := old.Add(time.Minute)
	require.NoError(t, os.Chtimes(filepath.Join(dir("ab/cd"), ".part-1"), newer, newer))
	require.Equal(t, newer, leftovers(t, st)[1].Started)

	for _, id := range []string{
		"multipart/", "multipart/../x", "multipart/ab/../x", "multipart/.tmp/x", "multipart//ab",
		"multipart/ab/", "multipart/ab\\cd", "multipart/ab\x00", "multipart", "multipartab",
		"multipart/ab/.part-1", "/multipart/ab",
	} {
		require.ErrorIs(t, st.RemoveLeftover(ctx, id), blob.ErrInvalidKey, "%q", id)
	}
	require.Len(t, leftovers(t, st), 2)

	// (A file system cannot hold blobs under both "ab" and "ab/cd": the second upload is
	// aborted.)
	require.NoError(t, st.CompleteMultipart(ctx, "ab/cd", "", []blob.Part{
		{Number: 1, ETag: etags["ab/cd/hello "]}, {Number: 2, ETag: etags["ab/cd/ab/cd"]},
	}))
	rc, err := st.Get(ctx, "ab/cd", 0, -1)
	require.NoError(t, err)
	b, err = io.ReadAll(rc)
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	require.Equal(t, "hello ab/cd", string(b))
	require.Equal(t, []string{"multipart/ab/.part-1", "multipart/ab/.part-2", "multipart/ab/.upload"}, tempFiles(t, st))
	require.NoError(t, st.AbortMultipart(ctx, "ab", ""))
	require.Empty(t, tempFiles(t, st))
	require.Empty(t, leftovers(t, st))
	_, err = os.Stat(dir("ab"))
	require.ErrorIs(t, err, os.ErrNotExist, "a completed upload's directory goes")
}

// TestMultipartAbortDuringPutPart: an upload aborted while a part streams into it fails that
// PutPart (ErrNotFound) once the body ends, and nothing of the upload comes back.
func TestMultipartAbortDuringPutPart(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	ctx := t.Context()
	_, err := st.CreateMultipart(ctx, "ab/aborted")
	require.NoError(t, err)
	reached, release := make(chan struct{}), make(chan struct{})
	body := io.MultiReader(blobtest.NewGen(1, 1<<20), gate{reached, release}, blobtest.NewGen(2, 1<<20))
	done := make(chan error, 1)
	go func() {
		_, err := st.PutPart(ctx, "ab/aborted", "", 1, body, 2<<20)
		done <- err
	}()
	<-reached
	require.Len(t, leftovers(t, st), 1, "the upload, its part in progress among its pieces")
	require.NoError(t, st.AbortMultipart(ctx, "ab/aborted", ""))
	close(release)
	require.ErrorIs(t, <-done, blob.ErrNotFound)
	require.Empty(t, leftovers(t, st))
	require.Empty(t, tempFiles(t, st))
	_, err = os.Stat(filepath.Join(st.Root(), file.TempDir, file.MultipartDir, "ab", "aborted"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
