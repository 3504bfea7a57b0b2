package proxy

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgxpool"
)

// acquire takes a pooled connection for one call, waiting at most db.acquireTimeout for one
// to free up. Past it the request is refused with ErrDatabaseBusy (503, Retry-After) instead
// of waiting as long as the connections are held: requests blocked on a lock or a slow
// statement (until lock_timeout or statement_timeout ends them) must not hang every other
// route behind them.
func (db *DB) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	if db.acquireTimeout <= 0 {
		c, err := db.pool.Acquire(ctx)
		return c, interpretError(err)
	}
	// The wait has a deadline of its own, not one on the request's context: that context
	// lives on while the call runs, and its deadline would cancel the query. (A server
	// shutdown does not end the wait early; acquireTimeout bounds it.)
	wait, cancel := context.WithTimeout(context.Background(), db.acquireTimeout)
	defer cancel()
	c, err := db.pool.Acquire(wait)
	if err != nil && errors.Is(wait.Err(), context.DeadlineExceeded) {
		return nil, ErrDatabaseBusy
	}
	return c, interpretError(err)
}
