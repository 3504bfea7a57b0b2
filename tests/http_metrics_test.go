package tests

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob/file"
	"github.com/pgstorage/storage/lifecycle"
	"github.com/pgstorage/storage/metrics"
)

// withMetrics counts the server's requests in reg and serves its scrape at GET /metrics.
func withMetrics(reg *metrics.Registry) httpOpt {
	return func(c *serverConfig) { c.Metrics, c.ServeMetrics = reg, true }
}

// metricsClient sends every request of a test on one connection, so a request is answered,
// its streamed body's bytes counted, before the next one (the scrape) is read.
func metricsClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
}

// scrape reads the server's /metrics as Prometheus parses it.
func scrape(t *testing.T, c *http.Client, baseURL string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := c.Get(baseURL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4"), resp.Header.Get("Content-Type"))
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return families
}

// series returns the family's samples by their labels ("k=v,k=v", labels in name order), each its counter, gauge or histogram count.
func series(families map[string]*dto.MetricFamily, name string) map[string]float64 {
	out := map[string]float64{}
	f, ok := families[name]
	if !ok {
		return out
	}
	for _, m := range f.GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		var v float64
		switch {
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Histogram != nil:
			v = float64(m.GetHistogram().GetSampleCount())
		}
		out[strings.Join(labels, ",")] = v
	}
	return out
}

// nonZero drops the samples that are 0 (the label children made ahead of any request).
func nonZero(m map[string]float64) map[string]float64 {
	for k, v := range m {
		if v == 0 {
			delete(m, k)
		}
	}
	return m
}

