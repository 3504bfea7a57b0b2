package proxy

import (
	"context"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/identity"
	"github.com/pgstorage/storage/limits"
)

// The seam other doors (package tus; later S3) use to reach the database as the REST routes
// do: the same pool, the same prelude (role, claims, request settings, timeouts), the same
// SQLSTATE table. A door owns its routes, its wire format and its own error table; it never
// writes SQL semantics of its own.

// Call runs query as one request's unit of work (the prelude with settings, then query), like
// every REST handler's call. Errors are *Error (AsError).
func (db *DB) Call(ctx context.Context, settings []any, query string, args []any, scan func(pgx.Rows) error) error {
	return db.call(ctx, settings, query, args, scan)
}

// ServerCall runs query as the server itself: the connection's own role (a member of
// storage_server), without a request's settings, for the bookkeeping only the servers may do
// (what a store did with an upload's pieces), after the request's own call checked the
// caller. Errors are *Error (AsError).
func (db *DB) ServerCall(ctx context.Context, query string, args []any, scan func(pgx.Rows) error) error {
	for tries := 0; ; tries++ {
		conn, err := db.acquire(ctx)
		if err != nil {
			return err
		}
		notRun, err := serverQuery(ctx, conn.Conn(), query, args, scan)
		conn.Release()
		if !db.retry(err, notRun, tries) {
			return interpretError(err)
		}
	}
}

// serverQuery runs query and hands its rows to scan; notRun: nothing was sent.
func serverQuery(ctx context.Context, conn *pgx.Conn, query string, args []any, scan func(pgx.Rows) error) (notRun bool, err error) {
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return pgconn.SafeToRetry(err), err
	}
	defer rows.Close()
	if scan != nil {
		if err := scan(rows); err != nil {
			return false, err
		}
	}
	for rows.Next() {
	}
	return false, rows.Err()
}

// Held is a pooled connection a request keeps across several calls, for a session-level lock
// (a resumable upload's advisory lock, held while its body streams). Release gives it back.
type Held struct {
	conn *pgxpool.Conn
}

// Hold takes a pooled connection for the caller to keep (within the pool's acquire timeout,
// like any call: ErrDatabaseBusy past it).
func (db *DB) Hold(ctx context.Context) (*Held, error) {
	c, err := db.acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &Held{conn: c}, nil
}

// Call is DB.Call on the held connection.
func (h *Held) Call(ctx context.Context, settings []any, query string, args []any, scan func(pgx.Rows) error) error {
	return callOn(ctx, h.conn.Conn(), settings, query, args, scan)
}

// Exec runs a statement outside any request's settings (session-level lock functions).
func (h *Held) Exec(ctx context.Context, sql string, args ...any) error {
	_, err := h.conn.Exec(ctx, sql, args...)
	return err
}

// QueryRow runs a one-row statement outside any request's settings.
func (h *Held) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return h.conn.QueryRow(ctx, sql, args...)
}

// Release gives the connection back to the pool; broken ones are closed instead, which ends
// any session lock they held.
func (h *Held) Release() { h.conn.Release() }

// Destroy closes the connection instead of pooling it: for a caller that cannot tell whether
// the session still holds a lock.
func (h *Held) Destroy() {
	_ = h.conn.Conn().Close(context.Background())
	h.conn.Release()
}

// Connect opens a connection of its own, outside the pool, with the pool's settings: for a
// door's LISTEN, which holds its connection for the server's life.
func (db *DB) Connect(ctx context.Context) (*pgx.Conn, error) {
	return pgx.ConnectConfig(ctx, db.pool.Config().ConnConfig.Copy())
}

// Sibling returns a seam on a pool of its own, with the same connection settings and at most
// maxConns connections, for a door whose requests hold connections for long (TUS locks): they
// can then never take the connections every other request needs. Close it with Close. Its
// statistics are exported like the main pool's, as pool=name.
func (s *Server) Sibling(name string, maxConns int32) (*DB, error) {
	db, err := s.db.sibling(maxConns)
	if err == nil {
		s.metrics.Pool(name, db.pool.Stat)
	}
	return db, err
}

