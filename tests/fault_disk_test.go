package tests

import (
	"fmt"
	"net/http"
	"os"
	osexec "os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/blob/file"
)

// mountTmpfs mounts a tmpfs of size bytes for t (unmounted when t ends) and returns its path.
// It needs root, as `make test` runs in CI: a full or read-only disk cannot be made otherwise.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	require.Zero(t, os.Geteuid(), "mounting a small tmpfs (a disk to fill) needs root; run the tests as root, as CI does")
	dir := t.TempDir()
	mount(t, "-t", "tmpfs", "-o", "size="+strconv.Itoa(size), "tmpfs", dir)
	t.Cleanup(func() { _ = osexec.Command("umount", "-l", dir).Run() })
	return dir
}

func mount(t *testing.T, args ...string) {
	t.Helper()
	out, err := osexec.Command("mount", args...).CombinedOutput()
	require.NoError(t, err, "mount %v: %s", args, out)
}

// TestFaultBlobDiskFull: the file store's disk fills up, then turns read-only. Uploads by
// every door are refused with 503 + Retry-After and store nothing (no row, no blob, no
// temporary file); what is stored stays readable; once there is room again uploads succeed.
func TestFaultBlobDiskFull(t *testing.T) {
	t.Parallel()
	dir := mountTmpfs(t, 2<<20)
	store, err := file.New(dir)
	require.NoError(t, err)
	o := newObjEnv(t, objectBackend{name: "tmpfs", newStore: func(*testing.T) blob.Store { return store }})
	const full = "The blob store is not available; retry later"

	// Fill it, 256 KiB at a time, until an upload is refused.
	content := strings.Repeat("0123456789abcdef", 16<<10)
	var stored []string
	for i := 0; ; i++ {
		require.Less(t, i, 16, "a 2 MiB disk took 16 uploads of 256 KiB")
		key := fmt.Sprintf("k%02d", i)
		r := o.upload(t, "POST", "b", key, o.service, content)
		if r.Status == http.StatusOK {
			stored = append(stored, "b/"+key)
			continue
		}
		requireBusy(t, r, full)
		break
	}
	require.NotEmpty(t, stored)
	o.requireNothingStored(t, stored...)
	for _, name := range stored {
		require.Equal(t, content, o.content(t, "b", strings.TrimPrefix(name, "b/")))
	}

	// The S3 door.
	r := o.s3("PUT", "/s3/b/s3-put").with(content).send(t)
	require.Equal(t, s3Failure{503, "SlowDown", full}, s3ErrorOf(t, r))
	require.Equal(t, "1", r.Header.Get("Retry-After"))
	o.requireNothingStored(t, stored...)

	// Read-only: even a small upload is refused; downloads go on.
	mount(t, "-o", "remount,ro", dir)
	requireBusy(t, o.upload(t, "POST", "b", "small", o.service, "small"), full)
	o.requireNothingStored(t, stored...)
	require.Equal(t, content, o.content(t, "b", "k00"))

	// Writable again with room: deleting frees nothing on disk before the collector runs, so
	// make room by hand, as an operator would (a bigger disk).
	mount(t, "-o", "remount,rw,size=8m", dir)
	r = o.upload(t, "POST", "b", "after", o.service, content)
	require.Equal(t, http.StatusOK, r.Status, "%s", r)
	require.Equal(t, content, o.content(t, "b", "after"))
	o.requireNothingStored(t, append([]string{"b/after"}, stored...)...) // in name order

	// The TUS door: a resumable upload whose PATCH finds the disk full.
	mount(t, "-o", "remount,size=3m", dir)
	loc := o.tusCreate(t, o.service, "b", "resumable", 4<<20)
	r = o.tusPatch(t, loc, o.service, 0, []byte(strings.Repeat(content, 16)))
	require.Equal(t, http.StatusServiceUnavailable, r.Status, "%s", r)
	require.Equal(t, full, string(r.Body))
	head := o.tusDo(t, "HEAD", loc, o.service, nil)
	require.Equal(t, http.StatusOK, head.Status, "%s", head)
	require.Equal(t, "0", head.Header.Get("Upload-Offset"), "nothing of the refused PATCH counts")
}
