package tests

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/blob/file"
	"github.com/pgstorage/storage/lifecycle"
)

// leftovers lists the store's leftovers of interrupted writes.
func leftovers(t *testing.T, s blob.Store) []blob.Leftover {
	t.Helper()
	var ls []blob.Leftover
	require.NoError(t, s.Leftovers(context.Background(), func(l blob.Leftover) error {
		ls = append(ls, l)
		return nil
	}))
	return ls
}

// TestLifecycleCollectorRemovesLeftovers: the collector removes, by itself, the leftovers of
// interrupted writes once they are older than its grace period (a killed upload's temporary
// file, an unfinished multipart upload), and never those of an upload still in progress: a
// temporary file that is being written is younger than the grace period, and a multipart
// upload whose upload the database has in flight is spared whatever its age.
func TestLifecycleCollectorRemovesLeftovers(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newObjEnv(t, be)
		collector := func(grace time.Duration) *lifecycle.Collector {
			c := o.newCollector(time.Hour)
			c.LeftoverGrace = grace
			return c
		}

		// What a killed upload left: a temporary file last written two hours ago (the file
		// store), an unfinished multipart upload of a key no upload has in flight (S3).
		makeLeftover(t, o.blobs)
		if fs, ok := o.blobs.(*file.Store); ok {
			tmp, err := filepath.Glob(filepath.Join(fs.Root(), file.TempDir, "*"))
			require.NoError(t, err)
			require.Len(t, tmp, 1)
			old := time.Now().Add(-2 * time.Hour)
			require.NoError(t, os.Chtimes(tmp[0], old, old))
		}
		dead := leftovers(t, o.blobs)
		require.Len(t, dead, 1)

		// An upload in progress, large enough for S3 to have started a multipart upload.
		pr, pw := io.Pipe()
		done := make(chan httpResponse, 1)
		req := o.newRequest(t, "POST", objPath("b", "live"), o.service, pr, -1)
		go func() {
			resp, err := httpClient.Do(req)
			if err != nil {
				done <- httpResponse{Status: -1, Body: []byte(err.Error())}
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			done <- httpResponse{Status: resp.StatusCode, Header: resp.Header, Body: body}
		}()
		first := strings.Repeat("l", 9<<20)
		_, err := io.WriteString(pw, first)
		require.NoError(t, err)
		o.waitFor(t, "the upload in flight", func() bool { return len(o.inFlight(t)) == 1 })
		liveKey := blob.VersionKey(o.inFlight(t)[0])
		// (The test server's own collector may remove the dead leftover meanwhile.)
		var live blob.Leftover
		o.waitFor(t, "the live upload's leftover", func() bool {
			for _, l := range leftovers(t, o.blobs) {
				if l.ID != dead[0].ID {
					live = l
				}
			}
			return live.ID != ""
		})
		if live.Key != "" {
			require.Equal(t, liveKey, live.Key, "S3 names the key of the upload")
		}

		// With the default grace (an hour): the dead temporary file goes; the live upload's
		// leftover, younger, stays. The S3 leftover was made now: it stays too.
		collect(t, collector(0))
		if _, ok := o.blobs.(*file.Store); ok {
			require.Equal(t, []string{live.ID}, leftoverIDs(leftovers(t, o.blobs)))
		} else {
			require.Len(t, leftovers(t, o.blobs), 2)
			// However short the grace, a multipart upload whose upload is in flight stays.
			collect(t, collector(time.Nanosecond))
			require.Equal(t, []string{live.ID}, leftoverIDs(leftovers(t, o.blobs)))
		}

		// The live upload was not harmed: it completes, and leaves nothing behind.
		_, err = io.WriteString(pw, "end")
		require.NoError(t, err)
		require.NoError(t, pw.Close())
		requireUploaded(t, <-done, "b/live")
		require.Equal(t, first+"end", o.content(t, "b", "live"))
		require.Empty(t, leftovers(t, o.blobs))
		o.requireBlobsAccounted(t)
	})
}

func leftoverIDs(ls []blob.Leftover) []string {
	ids := []string{}
	for _, l := range ls {
		ids = append(ids, l.ID)
	}
	return ids
}
