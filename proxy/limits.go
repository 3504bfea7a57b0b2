package proxy

import (
	"fmt"
	"io"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/limits"
)

// How the REST door answers the shared limits (package limits). Capacity refusals are 503
// with an explicit status line and Retry-After, code SlowDown (S3's "reduce your request
// rate", which the S3 door will answer too); a stalled body is 408 RequestTimeout.

var retryAfter = [][2]string{{fasthttp.HeaderRetryAfter, strconv.Itoa(int(limits.RetryAfter.Seconds()))}}

func busyError(message string) *Error {
	return &Error{Status: 503, Code: "SlowDown", Message: message, HTTPStatus: 503, Headers: retryAfter}
}

var (
	// ErrTooManyConnections: limits.Config.MaxConns connections are open.
	ErrTooManyConnections = busyError("Too many connections; retry later")
	// ErrTooManyConnectionsFromIP: limits.Config.MaxConnsPerIP connections are open from the
	// client's address.
	ErrTooManyConnectionsFromIP = busyError("Too many connections from your address; retry later")
	// ErrTooManyUploads: limits.Config.MaxUploads uploads are in progress.
	ErrTooManyUploads = busyError("Too many uploads in progress; retry later")
	// ErrTooManyDownloads: limits.Config.MaxDownloads downloads are in progress.
	ErrTooManyDownloads = busyError("Too many downloads in progress; retry later")
	// ErrDatabaseBusy: no pooled database connection freed up within the acquire timeout.
	ErrDatabaseBusy = busyError("No database connection is free; retry later")
	// ErrDatabaseUnavailable: PostgreSQL ended or refused the connection (a restart, a
	// failover, an administrator): the client may retry; the pool reconnects.
	ErrDatabaseUnavailable = busyError("The database is not available; retry later")
	// ErrBlobUnavailable: the blob store cannot serve (blob.ErrUnavailable: its S3 service
	// is unreachable or failing, its disk full or read-only). Nothing was stored.
	ErrBlobUnavailable = busyError("The blob store is not available; retry later")
	// ErrRequestTimeout: the client stopped sending its request for limits.Config.ReadIdle
	// (or did not send its headers within the header timeout). Nothing was stored.
	ErrRequestTimeout = &Error{Status: 408, Code: "RequestTimeout", Label: "Request Timeout",
		Message: "The request timed out: the client stopped sending it", HTTPStatus: 408}
)

// transferGate returns the gate an operation's requests take a slot from, and the refusal
// when none is free: uploads hold theirs while the body streams to the blob store, downloads
// until the body is written (see holdSlot). Other operations take none.
func (s *Server) transferGate(op string) (*limits.Gate, *Error) {
	switch op {
	case opObjectUpload, opObjectUploadUpdate, opObjectUploadSigned:
		return s.lim.Uploads, ErrTooManyUploads
	case opObjectGetAuthenticated, opObjectGetPublic, opObjectGetSigned, opRenderPublic, opRenderAuthenticated, opRenderSigned:
		return s.lim.Downloads, ErrTooManyDownloads
	}
	return nil, nil
}

// releaseSlot gives back the request's transfer slot unless a response stream took it over.
func (r *request) releaseSlot() {
	if r.slot != nil {
		r.slot.Release()
		r.slot = nil
	}
}

// holdSlot makes body the response's stream: it counts the bytes sent, and takes over the
// request's transfer slot, which it gives back when the server closes it: a download counts
// until its last byte is written (or its client is dropped), not only while its handler runs.
func (r *request) holdSlot(body io.ReadCloser) io.ReadCloser {
	c := &countingStream{ReadCloser: body, op: recordOf(r.ctx).op}
	if r.slot != nil {
		c.slot, r.slot = r.slot, nil
	}
	return c
}

// refusal renders the whole HTTP response the listener writes to a connection it refuses
// (once per reason, at start: it carries no Date). Browsers may read it when every origin is
// allowed; an origin list needs the request's Origin, which the listener does not read.
func (s *Server) refusal(why limits.Reason) []byte {
	e := ErrTooManyConnections
	if why == limits.TooManyConnsFromIP {
		e = ErrTooManyConnectionsFromIP
	}
	body := errorBody(e)
	b := fmt.Appendf(nil, "HTTP/1.1 %d %s\r\n", e.httpStatus(), fasthttp.StatusMessage(e.httpStatus()))
	for _, h := range e.Headers {
		b = fmt.Appendf(b, "%s: %s\r\n", h[0], h[1])
	}
	if s.corsOrigin("") == "*" {
		b = fmt.Appendf(b, "%s: *\r\n%s: %s\r\n", fasthttp.HeaderAccessControlAllowOrigin,
			fasthttp.HeaderAccessControlExposeHeaders, corsExposeHeaders)
	}
	b = fmt.Appendf(b, "Content-Type: application/json; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", len(body))
	return append(b, body...)
}
