package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgstorage/storage/blob"
)

// Error is a storage error as the REST API reports it. Status is the logical status that goes
// in the body's statusCode; HTTPStatus, when set, is the status line to send instead of the
// legacy rule (see httpStatus).
type Error struct {
	Status     int    // logical status, rendered as a string in the body
	Code       string // machine code, e.g. NoSuchBucket
	Label      string // the body's legacy "error" field; "" means the same as Code
	Message    string
	HTTPStatus int         // explicit status line; 0 = the legacy rule
	Headers    [][2]string // response headers that go with the error
	Cause      error       // underlying error, for logs; never rendered
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Cause)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// Is matches on code and logical status, so errors.Is(err, ErrNoSuchBucket) works on a copy
// carrying a different message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Status == e.Status
}

// httpStatus implements the reference's legacy rule: a handled error is sent with HTTP 400
// whatever its logical status (503 included), except 500 (sent as 500) and the few errors that carry an
// explicit status (role enforcement 403, range 416, timeouts 544, 429, unknown route 404).
// storage-js reads the logical status from the body, so this must not be "fixed".
func (e *Error) httpStatus() int {
	switch {
	case e.HTTPStatus != 0:
		return e.HTTPStatus
	case e.Status == 500:
		return e.Status
	default:
		return http.StatusBadRequest
	}
}

func (e *Error) label() string {
	if e.Label != "" {
		return e.Label
	}
	return e.Code
}

// with returns a copy of e with another message.
func (e *Error) with(message string) *Error {
	c := *e
	c.Message = message
	return &c
}

// The storage errors the proxy raises itself. SQL-raised ones come through sqlStates.
var (
	// ErrNoSuchBucket: the bucket does not exist or the caller may not see it.
	ErrNoSuchBucket = &Error{Status: 404, Code: "NoSuchBucket", Label: "Bucket not found", Message: "Bucket not found"}
	// ErrAccessDenied: bad JWT or denied by policy.
	ErrAccessDenied = &Error{Status: 403, Code: "AccessDenied", Label: "Unauthorized", Message: "Access denied"}
	// ErrInvalidRole: a valid JWT whose role may not use the route (only bucket empty checks this).
	ErrInvalidRole = &Error{Status: 403, Code: "AccessDenied", Label: "Unauthorized", Message: "Access denied: Invalid role", HTTPStatus: 403}
	// ErrInvalidRequest: schema validation failures, rendered like the reference's framework
	// errors (error "Error").
	ErrInvalidRequest = &Error{Status: 400, Code: "InvalidRequest", Label: "Error"}
	// ErrRouteNotFound: no route matches; the only 404 status line of the REST API.
	ErrRouteNotFound = &Error{Status: 404, Code: "InvalidRequest", Label: "Not Found", HTTPStatus: 404}
	// ErrInvalidMimeType: an unparsable Content-Type header.
	ErrInvalidMimeType = &Error{Status: 415, Code: "InvalidMimeType", Label: "invalid_mime_type", Message: "Invalid Content-Type header"}
	// ErrInternal: anything unexpected. Details go to the log, never to the client.
	ErrInternal = &Error{Status: 500, Code: "InternalError", Label: "Internal", Message: "Internal Server Error", HTTPStatus: 500}
)

// internalError is ErrInternal carrying cause for the log (ErrBlobUnavailable when the blob
// store could not serve). A cause that wraps a refusal of the
// client's request (a blob store's Put failing because the request body could not be read)
// stays that refusal: the failure is the client's.
func internalError(cause error) *Error {
	var client *Error
	if errors.As(cause, &client) && client.Status < 500 {
		return client
	}
	e := *ErrInternal
	if errors.Is(cause, blob.ErrUnavailable) {
		e = *ErrBlobUnavailable
	}
	e.Cause = cause
	return &e
}

// sqlError is one row of the SQLSTATE table. keepMessage passes the database's message
// through (the SQL API words those messages for clients); otherwise Message is fixed.
type sqlError struct {
	Error
	keepMessage bool
}

