package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob/s3"
	"github.com/pgstorage/storage/blob/s3/s3test"
	"github.com/pgstorage/storage/lifecycle"
	"github.com/pgstorage/storage/tests/testdb"
)

// The fault tests: the database or the blob store fails under a running server and a mixed
// load. Clients see success or 503 with Retry-After (the reference's error shape), never a
// 500; the server recovers by itself; bytes and rows agree afterwards.

// faultKeys is how many keys the mixed load writes and reads.
const faultKeys = 16

// faultLoad is a mixed load run by a few workers until stopped: REST upserts, downloads,
// infos, lists, signs and copies, S3 PutObject and GetObject, and TUS uploads, on faultKeys
// keys of bucket "b". It records every
// outcome; what a fault test may see is success or a refusal to retry later.
type faultLoad struct {
	base, token string
	client      *http.Client
	s3          *awss3.Client // the S3 door, as the service role, never retrying

	ok, busy atomic.Int64 // 2xx; 503 with Retry-After
	mu       sync.Mutex
	bad      []string          // anything else, described
	written  map[string][]byte // every content ever sent per key (upserts may fail after commit)
	stop     chan struct{}
	done     sync.WaitGroup
}

func startFaultLoad(t *testing.T, b *httpBundle, workers int) *faultLoad {
	l := &faultLoad{base: b.baseURL, token: b.service, stop: make(chan struct{}), written: map[string][]byte{},
		client: &http.Client{Timeout: time.Minute}, s3: b.s3Service()}
	for i := range faultKeys {
		key := fmt.Sprintf("k%02d", i)
		content := []byte("first version of " + key)
		l.written[key+"#0"] = content
		status, body, _, err := l.send("POST", "/object/b/"+key, "text/plain", content)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status, "%s", body)
	}
	for w := range workers {
		l.done.Add(1)
		go l.work(w)
	}
	return l
}