// TestMetricsCountEveryRequest: after a scripted mix of requests over REST, S3 and TUS, a scrape
// counts each request once under its operation and status class, times each, and counts the
// body bytes each protocol received and sent, exactly; the blob store's calls, the pools and
// the build are there too.
func TestMetricsCountEveryRequest(t *testing.T) {
	t.Parallel()
	reg := metrics.New("metrics-test")
	fs, err := file.New(t.TempDir())
	require.NoError(t, err)
	b := setupHTTP(t, withMetrics(reg), withBlobStore(reg.Blobs(fs, "file")))
	c := metricsClient()

	received, sent := map[string]float64{}, map[string]float64{}
	send := func(protocol, method, path, token, contentType, body string, header ...string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, b.baseURL+path, strings.NewReader(body))
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(req)
		require.NoError(t, err)
		data, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
		received[protocol] += float64(len(body))
		sent[protocol] += float64(len(data))
		return resp
	}
	status := func(resp *http.Response) int { return resp.StatusCode }

	content := strings.Repeat("0123456789", 10_000) // 100,000 bytes: streamed both ways
	require.Equal(t, 200, status(send("rest", "POST", "/bucket", b.service, "application/json", `{"name":"b"}`)))
	require.Equal(t, 200, status(send("rest", "POST", "/object/b/one", b.service, "text/plain", content)))
	require.Equal(t, 200, status(send("rest", "POST", "/object/b/two", b.service, "text/plain", "small")))
	// Bucket not found: the reference's 400 with statusCode 404; its body is drained, so read.
	require.Equal(t, 400, status(send("rest", "POST", "/object/nobucket/k", b.service, "text/plain", "refused")))
	require.Equal(t, 200, status(send("rest", "GET", "/object/authenticated/b/one", b.service, "", "")))
	require.Equal(t, 200, status(send("rest", "HEAD", "/object/authenticated/b/two", b.service, "", "")))
	require.Equal(t, 200, status(send("rest", "HEAD", "/object/authenticated/b/two", b.service, "", "")))
	require.Equal(t, 404, status(send("rest", "GET", "/nowhere", "", "", "")))
	require.Equal(t, 200, status(send("rest", "GET", "/version", "", "", "")))
	require.Equal(t, 204, status(send("rest", "OPTIONS", "/object/b/one", "", "", "", "Origin", "https://app.example",
		"Access-Control-Request-Method", "POST")))
	require.Equal(t, 403, status(send("s3", "GET", "/s3/", "", "", ""))) // unsigned: AccessDenied
	require.Equal(t, 400, status(send("tus", "POST", "/upload/resumable", "", "", "")))

	m := scrape(t, c, b.baseURL)
	requests := map[string]float64{
		"operation=storage.bucket.create,protocol=rest,status_class=2xx":            1,
		"operation=storage.object.upload,protocol=rest,status_class=2xx":            2,
		"operation=storage.object.upload,protocol=rest,status_class=4xx":            1,
		"operation=storage.object.get_authenticated,protocol=rest,status_class=2xx": 1,
		"operation=object.head_authenticated_info,protocol=rest,status_class=2xx":   2,
		"operation=storage.unmatched,protocol=rest,status_class=4xx":                1,
		"operation=storage.version,protocol=rest,status_class=2xx":                  1,
		"operation=storage.preflight,protocol=rest,status_class=2xx":                1,
		"operation=storage.s3.bucket.list,protocol=s3,status_class=4xx":             1,
		"operation=storage.tus.upload.create,protocol=tus,status_class=4xx":         1,
	}
	require.Equal(t, requests, nonZero(series(m, "storage_http_requests_total")))
	// Each request is timed once, under its operation.
	timed := map[string]float64{}
	for k, v := range requests {
		k = regexp.MustCompile(`,status_class=.*`).ReplaceAllString(k, "")
		timed[k] += v
	}
	require.Equal(t, timed, nonZero(series(m, "storage_http_request_duration_seconds")))
	require.Equal(t, map[string]float64{"protocol=rest": received["rest"]}, nonZero(series(m, "storage_http_received_bytes_total")))
	require.Equal(t, map[string]float64{"protocol=rest": sent["rest"], "protocol=s3": sent["s3"], "protocol=tus": sent["tus"]},
		nonZero(series(m, "storage_http_sent_bytes_total")))
	require.Greater(t, sent["rest"], float64(len(content)), "the download is among the bytes sent")

	// The blob store: two puts, one read (the missing bucket's upload never reached it), and
	// nothing else but what the collector's run at start may have done (list the leftovers).
	blobCalls := nonZero(series(m, "storage_blob_requests_total"))
	delete(blobCalls, "backend=file,operation=leftovers")
	require.Equal(t, map[string]float64{"backend=file,operation=put": 2, "backend=file,operation=get": 1}, blobCalls)
	require.Empty(t, nonZero(series(m, "storage_blob_errors_total")))

	// The pools, the transfers in flight (none now), the build.
	require.Greater(t, series(m, "storage_db_pool_acquires_total")["pool=main"], float64(0))
	require.Contains(t, series(m, "storage_db_pool_max_connections"), "pool=tus_locks")
	require.Equal(t, map[string]float64{"": 0}, series(m, "storage_uploads_in_flight"))
	require.Equal(t, map[string]float64{"": 0}, series(m, "storage_downloads_in_flight"))
	info := series(m, "storage_build_info")
	require.Len(t, info, 1)
	for labels, v := range info {
		require.Equal(t, float64(1), v)
		require.Contains(t, labels, "version=metrics-test")
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "storage_collector_runs_total"} {
		require.Contains(t, m, name)
	}

	// The scrape itself is counted once it is answered.
	m = scrape(t, c, b.baseURL)
	require.Equal(t, float64(1), series(m, "storage_http_requests_total")["operation=storage.metrics,protocol=rest,status_class=2xx"])
}

// TestMetricsOffTheAPI: without ServeMetrics (METRICS_ADDR set, or METRICS_ENABLED=false),
// /metrics is the API's unknown route.
func TestMetricsOffTheAPI(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	r := b.do(t, "GET", "/metrics", "", "")
	require.Equal(t, http.StatusNotFound, r.Status)
	var body map[string]string
	require.NoError(t, json.Unmarshal(r.Body, &body))
	require.Equal(t, "Route GET:/metrics not found", body["message"])
}

