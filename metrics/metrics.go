// Package metrics is what the server tells Prometheus: requests, latency and bytes by
// operation and protocol, the database pools, the blob store, transfers in flight, the
// collector and the event outbox. Every name is declared here, so this file is the list of
// what a scrape can see (README, "Metrics").
//
// Labels are low-cardinality by construction: operation ids (a fixed set, see proxy and the
// doors), protocols, status classes, backends, pool names. Never a bucket, a key or a user.
//
// The request path pays for two counter increments and one histogram observation per request,
// on label children resolved once per operation (Op), not per request.
package metrics

import (
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds one server's metrics. Each server (and each test's) has its own, so counts
// are exactly those of its requests.
type Registry struct {
	reg *prometheus.Registry
	off bool // Disabled: nothing is counted

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	received *prometheus.CounterVec
	sent     *prometheus.CounterVec
	ops      sync.Map // operation id → *Op
	pools    *poolCollector

	blobCalls    *prometheus.CounterVec
	blobErrors   *prometheus.CounterVec
	blobDuration *prometheus.HistogramVec

	collectorRuns      *prometheus.CounterVec
	blobsFreed         prometheus.Counter
	bytesFreed         prometheus.Counter
	variantsFreed      prometheus.Counter
	deleteFailures     prometheus.Counter
	uploadsExpired     prometheus.Counter
	leftoversRemoved   prometheus.Counter
	emptyRowsDeleted   prometheus.Counter
	emptyJobsCompleted prometheus.Counter
	queued, due        prometheus.Gauge
	oldestQueued       prometheus.Gauge
	emptyJobs          prometheus.Gauge
}

