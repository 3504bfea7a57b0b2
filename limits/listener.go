package limits

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Listen returns ln with l's connection caps and idle timeouts applied: connections past a
// cap get refusal(reason) written to them and are closed (they never reach the server), and
// the others are *Conn. refusal returns a whole HTTP response; it is called once per reason,
// here, so the bytes are ready before the first refusal.
func (l *Limiter) Listen(ln net.Listener, refusal func(Reason) []byte) net.Listener {
	return &listener{
		Listener: ln,
		l:        l,
		refusals: [...][]byte{TooManyConns: refusal(TooManyConns), TooManyConnsFromIP: refusal(TooManyConnsFromIP)},
		refusing: make(chan struct{}, maxRefusing),
	}
}

// maxRefusing bounds the refusals being written at once; past it a refused connection is
// closed without an answer, so a flood of connections cannot pile up goroutines.
const maxRefusing = 256

// refuseLinger bounds the time a refusal spends on a connection: writing the answer, then
// reading (and discarding) what the client sends until it closes. Closing a socket with
// unread bytes sends a reset, which can destroy the answer before the client reads it.
const refuseLinger = time.Second

// refuseDrain is the most a refusal reads from the client before closing anyway.
const refuseDrain = 64 << 10

type listener struct {
	net.Listener
	l        *Limiter
	refusals [2][]byte
	refusing chan struct{}
}

func (ln *listener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			// Out of file descriptors: the HTTP server would take the error as permanent and
			// stop serving. Wait for some to free up instead, as net/http does.
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				if backoff == 0 {
					ln.l.log.Warn("out of file descriptors: new connections wait; lower SERVER_MAX_CONNECTIONS or raise the open-files limit", "err", err)
					backoff = 5 * time.Millisecond
				} else {
					backoff = min(2*backoff, time.Second)
				}
				time.Sleep(backoff)
				continue
			}
			return nil, err
		}
		backoff = 0
		ip := remoteIP(c)
		if why, ok := ln.l.admit(ip); !ok {
			ln.refuse(c, why)
			continue
		}
		return &Conn{Conn: c, l: ln.l, ip: ip}, nil
	}
}

// refuse answers c with the refusal for why and closes it, in the background.
func (ln *listener) refuse(c net.Conn, why Reason) {
	select {
	case ln.refusing <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-ln.refusing }()
		defer c.Close()
		if c.SetDeadline(time.Now().Add(refuseLinger)) != nil {
			return
		}
		if _, err := c.Write(ln.refusals[why]); err != nil {
			return
		}
		if hc, ok := c.(interface{ CloseWrite() error }); ok {
			_ = hc.CloseWrite()
		}
		_, _ = io.CopyN(io.Discard, c, refuseDrain)
	}()
}

func remoteIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// Conn is a connection the Limiter admitted. Its writes go on as long as the client takes
// bytes, and fail once it has taken none for WriteIdle; once FollowProgress was called, its
// reads may each wait at most ReadIdle for bytes. Deadlines the HTTP server sets itself
// (header and keep-alive timeouts) end that phase, so they keep their meaning between bodies.
type Conn struct {
	net.Conn
	l      *Limiter
	ip     netip.Addr
	closed atomic.Bool

	following atomic.Bool  // reads follow progress (a handler is reading a body)
	readArmed atomic.Int64 // when the read deadline was last pushed back (since epoch)
	stalled   atomic.Pointer[error]
	cut       atomic.Bool // Cut: every read fails with ErrCut

	// Writes happen on one goroutine at a time (the server's, for the connection).
	sent          int64 // bytes handed to the kernel
	acked         int64 // of those, acknowledged by the client at the last check; -1 = not checked yet
	progressAt    int64 // when the client was last seen taking bytes (since epoch)
	writeDeadline int64 // the write deadline armed (since epoch); 0 = none
}

// ConnOf returns the *Conn behind c, or nil when c is not one (a server without limits, or a
// request built in a test): every method of a nil *Conn is a no-op.
func ConnOf(c net.Conn) *Conn {
	lc, _ := c.(*Conn)
	return lc
}

// epoch is what deadline bookkeeping counts from, on the monotonic clock.
var epoch = time.Now()

func now() int64 { return int64(time.Since(epoch)) }

// slack is how long a pushed-back deadline may go without being pushed again: re-arming a
// deadline on every small read or write would cost a timer update each time. A deadline is
// armed idle+slack ahead, so a stall is cut after between idle and idle+slack without bytes.
func slack(idle time.Duration) time.Duration { return idle / 16 }

// FollowProgress makes c's reads follow progress from now on: each may wait at most ReadIdle
// for bytes, however long the body takes in all, until the server sets its own deadline
// again (for the next request's headers). Doors call it when a request reaches them.
func (c *Conn) FollowProgress() {
	if c == nil {
		return
	}
	if c.l.cfg.ReadIdle <= 0 {
		// No idle limit: the body may take any time, so the header deadline goes too.
		_ = c.Conn.SetReadDeadline(time.Time{})
		return
	}
	c.readArmed.Store(0)
	c.following.Store(true)
}

// Stalled reports whether a read of c failed because the client sent nothing for ReadIdle:
// the request is incomplete, the connection must close, and the door answers 408 if it can.
func (c *Conn) Stalled() bool { return c != nil && c.stalled.Load() != nil }

// ErrCut is what reads of a connection return once a door has cut it (Conn.Cut).
var ErrCut = errors.New("limits: the server cut the request body")