// withJSONLog logs the server's lines as `storage serve` does by default (LOG_FORMAT=json).
func withJSONLog(w io.Writer) httpOpt {
	return func(c *serverConfig) {
		c.Logger = slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

// TestHTTPRequestLog: every request has one JSON line with its id (the client's X-Request-Id
// when it sent a usable one, else a new one; either way returned), operation, bucket, status,
// duration, bytes, role and sub; a refusal the SQL API decided carries its SQLSTATE; no line
// carries a token or a signature, whichever door the request used.
func TestHTTPRequestLog(t *testing.T) {
	t.Parallel()
	var logs cliSyncBuffer
	o := &objEnv{setupHTTP(t, withJSONLog(&logs))}
	o.mkBucket(t, `{"name":"b"}`)

	r := o.upload(t, "POST", "b", "dir/k.txt", o.userA, "hello", withHeader("X-Request-Id", "client-req-42"))
	require.Equal(t, http.StatusBadRequest, r.Status, "userA may not write here (no policy): %s", r)
	require.Equal(t, "client-req-42", r.Header.Get("X-Request-Id"))
	id := o.mustUpload(t, "b", "dir/k.txt", "hello")
	require.NotEmpty(t, id)
	signed := o.signURL(t, "b", "dir/k.txt", o.service, 60)
	token := signTokenOf(t, signed)
	r = o.get(t, signed, "", withHeader("X-Request-Id", "has space"))
	require.Equal(t, http.StatusOK, r.Status, "%s", r)
	generated := r.Header.Get("X-Request-Id")
	require.Regexp(t, uuidPattern, generated, "an unusable id is replaced")
	r = o.get(t, "/object/authenticated/nobucket/k", o.service, withHeader("X-Request-Id", strings.Repeat("x", 129)))
	require.Equal(t, http.StatusBadRequest, r.Status)
	require.Regexp(t, uuidPattern, r.Header.Get("X-Request-Id"), "a too long id is replaced")
	refusedID := r.Header.Get("X-Request-Id")
	// S3 with a signature in the query (expired): refused, and no signature in the log.
	r = o.do(t, "GET", "/s3/b/dir/k.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=nokey%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20260101T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=abcdef0123456789", "", "")
	require.Equal(t, http.StatusBadRequest, r.Status, "%s", r)

	lines := map[string]map[string]any{}
	out := logs.String()
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), "a log line is not JSON: %s", line)
		if m["msg"] == "request" {
			lines[m["request_id"].(string)] = m
		}
	}
	denied := lines["client-req-42"]
	require.NotNil(t, denied, out)
	for k, v := range map[string]any{"level": "INFO", "method": "POST", "path": "/object/b/dir/k.txt", "operation": "storage.object.upload",
		"protocol": "rest", "status": float64(400), "bucket": "b", "role": "authenticated", "sub": userA.Sub,
		"error_code": "AccessDenied", "sqlstate": "42501"} {
		require.Equal(t, v, denied[k], "%s in %v", k, denied)
	}
	require.Contains(t, denied, "duration_ms")
	require.Contains(t, denied, "bytes_in")

	download := lines[generated]
	require.NotNil(t, download, out)
	for k, v := range map[string]any{"path": "/object/sign/b/dir/k.txt", "operation": "storage.object.get_signed", "status": float64(200),
		"bucket": "b", "role": "anon", "bytes_out": float64(5)} {
		require.Equal(t, v, download[k], "%s in %v", k, download)
	}
	refused := lines[refusedID]
	require.NotNil(t, refused, out)
	require.Equal(t, "NoSuchBucket", refused["error_code"], "%v", refused)
	require.Regexp(t, `^ST0\d\d$`, refused["sqlstate"], "%v", refused)

	s3Line := lines[r.Header.Get("X-Request-Id")]
	require.NotNil(t, s3Line, out)
	for k, v := range map[string]any{"operation": "storage.s3.object.get", "protocol": "s3", "status": float64(400),
		"bucket": "b", "error_code": "ExpiredToken"} {
		require.Equal(t, v, s3Line[k], "%s in %v", k, s3Line)
	}
	for _, secret := range []string{o.service, o.userA, token, "abcdef0123456789"} {
		require.NotContains(t, out, secret, "a credential reached the log")
	}
}

// gathered is reg's metrics as a scrape would read them.
func gathered(t *testing.T, reg *metrics.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := reg.Gatherer().Gather()
	require.NoError(t, err)
	m := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		m[f.GetName()] = f
	}
	return m
}

