package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/blob/file"
	"github.com/pgstorage/storage/limits"
	"github.com/pgstorage/storage/proxy"
)

// The limits every door shares (package limits), seen from the REST door: idle timeouts that
// follow progress, caps that refuse with 503 and Retry-After, database timeouts, and bounds on
// JSON bodies. Servers run with small limits so the tests stay fast; waits for the server
// are awaited on what it does (a row, a lock, a closed file), never slept.

// withLimits sets the server's limits.
func withLimits(lc limits.Config) httpOpt { return func(c *serverConfig) { c.Limits = lc } }

// errBusy is the body of a capacity refusal.
func errBusy(message string) apiError { return apiError{"503", "SlowDown", "SlowDown", message} }

var errRequestTimeout = apiError{"408", "RequestTimeout", "Request Timeout", "The request timed out: the client stopped sending it"}

// requireBusy asserts a 503 refusal with Retry-After and the four-field body.
func requireBusy(t *testing.T, r httpResponse, message string) {
	t.Helper()
	requireAPIError(t, r, http.StatusServiceUnavailable, errBusy(message))
	require.Equal(t, "1", r.Header.Get("Retry-After"), "Retry-After of %s", r)
}

// hostPort is the test server's address.
func (b *httpBundle) hostPort() string { return strings.TrimPrefix(b.baseURL, "http://") }