// send makes one request and reads the whole answer. header is name, value pairs.
func (l *faultLoad) send(method, path, contentType string, body []byte, header ...string) (int, []byte, http.Header, error) {
	url := path
	if !strings.HasPrefix(url, "http") {
		url = l.base + path
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	if l.token != "" {
		req.Header.Set("Authorization", "Bearer "+l.token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("x-upsert", "true")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header, err
}

func (l *faultLoad) work(w int) {
	defer l.done.Done()
	rng := rand.New(rand.NewPCG(uint64(w), 22))
	for n := 0; ; n++ {
		select {
		case <-l.stop:
			return
		default:
		}
		key := fmt.Sprintf("k%02d", rng.IntN(faultKeys))
		var (
			what        string
			status      int
			body        []byte
			header      http.Header
			err         error
			wantContent bool
		)
		content := []byte(fmt.Sprintf("%s written by worker %d, write %d", key, w, n))
		switch op := rng.IntN(9); op {
		case 0:
			l.wrote(key, w, n, content)
			what = "upsert " + key
			status, body, header, err = l.send("POST", "/object/b/"+key, "text/plain", content)
		case 6:
			l.wrote(key, w, n, content)
			what = "S3 PutObject " + key
			status, body, header, err = l.s3Put(key, content)
		case 7:
			what, wantContent = "S3 GetObject "+key, true
			status, body, header, err = l.s3Get(key)
		case 8:
			l.wrote(key, w, n, content)
			what = "TUS upload " + key
			status, body, header, err = l.tusUpload(key, content)
		case 1:
			what, wantContent = "download "+key, true
			status, body, header, err = l.send("GET", "/object/b/"+key, "", nil)
		case 2:
			what = "info " + key
			status, body, header, err = l.send("GET", "/object/info/b/"+key, "", nil)
		case 3:
			what = "list"
			status, body, header, err = l.send("POST", "/object/list/b", "application/json", []byte(`{"prefix":"","limit":100}`))
		case 4:
			what = "sign " + key
			status, body, header, err = l.send("POST", "/object/sign/b/"+key, "application/json", []byte(`{"expiresIn":60}`))
		case 5:
			what = "copy " + key
			status, body, header, err = l.send("POST", "/object/copy", "application/json",
				[]byte(`{"bucketId":"b","sourceKey":"`+key+`","destinationKey":"copies/`+key+`"}`))
		}
		switch {
		case err != nil:
			l.fail("%s: %v", what, err)
		case status == http.StatusOK || status == http.StatusNoContent:
			if wantContent && !l.wasWritten(key, body) {
				l.fail("%s: got %q, which was never uploaded", what, body)
			}
			l.ok.Add(1)
		case status == http.StatusServiceUnavailable && header.Get("Retry-After") != "" && isErrorShape(body):
			l.busy.Add(1)
		default:
			l.fail("%s: %d %s", what, status, body)
		}
	}
}

func (l *faultLoad) wrote(key string, w, n int, content []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.written[fmt.Sprintf("%s#%d.%d", key, w, n)] = content
}

// s3Put and s3Get go through the S3 door; the answer is reduced to a status, the body (the
// object's bytes, or the error's message) and the Retry-After header.
func (l *faultLoad) s3Put(key string, content []byte) (int, []byte, http.Header, error) {
	_, err := l.s3.PutObject(context.Background(), &awss3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String(key),
		Body: bytes.NewReader(content), ContentLength: aws.Int64(int64(len(content)))})
	return s3Outcome(err, nil)
}

func (l *faultLoad) s3Get(key string) (int, []byte, http.Header, error) {
	out, err := l.s3.GetObject(context.Background(), &awss3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String(key)})
	if err != nil {
		return s3Outcome(err, nil)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	return s3Outcome(err, b)
}

func s3Outcome(err error, body []byte) (int, []byte, http.Header, error) {
	if err == nil {
		return http.StatusOK, body, nil, nil
	}
	var resp *awshttp.ResponseError
	if !errors.As(err, &resp) || resp.Response == nil {
		return 0, nil, nil, err
	}
	var apiErr smithy.APIError
	code := ""
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	b, _ := json.Marshal(map[string]string{"statusCode": strconv.Itoa(resp.HTTPStatusCode()), "code": code,
		"error": code, "message": err.Error()})
	return resp.HTTPStatusCode(), b, resp.Response.Header, nil
}

// tusUpload creates a resumable upload of content and sends it in one PATCH.
func (l *faultLoad) tusUpload(key string, content []byte) (int, []byte, http.Header, error) {
	md := tusMD("bucketName", "b", "objectName", key)
	status, body, header, err := l.send("POST", "/upload/resumable", "", nil, "Tus-Resumable", "1.0.0",
		"Upload-Length", strconv.Itoa(len(content)), "Upload-Metadata", md)
	if err != nil || status != http.StatusCreated {
		return tusOutcome(status, body, header, err)
	}
	return tusOutcome(l.send("PATCH", header.Get("Location"), "application/offset+octet-stream", content,
		"Tus-Resumable", "1.0.0", "Upload-Offset", "0"))
}

// tusOutcome gives a TUS refusal (a plain-text body) the error shape, so the load judges all
// doors alike.
func tusOutcome(status int, body []byte, header http.Header, err error) (int, []byte, http.Header, error) {
	if err != nil || status < 300 {
		return status, body, header, err
	}
	b, _ := json.Marshal(map[string]string{"statusCode": strconv.Itoa(status), "code": "tus", "error": "tus", "message": string(body)})
	return status, b, header, nil
}

// isErrorShape: the reference's four-field error body.
func isErrorShape(b []byte) bool {
	var e map[string]any
	if json.Unmarshal(b, &e) != nil || len(e) != 4 {
		return false
	}
	for _, k := range []string{"statusCode", "code", "error", "message"} {
		if _, ok := e[k].(string); !ok {
			return false
		}
	}
	return true
}

func (l *faultLoad) wasWritten(key string, content []byte) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, c := range l.written {
		if strings.HasPrefix(k, key+"#") && bytes.Equal(c, content) {
			return true
		}
	}
	return false
}

func (l *faultLoad) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.bad) < 20 {
		l.bad = append(l.bad, fmt.Sprintf(format, args...))
	}
}

