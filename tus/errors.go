package tus

import (
	"errors"
	"strconv"

	"github.com/pgstorage/storage/limits"
	"github.com/pgstorage/storage/proxy"
)

// Error is a TUS error as the reference's tus core writes it: the real status line and a plain
// text body (the protocol's own errors end in a newline, the storage hooks' do not). Auth
// failures on JWT routes are the exception: they answer in the REST format (rest set).
type Error struct {
	Status  int
	Body    string
	Headers [][2]string
	rest    *proxy.Error // answered as the REST routes would (JWT failures)
	cause   error        // logged, never sent
}

func (e *Error) Error() string { return strconv.Itoa(e.Status) + " " + e.Body }

func tusErr(status int, body string) *Error { return &Error{Status: status, Body: body} }

// The error catalogue (TUS.md §14), one home for every body.
var (
	errResumableRequired = tusErr(412, "Tus-Resumable Required\n")
	errConcat            = tusErr(501, "Concatenation extension is not (yet) supported. Disable parallel uploads in the tus client.\n")
	errLengthRequired    = tusErr(400, "Upload-Length or Upload-Defer-Length header required\n")
	errMetadataRequired  = tusErr(400, "Metadata header is required")
	errBucketName        = tusErr(400, "Bucket name invalid")
	errInvalidID         = tusErr(400, "Invalid upload id")
	errNoVersion         = tusErr(400, "Version not provided")
	errMaxSize           = tusErr(413, "Maximum size exceeded\n")
	errSizeExceeded      = tusErr(413, "upload's size exceeded\n")
	errOffsetRequired    = tusErr(403, "Upload-Offset header required\n")
	errContentType       = tusErr(403, "Content-Type header required\n")
	errOffsetConflict    = tusErr(409, "Upload-Offset conflict\n")
	errNotFound          = tusErr(404, "The file for this url was not found\n")
	errGone              = tusErr(410, "The file for this url no longer exists\n")
	errLockTimeout       = tusErr(503, "acquiring lock timeout")
	errNoSignature       = tusErr(400, "Missing x-signature header")
	errWriteFailed       = tusErr(500, "Something went wrong receiving the file\n")
	errPutNotFound       = tusErr(404, "Not found\n")
	errInternal          = tusErr(500, "Something went wrong with that request\n")
	errTooManyUploads    = &Error{Status: 503, Body: "Too many uploads in progress; retry later",
		Headers: [][2]string{{"Retry-After", strconv.Itoa(int(limits.RetryAfter.Seconds()))}}}
	errStalled = tusErr(408, "The request timed out: the client stopped sending it")
)

// invalidKey is the reference's refusal of an object name.
func invalidKey(name string) *Error { return tusErr(400, "Invalid key: "+name) }

// fromCall maps what a SQL call returned to the TUS catalogue: the storage errors the hooks
// raise keep their logical status as the real one and their message as the body.
func fromCall(err error) *Error {
	var te *Error
	if errors.As(err, &te) {
		return te
	}
	e := proxy.AsError(err)
	switch e.Code {
	case "NoSuchKey":
		return errNotFound
	case "UploadOffsetConflict":
		return errOffsetConflict
	case "EntityTooLarge":
		return errMaxSize
	case "NoSuchBucket", "KeyAlreadyExists", "ResourceAlreadyExists", "InvalidBucketName", "InvalidKey",
		"InvalidMimeType", "AccessDenied", "InvalidRequest", "ResourceLocked":
		// ResourceLocked (423, lock_timeout): tus clients retry it, as the reference's
		// lock timeouts.
		return &Error{Status: e.Status, Body: e.Message, cause: err}
	}
	if e.Status == 503 || e.Status == 544 {
		return &Error{Status: 503, Body: e.Message, Headers: e.Headers, cause: err}
	}
	if e.Status >= 400 && e.Status < 500 {
		// Any other refusal of the request (e.g. InvalidParameter, a value the database will
		// not store) is the client's, answered as the REST routes word it.
		return &Error{Status: e.Status, Body: e.Message, cause: err}
	}
	return &Error{Status: 500, Body: errInternal.Body, cause: err}
}
