package limits

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Config is the set of limits. A zero field means no limit of that kind.
type Config struct {
	// MaxConns is the most connections open at once; a connection past it is refused.
	MaxConns int
	// MaxConnsPerIP is the most connections open at once from one client address.
	MaxConnsPerIP int
	// MaxUploads and MaxDownloads are the most uploads (request bodies streaming to the blob
	// store) and downloads (blobs streaming to clients) in progress at once.
	MaxUploads, MaxDownloads int
	// ReadIdle is the longest a handler's read of a request body may wait for bytes; the
	// request then fails (Stalled reports it) and its connection is closed.
	ReadIdle time.Duration
	// WriteIdle is the longest a write of a response may wait for the client to take bytes;
	// the connection is then closed (and the response's body stream with it).
	WriteIdle time.Duration
}

// Reason says why a connection was refused.
type Reason int

const (
	// TooManyConns: Config.MaxConns connections are open.
	TooManyConns Reason = iota
	// TooManyConnsFromIP: Config.MaxConnsPerIP connections are open from the client's address.
	TooManyConnsFromIP
)

// RetryAfter is what refusals tell clients to wait before trying again (Retry-After): slots
// free up as transfers end, which is usually a matter of seconds.
const RetryAfter = time.Second

// Limiter applies one Config: its listener counts connections, its gates count transfers.
type Limiter struct {
	cfg Config
	log *slog.Logger

	conns atomic.Int64
	mu    sync.Mutex
	perIP map[netip.Addr]int

	// Uploads and Downloads are the transfer gates (Config.MaxUploads, Config.MaxDownloads).
	Uploads, Downloads *Gate
}

// New returns a Limiter for cfg; log receives its warnings (nil = slog.Default()).
func New(cfg Config, log *slog.Logger) *Limiter {
	if log == nil {
		log = slog.Default()
	}
	return &Limiter{
		cfg:       cfg,
		log:       log,
		perIP:     map[netip.Addr]int{},
		Uploads:   &Gate{max: int64(cfg.MaxUploads)},
		Downloads: &Gate{max: int64(cfg.MaxDownloads)},
	}
}

// Config returns the limits l applies.
func (l *Limiter) Config() Config { return l.cfg }

// Conns returns how many connections are open.
func (l *Limiter) Conns() int { return int(l.conns.Load()) }

// admit counts a new connection from ip, or says why it may not be opened.
func (l *Limiter) admit(ip netip.Addr) (Reason, bool) {
	if n := l.conns.Add(1); l.cfg.MaxConns > 0 && n > int64(l.cfg.MaxConns) {
		l.conns.Add(-1)
		return TooManyConns, false
	}
	if l.cfg.MaxConnsPerIP > 0 {
		l.mu.Lock()
		n := l.perIP[ip]
		if n >= l.cfg.MaxConnsPerIP {
			l.mu.Unlock()
			l.conns.Add(-1)
			return TooManyConnsFromIP, false
		}
		l.perIP[ip] = n + 1
		l.mu.Unlock()
	}
	return 0, true
}

// leave uncounts a connection admit counted.
func (l *Limiter) leave(ip netip.Addr) {
	l.conns.Add(-1)
	if l.cfg.MaxConnsPerIP > 0 {
		l.mu.Lock()
		if n := l.perIP[ip] - 1; n > 0 {
			l.perIP[ip] = n
		} else {
			delete(l.perIP, ip)
		}
		l.mu.Unlock()
	}
}

// Gate counts transfers in progress against a cap. It never queues: past the cap TryAcquire
// fails at once and the door refuses the request.
type Gate struct {
	max int64 // 0 = no cap
	n   atomic.Int64
}

// TryAcquire takes a slot, or reports false when all are taken. Every true must be matched
// by one Release.
func (g *Gate) TryAcquire() bool {
	if n := g.n.Add(1); g.max > 0 && n > g.max {
		g.n.Add(-1)
		return false
	}
	return true
}

// Release gives back a slot TryAcquire took.
func (g *Gate) Release() { g.n.Add(-1) }

// InUse returns how many slots are taken.
func (g *Gate) InUse() int { return int(g.n.Load()) }