// awaitSuccesses waits until n more requests have succeeded than when it was called.
func (l *faultLoad) awaitSuccesses(t *testing.T, n int64, what string) {
	t.Helper()
	target := l.ok.Load() + n
	deadline := time.Now().Add(time.Minute)
	for l.ok.Load() < target {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d requests succeeded in a minute, want %d (%d refused as busy); failures: %v",
				what, l.ok.Load()-target+n, n, l.busy.Load(), l.failures())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (l *faultLoad) failures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.bad)
}

// finish stops the load and requires that it saw nothing but successes and 503s.
func (l *faultLoad) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.done.Wait()
	require.Empty(t, l.failures(), "requests that got neither success nor 503 + Retry-After")
	t.Logf("mixed load: %d succeeded, %d refused with 503", l.ok.Load(), l.busy.Load())
}

// requireInvariants: every row's blob exists and every stored blob is referenced by a row, the
// collector's queue or an upload in flight.
func requireInvariants(t *testing.T, b *httpBundle) {
	t.Helper()
	var out strings.Builder
	r, err := lifecycle.Reconcile(context.Background(), b.db.Pool, b.blobs, lifecycle.ReconcileOptions{Out: &out})
	require.NoError(t, err)
	require.Zero(t, r.MissingBlobs+r.Orphans, "reconcile found:\n%s", out.String())
}

// TestFaultPostgresRestart: PostgreSQL restarted under a mixed load, with a fast shutdown and
// then an immediate one (crash recovery). While it is away clients get 503 + Retry-After;
// afterwards the server serves again on new connections without being told, and bytes and
// rows agree.
func TestFaultPostgresRestart(t *testing.T) {
	t.Parallel()
	pg := testdb.NewPrivate(t)
	// The test cluster trades durability for speed (synchronous_commit off): an immediate
	// shutdown would lose the last commits, which no deployment accepts.
	_, err := pg.Pool.Exec(context.Background(), "alter database storage set synchronous_commit = on")
	require.NoError(t, err)
	pg.Pool.Reset()
	b := setupHTTPOn(t, pg.DB)
	b.createBucket(t, `{"name":"b"}`)
	load := startFaultLoad(t, b, 6)
	load.awaitSuccesses(t, 200, "before the restarts")

	for _, immediate := range []bool{false, true} {
		busy := load.busy.Load()
		pg.Restart(t, immediate, func() { load.awaitBusy(t, busy+1, "while PostgreSQL is down") })
		load.awaitSuccesses(t, 200, fmt.Sprintf("after the restart (immediate: %v)", immediate))
	}
	load.finish(t)
	requireInvariants(t, b)
}

