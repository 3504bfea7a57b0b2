package limits_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/limits"
)

// The limits on real loopback TCP connections: the listener's caps and refusals, and the
// idle timeouts of a Conn's reads and writes. (The HTTP server on top is tested in tests/.)

// pair returns both ends of a connection accepted through l's listener: the server's *Conn
// and the client's. rcvbuf, when positive, shrinks the client's receive buffer.
func pair(t *testing.T, l *limits.Limiter, rcvbuf int) (*limits.Conn, net.Conn) {
	t.Helper()
	ln := listen(t, l)
	client := dial(t, ln.Addr().String(), rcvbuf)
	c, err := ln.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	lc := limits.ConnOf(c)
	require.NotNil(t, lc)
	return lc, client
}

func listen(t *testing.T, l *limits.Limiter) net.Listener {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ln := l.Listen(inner, func(r limits.Reason) []byte {
		body := "busy"
		if r == limits.TooManyConnsFromIP {
			body = "busy from your address"
		}
		return []byte("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body)
	})
	t.Cleanup(func() { ln.Close() })
	return ln
}

func dial(t *testing.T, addr string, rcvbuf int) net.Conn {
	t.Helper()
	d := net.Dialer{}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
		}
	}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestGate(t *testing.T) {
	t.Parallel()
	l := limits.New(limits.Config{MaxUploads: 2}, nil)
	require.True(t, l.Uploads.TryAcquire())
	require.True(t, l.Uploads.TryAcquire())
	require.False(t, l.Uploads.TryAcquire(), "a full gate refuses at once")
	require.Equal(t, 2, l.Uploads.InUse())
	l.Uploads.Release()
	require.True(t, l.Uploads.TryAcquire(), "a released slot is taken again")
	for range 1000 {
		require.True(t, l.Downloads.TryAcquire(), "no cap: no refusal")
	}
}

