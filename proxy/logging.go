package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"

	"github.com/valyala/fasthttp"
)

// No credential reaches the log: not a bearer token or apikey, not a signed URL's token, not a
// signature. The server's own lines name the path without its query string; fasthttp's lines
// (connection errors, requests it could not parse) quote request lines and headers, so the
// server runs it with SecureErrorLogMessage, which leaves the request's bytes out of most of
// them, and passes every one of its lines through redact for those that still quote a request
// URI or a header.

// secretPatterns match credentials in a log line; each match is replaced by its first group
// (the name, kept so a reader sees what was there) followed by [REDACTED].
var secretPatterns = []*regexp.Regexp{
	// A JWT anywhere: three base64url segments, the first a JSON object ("eyJ" is `{"`).
	regexp.MustCompile(`()eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*`),
	// Query parameters that carry credentials (signed URLs; access_token, X-Amz-Signature…
	// end in one of these names).
	regexp.MustCompile(`(?i)((?:token|apikey|api_key|signature|x-amz-credential)=)[^&\s"'\\]*`),
	// Headers that carry credentials, raw or as fasthttp quotes them ("Name: value\r\n"):
	// the value ends at the line's end or the quoted form's backslash or quote.
	regexp.MustCompile(`(?i)((?:authorization|apikey|cookie|x-amz-security-token)\s*:\s*)[^\r\n"'\\]*`),
	// A header value fasthttp refused, quoted without its name, which may be a credential.
	regexp.MustCompile(`(invalid (?:header|trailer) value )"(?:[^"\\]|\\.)*"`),
}

// redact removes credentials from a log line.
func redact(s string) string {
	for _, re := range secretPatterns {
		s = re.ReplaceAllString(s, "${1}[REDACTED]")
	}
	return s
}

// httpLogger is fasthttp's logger: its lines, redacted, into the server's log. Failures to
// serve one connection are the client's (it went away, or sent what is not HTTP, which
// readFailed has logged already) and are logged at debug; the rest (accept errors, connection
// limits) are the operator's, at warn.
type httpLogger struct{ log *slog.Logger }

func (l httpLogger) Printf(format string, args ...any) {
	level := slog.LevelWarn
	if strings.HasPrefix(format, "error when serving connection") {
		level = slog.LevelDebug
	}
	l.log.Log(context.Background(), level, redact(fmt.Sprintf(format, args...)))
}

// Refusals of requests that could not be read as HTTP (fasthttp.Server.ErrorHandler).
var (
	// ErrBadHTTPRequest: a request line or header that is not HTTP.
	ErrBadHTTPRequest = &Error{Status: 400, Code: "InvalidRequest", Message: "The request could not be parsed as HTTP"}
	// ErrHeaderTooLarge: the request line and headers do not fit the server's read buffer.
	ErrHeaderTooLarge = &Error{Status: 431, Code: "InvalidRequest", Label: "Request Header Fields Too Large",
		Message: "The request headers are too large", HTTPStatus: 431}
)

// readFailed answers a request fasthttp could not read (its headers, or the part of the body it
// reads before the handler runs) in the error format of every other refusal, instead of
// fasthttp's plain-text one. The connection is closed after it.
func (s *Server) readFailed(ctx *fasthttp.RequestCtx, err error) {
	var e *Error
	var small *fasthttp.ErrSmallBuffer
	var chunk fasthttp.ErrBrokenChunk
	switch {
	case errors.As(err, &small):
		e = ErrHeaderTooLarge
	case isTimeout(err):
		e = ErrRequestTimeout
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &chunk):
		e = ErrBodyIncomplete
	default:
		e = ErrBadHTTPRequest
	}
	// No handler ran, so observe did not either: this is the request's line and count.
	s.metrics.Op(opUnreadable).Done(e.httpStatus(), 0, 0, 0)
	s.log.Info("request", "request_id", requestID(nil), "operation", opUnreadable, "status", e.httpStatus(),
		"remote", ctx.RemoteIP().String(), "error_code", e.Code, "error", redact(err.Error()))
	ctx.Response.Reset()
	ctx.SetStatusCode(e.httpStatus())
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetBody(errorBody(e))
}
