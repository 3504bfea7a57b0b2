package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

// The error model of spec §1.1: every handled error is a four-field JSON body whose statusCode
// is a string, sent with HTTP 400 unless the logical status is 500 or the error carries an
// explicit status line. These golden tables pin every row of sqlStates and every sentinel.

// testServer is a Server without a database, for tests that never reach one.
func testServer() *Server {
	return New(Config{
		JWTSecret: testSecret,
		Version:   "9.9.9-unit",
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, nil)
}

// rendered is what writeError put on the wire.
type rendered struct {
	status      int
	contentType string
	body        string
}

func writtenError(t *testing.T, err error) rendered {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("GET")
	ctx.Request.SetRequestURI("/bucket")
	require.NotPanics(t, func() { testServer().writeError(&ctx, err) })
	return rendered{ctx.Response.StatusCode(), string(ctx.Response.Header.ContentType()), string(ctx.Response.Body())}
}

// pgMessage is the database's message in the tests of keepMessage rows: quotes and a newline
// show it is escaped as JSON.
const pgMessage = "from \"SQL\"\nsecond line"

const pgMessageJSON = `"from \"SQL\"\nsecond line"`

// body builds the expected four-field body, in the reference's field order.
func body(statusCode, code, label, messageJSON string) string {
	return `{"statusCode":"` + statusCode + `","code":"` + code + `","error":"` + label + `","message":` + messageJSON + `}`
}

func TestSQLStatesGolden(t *testing.T) {
	t.Parallel()

	golden := map[string]struct {
		http int
		body string
	}{
		"ST001": {400, body("404", "NoSuchBucket", "Bucket not found", `"Bucket not found"`)},
		"ST002": {400, body("404", "NoSuchKey", "not_found", `"Object not found"`)},
		"ST003": {400, body("409", "BucketAlreadyExists", "Duplicate", `"The resource already exists"`)},
		"ST004": {400, body("409", "KeyAlreadyExists", "Duplicate", `"The resource already exists"`)},
		"ST005": {400, body("409", "ResourceNotEmpty", "ResourceNotEmpty", `"The bucket you tried to delete is not empty"`)},
		"ST006": {400, body("400", "InvalidBucketName", "Invalid Input", `"Bucket name invalid"`)},
		"ST007": {400, body("400", "InvalidKey", "InvalidKey", pgMessageJSON)},
		"ST008": {400, body("413", "EntityTooLarge", "Payload too large", pgMessageJSON)},
		"ST009": {400, body("415", "InvalidMimeType", "invalid_mime_type", pgMessageJSON)},
		"ST010": {400, body("400", "InvalidRequest", "InvalidRequest", pgMessageJSON)},
		"ST011": {400, body("403", "AccessDenied", "Unauthorized", pgMessageJSON)},
		"ST012": {400, body("400", "InvalidParameter", "InvalidParameter", pgMessageJSON)},
		"ST013": {400, body("409", "InvalidRequest", "InvalidRequest", pgMessageJSON)},
		"ST014": {400, body("409", "FeatureNotEnabled", "FeatureNotEnabled", pgMessageJSON)},
		"ST015": {400, body("409", "UploadOffsetConflict", "Conflict", pgMessageJSON)},
		"ST016": {400, body("404", "NoSuchUpload", "Not found", `"Upload not found"`)},
		"ST017": {400, body("400", "InvalidPart", "InvalidPart", pgMessageJSON)},
		"ST018": {400, body("400", "InvalidPartOrder", "InvalidPartOrder", pgMessageJSON)},
		"ST019": {400, body("400", "EntityTooSmall", "EntityTooSmall", pgMessageJSON)},
		"ST020": {400, body("409", "ResourceReferenced", "ResourceReferenced", pgMessageJSON)},
		"ST021": {400, body("409", "OperationAborted", "Conflict", pgMessageJSON)},
		"42501": {400, body("403", "AccessDenied", "Unauthorized", `"new row violates row-level security policy"`)},
		"23505": {400, body("409", "ResourceAlreadyExists", "Duplicate", `"The resource already exists"`)},
		"23503": {400, body("404", "InvalidRequest", "InvalidRequest", `"The related resource does not exist"`)},
		"55P03": {400, body("423", "ResourceLocked", "ResourceLocked", `"The resource is locked"`)},
		"57014": {544, body("544", "DatabaseTimeout", "DatabaseTimeout", `"The connection to the database timed out"`)},
		"53300": {429, body("429", "SlowDown", "too_many_connections", `"Too many connections issued to the database"`)},
		// Logical 503s have no explicit status line: the legacy rule sends them as HTTP 400
		// (spec §1.1: 400 for anything other than 500).
		"25006": {400, body("503", "DatabaseError", "DatabaseError", `"The database is read-only"`)},
		"22P02": {400, body("400", "InvalidParameter", "InvalidParameter", pgMessageJSON)},
		"22021": {400, body("400", "InvalidRequest", "InvalidRequest", `"Input must be UTF-8 text without NUL characters"`)},
		"22P05": {400, body("400", "InvalidRequest", "InvalidRequest", `"Input must be UTF-8 text without NUL characters"`)},
		"42703": {400, body("503", "DatabaseError", "DatabaseError", `"The database schema does not match this server"`)},
		"42P01": {400, body("503", "DatabaseError", "DatabaseError", `"The database schema does not match this server"`)},
	}

	// A row added to sqlStates must be added here too.
	var have, want []string
	for code := range sqlStates {
		have = append(have, code)
	}
	for code := range golden {
		want = append(want, code)
	}
	sort.Strings(have)
	sort.Strings(want)
	require.Equal(t, want, have, "sqlStates and the golden table differ")

	for code, g := range golden {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			pgErr := &pgconn.PgError{Code: code, Message: pgMessage}
			for _, err := range []error{pgErr, fmt.Errorf("call: %w", pgErr)} {
				e := interpretError(err)
				se, ok := e.(*Error)
				require.True(t, ok, "%T", e)
				var cause *pgconn.PgError
				require.True(t, errors.As(se.Cause, &cause), "the cause is kept for logs")
				require.Same(t, pgErr, cause)
				require.Equal(t, g.http, se.httpStatus())
				require.Equal(t, g.body, string(errorBody(se)))
				r := writtenError(t, err)
				require.Equal(t, g.http, r.status)
				require.Equal(t, "application/json; charset=utf-8", r.contentType)
				require.Equal(t, g.body, r.body)
			}
		})
	}
}

