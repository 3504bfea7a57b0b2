package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"

	"github.com/pgstorage/storage/events"
	"github.com/pgstorage/storage/identity"
	"github.com/pgstorage/storage/lifecycle"
	"github.com/pgstorage/storage/metrics"
	"github.com/pgstorage/storage/proxy"
	"github.com/pgstorage/storage/render"
	"github.com/pgstorage/storage/render/vips"
	"github.com/pgstorage/storage/s3"
	"github.com/pgstorage/storage/tus"
)

// serve runs the HTTP server until ctx is cancelled (SIGINT/SIGTERM), then drains requests,
// closes the pool and stops the embedded cluster.
func serve(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	// Without AUTH_JWT_SECRET, JWT_JWKS must supply both what verifies bearer tokens and the
	// HMAC secret the SQL API signs URLs with.
	jwksOnly := !cfg.embedded() && cfg.JWTSecret == ""
	if jwksOnly && (!cfg.JWKS.HasKeys() || !cfg.JWKS.HasURLSigningKey()) {
		return errors.New("AUTH_JWT_SECRET is required when DATABASE_URL is set (only the embedded default generates one), unless JWT_JWKS has keys and a urlSigningKey")
	}
	sink := newLogSink(stderr)
	logCtx, stopLog := context.WithCancel(context.Background())
	logDone := make(chan struct{})
	go func() { defer close(logDone); sink.run(logCtx) }()
	defer func() { stopLog(); <-logDone }() // last: every line is out before serve returns
	log := newLogger(cfg, sink)
	// First, so the embedded cluster and everything else start under the raised limit.
	openFiles, filesErr := raiseOpenFiles()
	// Listen first: a taken port fails fast, before a cluster is started.
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("SERVER_HOST/SERVER_PORT: cannot listen on %s: %v", addr, err)
	}
	defer ln.Close()
	if cfg.PprofAddr != "" {
		pln, err := net.Listen("tcp", cfg.PprofAddr)
		if err != nil {
			return fmt.Errorf("STORAGE_PPROF_ADDR: cannot listen on %s: %v", cfg.PprofAddr, err)
		}
		defer pln.Close()
		// The profiling endpoints get their own listener and net/http server: they must never
		// be reachable through the API's port.
		go http.Serve(pln, pprofMux())
		log.Info("profiling endpoints", "url", "http://"+pln.Addr().String()+"/debug/pprof/")
	}
	// The keys are printed only when the secret is generated now, at the embedded default's
	// first start, when the operator has nowhere else to get them yet: serve's output tends to
	// end up in logs, and a service key there is a leaked credential.
	var secret string
	generated := false
	if !jwksOnly {
		generated = cfg.embedded() && cfg.JWTSecret == "" && !fileExists(cfg.secretFile())
		if secret, err = jwtSecret(cfg, cfg.embedded()); err != nil {
			return err
		}
	}
	verifier, err := identity.New(identity.Config{Secret: secret, Algorithm: cfg.JWTAlgorithm, JWKS: cfg.JWKS,
		AllowedRoles: cfg.AllowedRoles})
	if err != nil {
		return fmt.Errorf("AUTH_JWT_SECRET/JWT_JWKS/AUTH_ALLOWED_ROLES: %v", err)
	}
	urlSecret, urlKid := verifier.URLSigningKey()
	reg := metrics.Disabled()
	if cfg.MetricsEnabled {
		reg = metrics.New(cfg.Version)
	}
	if cfg.MetricsEnabled && cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("METRICS_ADDR: cannot listen on %s: %v", cfg.MetricsAddr, err)
		}
		defer mln.Close()
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", reg.Handler())
		go http.Serve(mln, mux)
		log.Info("metrics endpoint", "url", "http://"+mln.Addr().String()+"/metrics")
	}
	blobs, err := openBlobs(ctx, cfg)
	if err != nil {
		return err
	}
	blobs = reg.Blobs(blobs, cfg.Backend)
	db, err := openDatabase(ctx, cfg, stderr, poolServer)
	if err != nil {
		return err
	}
	defer db.close()
	// Signed URLs are minted in SQL (storage.url_sign*) with the same secret that verifies
	// them here: keep the database's copy in step with the URL signing key (JWT_JWKS's
	// urlSigningKey, else AUTH_JWT_SECRET).
	var kid *string
	if urlKid != "" {
		kid = &urlKid
	}
	if _, err := db.pool.Exec(ctx, `select storage.signing_secret_set($1::bytea, $2)`, urlSecret, kid); err != nil {
		return fmt.Errorf("store the URL signing secret: %s", oneLine(err))
	}

	// The collector deletes freed blobs and works bucket-empty jobs in the background; with
	// several servers on one database, one of them at a time (advisory lock).
	collector := &lifecycle.Collector{DB: db.pool, Blobs: blobs, Retention: cfg.BlobRetention,
		Interval: cfg.GCInterval, LeftoverGrace: cfg.LeftoverGrace, UploadExpiry: cfg.UploadExpiry, Logger: log, Observe: reg.CollectorRun}
	emptyQueued := collector.Kick
	if cfg.GCInterval == 0 {
		emptyQueued = nil
		log.Warn("STORAGE_GC_INTERVAL=0: this server collects no blobs and works no bucket-empty jobs; another server must")
	}

	// Storage events are recorded by the database whatever happens here; one server at a time
	// delivers them to WEBHOOK_URL (and prunes them after EVENTS_RETENTION).
	dispatcher := events.New(events.Config{DB: db.pool, URL: cfg.WebhookURL, APIKey: cfg.WebhookAPIKey,
		Timeout: cfg.WebhookTimeout, MaxBackoff: cfg.WebhookMaxRetry, Retention: cfg.EventsRetention, PollInterval: cfg.EventsPoll,
		Tenant: events.Tenant{Ref: cfg.TenantID, Host: publicHost(cfg)}, Logger: log})
	reg.Events(dispatcher.Stats)

	lim := serverLimits(cfg, openFiles, filesErr, log)
	rest := proxy.New(proxy.Config{
		Verifier:            verifier,
		UploadFileSizeLimit: cfg.UploadFileSizeLimit,
		Version:             cfg.Version,
		HeaderTimeout:       cfg.HeaderTimeout,
		IdleTimeout:         cfg.IdleTimeout,
		Limits:              lim,
		StatementTimeout:    cfg.StatementTimeout,
		LockTimeout:         cfg.LockTimeout,
		PoolAcquireTimeout:  cfg.PoolAcquireTimeout,
		Logger:              log,
		Blobs:               blobs,
		CORSAllowedOrigins:  cfg.CORSAllowedOrigins,
		UploadURLExpiry:     cfg.UploadURLExpiry,
		EmptyQueued:         emptyQueued,
		Render:              renderConfig(cfg, log),
		Metrics:             reg,
		ServeMetrics:        cfg.MetricsEnabled && cfg.MetricsAddr == "",
		InlineMax:           cfg.InlineMax,
	}, db.pool)
	resumable, err := tus.New(rest, blobs, tus.Config{URLPath: cfg.TUSURLPath, Expiry: cfg.TUSExpiry,
		PublicURL: cfg.PublicURL, AllowForwardedPath: cfg.AllowForwardedPath, MaxConcurrent: cfg.TUSMaxConcurrent, Logger: log})
	if err != nil {
		return err
	}
	defer resumable.Close() // after serving stopped (deferred later, run earlier)
	rest.Mount(resumable)
	if cfg.S3Enabled {
		anonKey := cfg.AnonKey
		if anonKey == "" && secret != "" {
			if anonKey, _, err = apiKeys(secret, cfg.JWTAlgorithm); err != nil {
				return err
			}
		}
		door, err := s3.New(rest, blobs, s3.Config{AccessKeyID: cfg.S3ProtocolKeyID, SecretKey: cfg.S3ProtocolSecret,
			ServiceKey: cfg.ServiceKey, TenantID: cfg.TenantID, AnonKey: anonKey, Region: cfg.Region,
			EnforceRegion: cfg.S3EnforceRegion, Prefix: cfg.S3Prefix, AllowForwardedPrefix: cfg.AllowForwardedPath,
			PublicURL: cfg.PublicURL, AllowForwardedHeader: cfg.S3AllowForwardedHeader,
			NonCanonicalHostHeader: cfg.S3NonCanonicalHostHeader, MultipartExpiry: cfg.S3MultipartExpiry, Logger: log})
		if err != nil {
			return err
		}
		rest.Mount(door)
	}
	srv := rest.HTTPServer()

	// The port actually bound: SERVER_PORT=0 picks a free one. The banner is written at once,
	// so a reader that has its first line has all of it.
	bound := net.JoinHostPort(cfg.Host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	banner := fmt.Sprintf("storage listening on http://%s (schema version %d)\ndatabase: %s\n", bound, db.version, db.display)
	if db.role != "" {
		banner += fmt.Sprintf("requests connect as %s (no superuser)\n", db.role)
	}
	switch {
	case generated:
		anon, service, err := apiKeys(secret, cfg.JWTAlgorithm)
		if err != nil {
			return err
		}
		banner += fmt.Sprintf("ANON_KEY=%s\nSERVICE_ROLE_KEY=%s\n", anon, service)
		banner += fmt.Sprintf("keys: shown this once, for the JWT secret just generated in %s; `storage keys` prints them again\n", cfg.secretFile())
	case secret != "":
		banner += "keys: `storage keys` prints ANON_KEY and SERVICE_ROLE_KEY (run it with this environment)\n"
	default:
		banner += "keys: none here: with JWT_JWKS alone, tokens are signed by whoever holds its private keys\n"
	}
	fmt.Fprint(stdout, banner)

	gcCtx, stopGC := context.WithCancel(ctx)
	gcDone, releaseDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(gcDone)
		if cfg.GCInterval > 0 {
			collector.Run(gcCtx)
		}
	}()
	go func() {
		defer close(releaseDone)
		resumable.Run(gcCtx) // TUS release requests between servers
	}()
	eventsDone := make(chan struct{})
	go func() {
		defer close(eventsDone)
		dispatcher.Run(gcCtx)
	}()
	// The collector, the TUS listener and the event dispatcher stop before the pool closes
	// (deferred above, so it runs after this).
	defer func() { stopGC(); <-gcDone; <-releaseDone; <-eventsDone }()

	// Start-up's garbage goes back to the system now: loading the migrations (tern evaluates
	// the templates of every migration and snapshot) allocates about 40 MiB, which leaves a
	// heap of 15-20 MiB resident that the runtime would return only slowly, minutes into the
	// serving. Once live, the heap of an idle server is a few MiB.
	debug.FreeOSMemory()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	return srv.Shutdown()
}

