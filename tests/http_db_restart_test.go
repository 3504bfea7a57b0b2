package tests

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
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

	// Idle: every connection but the test's own goes; the next requests do not notice.
	terminate(`state = 'idle'`)
	for range 10 {
		require.Equal(t, http.StatusOK, b.do(t, "GET", "/bucket/b", b.service, "").Status)
	}
}