func TestSQLStatesKeepMessage(t *testing.T) {
	t.Parallel()
	// Rows without keepMessage never show the database's text.
	for code, row := range sqlStates {
		e := interpretError(&pgconn.PgError{Code: code, Message: "database text"}).(*Error)
		if row.keepMessage {
			require.Equal(t, "database text", e.Message, code)
		} else {
			require.Equal(t, row.Message, e.Message, code)
			require.NotEmpty(t, e.Message, code)
		}
		// The table itself is never modified by interpretation.
		require.Nil(t, sqlStates[code].Cause, code)
	}
}

func TestSentinelsGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  *Error
		http int
		body string
	}{
		{"ErrNoSuchBucket", ErrNoSuchBucket, 400, body("404", "NoSuchBucket", "Bucket not found", `"Bucket not found"`)},
		{"ErrAccessDenied", ErrAccessDenied, 400, body("403", "AccessDenied", "Unauthorized", `"Access denied"`)},
		{"ErrInvalidRole", ErrInvalidRole, 403, body("403", "AccessDenied", "Unauthorized", `"Access denied: Invalid role"`)},
		{"ErrRoleNotAllowed", ErrRoleNotAllowed, 403, body("403", "AccessDenied", "Unauthorized", `"Access denied"`)},
		{"ErrInvalidRequest", ErrInvalidRequest, 400, body("400", "InvalidRequest", "Error", `""`)},
		{"ErrRouteNotFound", ErrRouteNotFound, 404, body("404", "InvalidRequest", "Not Found", `""`)},
		{"ErrInvalidMimeType", ErrInvalidMimeType, 400, body("415", "InvalidMimeType", "invalid_mime_type", `"Invalid Content-Type header"`)},
		{"ErrInternal", ErrInternal, 500, body("500", "InternalError", "Internal", `"Internal Server Error"`)},
		{"ErrBodyIncomplete", ErrBodyIncomplete, 400, body("400", "InvalidRequest", "InvalidRequest", `"Request body is incomplete or malformed"`)},
		{"ErrRequestTimeout", ErrRequestTimeout, 408, body("408", "RequestTimeout", "Request Timeout", `"The request timed out: the client stopped sending it"`)},
		{"ErrMetadataNotText", ErrMetadataNotText, 400, body("400", "InvalidRequest", "InvalidRequest", `"metadata must be UTF-8 text without NUL characters"`)},
		{"ErrURLNotText", ErrURLNotText, 400, body("400", "InvalidRequest", "Error", `"url must be UTF-8 text without NUL characters"`)},
		// With a message, as the handlers use them.
		{"ErrAccessDenied.with", ErrAccessDenied.with(`"exp" claim timestamp check failed`), 400,
			body("403", "AccessDenied", "Unauthorized", `"\"exp\" claim timestamp check failed"`)},
		{"ErrInvalidRequest.with", ErrInvalidRequest.with("querystring/limit must be >= 1"), 400,
			body("400", "InvalidRequest", "Error", `"querystring/limit must be >= 1"`)},
		{"ErrRouteNotFound.with", ErrRouteNotFound.with("Route GET:/x?a=<b> not found"), 404,
			body("404", "InvalidRequest", "Not Found", `"Route GET:/x?a=<b> not found"`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := writtenError(t, tc.err)
			require.Equal(t, tc.http, r.status)
			require.Equal(t, "application/json; charset=utf-8", r.contentType)
			require.Equal(t, tc.body, r.body)
		})
	}
}

