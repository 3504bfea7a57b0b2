package proxy

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
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
// must consume them). Errors come back through interpretError.
func (db *DB) call(ctx context.Context, settings []any, query string, args []any, scan func(pgx.Rows) error) error {
	conn, err := db.acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	return callOn(ctx, conn.Conn(), settings, query, args, scan)
}

// callOn is call on a connection the caller holds.
func callOn(ctx context.Context, conn *pgx.Conn, settings []any, query string, args []any, scan func(pgx.Rows) error) error {
	b := &pgx.Batch{}
	b.Queue(preludeSQL, settings...)
	b.Queue(query, args...)
	br := conn.SendBatch(ctx, b)
	err := func() error {
		if _, err := br.Exec(); err != nil {
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
	return interpretError(err)
}