// dialFrom opens a raw connection to the server from the loopback address localIP ("" = the
// system's choice). rcvbuf, when positive, shrinks the socket's receive buffer before it
// connects, so a client that stops reading soon stops the server's writes.
func dialFrom(t *testing.T, addr, localIP string, rcvbuf int) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// readResponse reads one response from c, whole.
func readResponse(t *testing.T, c net.Conn, method string) httpResponse {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return httpResponse{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// getFrom sends GET path on a fresh connection from localIP and returns the response.
func (b *httpBundle) getFrom(t *testing.T, localIP, path string) httpResponse {
	t.Helper()
	r, err := b.tryGetFrom(localIP, path)
	require.NoError(t, err)
	return r
}

// tryGetFrom is getFrom reporting failures instead of failing the test, for conditions
// (require.Eventually runs them on a goroutine of its own).
func (b *httpBundle) tryGetFrom(localIP, path string) (httpResponse, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	c, err := d.Dial("tcp", b.hostPort())
	if err != nil {
		return httpResponse{}, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return httpResponse{}, err
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", path); err != nil {
		return httpResponse{}, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "GET"})
	if err != nil {
		return httpResponse{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return httpResponse{Status: resp.StatusCode, Header: resp.Header, Body: body}, err
}

// statusOf sends method path with token and body (JSON when it looks like it, text
// otherwise) and returns the status, or 0
// when the request failed; safe in conditions.
func (b *httpBundle) statusOf(method, path, token, body string) int {
	req, err := http.NewRequest(method, b.baseURL+path, strings.NewReader(body))
	if err != nil {
		return 0
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "text/plain")
	if strings.HasPrefix(body, "{") {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0
	}
	return resp.StatusCode
}

// startUpload sends the headers of a raw upload of size bytes to /object/b/<key> and the
// first sent bytes of its body, then sends nothing more.
func (b *httpBundle) startUpload(t *testing.T, key string, size int, sent []byte) net.Conn {
	t.Helper()
	c := dialFrom(t, b.hostPort(), "", 0)
	_, err := fmt.Fprintf(c, "POST /object/b/%s HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", key, b.service, size)
	require.NoError(t, err)
	_, err = c.Write(sent)
	require.NoError(t, err)
	return c
}

// openFilesUnder lists the files under dir that this process (which runs the test server) has
// open, from /proc/self/fd. Safe in conditions.
func openFilesUnder(dir string) []string {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return []string{"/proc/self/fd: " + err.Error()}
	}
	var open []string
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(target, dir+"/") {
			open = append(open, target)
		}
	}
	return open
}

// randomBytes returns n random bytes.
func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// inFlightUploads counts the uploads the database has in flight (-1 when it cannot); safe in
// conditions.
func inFlightUploads(b *httpBundle) int {
	var n int
	if err := b.db.Pool.QueryRow(context.Background(), `select count(*) from storage.blob_uploads`).Scan(&n); err != nil {
		return -1
	}
	return n
}

// TestHTTPSlowUpload: an upload that takes longer than the read timeout succeeds while its
// bytes keep coming (the timeout is the longest pause, not the whole request), and its bytes
// round-trip.
func TestHTTPSlowUpload(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t, withLimits(limits.Config{ReadIdle: time.Second, WriteIdle: time.Second}))
	b.createBucket(t, `{"name":"b"}`)

	// ~100 KB/s for about 3 s: 30 pieces of 10 KB, 100 ms apart.
	content := randomBytes(t, 300_000)
	pr, pw := io.Pipe()
	go func() {
		for p := content; len(p) > 0; p = p[min(len(p), 10_000):] {
			time.Sleep(100 * time.Millisecond) // pacing the client, not waiting for the server
			if _, err := pw.Write(p[:min(len(p), 10_000)]); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, err := http.NewRequest("POST", b.baseURL+"/object/b/slow", pr)
	require.NoError(t, err)
	req.ContentLength = int64(len(content))
	req.Header.Set("Authorization", "Bearer "+b.service)
	req.Header.Set("Content-Type", "application/octet-stream")
	started := time.Now()
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", body)
	require.Greater(t, time.Since(started), 2*time.Second, "the upload must outlast the read timeout to prove anything")

	got := b.do(t, "GET", "/object/b/slow", b.service, "")
	require.Equal(t, http.StatusOK, got.Status, got.String())
	require.True(t, bytes.Equal(content, got.Body), "downloaded bytes differ from the slow upload's")
}

// TestHTTPStalledUpload: a client that stops sending in the middle of its body gets 408 in
// the reference's shape, its connection is closed, and nothing is stored: no row, no upload
// in flight, and its blob (if any was written) only in the collector's queue.
func TestHTTPStalledUpload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store, err := file.New(dir)
	require.NoError(t, err)
	b := setupHTTP(t, withBlobStore(store), withLimits(limits.Config{ReadIdle: time.Second, WriteIdle: 5 * time.Second}))
	b.createBucket(t, `{"name":"b"}`)

	c := b.startUpload(t, "stalled", 1<<20, randomBytes(t, 100_000))
	r := readResponse(t, c, "POST")
	requireAPIError(t, r, http.StatusRequestTimeout, errRequestTimeout)
	// The server closed the connection after its answer.
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
	n, err := c.Read(make([]byte, 1))
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, io.EOF)

	ctx := context.Background()
	var rows int
	require.NoError(t, b.db.Pool.QueryRow(ctx, `select count(*) from storage.objects`).Scan(&rows))
	require.Zero(t, rows, "a stalled upload stores no row")
	require.Zero(t, inFlightUploads(b), "the stalled upload is no longer in flight")
	queued := map[string]bool{}
	vrows, err := b.db.Pool.Query(ctx, `select version from storage.blobs_freed`)
	require.NoError(t, err)
	versions, err := pgx.CollectRows(vrows, pgx.RowTo[string])
	require.NoError(t, err)
	for _, v := range versions {
		queued[v] = true
	}
	require.NoError(t, store.List(ctx, "", func(i blob.Info) error {
		require.True(t, queued[filepath.Base(i.Key)], "blob %s is neither a row's nor queued for the collector", i.Key)
		return nil
	}))
	require.NoError(t, store.Leftovers(ctx, func(l blob.Leftover) error {
		t.Errorf("the stalled upload left %s behind", l.ID)
		return nil
	}))
	require.Empty(t, openFilesUnder(dir), "the upload's temporary file is closed")

	// The server still serves.
	ok := b.do(t, "POST", "/object/b/after", b.service, "x", withHeader("Content-Type", "text/plain"))
	require.Equal(t, http.StatusOK, ok.Status, ok.String())
}