func (db *DB) sibling(maxConns int32) (*DB, error) {
	cfg := db.pool.Config()
	cfg.MaxConns, cfg.MinConns = maxConns, 0
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	return &DB{pool: pool, acquireTimeout: db.acquireTimeout}, nil
}

// Close closes the seam's pool (a Sibling's; the server's own is closed by its owner).
func (db *DB) Close() { db.pool.Close() }

// DB returns the server's database seam.
func (s *Server) DB() *DB { return s.db }

// Verifier returns the server's token verifier.
func (s *Server) Verifier() *identity.Verifier { return s.verifier }

// Settings returns the prelude's arguments for a request of another door, by id, running op.
func (s *Server) Settings(ctx *fasthttp.RequestCtx, id Identity, op string) []any {
	identify(ctx, id)
	return preludeArgs(id, op, headersJSON(ctx), string(ctx.Method()), requestPath(ctx), recordOf(ctx).id, s.uploadLimit, s.statementTimeout, s.lockTimeout)
}

// UploadFileSizeLimit is the global upload limit in bytes (0: none).
func (s *Server) UploadFileSizeLimit() int64 { return s.cfg.UploadFileSizeLimit }

// Uploads is the gate every upload takes a slot from (nil: no cap).
func (s *Server) Uploads() *limits.Gate { return s.lim.Uploads }

// AsError interprets any error of a call the way the REST routes do: storage errors keep
// their code, SQLSTATEs go through the one table, a lost connection is ErrDatabaseUnavailable.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	return interpretError(err).(*Error)
}

// CORSOrigin is the Access-Control-Allow-Origin value for a request from origin ("" when
// that origin is not allowed).
func (s *Server) CORSOrigin(origin string) string { return s.corsOrigin(origin) }

// Route is a route another door registers: method, path (under / and /storage/v1), handler.
type Route struct {
	Method, Path string
	Handler      fasthttp.RequestHandler
}

// Door is another protocol served beside the REST routes.
type Door interface {
	// Routes lists the door's routes.
	Routes() []Route
	// Preflight answers OPTIONS for path (without the gateway prefix) and reports true, or
	// reports false to leave it to the REST preflight.
	Preflight(ctx *fasthttp.RequestCtx, path []byte) bool
}

// Prefixed is a door that owns a whole path prefix (S3 addresses buckets and keys by path,
// trailing slashes included, which route patterns cannot express): a request whose raw path
// is Prefix or under it, at / or under /storage/v1, goes to ServePrefix first, with the raw
// path after the prefix ("", "/", "/b", "/b/k"…). It reports false to leave the request to
// the routes (whose 404 then answers).
type Prefixed interface {
	Door
	Prefix() string
	ServePrefix(ctx *fasthttp.RequestCtx, rest []byte) bool
}

// Mount adds a door. Call it before Handler.
func (s *Server) Mount(d Door) { s.doors = append(s.doors, d) }

// Stalled reports whether the request's body stopped arriving for the read idle timeout.
func Stalled(ctx *fasthttp.RequestCtx) bool { return limits.ConnOf(ctx.Conn()).Stalled() }

// RESTErrorBody renders e in the REST error format (for doors whose auth failures answer as
// the REST routes do), and its HTTP status.
func RESTErrorBody(e *Error) ([]byte, int) { return errorBody(e), e.httpStatus() }

// BearerToken is the token of an Authorization header, as the REST routes read it.
func BearerToken(h []byte) string { return tokenFromHeader(h) }

// DrainBody reads what is left of a refused request's body, up to a bound, and reports whether
// the connection can serve another request (false: close it), as the REST routes do.
func DrainBody(ctx *fasthttp.RequestCtx) bool { return drainBody(ctx) }