func TestListenerCaps(t *testing.T) {
	t.Parallel()
	l := limits.New(limits.Config{MaxConns: 2, MaxConnsPerIP: 1}, nil)
	ln := listen(t, l)
	addr := ln.Addr().String()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	refused := func(from string) string {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
		b, err := io.ReadAll(c) // the listener answers and closes
		require.NoError(t, err)
		return string(b)
	}

	a := dial(t, addr, 0) // 127.0.0.1
	first := <-accepted
	require.Contains(t, refused("127.0.0.1"), "busy from your address")
	require.Equal(t, 1, l.Conns())

	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	b, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	defer b.Close()
	<-accepted
	require.Equal(t, 2, l.Conns())
	resp := refused("127.0.0.3")
	require.True(t, strings.HasPrefix(resp, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"), resp)
	require.True(t, strings.HasSuffix(resp, "\r\n\r\nbusy"), resp)

	// Closing frees the place, once.
	require.NoError(t, first.Close())
	_ = first.Close() // a second Close fails as the connection's does, and frees nothing more
	a.Close()
	require.Equal(t, 1, l.Conns())
	dial(t, addr, 0) // 127.0.0.1 again
	<-accepted
	require.Equal(t, 2, l.Conns())
}

func TestConnReads(t *testing.T) {
	t.Parallel()
	const idle = 300 * time.Millisecond

	t.Run("FollowProgress", func(t *testing.T) {
		t.Parallel()
		server, client := pair(t, limits.New(limits.Config{ReadIdle: idle}, nil), 0)
		server.FollowProgress()
		// 20 pieces, 100 ms apart: 2 s in all, far past the idle time.
		go func() {
			for range 20 {
				time.Sleep(100 * time.Millisecond) // pacing the client
				if _, err := client.Write([]byte("0123456789")); err != nil {
					return
				}
			}
			client.Close()
		}()
		started := time.Now()
		b, err := io.ReadAll(server)
		require.NoError(t, err)
		require.Len(t, b, 200)
		require.Greater(t, time.Since(started), 4*idle)
		require.False(t, server.Stalled())
	})

	t.Run("Stalled", func(t *testing.T) {
		t.Parallel()
		server, client := pair(t, limits.New(limits.Config{ReadIdle: idle}, nil), 0)
		server.FollowProgress()
		_, err := client.Write([]byte("some"))
		require.NoError(t, err)
		b := make([]byte, 10)
		n, err := io.ReadFull(server, b)
		require.Equal(t, 4, n)
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		require.True(t, server.Stalled())
		// Later reads fail at once, with the same error: a drain does not wait again.
		started := time.Now()
		_, err = server.Read(b)
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		require.Less(t, time.Since(started), idle)
	})

	t.Run("ServerDeadlinesOutsideBodies", func(t *testing.T) {
		t.Parallel()
		server, client := pair(t, limits.New(limits.Config{ReadIdle: idle}, nil), 0)
		// Before FollowProgress (and after the server sets its own deadline again) a read
		// waits as long as the server's deadline says.
		require.NoError(t, server.SetReadDeadline(time.Now().Add(4*idle)))
		go func() {
			time.Sleep(2 * idle) // longer than the idle time, shorter than the deadline
			_, _ = client.Write([]byte("x"))
		}()
		b := make([]byte, 1)
		_, err := server.Read(b)
		require.NoError(t, err)
		require.False(t, server.Stalled())
	})
}

// TestConnCut: Cut ends a read blocked on a client that sends nothing, with ErrCut (not a
// stall), whether reads follow progress or not; later reads fail at once.
func TestConnCut(t *testing.T) {
	t.Parallel()
	for _, follow := range []bool{true, false} {
		t.Run(fmt.Sprintf("follow=%v", follow), func(t *testing.T) {
			t.Parallel()
			server, client := pair(t, limits.New(limits.Config{ReadIdle: time.Minute}, nil), 0)
			if follow {
				server.FollowProgress()
			}
			_, err := client.Write([]byte("some"))
			require.NoError(t, err)
			b := make([]byte, 10)
			n, err := server.Read(b)
			require.NoError(t, err)
			require.Equal(t, 4, n)
			done := make(chan error, 1)
			go func() { _, err := server.Read(b); done <- err }()
			require.False(t, server.Cutting())
			server.Cut()
			require.ErrorIs(t, <-done, limits.ErrCut)
			require.True(t, server.Cutting())
			require.False(t, server.Stalled())
			_, err = server.Read(b)
			require.ErrorIs(t, err, limits.ErrCut)
		})
	}
}

func TestConnWrites(t *testing.T) {
	t.Parallel()
	const idle = 400 * time.Millisecond
	// More than the sockets' buffers hold, so the writer blocks on the reader.
	data := bytes.Repeat([]byte("0123456789abcdef"), 12<<20/16)

	t.Run("SlowReader", func(t *testing.T) {
		t.Parallel()
		server, client := pair(t, limits.New(limits.Config{WriteIdle: idle}, nil), 4096)
		got := make(chan int, 1)
		go func() {
			n := 0
			buf := make([]byte, 64<<10)
			for {
				time.Sleep(10 * time.Millisecond) // pacing the client: ~6 MB/s
				m, err := io.ReadFull(client, buf)
				n += m
				if err != nil {
					got <- n
					return
				}
			}
		}()
		started := time.Now()
		n, err := server.Write(data)
		require.NoError(t, err, "the client was reading all along")
		require.Equal(t, len(data), n)
		require.Greater(t, time.Since(started), 2*idle, "the write must outlast the idle time to prove anything")
		server.Close()
		require.Equal(t, len(data), <-got)
	})

	t.Run("SlowReaderSendfile", func(t *testing.T) {
		t.Parallel()
		f, err := os.CreateTemp(t.TempDir(), "blob")
		require.NoError(t, err)
		_, err = f.Write(data)
		require.NoError(t, err)
		_, err = f.Seek(0, io.SeekStart)
		require.NoError(t, err)
		defer f.Close()
		server, client := pair(t, limits.New(limits.Config{WriteIdle: idle}, nil), 4096)
		got := make(chan int64, 1)
		go func() {
			var n int64
			br := bufio.NewReaderSize(client, 64<<10)
			for {
				time.Sleep(10 * time.Millisecond) // pacing the client
				m, err := io.CopyN(io.Discard, br, 64<<10)
				n += m
				if err != nil {
					got <- n
					return
				}
			}
		}()
		started := time.Now()
		n, err := server.ReadFrom(&io.LimitedReader{R: f, N: int64(len(data))})
		require.NoError(t, err)
		require.Equal(t, int64(len(data)), n)
		require.Greater(t, time.Since(started), 2*idle)
		server.Close()
		require.Equal(t, int64(len(data)), <-got)
	})

	t.Run("StoppedReader", func(t *testing.T) {
		t.Parallel()
		server, _ := pair(t, limits.New(limits.Config{WriteIdle: idle}, nil), 4096)
		started := time.Now()
		n, err := server.Write(data)
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		require.Less(t, n, len(data))
		require.GreaterOrEqual(t, time.Since(started), idle)
		var ne net.Error
		require.True(t, errors.As(err, &ne) && ne.Timeout())
	})
}