// sqlStates is the one SQLSTATE→error table. Class ST is the storage SQL API's own (see
// sql/api/install.sql); the rest are PostgreSQL's. Codes are never reused for another meaning.
// Nothing here looks at message text.
var sqlStates = map[string]sqlError{
	"ST001": {Error: Error{Status: 404, Code: "NoSuchBucket", Label: "Bucket not found", Message: "Bucket not found"}},
	"ST002": {Error: Error{Status: 404, Code: "NoSuchKey", Label: "not_found", Message: "Object not found"}},
	"ST003": {Error: Error{Status: 409, Code: "BucketAlreadyExists", Label: "Duplicate", Message: "The resource already exists"}},
	"ST004": {Error: Error{Status: 409, Code: "KeyAlreadyExists", Label: "Duplicate", Message: "The resource already exists"}},
	"ST005": {Error: Error{Status: 409, Code: "ResourceNotEmpty", Label: "ResourceNotEmpty", Message: "The bucket you tried to delete is not empty"}},
	"ST006": {Error: Error{Status: 400, Code: "InvalidBucketName", Label: "Invalid Input", Message: "Bucket name invalid"}},
	"ST007": {Error: Error{Status: 400, Code: "InvalidKey", Label: "InvalidKey"}, keepMessage: true},
	"ST008": {Error: Error{Status: 413, Code: "EntityTooLarge", Label: "Payload too large"}, keepMessage: true},
	"ST009": {Error: Error{Status: 415, Code: "InvalidMimeType", Label: "invalid_mime_type"}, keepMessage: true},
	"ST010": {Error: Error{Status: 400, Code: "InvalidRequest"}, keepMessage: true},
	"ST011": {Error: Error{Status: 403, Code: "AccessDenied", Label: "Unauthorized"}, keepMessage: true},
	"ST012": {Error: Error{Status: 400, Code: "InvalidParameter"}, keepMessage: true},
	"ST013": {Error: Error{Status: 409, Code: "InvalidRequest"}, keepMessage: true},
	"ST014": {Error: Error{Status: 409, Code: "FeatureNotEnabled"}, keepMessage: true},
	"ST015": {Error: Error{Status: 409, Code: "UploadOffsetConflict", Label: "Conflict"}, keepMessage: true},
	"ST016": {Error: Error{Status: 404, Code: "NoSuchUpload", Label: "Not found", Message: "Upload not found"}},
	"ST017": {Error: Error{Status: 400, Code: "InvalidPart"}, keepMessage: true},
	"ST018": {Error: Error{Status: 400, Code: "InvalidPartOrder"}, keepMessage: true},
	"ST019": {Error: Error{Status: 400, Code: "EntityTooSmall"}, keepMessage: true},
	"ST020": {Error: Error{Status: 409, Code: "ResourceReferenced", Label: "ResourceReferenced"}, keepMessage: true},
	"ST021": {Error: Error{Status: 409, Code: "OperationAborted", Label: "Conflict"}, keepMessage: true},
	// 42501 is both an RLS refusal and a missing privilege; the reference words both as RLS.
	"42501": {Error: Error{Status: 403, Code: "AccessDenied", Label: "Unauthorized", Message: "new row violates row-level security policy"}},
	"23505": {Error: Error{Status: 409, Code: "ResourceAlreadyExists", Label: "Duplicate", Message: "The resource already exists"}},
	"23503": {Error: Error{Status: 404, Code: "InvalidRequest", Message: "The related resource does not exist"}},
	"55P03": {Error: Error{Status: 423, Code: "ResourceLocked", Message: "The resource is locked"}},
	"57014": {Error: Error{Status: 544, Code: "DatabaseTimeout", Message: "The connection to the database timed out", HTTPStatus: 544}},
	"53300": {Error: Error{Status: 429, Code: "SlowDown", Label: "too_many_connections", Message: "Too many connections issued to the database", HTTPStatus: 429}},
	"25006": {Error: Error{Status: 503, Code: "DatabaseError", Message: "The database is read-only"}},
	"22P02": {Error: Error{Status: 400, Code: "InvalidParameter"}, keepMessage: true},
	// Client text PostgreSQL cannot store: invalid UTF-8 or NUL (22021), the \u0000 escape in
	// jsonb (22P05). The proxy refuses such input before the database (input.go); these rows
	// keep any path it misses a refusal rather than an internal error.
	"22021": {Error: Error{Status: 400, Code: "InvalidRequest", Message: "Input" + notTextMessage}},
	"22P05": {Error: Error{Status: 400, Code: "InvalidRequest", Message: "Input" + notTextMessage}},
	"42703": {Error: Error{Status: 503, Code: "DatabaseError", Message: "The database schema does not match this server"}},
	"42P01": {Error: Error{Status: 503, Code: "DatabaseError", Message: "The database schema does not match this server"}},
}

// interpretError is the error boundary between the database and the handlers: PostgreSQL
// errors become *Error through sqlStates; an unmapped SQLSTATE becomes DatabaseError (500);
// anything else (network, context) becomes ErrInternal. Handlers never see pgx types.
func interpretError(err error) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && !connectionLost(err) {
		row, ok := sqlStates[pgErr.Code]
		if !ok {
			return &Error{Status: 500, Code: "DatabaseError", Message: "database error, code: " + pgErr.Code, Cause: err}
		}
		e := row.Error
		if row.keepMessage {
			e.Message = pgErr.Message
		}
		e.Cause = err
		return &e
	}
	if errors.Is(err, blob.ErrUnavailable) { // the doors' blob errors come through here too
		return internalError(err)
	}
	if pgconn.Timeout(err) {
		return &Error{Status: 544, Code: "DatabaseTimeout", Message: "The connection to the database timed out", HTTPStatus: 544, Cause: err}
	}
	if connectionLost(err) {
		e := *ErrDatabaseUnavailable
		e.Cause = err
		return &e
	}
	return internalError(err)
}

// connectionLost reports whether err says the connection to PostgreSQL is gone or could not be
// made: the server was stopped, restarted or failed over, or terminated the backend. Clients
// get ErrDatabaseUnavailable (503, Retry-After), not an internal error; the pool replaces the
// connection.
func connectionLost(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, class 08
		// connection exceptions.
		return pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03" || strings.HasPrefix(pgErr.Code, "08")
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// errorBody renders the four-field body every REST error has. statusCode is a string.
func errorBody(e *Error) []byte {
	b := make([]byte, 0, 128)
	b = append(b, `{"statusCode":`...)
	b = strconv.AppendQuote(b, strconv.Itoa(e.Status))
	b = append(b, `,"code":`...)
	b = appendJSONString(b, e.Code)
	b = append(b, `,"error":`...)
	b = appendJSONString(b, e.label())
	b = append(b, `,"message":`...)
	b = appendJSONString(b, e.Message)
	return append(b, '}')
}
