package tests

// End-to-end test of `storage reconcile`: a server killed in the middle of an upload leaves an
// upload marked in flight and a temporary file behind; reconcile reports them (once they are
// older than the grace period) and, with --apply, clears them without touching stored objects.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// cliRcClient makes a fresh connection per request: the tests restart (and kill) servers on
// one port, and a kept-alive connection to a dead server must not be reused.
var cliRcClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// cliRcDo makes one request with token as bearer and returns the status and body. A non-nil
// body is sent with contentType and a Content-Length.
func cliRcDo(t *testing.T, method, url, token, contentType string, body []byte) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := cliRcClient.Do(req)
	require.NoError(t, err, "%s %s", method, url)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err, "%s %s: reading the answer", method, url)
	return resp.StatusCode, b
}

// cliRcWaitFor polls cond every 20ms until it holds, failing after timeout.
func cliRcWaitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cliRcTempFiles lists the names and sizes of the files in the file backend's temporary
// directory (uploads in progress, or leftovers of interrupted ones).
func cliRcTempFiles(t *testing.T, blobsDir string) map[string]int64 {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(blobsDir, ".tmp"))
	require.NoError(t, err)
	files := map[string]int64{}
	for _, d := range des {
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		require.NoError(t, err)
		files[d.Name()] = fi.Size()
	}
	return files
}

// cliRcBlobFiles returns the contents of every blob file under blobsDir (outside .tmp),
// sorted, and fails on anything under blobsDir that is neither a directory nor a regular file.
func cliRcBlobFiles(t *testing.T, blobsDir string) []string {
	t.Helper()
	var contents []string
	err := filepath.WalkDir(blobsDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".tmp" && filepath.Dir(p) == blobsDir {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file (%v)", p, d.Type())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		contents = append(contents, string(b))
		return nil
	})
	require.NoError(t, err)
	sort.Strings(contents)
	return contents
}

