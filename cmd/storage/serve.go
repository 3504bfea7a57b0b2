package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"

	"github.com/pgstorage/storage/lifecycle"
	"github.com/pgstorage/storage/proxy"
)

// serve runs the HTTP server until ctx is cancelled (SIGINT/SIGTERM), then drains requests,
// closes the pool and stops the embedded cluster.
func serve(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	if !cfg.embedded() && cfg.JWTSecret == "" {
		return errors.New("AUTH_JWT_SECRET is required when DATABASE_URL is set (only the embedded default generates one)")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
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
	secret, err := jwtSecret(cfg, cfg.embedded())
	if err != nil {
		return err
	}
	blobs, err := openBlobs(ctx, cfg)
	if err != nil {
		return err
	}
	db, err := openDatabase(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer db.close()
	// Signed URLs are minted in SQL (storage.url_sign*) with the same secret that verifies
	// them here: keep the database's copy in step with AUTH_JWT_SECRET.
	if _, err := db.pool.Exec(ctx, `select storage.signing_secret_set($1)`, secret); err != nil {
		return fmt.Errorf("store the URL signing secret: %s", oneLine(err))
	}

	// The collector deletes freed blobs and works bucket-empty jobs in the background; with
	// several servers on one database, one of them at a time (advisory lock).
	collector := &lifecycle.Collector{DB: db.pool, Blobs: blobs, Retention: cfg.BlobRetention,
		Interval: cfg.GCInterval, Logger: log}
	emptyQueued := collector.Kick
	if cfg.GCInterval == 0 {
		emptyQueued = nil
		log.Warn("STORAGE_GC_INTERVAL=0: this server collects no blobs and works no bucket-empty jobs; another server must")
	}

	lim := serverLimits(cfg, openFiles, filesErr, log)
	srv := proxy.New(proxy.Config{
		JWTSecret:           secret,
		JWTAlgorithm:        cfg.JWTAlgorithm,
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
	}, db.pool).HTTPServer()

	anon, service, err := apiKeys(secret, cfg.JWTAlgorithm)
	if err != nil {
		return err
	}
	// The port actually bound: SERVER_PORT=0 picks a free one.
	bound := net.JoinHostPort(cfg.Host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	fmt.Fprintf(stdout, "storage listening on http://%s (schema version %d)\n", bound, db.version)
	fmt.Fprintf(stdout, "database: %s\n", db.display)
	fmt.Fprintf(stdout, "ANON_KEY=%s\nSERVICE_ROLE_KEY=%s\n", anon, service)

	gcCtx, stopGC := context.WithCancel(ctx)
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		if cfg.GCInterval > 0 {
			collector.Run(gcCtx)
		}
	}()
	// The collector stops before the pool closes (deferred above, so it runs after this).
	defer func() { stopGC(); <-gcDone }()

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