// newLogger is the server's logger: LOG_FORMAT's lines, from LOG_LEVEL up, buffered in sink
// (logsink.go).
func newLogger(cfg Config, sink *logSink) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler = slog.NewJSONHandler(sink, opts)
	if cfg.LogFormat == "text" {
		h = slog.NewTextHandler(sink, opts)
	}
	return slog.New(flushingHandler{h, sink})
}

// publicHost is the host webhooks name as the tenant's (STORAGE_PUBLIC_URL's), or "".
func publicHost(cfg Config) string {
	if cfg.PublicURL == nil {
		return ""
	}
	return cfg.PublicURL.Host
}

// fileExists reports whether path names an existing file (or anything that is not certainly
// absent: only a missing file is a secret still to generate).
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// pprofMux serves net/http/pprof's handlers (heap, allocs, goroutine… through Index). The
// package also registers them on http.DefaultServeMux, which this binary never serves.
func pprofMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return m
}

// renderConfig is image transformation as cfg sets it: off, or libvips behind a queue.
func renderConfig(cfg Config, log *slog.Logger) proxy.RenderConfig {
	if !cfg.ImageEnabled {
		return proxy.RenderConfig{}
	}
	if cfg.ImageMinSize > cfg.ImageMaxSize {
		cfg.ImageMinSize = cfg.ImageMaxSize
	}
	rateLimit := 0
	if cfg.RateLimiterEnabled {
		rateLimit = cfg.RateLimitRender
	}
	concurrency := cfg.ImageConcurrency
	if concurrency == 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	return proxy.RenderConfig{
		Engine:        vips.New(vips.Config{MaxPixels: int64(cfg.ImageMaxResolution * 1e6), Quality: cfg.ImageQuality, Logger: log}),
		Limits:        render.Limits{MinSize: cfg.ImageMinSize, MaxSize: cfg.ImageMaxSize},
		MaxSourceSize: cfg.ImageMaxSourceSize,
		Queue:         render.NewQueue(concurrency, cfg.ImageQueueSize, cfg.ImageQueueTimeout),
		NoCache:       !cfg.ImageCache,
		RateLimit:     rateLimit,
	}
}