func TestLegacyStatusRule(t *testing.T) {
	t.Parallel()
	for status, want := range map[int]int{
		400: 400, 401: 400, 403: 400, 404: 400, 409: 400, 413: 400, 415: 400, 416: 400, 423: 400,
		429: 400, 499: 400, 500: 500, 501: 400, 502: 400, 503: 400, 504: 400, 544: 400,
	} {
		e := &Error{Status: status, Code: "X"}
		require.Equal(t, want, e.httpStatus(), "logical %d without an explicit status", status)
		e.HTTPStatus = 418
		require.Equal(t, 418, e.httpStatus(), "explicit status wins")
	}
}

func TestInterpretError(t *testing.T) {
	t.Parallel()

	t.Run("Nil", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, interpretError(nil))
	})

	t.Run("StorageErrorPassesThrough", func(t *testing.T) {
		t.Parallel()
		e := ErrNoSuchBucket.with("x")
		require.Same(t, e, interpretError(e))
	})

	t.Run("WrappedStorageError", func(t *testing.T) {
		t.Parallel()
		// A wrapped *Error must come out as that *Error: writeError relies on interpretError
		// returning *Error for every input.
		wrapped := fmt.Errorf("context: %w", ErrNoSuchBucket)
		var se *Error
		require.True(t, errors.As(interpretError(wrapped), &se))
		_, isError := interpretError(wrapped).(*Error)
		require.True(t, isError, "interpretError returned %T, not *Error", interpretError(wrapped))
		r := writtenError(t, wrapped)
		require.Equal(t, 400, r.status)
		require.Equal(t, body("404", "NoSuchBucket", "Bucket not found", `"Bucket not found"`), r.body)
	})

	t.Run("UnmappedSQLState", func(t *testing.T) {
		t.Parallel()
		pgErr := &pgconn.PgError{Code: "XX000", Message: "internal error: secret detail"}
		e := interpretError(pgErr).(*Error)
		require.Equal(t, 500, e.Status)
		require.Same(t, pgErr, e.Cause)
		r := writtenError(t, pgErr)
		require.Equal(t, 500, r.status)
		require.Equal(t, body("500", "DatabaseError", "DatabaseError", `"database error, code: XX000"`), r.body)
	})

	t.Run("OtherErrorsAreInternal", func(t *testing.T) {
		t.Parallel()
		cause := errors.New("connection reset: secret detail")
		e := interpretError(cause).(*Error)
		require.Same(t, cause, e.Cause)
		require.True(t, errors.Is(e, ErrInternal))
		require.ErrorIs(t, e, cause)
		r := writtenError(t, cause)
		require.Equal(t, 500, r.status)
		require.Equal(t, body("500", "InternalError", "Internal", `"Internal Server Error"`), r.body)
		// The sentinel is not modified.
		require.Nil(t, ErrInternal.Cause)
	})

	t.Run("ConnectionLostIsUnavailable", func(t *testing.T) {
		t.Parallel()
		for _, cause := range []error{
			&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"},
			&pgconn.PgError{Code: "57P03", Message: "the database system is starting up"},
			&pgconn.PgError{Code: "08006"},
			fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF),
			fmt.Errorf("write: %w", syscall.ECONNRESET),
		} {
			e := interpretError(cause).(*Error)
			require.ErrorIs(t, e, ErrDatabaseUnavailable, "%v", cause)
			require.Same(t, cause, e.Cause)
			r := writtenError(t, cause)
			require.Equal(t, 503, r.status, "%v", cause)
			require.Equal(t, body("503", "SlowDown", "SlowDown", `"The database is not available; retry later"`), r.body)
		}
		require.Nil(t, ErrDatabaseUnavailable.Cause)
	})

	t.Run("IsMatchesCodeAndStatus", func(t *testing.T) {
		t.Parallel()
		e := interpretError(&pgconn.PgError{Code: "ST001"})
		require.ErrorIs(t, e, ErrNoSuchBucket)
		require.NotErrorIs(t, e, ErrAccessDenied)
		// Same code, other logical status: ST013 (409) is not ErrInvalidRequest (400).
		require.NotErrorIs(t, interpretError(&pgconn.PgError{Code: "ST013"}), ErrInvalidRequest)
		require.ErrorIs(t, interpretError(&pgconn.PgError{Code: "ST010"}), ErrInvalidRequest)
	})

	t.Run("ErrorString", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, "NoSuchBucket: Bucket not found", ErrNoSuchBucket.Error())
		e := &Error{Code: "C", Message: "m", Cause: errors.New("why")}
		require.Equal(t, "C: m: why", e.Error())
	})
}
