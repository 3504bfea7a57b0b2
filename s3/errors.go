package s3

import (
	"errors"
	"strconv"

	"github.com/pgstorage/storage/limits"
	"github.com/pgstorage/storage/proxy"
)

// Error is an S3 error: the real status line and the XML error document (S3.md §3.2). The
// catalogue below is the one home of every code and message the S3 door sends.
type Error struct {
	Status  int
	Code    string
	Message string
	Headers [][2]string
	cause   error // logged, never sent
}

func (e *Error) Error() string {
	s := strconv.Itoa(e.Status) + " " + e.Code + ": " + e.Message
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.cause }

// Is matches on status and code, so errors.Is(err, errNoSuchKey) holds for a copy with another
// message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Status == e.Status
}

// with returns a copy of e with another message.
func (e *Error) with(message string) *Error {
	c := *e
	c.Message = message
	return &c
}

func s3err(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

// The catalogue (S3.md §2.12, §3.2), plus the refusals we add where the reference checks
// nothing (clock skew, presigned expiry bounds, payload hashes, Content-MD5).
var (
	errMissingSignature   = s3err(403, "AccessDenied", "Missing signature")
	errSignatureFormat    = s3err(400, "InvalidSignature", "Invalid signature format")
	errCredentials        = s3err(400, "InvalidSignature", "Invalid credentials")
	errExpiration         = s3err(400, "InvalidSignature", "Invalid expiration")
	errExpired            = s3err(400, "ExpiredToken", "The provided token has expired.")
	errInvalidAccessKey   = s3err(403, "AccessDenied", "Invalid Access Key")
	errInvalidRegion      = s3err(403, "AccessDenied", "Invalid Region")
	errInvalidService     = s3err(403, "AccessDenied", "Invalid Service")
	errKeysNotConfigured  = s3err(403, "AccessDenied", "Missing S3 Protocol Access Key ID or Secret Key Environment variables")
	errMissingAnonKey     = s3err(403, "AccessDenied", "Missing tenant anon key")
	errSignatureMismatch  = s3err(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.")
	errSessionMismatch    = s3err(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided, Check your credentials. The session token should be a valid JWT token")
	errTimeTooSkewed      = s3err(403, "RequestTimeTooSkewed", "The difference between the request time and the server's time is too large.")
	errNotYetValid        = s3err(403, "AccessDenied", "Request is not valid yet")
	errExpiresTooLong     = s3err(400, "AuthorizationQueryParametersError", "X-Amz-Expires must be less than a week (in seconds) that is 604800")
	errExpiresMissing     = s3err(400, "AuthorizationQueryParametersError", "X-Amz-Expires must be present")
	errSHA256Mismatch     = s3err(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed.")
	errBadDigest          = s3err(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")
	errInvalidDigest      = s3err(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")
	errNoSuchBucket       = s3err(404, "NoSuchBucket", "Bucket not found")
	errNoSuchKey          = s3err(404, "NoSuchKey", "Object not found")
	errAccessDenied       = s3err(403, "AccessDenied", "Access denied")
	errEntityTooLarge     = s3err(413, "EntityTooLarge", "The object exceeded the maximum allowed size")
	errInvalidRange       = s3err(416, "InvalidRange", "invalid range provided")
	errInvalidBucketName  = s3err(400, "InvalidBucketName", "Bucket name invalid")
	errMalformedXML       = s3err(400, "MalformedXML", "Invalid XML payload")
	errInvalidRequest     = s3err(400, "InvalidRequest", "Invalid request")
	errNotImplemented     = s3err(501, "NotImplemented", "A header or query you provided implies functionality that is not implemented")
	errPreconditionFailed = s3err(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
	errMissingLength      = s3err(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
	errIncompleteBody     = s3err(400, "IncompleteBody", "You did not provide the number of bytes specified by the Content-Length HTTP header.")
	errStalled            = s3err(408, "RequestTimeout", "Your socket connection to the server was not read from or written to within the timeout period.")
	errTooManyUploads     = &Error{Status: 503, Code: "SlowDown", Message: "Too many uploads in progress; retry later",
		Headers: [][2]string{{"Retry-After", strconv.Itoa(int(limits.RetryAfter.Seconds()))}}}
	errInternal = s3err(500, "InternalError", "Internal Server Error")
)

// invalidKey is the refusal of an object key.
func invalidKey(key string) *Error { return s3err(400, "InvalidKey", "Invalid key: "+key) }

// invalidParameter is the refusal of a query parameter's value.
func invalidParameter(name string) *Error {
	return s3err(400, "InvalidParameter", "Invalid Parameter "+name)
}

// fromCall maps what a SQL call (or the blob store) returned to the S3 catalogue: storage
// errors keep their code, message and logical status, which is the S3 status line.
func fromCall(err error) *Error {
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	e := proxy.AsError(err)
	switch {
	case e.Code == "KeyAlreadyExists" || e.Code == "BucketAlreadyExists":
		return &Error{Status: 409, Code: "BucketAlreadyExists", Message: e.Message, cause: err}
	case e.Code == "AccessDenied" && e.Message == "":
		return &Error{Status: 403, Code: "AccessDenied", Message: errAccessDenied.Message, cause: err}
	case e.Status == 500:
		return &Error{Status: 500, Code: errInternal.Code, Message: errInternal.Message, cause: err}
	}
	return &Error{Status: e.Status, Code: e.Code, Message: e.Message, Headers: e.Headers, cause: err}
}

// Refusals of the request's shape.
var (
	// errNoOperation: a route shape whose query and headers name no operation; the reference
	// answers with an empty 404 (writeError sends no body for it).
	errNoOperation = s3err(404, "NotFound", "")
	// errFormData: a multipart/form-data body anywhere but a browser POST upload.
	errFormData = s3err(400, "InvalidRequest", "Multipart form data not supported")
	// errBodyTooLarge: an XML request body above maxXMLBody.
	errBodyTooLarge = s3err(413, "InvalidRequest", "Request body is too large")
	// errMissingCopySource: x-amz-copy-source without a key.
	errMissingCopySource = s3err(400, "MissingParameter", "Missing Required Parameter CopySource")
	// errTooManyKeys: a DeleteObjects of more keys than allowed.
	errTooManyKeys = s3err(400, "InvalidRequest", "Bulk object requests are limited to 1000 objects per request.")
	// errInvalidArgument: a header whose value S3 does not accept.
	errInvalidArgument = s3err(400, "InvalidArgument", "Invalid argument")
)

var errTooManyDownloads = &Error{Status: 503, Code: "SlowDown", Message: "Too many downloads in progress; retry later",
	Headers: [][2]string{{"Retry-After", strconv.Itoa(int(limits.RetryAfter.Seconds()))}}}