// cliRcSummary is reconcile's last line for the given counts, without any suffix.
func cliRcSummary(grace string, stale, leftovers int) string {
	plural := func(n int, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	return fmt.Sprintf("reconcile (grace %s): %s, %s, 0 orphan blobs, 0 rows whose blob is missing", grace,
		plural(stale, "stale upload", "stale uploads"), plural(leftovers, "leftover", "leftovers"))
}

// cliRcLines splits reconcile's stdout into lines, requiring a final newline.
func cliRcLines(t *testing.T, stdout string) []string {
	t.Helper()
	require.True(t, strings.HasSuffix(stdout, "\n"), "stdout does not end with a newline: %q", stdout)
	return strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
}

var (
	cliRcStaleRE    = regexp.MustCompile(`^stale upload  b/big\.bin version ([0-9a-f]{32}) started (\S+)$`)
	cliRcLeftoverRE = regexp.MustCompile(`^leftover      (put-\S+) started (\S+)$`)
)

// TestCLIKillMidUploadReconcile is the acceptance test of `storage reconcile`: kill -9 a server
// in the middle of a large upload, then reconcile finds (past the grace period) the upload left
// marked in flight and its temporary file, and --apply removes both; the objects stored before
// are untouched and the key of the interrupted upload is free for a new one.
func TestCLIKillMidUploadReconcile(t *testing.T) {
	bin := cliBinary(t)
	t.Parallel()
	dataDir := filepath.Join(cliTempDir(t), "data")
	blobsDir := filepath.Join(dataDir, "blobs")
	pgDir := filepath.Join(dataDir, "pg")
	// STORAGE_BACKEND and STORAGE_FILE_BACKEND_PATH are pinned: the file backend in the data dir.
	// The small objects go to the blob files this test counts, not inline.
	env := cliEnv("STORAGE_DATA_DIR="+dataDir, "SERVER_HOST=127.0.0.1", "SERVER_PORT="+cliFreePort(t),
		"STORAGE_BACKEND=file", "STORAGE_FILE_BACKEND_PATH=", "STORAGE_INLINE_MAX=0")
	reconcile := func(t *testing.T, args ...string) cliResult {
		t.Helper()
		res := cliRun(t, bin, env, append([]string{"reconcile"}, args...)...)
		require.Equal(t, 0, res.code, "storage reconcile %v\nstdout:\n%s\nstderr:\n%s", args, res.stdout, cliTail(res.stderr))
		cliRequireClusterStopped(t, dataDir)
		return res
	}

	keep := map[string][]byte{
		"keep1.txt": []byte("kept across the crash\n"),
		"keep2.bin": {0, 1, 2, 0xfe, 0xff, '\n', 0, 'k', 'e', 'e', 'p', 0x80},
	}
	keepTypes := map[string]string{"keep1.txt": "text/plain", "keep2.bin": "application/octet-stream"}
	var keepContents []string
	for _, b := range keep {
		keepContents = append(keepContents, string(b))
	}
	sort.Strings(keepContents)

	// First life: a bucket, two objects, and a large upload cut short by kill -9.
	s := cliServe(t, bin, dataDir, env)
	s.waitReady()
	code, body := cliRcDo(t, http.MethodPost, s.url+"/bucket", s.service, "application/json", []byte(`{"name":"b"}`))
	require.Equal(t, http.StatusOK, code, "%s", body)
	for _, key := range []string{"keep1.txt", "keep2.bin"} {
		code, body := cliRcDo(t, http.MethodPost, s.url+"/object/b/"+key, s.service, keepTypes[key], keep[key])
		require.Equal(t, http.StatusOK, code, "upload %s: %s", key, body)
	}
	require.Empty(t, cliRcTempFiles(t, blobsDir), "temporary files left by completed uploads")
	require.Equal(t, keepContents, cliRcBlobFiles(t, blobsDir))

	// The body is a pipe that is never closed: no Content-Length, so the request is chunked,
	// and the server keeps waiting for the rest while the test kills it.
	const bigWritten = 8 << 20
	pr, pw := io.Pipe()
	uploadCtx, cancelUpload := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancelUpload()
	req, err := http.NewRequestWithContext(uploadCtx, http.MethodPost, s.url+"/object/b/big.bin", pr)
	require.NoError(t, err)
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+s.service)
	req.Header.Set("Content-Type", "application/octet-stream")
	answered := make(chan error, 1)
	go func() {
		resp, err := cliRcClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			err = fmt.Errorf("answered %s: %s", resp.Status, b)
			answered <- err
			return
		}
		answered <- nil // the connection broke, as it should when the server dies
	}()
	written := make(chan error, 1)
	go func() {
		chunk := bytes.Repeat([]byte("interrupted upload, "), 64<<10/20)
		for n := 0; n < bigWritten; n += len(chunk) {
			if _, err := pw.Write(chunk); err != nil {
				written <- err
				return
			}
		}
		written <- nil
	}()
	select {
	case err := <-written:
		require.NoError(t, err, "writing the large upload's body")
	case err := <-answered:
		t.Fatalf("the large upload ended before its body was sent: %v\nstderr:\n%s", err, cliTail(s.stderr.String()))
	case <-time.After(time.Minute):
		t.Fatal("the server did not read 8 MiB of the large upload within a minute")
	}
	var tmpName string
	cliRcWaitFor(t, 30*time.Second, "the server to write the large upload to a temporary file", func() bool {
		for name, size := range cliRcTempFiles(t, blobsDir) {
			if strings.HasPrefix(name, "put-") && size > 0 {
				tmpName = name
				return true
			}
		}
		return false
	})
	require.Len(t, cliRcTempFiles(t, blobsDir), 1, "one upload in progress")

	require.NoError(t, s.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-s.exited:
	case <-time.After(cliStopTimeout):
		t.Fatalf("storage serve did not exit within %v of SIGKILL", cliStopTimeout)
	}
	require.NoError(t, pw.CloseWithError(errors.New("the server was killed")))
	select {
	case err := <-answered:
		require.NoError(t, err, "the large upload must not have been answered")
	case <-time.After(30 * time.Second):
		t.Fatal("the large upload's request did not fail within 30s of the server's death")
	}
	// The postmaster gets SIGINT from the kernel when serve dies (Pdeathsig) and shuts down.
	cliRcWaitFor(t, 30*time.Second, "the embedded postgres to exit after serve was killed", func() bool {
		return len(cliPostgresOf(pgDir)) == 0
	})
	tmpFiles := cliRcTempFiles(t, blobsDir)
	require.Len(t, tmpFiles, 1, "the killed upload's temporary file")
	tmpSize, ok := tmpFiles[tmpName]
	require.True(t, ok, "temporary file %s is gone: %v", tmpName, tmpFiles)
	require.Equal(t, keepContents, cliRcBlobFiles(t, blobsDir))

	// The default grace period (1h) spares what the crash just left: it might be an upload in
	// progress.
	res := reconcile(t)
	require.Equal(t, cliRcSummary("1h0m0s", 0, 0)+"\n", res.stdout)

	// Without a grace period both are reported; nothing changes without --apply.
	res = reconcile(t, "--grace", "0s")
	lines := cliRcLines(t, res.stdout)
	// storage check reports the same, and the kill broke no invariant: the interrupted
	// upload's blob is its in-flight entry's, whose removal is the collector's business.
	chk := cliRun(t, bin, env, "check", "--grace", "0s")
	require.Equal(t, 0, chk.code, "storage check\nstdout:\n%s\nstderr:\n%s", chk.stdout, cliTail(chk.stderr))
	require.Equal(t, strings.Replace(res.stdout, "\nreconcile (grace", "\ncheck (grace", 1), chk.stdout)
	require.Len(t, lines, 3, "stdout:\n%s", res.stdout)
	stale := cliRcStaleRE.FindStringSubmatch(lines[0])
	require.NotNil(t, stale, "want the stale upload of b/big.bin first, got:\n%s", res.stdout)
	version := stale[1]
	leftover := cliRcLeftoverRE.FindStringSubmatch(lines[1])
	require.NotNil(t, leftover, "want the leftover second, got:\n%s", res.stdout)
	require.Equal(t, tmpName, leftover[1], "the leftover is the killed upload's temporary file")
	for _, ts := range []string{stale[2], leftover[2]} {
		started, err := time.Parse(time.RFC3339, ts)
		require.NoError(t, err, "timestamp %q", ts)
		require.WithinDuration(t, time.Now(), started, 10*time.Minute)
	}
	require.Equal(t, cliRcSummary("0s", 1, 1)+"; storage reconcile --apply repairs them", lines[2])
	require.Equal(t, map[string]int64{tmpName: tmpSize}, cliRcTempFiles(t, blobsDir), "a report changed the temporary files")
	require.Equal(t, keepContents, cliRcBlobFiles(t, blobsDir), "a report changed the blobs")

	// --apply repairs exactly what the report found.
	res = reconcile(t, "--apply", "--grace", "0s")
	require.Equal(t, lines[0]+" — ended, its blob deleted\n"+
		lines[1]+" — removed\n"+
		cliRcSummary("0s", 1, 1)+"; repaired\n", res.stdout)
	require.Empty(t, cliRcTempFiles(t, blobsDir), "temporary files left after --apply")
	require.Equal(t, keepContents, cliRcBlobFiles(t, blobsDir), "the blobs directory must hold exactly the two kept objects")
	require.NoFileExists(t, filepath.Join(blobsDir, version[:2], version))

	// Second life: the kept objects are intact, big.bin does not exist and can be uploaded.
	s2 := cliServe(t, bin, dataDir, env)
	s2.waitReady()
	require.Equal(t, s.service, s2.service)
	for key, want := range keep {
		code, got := cliRcDo(t, http.MethodGet, s2.url+"/object/b/"+key, s2.service, "", nil)
		require.Equal(t, http.StatusOK, code, "GET %s: %s", key, got)
		require.Equal(t, want, got, "GET %s", key)
	}
	const notFound = `{"statusCode":"404","code":"NoSuchKey","error":"not_found","message":"Object not found"}`
	for _, path := range []string{"/object/info/b/big.bin", "/object/b/big.bin"} {
		code, got := cliRcDo(t, http.MethodGet, s2.url+path, s2.service, "", nil)
		require.Equal(t, http.StatusBadRequest, code, "GET %s: %s", path, got)
		require.JSONEq(t, notFound, string(got), "GET %s", path)
	}
	big := []byte("big.bin, uploaded again after the crash\n")
	code, body = cliRcDo(t, http.MethodPost, s2.url+"/object/b/big.bin", s2.service, "application/octet-stream", big)
	require.Equal(t, http.StatusOK, code, "upload big.bin again: %s", body)
	code, body = cliRcDo(t, http.MethodGet, s2.url+"/object/b/big.bin", s2.service, "", nil)
	require.Equal(t, http.StatusOK, code, "%s", body)
	require.Equal(t, big, body)
	require.Equal(t, 0, s2.stop(syscall.SIGINT), "exit code after SIGINT")
	cliRequireClusterStopped(t, dataDir)

	// Nothing left to find.
	res = reconcile(t, "--grace", "0s")
	require.Equal(t, cliRcSummary("0s", 0, 0)+"\n", res.stdout)
	require.Empty(t, cliRcTempFiles(t, blobsDir))
	require.Len(t, cliRcBlobFiles(t, blobsDir), 3, "the two kept objects and the new big.bin")

	// What breaks the invariants makes storage check fail: a blob nothing references, and a
	// row whose blob is gone (findings come in key order).
	orphan := strings.Repeat("f", 32)
	require.NoError(t, os.MkdirAll(filepath.Join(blobsDir, "ff"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(blobsDir, "ff", orphan), []byte("orphan"), 0o600))
	bigBlob := filepath.Join(blobsDir, cliRcBlobOf(t, blobsDir, big))
	require.NoError(t, os.Remove(bigBlob))
	chk = cliRun(t, bin, env, "check", "--grace", "0s")
	require.Equal(t, 1, chk.code, "storage check\nstdout:\n%s\nstderr:\n%s", chk.stdout, cliTail(chk.stderr))
	lines = cliRcLines(t, chk.stdout)
	require.Len(t, lines, 3, "stdout:\n%s", chk.stdout)
	bigKey := filepath.ToSlash(strings.TrimPrefix(bigBlob, blobsDir+"/"))
	require.Equal(t, "missing blob  b/big.bin version "+path.Base(bigKey)+" (key "+bigKey+")", lines[0])
	require.Regexp(t, `^orphan blob   ff/`+orphan+` 6 bytes written \S+$`, lines[1])
	require.Equal(t, "check (grace 0s): 0 stale uploads, 0 leftovers, 1 orphan blob, 1 row whose blob is missing; "+
		"storage reconcile --apply repairs them; rows with missing blobs are left as they are (restore the blobs, or delete the rows)", lines[2])
	require.Equal(t, "storage check: the invariants do not hold: 1 orphan blobs, 1 rows whose blob is missing",
		cliOneLine(t, chk.stderr))
}

// cliRcBlobOf is the path, under blobsDir, of the blob holding content.
func cliRcBlobOf(t *testing.T, blobsDir string, content []byte) string {
	t.Helper()
	var found []string
	require.NoError(t, filepath.WalkDir(blobsDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.Contains(p, "/.tmp/") {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Equal(b, content) {
			rel, _ := filepath.Rel(blobsDir, p)
			found = append(found, rel)
		}
		return err
	}))
	require.Len(t, found, 1, "blobs holding %q", content)
	return found[0]
}
