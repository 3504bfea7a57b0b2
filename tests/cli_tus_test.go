package tests

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob/blobtest"
)

// cliTUS sends a TUS request to a running `storage serve` and returns status, headers, body.
func cliTUS(t *testing.T, method, u, token string, body []byte, h ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", "Bearer "+token)
	for i := 0; i < len(h); i += 2 {
		req.Header.Set(h[i], h[i+1])
	}
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b
}

// TestCLITUSKillResume: kill -9 of the server (and so its embedded PostgreSQL) while a PATCH
// streams; after a restart HEAD reports the offset recorded before the crash, not the bytes
// the partial file got past it, and the upload resumes from there to the source's exact bytes.
func TestCLITUSKillResume(t *testing.T) {
	bin := cliBinary(t)
	t.Parallel()
	dataDir := filepath.Join(cliTempDir(t), "data")
	blobsDir := filepath.Join(dataDir, "blobs")
	pgDir := filepath.Join(dataDir, "pg")
	env := cliEnv("STORAGE_DATA_DIR="+dataDir, "SERVER_HOST=127.0.0.1", "SERVER_PORT="+cliFreePort(t),
		"STORAGE_BACKEND=file", "STORAGE_FILE_BACKEND_PATH=")
	src := blobtest.Bytes(10<<20, 3)

	s := cliServe(t, bin, dataDir, env)
	s.waitReady()
	code, body := cliRcDo(t, http.MethodPost, s.url+"/bucket", s.service, "application/json", []byte(`{"name":"b"}`))
	require.Equal(t, http.StatusOK, code, "%s", body)
	code, hdr, body := cliTUS(t, "POST", s.url+"/upload/resumable", s.service, nil, "Upload-Length", strconv.Itoa(len(src)),
		"Upload-Metadata", "bucketName "+base64.StdEncoding.EncodeToString([]byte("b"))+",objectName "+base64.StdEncoding.EncodeToString([]byte("k.bin")))
	require.Equal(t, 201, code, "%s", body)
	loc := hdr.Get("Location")
	code, _, body = cliTUS(t, "PATCH", loc, s.service, src[:4<<20], "Content-Type", "application/offset+octet-stream", "Upload-Offset", "0")
	require.Equal(t, 204, code, "%s", body)

	// The second PATCH sends 3 of its 6 MiB, and the server is killed while it waits for more.
	conn := tusRawPatch(t, s.url, loc, s.service, 4<<20, 6<<20, src[4<<20:7<<20])
	defer conn.Close()
	partial := func() int64 {
		var size int64
		_ = filepath.WalkDir(filepath.Join(blobsDir, ".tmp", "partial"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					size = fi.Size()
				}
			}
			return nil
		})
		return size
	}
	cliRcWaitFor(t, 30*time.Second, "the partial file to grow past the recorded offset", func() bool { return partial() > 4<<20 })
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-s.exited:
	case <-time.After(cliStopTimeout):
		t.Fatalf("storage serve did not exit within %v of SIGKILL", cliStopTimeout)
	}
	_, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.Error(t, err, "the cut PATCH must not have been answered")
	cliRcWaitFor(t, 30*time.Second, "the embedded postgres to exit after serve was killed", func() bool {
		return len(cliPostgresOf(pgDir)) == 0
	})
	require.Greater(t, partial(), int64(4<<20), "bytes past the recorded offset stay in the partial file")

	s = cliServe(t, bin, dataDir, env)
	s.waitReady()
	code, hdr, _ = cliTUS(t, "HEAD", loc, s.service, nil)
	require.Equal(t, 200, code)
	require.Equal(t, strconv.Itoa(4<<20), hdr.Get("Upload-Offset"), "the offset recorded before the crash")
	code, hdr, body = cliTUS(t, "PATCH", loc, s.service, src[4<<20:], "Content-Type", "application/offset+octet-stream",
		"Upload-Offset", strconv.Itoa(4<<20))
	require.Equal(t, 204, code, "%s", body)
	require.Equal(t, "1", hdr.Get("Tus-Complete"))
	code, got := cliRcDo(t, http.MethodGet, s.url+"/object/authenticated/b/k.bin", s.service, "", nil)
	require.Equal(t, http.StatusOK, code)
	require.True(t, bytes.Equal(src, got), "the object's bytes are the source's")
	require.True(t, strings.HasPrefix(loc, s.url), loc)
	require.Equal(t, 0, s.stop(syscall.SIGTERM))
}