// latencyBuckets (seconds) start below a millisecond: a small request here takes a fraction of
// one, and the default buckets would put them all in the first.
var latencyBuckets = []float64{.00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// New returns a registry with the build info, Go runtime and process metrics registered.
// version is what GET /version answers.
func New(version string) *Registry {
	r := &Registry{reg: prometheus.NewRegistry()}
	f := factory{r.reg}
	r.requests = f.counterVec("storage_http_requests_total",
		"HTTP requests answered, by protocol, operation and status class (2xx…).", "protocol", "operation", "status_class")
	r.duration = f.histogramVec("storage_http_request_duration_seconds",
		"Time from a request's arrival to its response's headers, by protocol and operation (a download's body streams after).",
		latencyBuckets, "protocol", "operation")
	r.received = f.counterVec("storage_http_received_bytes_total",
		"Request body bytes read, by protocol.", "protocol")
	r.sent = f.counterVec("storage_http_sent_bytes_total",
		"Response body bytes sent, by protocol.", "protocol")

	r.blobCalls = f.counterVec("storage_blob_requests_total",
		"Calls into the blob store, by backend and operation.", "backend", "operation")
	r.blobErrors = f.counterVec("storage_blob_errors_total",
		"Blob store calls that failed (not counting a missing blob, which is an answer), by backend and operation.", "backend", "operation")
	r.blobDuration = f.histogramVec("storage_blob_request_duration_seconds",
		"Time of blob store calls, by backend and operation (a read's: until the blob is open).",
		latencyBuckets, "backend", "operation")

	r.collectorRuns = f.counterVec("storage_collector_runs_total",
		"Collector runs by result: led (this server held the lease and worked), skipped (another server held it), failed.", "result")
	r.blobsFreed = f.counter("storage_collector_blobs_freed_total", "Freed blob versions deleted from the store.")
	r.bytesFreed = f.counter("storage_collector_freed_bytes_total", "Bytes of the blob versions deleted from the store (as their rows recorded them).")
	r.variantsFreed = f.counter("storage_collector_variants_freed_total", "Cached image variants deleted with their source versions.")
	r.deleteFailures = f.counter("storage_collector_delete_failures_total", "Blob deletes that failed (retried after a backoff).")
	r.uploadsExpired = f.counter("storage_collector_uploads_expired_total", "Uploads in flight expired (crashed or abandoned: REST, TUS, S3 multipart).")
	r.leftoversRemoved = f.counter("storage_collector_leftovers_removed_total",
		"Leftovers of interrupted writes found in the blob store and removed (the server's reconcile findings).")
	r.emptyRowsDeleted = f.counter("storage_empty_job_rows_deleted_total", "Rows deleted by bucket-empty jobs.")
	r.emptyJobsCompleted = f.counter("storage_empty_jobs_completed_total", "Bucket-empty jobs finished.")
	r.queued = f.gauge("storage_collector_queued_blobs", "Blobs queued for deletion (freed, kept for STORAGE_BLOB_RETENTION), after the last run.")
	r.due = f.gauge("storage_collector_due_blobs", "Queued blobs past the retention window, deletable now: the collector's backlog after the last run.")
	r.oldestQueued = f.gauge("storage_collector_oldest_queued_age_seconds", "Age of the oldest queued blob at the last run (up to the retention window is normal).")
	r.emptyJobs = f.gauge("storage_empty_jobs_pending", "Bucket-empty jobs not finished, after the last run.")

	for _, result := range []string{"led", "skipped", "failed"} {
		r.collectorRuns.WithLabelValues(result)
	}
	r.pools = &poolCollector{}
	r.reg.MustRegister(r.pools)

	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: "storage_build_info",
		Help:        "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version(), "revision": revision()}})
	info.Set(1)
	r.reg.MustRegister(info, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Disabled returns a registry that counts nothing (METRICS_ENABLED=false): its operations'
// Done and Sent return at once, and it wraps no store and reads no pool.
func Disabled() *Registry { return &Registry{off: true} }

// revision is the VCS revision the binary was built from ("" when unknown, e.g. go test).
func revision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return ""
}

// Handler serves the scrape (Prometheus text format, or OpenMetrics when asked for).
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// Gatherer is the registry, for tests and tools that read metrics without HTTP.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// Register adds collectors (the caller's own metrics) to the registry.
func (r *Registry) Register(cs ...prometheus.Collector) {
	if !r.off {
		r.reg.MustRegister(cs...)
	}
}

// GaugeFunc registers a gauge read from f at each scrape (what something else already counts:
// transfers in flight, a backlog).
func (r *Registry) GaugeFunc(name, help string, f func() float64) {
	if r.off {
		return
	}
	r.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// Protocol is the protocol an operation id belongs to: the doors name theirs under
// storage.s3., storage.tus. and storage.render.; the rest is REST.
func Protocol(op string) string {
	switch {
	case strings.HasPrefix(op, "storage.s3."):
		return "s3"
	case strings.HasPrefix(op, "storage.tus."):
		return "tus"
	case strings.HasPrefix(op, "storage.render."):
		return "render"
	}
	return "rest"
}

// Op is one operation's metrics, resolved once: recording a request is atomic adds only.
type Op struct {
	Name, Protocol string
	off            bool
	byClass        [6]prometheus.Counter // status class 1…5; 0 for anything else
	duration       prometheus.Observer
	received, sent prometheus.Counter
}

// Op returns the metrics of the operation with this id. Cheap after the first call for an id;
// callers on a hot path keep the result.
func (r *Registry) Op(name string) *Op {
	if o, ok := r.ops.Load(name); ok {
		return o.(*Op)
	}
	p := Protocol(name)
	if r.off {
		actual, _ := r.ops.LoadOrStore(name, &Op{Name: name, Protocol: p, off: true})
		return actual.(*Op)
	}
	o := &Op{Name: name, Protocol: p, duration: r.duration.WithLabelValues(p, name),
		received: r.received.WithLabelValues(p), sent: r.sent.WithLabelValues(p)}
	for c := range o.byClass {
		class := "other"
		if c > 0 {
			class = string(rune('0'+c)) + "xx"
		}
		o.byClass[c] = r.requests.WithLabelValues(p, name, class)
	}
	actual, _ := r.ops.LoadOrStore(name, o)
	return actual.(*Op)
}

// Done records one request: its status, its time to response headers, and the body bytes it
// read and wrote (a streamed response body counts its bytes as they go, through Sent).
func (o *Op) Done(status int, d time.Duration, received, sent int64) {
	if o.off {
		return
	}
	class := status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	o.byClass[class].Inc()
	o.duration.Observe(d.Seconds())
	if received > 0 {
		o.received.Add(float64(received))
	}
	if sent > 0 {
		o.sent.Add(float64(sent))
	}
}

// Sent counts response body bytes sent after the request was recorded (a streamed body).
func (o *Op) Sent(n int64) {
	if n > 0 && !o.off {
		o.sent.Add(float64(n))
	}
}

// factory declares metrics into one registry.
type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}
