package proxy

import (
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// The reference's optional rate limit on the render routes (spec RENDER.md §8.3): per client
// address and path (query excluded), at most 4 × RATE_LIMITER_RENDER_PATH_MAX_REQ_SEC requests
// in a 4-second window; a request over the limit restarts the window. In memory, per server.

// rateWindow is the reference's window.
const rateWindow = 4 * time.Second

// maxRateKeys bounds the limiter's memory: when this many (address, path) pairs are counted
// at once, expired ones are dropped, and a new pair beyond it is refused like an over-limit
// one (a client cycling through paths cannot grow the map without bound).
const maxRateKeys = 100_000

// ErrRateLimited: too many render requests for one path from one address.
var ErrRateLimited = &Error{Status: 429, Code: "SlowDown", Label: "Too Many Requests",
	Message: "Rate limit exceeded, retry in 4 seconds", HTTPStatus: 429}

type rateLimiter struct {
	max   int
	mu    sync.Mutex
	slots map[string]*rateSlot
	swept time.Time
	now   func() time.Time
}

type rateSlot struct {
	count int
	reset time.Time
}

func newRateLimiter(perSecond int) *rateLimiter {
	return &rateLimiter{max: perSecond * int(rateWindow/time.Second), slots: map[string]*rateSlot{}, now: time.Now}
}

// allow counts one request under key and reports whether it may run.
func (l *rateLimiter) allow(key string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) >= rateWindow || len(l.slots) >= maxRateKeys {
		for k, s := range l.slots {
			if !now.Before(s.reset) {
				delete(l.slots, k)
			}
		}
		l.swept = now
	}
	s := l.slots[key]
	if s == nil || !now.Before(s.reset) {
		if s == nil && len(l.slots) >= maxRateKeys {
			return false
		}
		s = &rateSlot{reset: now.Add(rateWindow)}
		l.slots[key] = s
	}
	s.count++
	if s.count > l.max {
		s.reset = now.Add(rateWindow) // over the limit: the window starts again
		return false
	}
	return true
}

// rateLimited wraps a render route: requests over the limit are refused before any other work.
func (s *Server) rateLimited(op string, h fasthttp.RequestHandler) fasthttp.RequestHandler {
	if s.rates == nil {
		return h
	}
	m := s.metrics.Op(op)
	return func(ctx *fasthttp.RequestCtx) {
		if !s.rates.allow(clientAddress(ctx) + "-" + string(ctx.Path())) {
			recordOf(ctx).op = m
			s.writeError(ctx, ErrRateLimited)
			return
		}
		h(ctx)
	}
}

// clientAddress is the address the reference limits by: X-Real-IP, else X-Client-IP, else
// the peer's. The headers are the client's word: behind a proxy that sets them they name the
// client; without one, a client can pick its own key (as with the reference).
func clientAddress(ctx *fasthttp.RequestCtx) string {
	for _, h := range []string{"X-Real-IP", "X-Client-IP"} {
		if v := ctx.Request.Header.Peek(h); len(v) > 0 {
			return string(v)
		}
	}
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return ctx.RemoteAddr().String()
}