// TestCLICollectorRemovesLeftovers: the collector of `storage serve` (embedded default, so
// running as the servers' role, not a superuser) removes leftovers past the grace period (a
// put's temporary file, the partial file of a resumable upload nobody has in flight) and spares
// the partial file of a resumable upload in progress, however old.
func TestCLICollectorRemovesLeftovers(t *testing.T) {
	bin := cliBinary(t)
	t.Parallel()
	dataDir := filepath.Join(cliTempDir(t), "data")
	tmp := filepath.Join(dataDir, "blobs", ".tmp")
	env := cliEnv("STORAGE_DATA_DIR="+dataDir, "SERVER_HOST=127.0.0.1", "SERVER_PORT="+cliFreePort(t),
		"STORAGE_BACKEND=file", "STORAGE_FILE_BACKEND_PATH=", "STORAGE_LEFTOVER_GRACE=1m", "STORAGE_GC_INTERVAL=1s")
	s := cliServe(t, bin, dataDir, env)
	s.waitReady()
	code, body := cliRcDo(t, http.MethodPost, s.url+"/bucket", s.service, "application/json", []byte(`{"name":"b"}`))
	require.Equal(t, http.StatusOK, code, "%s", body)
	code, hdr, body := cliTUS(t, "POST", s.url+"/upload/resumable", s.service, []byte("live"), "Upload-Length", "8",
		"Content-Type", "application/offset+octet-stream",
		"Upload-Metadata", "bucketName "+base64.StdEncoding.EncodeToString([]byte("b"))+",objectName "+base64.StdEncoding.EncodeToString([]byte("live")))
	require.Equal(t, 201, code, "%s", body)
	loc := hdr.Get("Location")
	var live string
	require.NoError(t, filepath.WalkDir(filepath.Join(tmp, "partial"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			live = p
		}
		return err
	}))
	require.NotEmpty(t, live, "the live upload's partial file")

	old := time.Now().Add(-time.Hour)
	require.NoError(t, os.MkdirAll(filepath.Join(tmp, "partial", "ab"), 0o755))
	for _, p := range []string{filepath.Join(tmp, "put-leftover"), filepath.Join(tmp, "partial", "ab", "abcdef")} {
		require.NoError(t, os.WriteFile(p, []byte("left behind"), 0o644))
		require.NoError(t, os.Chtimes(p, old, old))
	}
	require.NoError(t, os.Chtimes(live, old, old))
	cliRcWaitFor(t, 60*time.Second, "the collector to remove both leftovers", func() bool {
		_, err1 := os.Stat(filepath.Join(tmp, "put-leftover"))
		_, err2 := os.Stat(filepath.Join(tmp, "partial", "ab", "abcdef"))
		return os.IsNotExist(err1) && os.IsNotExist(err2)
	})
	_, err := os.Stat(live)
	require.NoError(t, err, "the partial file of an upload in progress is no leftover")
	code, hdr, body = cliTUS(t, "PATCH", loc, s.service, []byte("data"), "Content-Type", "application/offset+octet-stream", "Upload-Offset", "4")
	require.Equal(t, 204, code, "%s", body)
	require.Equal(t, "1", hdr.Get("Tus-Complete"))
	require.NotContains(t, s.stderr.String(), "permission denied")
	require.Equal(t, 0, s.stop(syscall.SIGTERM))
}
