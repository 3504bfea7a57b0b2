package s3_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/blob/blobtest"
	"github.com/pgstorage/storage/blob/s3"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// appender drives a resumable upload and records its progress, as the server does.
type appender struct {
	t      *testing.T
	st     *s3.Store
	key    string
	offset int64
	state  string
}

func (a *appender) add(seed uint64, n int64) {
	a.t.Helper()
	off, state, err := a.st.Append(a.t.Context(), a.key, a.state, a.offset, blobtest.NewGen(seed, n), -1)
	require.NoError(a.t, err)
	require.Equal(a.t, a.offset+n, off)
	a.offset, a.state = off, state
}

// parts returns the sizes of the parts of key's multipart upload (there must be one).
func parts(t *testing.T, cfg s3.Config, key string) []int64 {
	t.Helper()
	ups, err := srv.Client().ListMultipartUploads(t.Context(), &awss3.ListMultipartUploadsInput{
		Bucket: aws.String(cfg.Bucket), Prefix: aws.String(cfg.Prefix + key),
	})
	require.NoError(t, err)
	require.Len(t, ups.Uploads, 1)
	out, err := srv.Client().ListParts(t.Context(), &awss3.ListPartsInput{
		Bucket: aws.String(cfg.Bucket), Key: ups.Uploads[0].Key, UploadId: ups.Uploads[0].UploadId,
	})
	require.NoError(t, err)
	var sizes []int64
	for _, p := range out.Parts {
		sizes = append(sizes, aws.ToInt64(p.Size))
	}
	return sizes
}

// tails returns the names of key's tail objects, relative to the store's prefix.
func tails(t *testing.T, cfg s3.Config, key string) []string {
	t.Helper()
	var names []string
	for _, name := range objects(t, cfg.Prefix+s3.PartialPrefix+key+"/") {
		names = append(names, strings.TrimPrefix(name, cfg.Prefix))
	}
	return names
}

// TestAppendParts pins how appends become parts: a 6 MiB append (what Supabase's clients
// send) is one 6 MiB part and leaves no tail; a tail and the next append's bytes make one
// part when together they reach 5 MiB; a long body is cut at the part size plus 5 MiB, and
// its last bytes, fewer than 5 MiB, wait in a tail named by the offset it ends at.
func TestAppendParts(t *testing.T) {
	t.Parallel()
	cfg := config()
	st := newStore(t, cfg)
	a := &appender{t: t, st: st, key: "ab/parts"}

	a.add(1, 6*mib)
	a.add(2, 6*mib)
	require.Equal(t, []int64{6 * mib, 6 * mib}, parts(t, cfg, a.key))
	require.Empty(t, tails(t, cfg, a.key))

	a.add(3, kib)
	require.Equal(t, []int64{6 * mib, 6 * mib}, parts(t, cfg, a.key))
	require.Equal(t, []string{".partial/ab/parts/12583936"}, tails(t, cfg, a.key))
	a.add(4, 6*mib)
	require.Equal(t, []int64{6 * mib, 6 * mib, 6*mib + kib}, parts(t, cfg, a.key))

	a.add(5, 30*mib)
	bound := int64(s3.DefaultPartSize + s3.MinPartSize)
	require.Equal(t, []int64{6 * mib, 6 * mib, 6*mib + kib, bound, bound}, parts(t, cfg, a.key))
	end := a.offset
	// The tail the 6 MiB append consumed is deleted by the next Append; this one's stays.
	require.Equal(t, []string{".partial/ab/parts/" + itoa(end)}, tails(t, cfg, a.key))

	require.NoError(t, st.Finish(t.Context(), a.key, a.state, a.offset))
	size, err := st.Size(t.Context(), a.key)
	require.NoError(t, err)
	require.Equal(t, end, size)
	require.Empty(t, tails(t, cfg, a.key))
}

// TestAppendStaleTails: a run of small appends keeps at most two tails, the recorded one and
// the one it replaced (deleted by the next Append, once the caller has recorded the new one),
// not one per append.
func TestAppendStaleTails(t *testing.T) {
	t.Parallel()
	cfg := config()
	st := newStore(t, cfg)
	a := &appender{t: t, st: st, key: "small"}
	for i := range 10 {
		a.add(uint64(i), 100*kib)
		require.LessOrEqual(t, len(tails(t, cfg, a.key)), 2, "after append %d", i)
	}
	require.Contains(t, tails(t, cfg, a.key), ".partial/small/"+itoa(a.offset))
	require.NoError(t, st.Discard(t.Context(), a.key, a.state))
	require.Empty(t, tails(t, cfg, a.key))
}

// TestAppendPartLimit: S3 takes at most 10,000 parts (lowered here to 3): an Append that
// would need more is refused clearly and leaves the recorded progress valid, and so is a
// Finish whose tail would be one part too many.
func TestAppendPartLimit(t *testing.T) {
	t.Parallel()
	cfg := config()
	cfg.PartSize = s3.MinPartSize
	st := newStore(t, cfg)
	s3.SetPartLimit(st, 3)
	ctx := t.Context()
	a := &appender{t: t, st: st, key: "limit"}
	a.add(1, 6*mib)
	a.add(2, 6*mib)
	a.add(3, 6*mib)
	off, state, err := st.Append(ctx, a.key, a.state, a.offset, blobtest.NewGen(4, 6*mib), -1)
	require.ErrorContains(t, err, "at most 3 parts")
	require.Equal(t, a.offset, off)
	require.Equal(t, a.state, state)

	a.add(5, kib) // a tail is no part
	require.ErrorContains(t, st.Finish(ctx, a.key, a.state, a.offset), "at most 3 parts")
	require.NoError(t, st.Discard(ctx, a.key, a.state))
}

