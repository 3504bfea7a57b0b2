package proxy

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DB is the proxy's only door to PostgreSQL. Every method runs one request's unit of work:
// the prelude statement (role and request settings, transaction-local) and exactly one call
// into the storage SQL API, sent together as one pipelined batch. The batch ends in a single
// Sync, so PostgreSQL runs both statements in one implicit transaction: one network round trip,
// settings that die with the transaction, and nothing committed if the call fails.
type DB struct {
	pool           *pgxpool.Pool
	acquireTimeout time.Duration // see acquire (db_pool.go)
}

// NewDB wraps pool. Statements are prepared and cached per connection by pgx.
func NewDB(pool *pgxpool.Pool) *DB { return &DB{pool: pool} }

// call runs the prelude with settings, then query with args, handing the rows to scan (which
// must consume them). Errors come back through interpretError. A call PostgreSQL did not run
// on a connection that turned out dead is sent again on another (retry).
func (db *DB) call(ctx context.Context, settings []any, query string, args []any, scan func(pgx.Rows) error) error {
	for tries := 0; ; tries++ {
		conn, err := db.acquire(ctx)
		if err != nil {
			return err
		}
		notRun, err := sendCall(ctx, conn.Conn(), settings, query, args, scan)
		conn.Release()
		if !db.retry(err, notRun, tries) {
			return interpretError(err)
		}
	}
}

// retry says whether a call that failed with err after tries earlier tries goes again on
// another connection: only when PostgreSQL ran none of it (notRun) and the connection is
// gone. A connection PostgreSQL closed while it sat in the pool (a restart, a failover, a
// terminated backend) fails its first use; each such connection fails once and is discarded,
// so the tries are bounded by the pool's size. What may have run is never tried again: the
// caller gets ErrDatabaseUnavailable.
func (db *DB) retry(err error, notRun bool, tries int) bool {
	return err != nil && notRun && connectionLost(err) && tries < int(db.pool.Config().MaxConns)
}

// callOn is call on a connection the caller holds.
func callOn(ctx context.Context, conn *pgx.Conn, settings []any, query string, args []any, scan func(pgx.Rows) error) error {
	_, err := sendCall(ctx, conn, settings, query, args, scan)
	return interpretError(err)
}

// sendCall sends the prelude and the call as one batch and reads their results. notRun
// reports that PostgreSQL ran neither: nothing was sent (pgconn.SafeToRetry), or the server's
// answer to the prelude was an error. The server answers a pipeline in order, so an error in
// place of the prelude's result means the prelude did not complete, and the call, in the same
// implicit transaction, was skipped. (A connection that merely breaks gives no answer: io
// errors are not PostgreSQL errors, and count as may-have-run.)
func sendCall(ctx context.Context, conn *pgx.Conn, settings []any, query string, args []any, scan func(pgx.Rows) error) (notRun bool, err error) {
	b := &pgx.Batch{}
	b.Queue(preludeSQL, settings...)
	b.Queue(query, args...)
	br := conn.SendBatch(ctx, b)
	err = func() error {
		if _, err := br.Exec(); err != nil {
			var pgErr *pgconn.PgError
			notRun = errors.As(err, &pgErr)
			return err
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		if scan != nil {
			if err := scan(rows); err != nil {
				return err
			}
		}
		for rows.Next() {
		}
		return rows.Err()
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return notRun || pgconn.SafeToRetry(err), err
}