// TestHTTPStalledDownload: a client that stops reading its download is dropped after the
// write timeout, and the blob file the download was streaming from is closed.
func TestHTTPStalledDownload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store, err := file.New(dir)
	require.NoError(t, err)
	b := setupHTTP(t, withBlobStore(store), withLimits(limits.Config{ReadIdle: 5 * time.Second, WriteIdle: time.Second}))
	b.createBucket(t, `{"name":"b","public":true}`)
	// Larger than what the sockets' buffers take in: the server's writes block once the
	// client stops reading.
	const size = 32 << 20
	up := b.do(t, "POST", "/object/b/big", b.service, string(randomBytes(t, size)), withHeader("Content-Type", "application/octet-stream"))
	require.Equal(t, http.StatusOK, up.Status, up.String())

	c := dialFrom(t, b.hostPort(), "", 4096)
	_, err = fmt.Fprintf(c, "GET /object/public/b/big HTTP/1.1\r\nHost: test\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, strconv.Itoa(size), resp.Header.Get("Content-Length"))
	require.NotEmpty(t, openFilesUnder(dir), "the download streams from its blob file")

	// The client reads nothing more. Within the write timeout (and a generous margin for a
	// loaded machine) the server gives up on it and closes the blob file.
	require.Eventually(t, func() bool { return len(openFilesUnder(dir)) == 0 }, 20*time.Second, 50*time.Millisecond,
		"the stalled download's blob file stays open: %v", openFilesUnder(dir))

	// And the connection is closed: what is left to read ends before the whole body.
	require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Second)))
	n, err := io.Copy(io.Discard, resp.Body)
	require.Error(t, err, "the body must end early")
	require.Less(t, n, int64(size))
}

// TestHTTPSlowDownload: a download whose client reads slowly, and whose writes take longer
// in all than the write timeout, completes while its bytes keep moving.
func TestHTTPSlowDownload(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t, withLimits(limits.Config{ReadIdle: 5 * time.Second, WriteIdle: time.Second}))
	b.createBucket(t, `{"name":"b","public":true}`)
	// More than the sockets' buffers take in (4 MiB of send buffer at most on Linux by
	// default), read at about 1 MB/s: the server writes for several seconds.
	const size = 8 << 20
	content := randomBytes(t, size)
	up := b.do(t, "POST", "/object/b/big", b.service, string(content), withHeader("Content-Type", "application/octet-stream"))
	require.Equal(t, http.StatusOK, up.Status, up.String())

	c := dialFrom(t, b.hostPort(), "", 4096)
	_, err := fmt.Fprintf(c, "GET /object/public/b/big HTTP/1.1\r\nHost: test\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(60*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 4096), &http.Request{Method: "GET"})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	// Slowly through the first 4.5 MiB: the server cannot be done writing before (the rest
	// does not fit in its send buffer); the rest at full speed.
	started := time.Now()
	var got bytes.Buffer
	piece := make([]byte, 50_000)
	for got.Len() < 4<<20+512<<10 {
		time.Sleep(50 * time.Millisecond) // pacing the client, not waiting for the server
		n, err := io.ReadFull(resp.Body, piece)
		got.Write(piece[:n])
		require.NoError(t, err, "after %d bytes", got.Len())
	}
	require.Greater(t, time.Since(started), 3*time.Second, "the download must outlast the write timeout to prove anything")
	_, err = io.Copy(&got, resp.Body)
	require.NoError(t, err, "after %d bytes", got.Len())
	require.True(t, bytes.Equal(content, got.Bytes()), "downloaded bytes differ")
}

// TestHTTPConnectionCaps: past the global and the per-address connection caps, connections
// are refused with 503, Retry-After and the four-field body; once connections close, new
// ones are served again.
func TestHTTPConnectionCaps(t *testing.T) {
	t.Parallel()

	t.Run("Global", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t, withLimits(limits.Config{MaxConns: 2}))
		// Two idle connections take both places (accepted in order, before the third).
		first := dialFrom(t, b.hostPort(), "", 0)
		dialFrom(t, b.hostPort(), "", 0)
		r := b.getFrom(t, "", "/status")
		requireBusy(t, r, "Too many connections; retry later")
		// Browsers may read it (the server allows every origin) and its Retry-After.
		require.Equal(t, "*", r.Header.Get("Access-Control-Allow-Origin"))
		require.Contains(t, r.Header.Get("Access-Control-Expose-Headers"), "retry-after")

		first.Close()
		require.Eventually(t, func() bool { r, err := b.tryGetFrom("", "/status"); return err == nil && r.Status == http.StatusOK },
			20*time.Second, 20*time.Millisecond, "a place frees up when a connection closes")
	})

	t.Run("PerIP", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t, withLimits(limits.Config{MaxConnsPerIP: 1}))
		held := dialFrom(t, b.hostPort(), "127.0.0.1", 0)
		requireBusy(t, b.getFrom(t, "127.0.0.1", "/status"), "Too many connections from your address; retry later")
		// Another address is served.
		require.Equal(t, http.StatusOK, b.getFrom(t, "127.0.0.2", "/status").Status)

		held.Close()
		require.Eventually(t, func() bool {
			r, err := b.tryGetFrom("127.0.0.1", "/status")
			return err == nil && r.Status == http.StatusOK
		},
			20*time.Second, 20*time.Millisecond, "the address is served again once its connection closes")
	})
}