// Cut ends the request body being read: a read blocked now returns at once, and every read
// from now on fails with ErrCut. A door uses it to stop a request before its client does
// (TUS's release request: another server wants the upload this body is appending to); it
// then answers with Connection: close.
func (c *Conn) Cut() {
	if c == nil {
		return
	}
	c.cut.Store(true)
	_ = c.Conn.SetReadDeadline(time.Now())
}

// Cutting reports whether Cut was called.
func (c *Conn) Cutting() bool { return c != nil && c.cut.Load() }

func (c *Conn) Read(p []byte) (int, error) {
	if c.cut.Load() {
		return 0, ErrCut
	}
	if !c.following.Load() {
		n, err := c.Conn.Read(p)
		if err != nil && c.cut.Load() {
			return n, ErrCut
		}
		return n, err
	}
	if errp := c.stalled.Load(); errp != nil {
		// A stalled body is not read further (a drain would wait another ReadIdle).
		return 0, *errp
	}
	idle := c.l.cfg.ReadIdle
	if t := now(); t-c.readArmed.Load() > int64(slack(idle)) {
		c.readArmed.Store(t)
		if err := c.Conn.SetReadDeadline(time.Now().Add(idle + slack(idle))); err != nil {
			return 0, err
		}
		// A Cut that came before the deadline above was pushed back must still end the read.
		if c.cut.Load() {
			return 0, ErrCut
		}
	}
	n, err := c.Conn.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		if c.cut.Load() {
			return n, ErrCut
		}
		c.stalled.Store(&err)
	}
	return n, err
}

// Writes follow progress differently from reads. A read returns as soon as any byte arrives,
// so a deadline per read measures the client's progress. A write returns only once the kernel
// took all its bytes, and a writer blocked on a full send buffer is woken only when much of
// it has drained (half of a buffer that may hold megabytes): a client reading steadily but
// slowly can leave a write blocked for longer than WriteIdle. So a write runs under a short
// deadline (a quarter of WriteIdle), and each time it passes the connection asks the kernel
// how many of the bytes it was handed the client has acknowledged (SIOCOUTQ); only when none
// for WriteIdle is the write given up.

func (c *Conn) Write(p []byte) (int, error) {
	idle := c.l.cfg.WriteIdle
	if idle <= 0 {
		return c.Conn.Write(p)
	}
	if err := c.beginWrite(idle); err != nil {
		return 0, err
	}
	var written int
	for {
		n, err := c.Conn.Write(p[written:])
		written += n
		c.sent += int64(n)
		if err == nil || !c.moving(err, idle) {
			return written, err
		}
	}
}

// ReadFrom sends r the way the connection itself would (sendfile for a file, possibly behind
// one io.LimitedReader, as the HTTP server hands response bodies over), under the same
// progress checks as Write. Other readers are copied through Write.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := c.Conn.(io.ReaderFrom)
	src := r
	if lr, isLR := r.(*io.LimitedReader); isLR {
		src = lr.R
	}
	if _, isFile := src.(*os.File); !ok || !isFile {
		bufp := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(bufp)
		return io.CopyBuffer(writerOnly{c}, r, *bufp)
	}
	idle := c.l.cfg.WriteIdle
	if idle <= 0 {
		return rf.ReadFrom(r)
	}
	if err := c.beginWrite(idle); err != nil {
		return 0, err
	}
	// A timed-out ReadFrom has sent n bytes, and both the file's offset and the
	// LimitedReader's N have moved past them: calling it again goes on where it stopped.
	var total int64
	for {
		n, err := rf.ReadFrom(r)
		total += n
		c.sent += n
		if err == nil || !c.moving(err, idle) {
			return total, err
		}
	}
}

// beginWrite arms the write deadline for a write that starts now, unless the armed one is
// still more than half a tick away.
func (c *Conn) beginWrite(idle time.Duration) error {
	t, tick := now(), int64(idle/4)
	if t < c.writeDeadline-tick/2 {
		return nil
	}
	c.progressAt, c.acked = t, -1
	c.writeDeadline = t + tick
	return c.Conn.SetWriteDeadline(time.Now().Add(idle / 4))
}

// moving is asked when a write failed with err: it reports whether to go on writing, which
// is when err is the write deadline passing while the client still takes bytes (it has
// acknowledged some within WriteIdle, or holds none unacknowledged); the deadline is then
// armed again.
func (c *Conn) moving(err error, idle time.Duration) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	t := now()
	if queued, ok := unacknowledged(c.Conn); ok {
		acked := c.sent - queued
		if c.acked >= 0 && acked > c.acked || queued == 0 {
			c.progressAt = t
		}
		c.acked = acked
	}
	if t-c.progressAt >= int64(idle) {
		return false
	}
	c.writeDeadline = t + int64(idle/4)
	return c.Conn.SetWriteDeadline(time.Now().Add(idle/4)) == nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// writerOnly hides Conn.ReadFrom from io.CopyBuffer, which would call it back.
type writerOnly struct{ io.Writer }

// SetReadDeadline is the HTTP server setting its own read deadline (headers, keep-alive):
// reads stop following progress until a door calls FollowProgress again.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.following.Store(false)
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline sets both deadlines, as SetReadDeadline and the connection do.
func (c *Conn) SetDeadline(t time.Time) error {
	c.following.Store(false)
	c.writeDeadline = 0
	return c.Conn.SetDeadline(t)
}

// SetWriteDeadline sets the write deadline until the next write arms its own.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline = 0
	return c.Conn.SetWriteDeadline(t)
}

// Close closes the connection and frees its place under the caps (once).
func (c *Conn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.l.leave(c.ip)
	}
	return err
}