// TestMetricsCollector: the collector's metrics count what it deleted and the bytes its rows
// recorded (a row whose metadata records no usable size frees no counted bytes, and its delete
// still succeeds), and after each run the queue: all of it, the part past retention, the oldest.
func TestMetricsCollector(t *testing.T) {
	t.Parallel()
	reg := metrics.New("test")
	o := &objEnv{setupHTTP(t)}
	o.mkBucket(t, `{"name":"b"}`)
	o.mustUpload(t, "b", "a", "12345")
	o.mustUpload(t, "b", "b", strings.Repeat("x", 100))
	o.mustUpload(t, "b", "c", "abc")
	r := o.upload(t, "PUT", "b", "a", o.service, "1234567") // frees the 5 bytes
	require.Equal(t, http.StatusOK, r.Status, "%s", r)
	require.Equal(t, http.StatusOK, o.do(t, "DELETE", "/object/b/b", o.service, "").Status) // frees 100
	// The owner may write anything into metadata; deleting the row must still free its blob.
	_, err := o.db.Pool.Exec(context.Background(), `update storage.objects set metadata = jsonb_set(metadata, '{size}', '"abc"') where name = 'c'`)
	require.NoError(t, err)
	_, err = o.db.Pool.Exec(context.Background(), `delete from storage.objects where name = 'c'`)
	require.NoError(t, err)

	// runs the collector until one of its runs led, and records it.
	run := func(retention time.Duration) {
		t.Helper()
		c := o.newCollector(retention)
		led := make(chan struct{}, 1)
		c.Interval = 20 * time.Millisecond // the test server's own collector may hold the lease for a moment
		c.Observe = func(st lifecycle.Stats, err error, b *lifecycle.Backlog) {
			// Not the test's goroutine: assert, not require.
			assert.NoError(t, err)
			assert.NotNil(t, b, "the backlog is read after every run")
			reg.CollectorRun(st, err, b)
			if st.Leader {
				select {
				case led <- struct{}{}:
				default:
				}
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); c.Run(ctx) }()
		select {
		case <-led:
		case <-time.After(30 * time.Second):
			t.Fatal("the collector never led a run")
		}
		cancel()
		<-done
	}

	run(time.Hour) // nothing is due: the three stay queued
	m := gathered(t, reg)
	require.Equal(t, float64(3), series(m, "storage_collector_queued_blobs")[""])
	require.Equal(t, float64(0), series(m, "storage_collector_due_blobs")[""])
	require.Greater(t, series(m, "storage_collector_oldest_queued_age_seconds")[""], float64(0))
	require.Equal(t, float64(0), series(m, "storage_collector_blobs_freed_total")[""])

	run(0)
	m = gathered(t, reg)
	require.Equal(t, float64(3), series(m, "storage_collector_blobs_freed_total")[""])
	require.Equal(t, float64(105), series(m, "storage_collector_freed_bytes_total")[""])
	require.Equal(t, float64(0), series(m, "storage_collector_queued_blobs")[""])
	require.Equal(t, float64(0), series(m, "storage_collector_oldest_queued_age_seconds")[""])
	require.Equal(t, float64(0), series(m, "storage_empty_jobs_pending")[""])
	require.GreaterOrEqual(t, series(m, "storage_collector_runs_total")["result=led"], float64(2))
}

// TestEventsCarryRequestID: an object event recorded by a request names the request's id
// (X-Request-Id) as reqId, so a webhook receiver can find the request's log line.
func TestEventsCarryRequestID(t *testing.T) {
	t.Parallel()
	o := &objEnv{setupHTTP(t)}
	o.mkBucket(t, `{"name":"b"}`)
	r := o.upload(t, "POST", "b", "k", o.service, "x", withHeader("X-Request-Id", "req-for-event"))
	require.Equal(t, http.StatusOK, r.Status, "%s", r)
	require.Equal(t, []string{"ObjectCreated:Post req-for-event"},
		o.column(t, `select type || ' ' || (payload ->> 'reqId') from storage.events where name = 'k'`))
}