// awaitBusy waits until n requests in all have been refused with 503.
func (l *faultLoad) awaitBusy(t *testing.T, n int64, what string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for l.busy.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no request was refused with 503 in a minute; failures: %v", what, l.failures())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFaultS3Restart: the S3 service behind the blob store dies (SIGKILL) under a mixed load
// and comes back. While it is away, requests that need it get 503 + Retry-After and uploads
// store no row; afterwards the server serves again, and bytes and rows agree.
func TestFaultS3Restart(t *testing.T) {
	t.Parallel()
	srv, err := s3test.StartServer()
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	cfg, err := srv.NewBucket(context.Background())
	require.NoError(t, err)
	store, err := s3.New(context.Background(), cfg)
	require.NoError(t, err)
	b := setupHTTP(t, withBlobStore(store))
	b.createBucket(t, `{"name":"b"}`)
	load := startFaultLoad(t, b, 6)
	load.awaitSuccesses(t, 200, "before the restart")
	// A collector with no retention: the upserts' old versions are its work.
	collector := &lifecycle.Collector{DB: b.db.Pool, Blobs: store, Interval: time.Hour}
	ctx := context.Background()
	for round := range 2 {
		busy := load.busy.Load()
		require.NoError(t, srv.Restart(func() {
			load.awaitBusy(t, busy+20, "while S3 is down")
			if round == 0 {
				st, err := collector.RunOnce(ctx)
				require.NoError(t, err)
				require.Positive(t, st.Failed, "the collector's deletes fail while S3 is down: %+v", st)
				require.Zero(t, st.Deleted, "%+v", st)
			}
		}))
		load.awaitSuccesses(t, 200, "after the restart")
	}
	load.finish(t)
	// The collector catches up: every queued blob is deleted once its retry is due.
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := collector.RunOnce(ctx)
		require.NoError(t, err)
		var queued int
		require.NoError(t, b.db.Pool.QueryRow(ctx, "select count(*) from storage.blobs_freed").Scan(&queued))
		if queued == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "%d blobs still queued a minute after S3 came back", queued)
		time.Sleep(100 * time.Millisecond)
	}
	requireInvariants(t, b)
}

// TestFaultUploadAbortRetried: an upload whose commit finds no database connection free is
// refused with 503, and so is its abort, the call that queues its blob for the collector. The
// abort is tried again in the background once the pool has room: the refused upload leaves
// neither an entry in flight nor a blob that waits for the upload expiry (a day).
func TestFaultUploadAbortRetried(t *testing.T) {
	t.Parallel()
	db := testdb.New(t)
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(db.URL)
	require.NoError(t, err)
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	b := setupHTTPOn(t, &testdb.DB{Pool: pool, URL: db.URL, SuperURL: db.SuperURL},
		func(c *serverConfig) { c.PoolAcquireTimeout = 200 * time.Millisecond })
	b.createBucket(t, `{"name":"b"}`)

	// The upload's body comes in two halves; between them the test takes the server's only
	// pooled connection.
	const size = 1 << 20
	pr, pw := io.Pipe()
	req, err := http.NewRequest("POST", b.baseURL+"/object/b/k", pr)
	require.NoError(t, err)
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+b.service)
	answer := make(chan httpResponse, 1)
	go func() {
		resp, err := httpClient.Do(req)
		if err != nil {
			answer <- httpResponse{Body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		answer <- httpResponse{Status: resp.StatusCode, Header: resp.Header, Body: body}
	}()
	_, err = pw.Write(make([]byte, size/2))
	require.NoError(t, err)
	inFlight := func() (versions []string) {
		rows, _ := db.Pool.Query(ctx, "select version from storage.blob_uploads")
		versions, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return versions
	}
	require.Eventually(t, func() bool { return len(inFlight()) == 1 }, 30*time.Second, 10*time.Millisecond, "the upload in flight")
	version := inFlight()[0]
	held, err := pool.Acquire(ctx)
	require.NoError(t, err)
	_, err = pw.Write(make([]byte, size/2))
	require.NoError(t, err)
	require.NoError(t, pw.Close())
	requireBusy(t, <-answer, "No database connection is free; retry later")
	require.Equal(t, []string{version}, inFlight(), "the abort could not run either")

	held.Release()
	require.Eventually(t, func() bool { return len(inFlight()) == 0 }, time.Minute, 50*time.Millisecond,
		"the abort, tried again once a connection is free")
	var queued []string
	rows, _ := db.Pool.Query(ctx, "select version from storage.blobs_freed")
	queued, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{version}, queued, "the refused upload's blob is queued for the collector")
	var objects int
	require.NoError(t, db.Pool.QueryRow(ctx, "select count(*) from storage.objects").Scan(&objects))
	require.Zero(t, objects)
}