// AuthError renders an identity refusal as the REST routes do.
func AuthError(err error) *Error { return authError(err, false) }

// Upload is an object upload from another door (S3's PutObject): the REST upload's steps
// (prepare, stream to a fresh blob, commit the row), as the caller, with the caller's
// policies deciding at prepare and again at commit.
type Upload struct {
	Bucket, Name           string
	Upsert                 bool
	Mimetype, CacheControl string
	UserMetadata           []byte // JSON object; nil stores {}
	ContentLength          int64  // declared length; -1 unknown
	Body                   io.Reader
	Owner                  string // the sub that owns the row ("" keeps an upsert's owner)
	// Check, when set, decides on the stored bytes (their size) before the row is written: an
	// error refuses the upload (the blob is queued for collection) and is returned as is.
	Check func(size int64) error
}

// Stored is what an upload wrote.
type Stored struct {
	ID   string // the object's id
	Size int64
	MD5  string // hex; the ETag is its quoted form
}

// Store runs u for a request of another door, as id, running op.
func (s *Server) Store(ctx *fasthttp.RequestCtx, id Identity, op string, u Upload) (Stored, error) {
	up := &upload{bucket: u.Bucket, name: u.Name, upsert: u.Upsert, mimetype: u.Mimetype,
		cacheControl: u.CacheControl, userMetadata: u.UserMetadata, body: u.Body}
	if up.userMetadata == nil {
		up.userMetadata = []byte(`{}`)
	}
	if u.ContentLength >= 0 {
		n := u.ContentLength
		up.contentLength = &n
	}
	up.check = u.Check
	objID, st, err := s.store(&request{ctx: ctx, id: id, op: op}, up, u.Owner)
	return Stored{ID: objID, Size: st.size, MD5: st.md5}, err
}

// ResponseStream is body made the response's stream of ctx's request: its bytes are counted
// as they go out, and it holds a slot of gate (nil: none), which it gives back when the server
// closes it (as the REST downloads hold theirs).
func ResponseStream(ctx *fasthttp.RequestCtx, gate *limits.Gate, body io.ReadCloser) io.ReadCloser {
	c := &countingStream{ReadCloser: body, op: recordOf(ctx).op}
	if gate != nil {
		c.slot = gate
	}
	return c
}

// Downloads is the gate every download takes a slot from (nil: no cap).
func (s *Server) Downloads() *limits.Gate { return s.lim.Downloads }

// Precondition applies a read's conditional headers (If-Match, If-Unmodified-Since, then
// If-None-Match, If-Modified-Since) to an object with this ETag and lastModified (ISO 8601),
// as the REST downloads do: 0 to serve it, 412 or 304.
func Precondition(ctx *fasthttp.RequestCtx, etag, lastModified string) int {
	o := &object{meta: objectMetadata{ETag: etag, LastModified: lastModified}}
	switch {
	case preconditionFailed(ctx, o):
		return fasthttp.StatusPreconditionFailed
	case notModified(ctx, o):
		return fasthttp.StatusNotModified
	}
	return 0
}

// ByteRange resolves the request's Range header against size, as the REST downloads do:
// (offset, length, partial, satisfiable).
func ByteRange(ctx *fasthttp.RequestCtx, size int64) (int64, int64, bool, bool) {
	return parseRange(ctx.Request.Header.Peek(fasthttp.HeaderRange), size)
}

// Sandboxed reports whether a download of type ct must carry Content-Security-Policy:
// sandbox (see writeObjectHeaders).
func Sandboxed(ct string) bool { return sandboxed(ct) }

// StorableJSON reports whether PostgreSQL can store the JSON document b as jsonb (UTF-8, no
// NUL, no \u0000 escape, surrogate escapes only in pairs): doors refuse user metadata that is
// not, before the database would (ErrMetadataNotText).
func StorableJSON(b []byte) bool { return isJSONBText(b) }
