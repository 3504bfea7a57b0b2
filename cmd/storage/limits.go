package main

import (
	"log/slog"
	"syscall"

	"github.com/pgstorage/storage/limits"
)

// spareFiles are the descriptors kept out of the connection budget for everything else the
// server opens: the listener, logs, the embedded cluster's pipes, the collector's connection,
// idle connections to an S3 endpoint.
const spareFiles = 256

// maxAutoConns caps SERVER_MAX_CONNECTIONS=auto where the open-files limit is very high:
// each connection costs memory (a goroutine and buffers) as well as descriptors.
const maxAutoConns = 10000

// raiseOpenFiles raises the soft limit on open files to the hard limit (Go's runtime does it
// too on most systems; this makes it explicit and reads the result) and returns the limit.
func raiseOpenFiles() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return rl.Cur, nil
}

// serverLimits turns the configuration into the limits the server applies, with the
// connection cap kept inside the open-files limit: every connection may hold a blob file (an
// upload's temporary file, a download's file) besides its socket, an upload to S3 may hold one
// more socket, and the database pool and spareFiles need theirs. nofile and err are what
// raiseOpenFiles returned. It logs what it chose.
func serverLimits(cfg Config, nofile uint64, err error, log *slog.Logger) limits.Config {
	lc := limits.Config{
		MaxConns:      cfg.ServerMaxConns,
		MaxConnsPerIP: cfg.MaxConnsPerIP,
		MaxUploads:    cfg.MaxUploads,
		MaxDownloads:  cfg.MaxDownloads,
		ReadIdle:      cfg.ReadTimeout,
		WriteIdle:     cfg.WriteTimeout,
	}
	if err != nil {
		log.Warn("cannot read the open-files limit; connections are not kept within it", "err", err)
		if lc.MaxConns == 0 {
			lc.MaxConns = maxAutoConns
		}
		return lc
	}
	budget := max((int64(min(nofile, 1<<31))-spareFiles-int64(cfg.MaxConns)-int64(cfg.MaxUploads))/2, 16)
	switch {
	case lc.MaxConns == 0:
		lc.MaxConns = int(min(budget, maxAutoConns))
	case int64(lc.MaxConns) > budget:
		log.Warn("SERVER_MAX_CONNECTIONS is more than the open-files limit allows; lowered", "asked", lc.MaxConns, "open_files_limit", nofile)
		lc.MaxConns = int(budget)
	}
	log.Info("connection limits", "open_files_limit", nofile, "max_connections", lc.MaxConns,
		"max_connections_per_ip", lc.MaxConnsPerIP, "max_uploads", lc.MaxUploads, "max_downloads", lc.MaxDownloads)
	return lc
}
