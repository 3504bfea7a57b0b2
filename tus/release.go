package tus

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/limits"
)

// Release requests (TUS.md §10.1): a request that finds an upload locked asks, through
// PostgreSQL's NOTIFY on the reference's channel and payload, whoever holds it to let go; the
// holder, on whichever server, cuts its PATCH's body after a drain delay, records the bytes
// it stored and answers them. So a client resuming after its connection died (the server may
// not have noticed yet) gets the upload within seconds instead of waiting for the dead body's
// read timeout. A reference server sharing the database sends and honours the same requests.

// releaseChannel is the channel release requests go through (the reference's, quoted).
const releaseChannel = "REQUEST_LOCK_RELEASE"

// releaseTenant prefixes the upload ids of release requests, as the reference's single-tenant
// default; only the version (the last segment) is read back, which alone names an upload.
const releaseTenant = "storage-single-tenant"

// askEvery is how often a request waiting for a lock asks again: a holder's server that was
// not listening yet (starting, reconnecting) hears the next one.
const askEvery = time.Second

// drainDelay is how long a holder asked to release goes on receiving before it cuts.
const drainDelay = 3 * time.Second

// holders are the PATCHes of this server holding an upload's lock, by version.
type holders struct {
	mu sync.Mutex
	m  map[string]*holder
}

type holder struct {
	ctx   *fasthttp.RequestCtx
	timer *time.Timer
}

// add registers a PATCH streaming into version; the returned func unregisters it (and stops a
// pending cut) and must be called before the request's handler returns.
func (h *holders) add(version string, ctx *fasthttp.RequestCtx) func() {
	hd := &holder{ctx: ctx}
	h.mu.Lock()
	if h.m == nil {
		h.m = map[string]*holder{}
	}
	h.m[version] = hd
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if hd.timer != nil {
			hd.timer.Stop()
		}
		if h.m[version] == hd {
			delete(h.m, version)
		}
	}
}

// release cuts the PATCH holding version, if this server has one, after the drain delay.
func (h *holders) release(version string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hd := h.m[version]
	if hd == nil || hd.timer != nil {
		return
	}
	hd.timer = time.AfterFunc(drainDelay, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.m[version] == hd { // still streaming: the handler has not returned
			limits.ConnOf(hd.ctx.Conn()).Cut()
		}
	})
}

// releasePayload is a release request's body.
type releasePayload struct {
	ID string `json:"id"`
}

// Listening is closed once Run listens for release requests (for tests and readiness).
func (s *Server) Listening() <-chan struct{} { return s.listening }

// Run listens for release requests until ctx ends, reconnecting when the connection drops.
// Call it once per server, beside serving.
func (s *Server) Run(ctx context.Context) {
	for ctx.Err() == nil {
		err := s.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("tus: release requests: listening failed; retrying", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (s *Server) listen(ctx context.Context) error {
	conn, err := s.db.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `listen "`+releaseChannel+`"`); err != nil {
		return err
	}
	s.listenOnce.Do(func() { close(s.listening) })
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var p releasePayload
		if json.Unmarshal([]byte(n.Payload), &p) != nil {
			continue
		}
		s.holders.release(p.ID[strings.LastIndexByte(p.ID, '/')+1:])
	}
}

// releasePayloadOf is the release request for id.
func releasePayloadOf(id uploadID) string {
	b, _ := json.Marshal(releasePayload{ID: releaseTenant + "/" + id.Bucket + "/" + id.Name + "/" + id.Version})
	return string(b)
}