// TestHTTPUploadCap: past the cap on uploads in progress, an upload is refused at once with
// 503 and Retry-After (no queue); when the upload in progress ends, uploads are served again.
func TestHTTPUploadCap(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t, withLimits(limits.Config{MaxUploads: 1, ReadIdle: 30 * time.Second}))
	b.createBucket(t, `{"name":"b"}`)

	stalled := b.startUpload(t, "first", 1<<20, randomBytes(t, 20_000))
	require.Eventually(t, func() bool { return inFlightUploads(b) == 1 }, 20*time.Second, 10*time.Millisecond,
		"the first upload is in progress")

	refused := b.do(t, "POST", "/object/b/second", b.service, "x", withHeader("Content-Type", "text/plain"))
	requireBusy(t, refused, "Too many uploads in progress; retry later")
	// Other routes are not held up by the cap.
	require.Equal(t, http.StatusOK, b.do(t, "GET", "/bucket/b", b.service, "").Status)

	// The client goes away: its upload fails, and its place frees up.
	stalled.Close()
	require.Eventually(t, func() bool { return b.statusOf("POST", "/object/b/third", b.service, "x") == http.StatusOK }, 20*time.Second, 20*time.Millisecond, "uploads are served again once the first ends")
	requireAPIErrorCode(t, b.do(t, "GET", "/object/info/b/first", b.service, ""), http.StatusBadRequest, "404", "NoSuchKey")
}

// TestHTTPDownloadCap: past the cap on downloads in progress, a download is refused with 503
// and Retry-After; a download counts until its body is written, and when it ends downloads
// are served again.
func TestHTTPDownloadCap(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t, withLimits(limits.Config{MaxDownloads: 1, WriteIdle: 30 * time.Second}))
	b.createBucket(t, `{"name":"b","public":true}`)
	const size = 32 << 20
	content := randomBytes(t, size)
	up := b.do(t, "POST", "/object/b/big", b.service, string(content), withHeader("Content-Type", "application/octet-stream"))
	require.Equal(t, http.StatusOK, up.Status, up.String())

	// A download whose client reads its headers and then nothing: its handler has returned,
	// its body is being written.
	c := dialFrom(t, b.hostPort(), "", 4096)
	_, err := fmt.Fprintf(c, "GET /object/public/b/big HTTP/1.1\r\nHost: test\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 4096), &http.Request{Method: "GET"})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)

	requireBusy(t, b.do(t, "GET", "/object/public/b/big", "", ""), "Too many downloads in progress; retry later")
	requireBusy(t, b.do(t, "GET", "/object/b/big", b.service, ""), "Too many downloads in progress; retry later")
	// What is not a download is served.
	require.Equal(t, http.StatusOK, b.do(t, "GET", "/object/info/public/b/big", "", "").Status)
	require.Equal(t, http.StatusOK, b.do(t, "HEAD", "/object/public/b/big", "", "").Status)

	c.Close()
	require.Eventually(t, func() bool { return b.statusOf("GET", "/object/public/b/big", "", "") == http.StatusOK },
		20*time.Second, 20*time.Millisecond, "downloads are served again once the first ends")
	r := b.do(t, "GET", "/object/public/b/big", "", "")
	require.Equal(t, http.StatusOK, r.Status)
	require.True(t, bytes.Equal(content, r.Body), "downloaded bytes differ")
}

// lockBucketRow holds a row lock on bucket id in a transaction of its own until the test
// ends or release is called.
func lockBucketRow(t *testing.T, b *httpBundle, id string) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := b.db.Pool.Begin(ctx)
	require.NoError(t, err)
	var got string
	require.NoError(t, tx.QueryRow(ctx, `select id from storage.buckets where id = $1 for update`, id).Scan(&got))
	release = func() { _ = tx.Rollback(ctx) }
	t.Cleanup(release)
	return release
}

