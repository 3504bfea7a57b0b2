package s3

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// exactReader passes on exactly remaining bytes of r and fails unless r has exactly that many.
// It holds the last byte back until it has seen r end: once the server has Content-Length
// bytes it stores the object, so a too-long body must fail the request before its last byte
// goes out, not after.
type exactReader struct {
	r         io.Reader
	remaining int64
	read      int64
	done      bool // r has been seen to end where promised
}

func (e *exactReader) Read(p []byte) (int, error) {
	switch {
	case e.done:
		return 0, io.EOF
	case len(p) == 0:
		return 0, nil
	case e.remaining == 0:
		if err := expectEOF(e.r); err != nil {
			return 0, err
		}
		e.done = true
		return 0, io.EOF
	case e.remaining == 1:
		var b [1]byte
		if _, err := io.ReadFull(e.r, b[:]); err != nil {
			if err == io.EOF {
				return 0, e.short()
			}
			return 0, err
		}
		if err := expectEOF(e.r); err != nil {
			return 0, err
		}
		e.remaining, e.read, e.done = 0, e.read+1, true
		p[0] = b[0]
		return 1, nil
	}
	if int64(len(p)) > e.remaining-1 {
		p = p[:e.remaining-1]
	}
	n, err := e.r.Read(p)
	e.remaining -= int64(n)
	e.read += int64(n)
	if err == io.EOF {
		return n, e.short()
	}
	return n, err
}

func (e *exactReader) short() error {
	return fmt.Errorf("body ended after %d bytes, size says %d", e.read, e.read+e.remaining)
}

// expectEOF fails unless r is at its end.
func expectEOF(r io.Reader) error {
	var b [1]byte
	n, err := io.ReadFull(r, b[:])
	if n > 0 {
		return fmt.Errorf("body is longer than its size")
	}
	if err == io.EOF {
		return nil
	}
	return err
}

// bodyGuard keeps the first error other than io.EOF that reading returned (the SDK and net/http
// bury it), and shuts the body once Put is over: net/http may go on reading a request body in
// its own goroutine after the call returns, and the caller's reader (an HTTP request body) is
// not ours to touch then. The mutex is held across the inner Read, so once close returns no
// Read is running or will run.
type bodyGuard struct {
	mu     sync.Mutex
	r      io.Reader
	err    error
	closed bool
}

var errBodyClosed = errors.New("blob/s3: body read after Put returned")

func (g *bodyGuard) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, errBodyClosed
	}
	n, err := g.r.Read(p)
	if err != nil && err != io.EOF && g.err == nil {
		g.err = err
	}
	return n, err
}

// close stops further reads and returns the error reading failed with, if any.
func (g *bodyGuard) close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	return g.err
}
