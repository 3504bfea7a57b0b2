package tests

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/tests/testdb"
)

// TestHTTPDatabaseGoesAway: PostgreSQL ending the server's connections (a restart, a failover,
// an administrator) is the database's unavailability, not the server's fault: a request whose
// connection is cut mid-call gets 503 with Retry-After, and the next requests are served on
// new connections. Idle connections cut the same way cost nothing: the pool replaces them.
func TestHTTPDatabaseGoesAway(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	b.createBucket(t, `{"name":"b"}`)
	ctx := context.Background()
	terminate := func(where string) {
		_, err := b.db.Pool.Exec(ctx, `select pg_terminate_backend(pid) from pg_stat_activity
			where datname = current_database() and pid <> pg_backend_pid() and `+where)
		require.NoError(t, err)
	}

	// Mid-call: the request waits for a row lock when its connection is terminated.
	release := lockBucketRow(t, b, "b")
	blocked := make(chan httpResponse, 1)
	go func() { blocked <- b.do(t, "PUT", "/bucket/b", b.service, `{"public":true}`) }()
	awaitLockWaiters(t, b, 1)
	terminate(`wait_event_type = 'Lock'`)
	requireBusy(t, <-blocked, "The database is not available; retry later")
	release()
	require.Equal(t, http.StatusOK, b.do(t, "PUT", "/bucket/b", b.service, `{"public":true}`).Status, "served again")

	// Idle: the server's connections are ended between requests (see
	// TestHTTPDatabaseIdleConnectionsEnded).
	require.Equal(t, http.StatusOK, b.do(t, "GET", "/bucket/b", b.service, "").Status)
}

// TestHTTPDatabaseIdleConnectionsEnded: PostgreSQL ends every connection the server holds while
// they sit in its pool (a restart, a failover, an administrator). Each dead connection fails its
// next use; PostgreSQL ran none of the call sent on it, so the server sends it again on another
// connection and the client never notices. Over a unix socket the write itself fails
// (pgconn.SafeToRetry); over TCP the write succeeds and the answer is PostgreSQL's FATAL error
// (57P01) in place of the prelude's result.
func TestHTTPDatabaseIdleConnectionsEnded(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"unix", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			db := testdb.New(t)
			if transport == "tcp" {
				db = overTCP(t, db)
			}
			b := setupHTTPOn(t, db)
			b.createBucket(t, `{"name":"b"}`)
			ctx := context.Background()
			admin, err := pgx.Connect(ctx, db.URL)
			require.NoError(t, err)
			defer admin.Close(ctx)
			for round := range 3 {
				// Several connections in the pool, all in use at once, then idle.
				var wg sync.WaitGroup
				for range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, _ = http.Get(b.baseURL + "/bucket/b")
					}()
				}
				wg.Wait()
				var ended int
				require.NoError(t, admin.QueryRow(ctx, `select count(pg_terminate_backend(pid, 10000)) from pg_stat_activity
					where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'`).Scan(&ended))
				require.Positive(t, ended, "round %d: the server held no connection", round)
				for i := range 20 {
					r := b.do(t, "GET", "/bucket/b", b.service, "")
					require.Equal(t, http.StatusOK, r.Status, "round %d, request %d after %d connections ended: %s", round, i, ended, r)
				}
			}
		})
	}
}

// overTCP is db with its pool connecting through a TCP relay to its unix socket: what
// PostgreSQL's closing of a connection looks like to a server across a network.
func overTCP(t *testing.T, db *testdb.DB) *testdb.DB {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(db.URL)
	require.NoError(t, err)
	socket := filepath.Join(cfg.ConnConfig.Host, fmt.Sprintf(".s.PGSQL.%d", cfg.ConnConfig.Port))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("unix", socket)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c); u.(*net.UnixConn).CloseWrite() }()
				_, _ = io.Copy(c, u)
				c.(*net.TCPConn).CloseWrite()
				_, _ = io.Copy(io.Discard, c) // until the client closes its side
			}()
		}
	}()
	cfg.ConnConfig.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ln.Addr().String())
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return &testdb.DB{Pool: pool, URL: db.URL, SuperURL: db.SuperURL}
}