// awaitLockWaiters waits until n backends of the test's database wait for a lock.
func awaitLockWaiters(t *testing.T, b *httpBundle, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		var waiting int
		err := b.db.Pool.QueryRow(context.Background(),
			`select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`).Scan(&waiting)
		return err == nil && waiting >= n
	}, 20*time.Second, 10*time.Millisecond, "a request waits for the lock")
}

// TestHTTPPoolExhausted: with every pooled connection held by a request blocked on a lock,
// other requests are refused with 503 and Retry-After once the acquire timeout passes,
// instead of hanging; the blocked request completes when the lock goes.
func TestHTTPPoolExhausted(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	b.createBucket(t, `{"name":"b"}`)

	// A second server on the same database, with a pool of one connection.
	pcfg, err := pgxpool.ParseConfig(b.db.URL)
	require.NoError(t, err)
	pcfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), pcfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	// Its one connection is made now: on a loaded machine connecting can take longer than the
	// acquire timeout, and the request meant to block would be refused instead.
	require.NoError(t, pool.Ping(context.Background()))
	srv := proxy.New(proxy.Config{JWTSecret: httpJWTSecret, Version: httpVersion, Blobs: b.blobs,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PoolAcquireTimeout: 300 * time.Millisecond}, pool).HTTPServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go srv.Serve(ln) //nolint:errcheck // returns when Shutdown closes the listener
	t.Cleanup(func() { _ = srv.Shutdown() })
	small := &httpBundle{db: b.db, baseURL: "http://" + ln.Addr().String(), service: b.service}

	release := lockBucketRow(t, b, "b")
	blocked := make(chan int, 1)
	go func() { blocked <- small.statusOf("PUT", "/bucket/b", small.service, `{"public":true}`) }()
	awaitLockWaiters(t, b, 1)

	requireBusy(t, small.do(t, "GET", "/bucket", small.service, ""), "No database connection is free; retry later")

	release()
	require.Equal(t, http.StatusOK, <-blocked, "the blocked request completes")
	require.Equal(t, http.StatusOK, small.do(t, "GET", "/bucket", small.service, "").Status, "served again")
}

// TestHTTPDatabaseTimeouts: a request's call blocked on a lock ends at lock_timeout with the
// reference's ResourceLocked (423); a slow one ends at statement_timeout with DatabaseTimeout
// (HTTP 544). Both are transaction-local: the pooled connections keep no setting.
func TestHTTPDatabaseTimeouts(t *testing.T) {
	t.Parallel()

	t.Run("LockTimeout", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t, func(c *serverConfig) { c.LockTimeout = 200 * time.Millisecond; c.StatementTimeout = 20 * time.Second })
		b.createBucket(t, `{"name":"b"}`)
		lockBucketRow(t, b, "b")
		r := b.do(t, "PUT", "/bucket/b", b.service, `{"public":true}`)
		requireAPIError(t, r, http.StatusBadRequest, apiError{"423", "ResourceLocked", "ResourceLocked", "The resource is locked"})
	})

	t.Run("StatementTimeout", func(t *testing.T) {
		t.Parallel()
		b := setupHTTP(t, func(c *serverConfig) { c.StatementTimeout = 300 * time.Millisecond })
		b.createBucket(t, `{"name":"b"}`)
		// A policy that makes reading the bucket slow for signed-in users.
		admin(t, b.db, `create policy slow on storage.buckets for select to authenticated using ((select true from pg_sleep(5)))`)
		r := b.do(t, "GET", "/bucket", b.userA, "")
		requireAPIError(t, r, 544, apiError{"544", "DatabaseTimeout", "DatabaseTimeout", "The connection to the database timed out"})
		// The service role (no policy applies) is not slowed.
		require.Equal(t, http.StatusOK, b.do(t, "GET", "/bucket", b.service, "").Status)
	})
}