// TestFinishAfterCrash: a server that died inside Finish of a partial blob that is only a
// tail, after putting it under key but before deleting the tail, left both. The retried
// Finish recognizes its own blob by the tail's ETag (the same bytes) and succeeds; another
// blob under the key is ErrExists.
func TestFinishAfterCrash(t *testing.T) {
	t.Parallel()
	cfg := config()
	st := newStore(t, cfg)
	ctx := t.Context()
	data := blobtest.Bytes(3*kib, 1)
	for name, put := range map[string][]byte{"same": data, "other": blobtest.Bytes(3*kib, 2)} {
		off, state, err := st.Append(ctx, name, "", 0, bytes.NewReader(data), -1)
		require.NoError(t, err)
		_, err = srv.Client().PutObject(ctx, &awss3.PutObjectInput{
			Bucket: aws.String(cfg.Bucket), Key: aws.String(cfg.Prefix + name), Body: bytes.NewReader(put),
		})
		require.NoError(t, err)
		err = st.Finish(ctx, name, state, off)
		if name == "same" {
			require.NoError(t, err)
			require.Empty(t, tails(t, cfg, name))
		} else {
			require.ErrorIs(t, err, blob.ErrExists)
			require.NoError(t, st.Discard(ctx, name, state))
		}
	}
}

// TestTailLeftovers: a tail is reported with its key and removed by RemoveLeftover, whose
// ids for tails are as strict as for uploads; an object under PartialPrefix that is no tail
// is not the store's to report.
func TestTailLeftovers(t *testing.T) {
	t.Parallel()
	cfg := config()
	st := newStore(t, cfg)
	ctx := t.Context()
	_, _, err := st.Append(ctx, "ab/cd", "", 0, strings.NewReader("hello"), 5)
	require.NoError(t, err)
	_, err = srv.Client().PutObject(ctx, &awss3.PutObjectInput{
		Bucket: aws.String(cfg.Bucket), Key: aws.String(cfg.Prefix + s3.PartialPrefix + "ab/notatail"), Body: strings.NewReader("x"),
	})
	require.NoError(t, err)
	left := leftovers(t, st)
	require.Len(t, left, 1)
	require.Equal(t, ".partial/ab/cd/5", left[0].ID)
	require.Equal(t, "ab/cd", left[0].Key)
	for _, id := range []string{
		".partial/", ".partial/ab/cd", ".partial/ab/cd/x", ".partial/../cd/5", ".partial/ab//cd/5",
		".partial/ab/notatail", ".partial/.tmp/5", ".partial/ab/cd/5/", ".partial/ab/cd/-5",
	} {
		require.ErrorIs(t, st.RemoveLeftover(ctx, id), blob.ErrInvalidKey, "%q", id)
	}
	require.NoError(t, st.RemoveLeftover(ctx, left[0].ID))
	require.NoError(t, st.RemoveLeftover(ctx, left[0].ID), "again")
	require.Empty(t, leftovers(t, st))
	require.Equal(t, []string{cfg.Prefix + s3.PartialPrefix + "ab/notatail"}, objects(t, cfg.Prefix+s3.PartialPrefix))
	_, err = srv.Client().DeleteObject(ctx, &awss3.DeleteObjectInput{
		Bucket: aws.String(cfg.Bucket), Key: aws.String(cfg.Prefix + s3.PartialPrefix + "ab/notatail"),
	})
	require.NoError(t, err)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestSpoolDir: an Append spools its part in SpoolDir, in a file unlinked from the start, so
// that a crash leaves nothing there; the file is closed when the Append returns.
func TestSpoolDir(t *testing.T) {
	t.Parallel()
	cfg := config()
	cfg.SpoolDir = t.TempDir()
	st := newStore(t, cfg)
	reached, release := make(chan struct{}), make(chan struct{})
	body := io.MultiReader(blobtest.NewGen(1, 3*mib), gate{reached, release}, blobtest.NewGen(2, 3*mib))
	type result struct {
		off   int64
		state string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		off, state, err := st.Append(context.Background(), "spooled", "", 0, body, -1)
		done <- result{off, state, err}
	}()
	<-reached
	entries, err := os.ReadDir(cfg.SpoolDir)
	require.NoError(t, err)
	require.Empty(t, entries, "the spool file has no name")
	require.Len(t, spoolFiles(t, cfg.SpoolDir), 1, "the Append holds one spool file open")
	close(release)
	res := <-done
	require.NoError(t, res.err)
	require.EqualValues(t, 6*mib, res.off)
	require.Empty(t, spoolFiles(t, cfg.SpoolDir))
	require.NoError(t, st.Finish(t.Context(), "spooled", res.state, res.off))
}

// spoolFiles lists this process's open files that were created in dir (and unlinked since).
func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	var files []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, dir+"/") {
			files = append(files, target)
		}
	}
	return files
}

// gate closes reached when first read, then blocks until release is closed and yields
// nothing: put between two readers in an io.MultiReader, it holds an Append midway.
type gate struct{ reached, release chan struct{} }

func (g gate) Read([]byte) (int, error) {
	close(g.reached)
	<-g.release
	return 0, io.EOF
}