// TestHTTPBatchBounds: the batch routes take at most 1000 names, as the reference's schemas
// say (and with its wording); a JSON body over the server's cap is refused with 413 without
// being read whole; the largest legitimate batch fits.
func TestHTTPBatchBounds(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	b.createBucket(t, `{"name":"b"}`)
	names := func(n, length int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("%0*d", length, i)
		}
		return out
	}
	body := func(v any) string {
		j, err := json.Marshal(v)
		require.NoError(t, err)
		return string(j)
	}

	t.Run("Prefixes", func(t *testing.T) {
		t.Parallel()
		r := b.do(t, "DELETE", "/object/b", b.service, body(map[string]any{"prefixes": names(1001, 8)}))
		requireAPIError(t, r, http.StatusBadRequest, apiError{"400", "InvalidRequest", "Error", "body/prefixes must NOT have more than 1000 items"})
		r = b.do(t, "DELETE", "/object/b", b.service, body(map[string]any{"prefixes": []string{}}))
		requireAPIError(t, r, http.StatusBadRequest, apiError{"400", "InvalidRequest", "Error", "body/prefixes must NOT have fewer than 1 items"})
		r = b.do(t, "DELETE", "/object/b", b.service, `{"prefixes":null}`)
		requireAPIError(t, r, http.StatusBadRequest, apiError{"400", "InvalidRequest", "Error", "body/prefixes must be array"})
		// 1000 names of 1024 bytes: the largest legitimate batch.
		r = b.do(t, "DELETE", "/object/b", b.service, body(map[string]any{"prefixes": names(1000, 1024)}))
		require.Equal(t, http.StatusOK, r.Status, r.String())
		require.JSONEq(t, `[]`, string(r.Body))
	})

	t.Run("Paths", func(t *testing.T) {
		t.Parallel()
		r := b.do(t, "POST", "/object/sign/b", b.service, body(map[string]any{"expiresIn": 60, "paths": names(1001, 8)}))
		requireAPIError(t, r, http.StatusBadRequest, apiError{"400", "InvalidRequest", "Error", "body/paths must NOT have more than 1000 items"})
		r = b.do(t, "POST", "/object/sign/b", b.service, `{"expiresIn":60,"paths":[]}`)
		requireAPIError(t, r, http.StatusBadRequest, apiError{"400", "InvalidRequest", "Error", "body/paths must NOT have fewer than 1 items"})
		// Items counted inside nested values and strings with commas and brackets.
		r = b.do(t, "POST", "/object/sign/b", b.service, `{"expiresIn":60,"paths":["a,b","[c]","d\",e"]}`)
		require.Equal(t, http.StatusOK, r.Status, r.String())
		var signed []map[string]any
		require.NoError(t, json.Unmarshal(r.Body, &signed))
		require.Len(t, signed, 3)
	})

	t.Run("EscapedNamesFit", func(t *testing.T) {
		t.Parallel()
		// 1000 names of 1024 bytes (512 two-byte characters), written as \u escapes as
		// Python's json writes them: three times their size.
		name := strings.Repeat(`\u0436`, 512)
		var sb strings.Builder
		sb.WriteString(`{"prefixes":[`)
		for i := range 1000 {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(`"` + name + `"`)
		}
		sb.WriteString(`]}`)
		require.Greater(t, sb.Len(), 3_000_000)
		r := b.do(t, "DELETE", "/object/b", b.service, sb.String())
		require.Equal(t, http.StatusOK, r.Status, r.String())
	})

	t.Run("BodyTooLarge", func(t *testing.T) {
		t.Parallel()
		tooLarge := apiError{"413", "EntityTooLarge", "Payload too large", "Request body is too large"}
		r := b.do(t, "POST", "/object/list/b", b.service, `{"prefix":"","pad":"`+strings.Repeat("x", 5<<20)+`"}`)
		requireAPIError(t, r, http.StatusBadRequest, tooLarge)

		// A body far larger than the cap is not read whole: the server answers, reads at
		// most a bounded amount more (so a client still sending gets the answer), and closes.
		const declared = 256 << 20
		c := dialFrom(t, b.hostPort(), "", 0)
		_, err := fmt.Fprintf(c, "POST /object/list/b HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"prefix\":\"", b.service, declared)
		require.NoError(t, err)
		sent := make(chan int64, 1)
		go func() {
			var n int64
			chunk := bytes.Repeat([]byte("x"), 64<<10)
			for n < declared-64<<10 {
				m, err := c.Write(chunk)
				n += int64(m)
				if err != nil {
					break
				}
			}
			sent <- n
		}()
		requireAPIError(t, readResponse(t, c, "POST"), http.StatusBadRequest, tooLarge)
		n := <-sent
		require.Less(t, n, int64(declared)/4, "the server read (or buffered) %d bytes of a refused body", n)
	})
}
