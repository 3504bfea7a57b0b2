package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"unicode/utf8"
)

// Client input that PostgreSQL cannot take must be refused before it gets there: a refusal by
// the database would be an unexpected error (500) and, for an upload, come after the bytes.
// PostgreSQL text refuses invalid UTF-8 and the NUL character (SQLSTATE 22021); jsonb also
// refuses the escape \u0000 (22P05). Every client string that reaches the database is checked
// here, where it is parsed; the SQLSTATE table maps both codes to the same refusal, for any
// path this misses.

// notTextMessage ends the message of every refusal of such input.
const notTextMessage = " must be UTF-8 text without NUL characters"

// isText reports whether PostgreSQL can store s as text.
func isText(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// isJSONBText reports whether PostgreSQL can store the JSON document b as jsonb: valid UTF-8,
// no NUL byte, no \u0000 escape (22P05), and no UTF-16 surrogate escape outside a pair (a
// high one followed by a low one), which jsonb refuses as invalid input (22P02). Backslashes
// occur only inside strings, where each starts an escape of two characters or, for \u, six;
// so an escaped backslash followed by "u0000" is text, not the escape.
func isJSONBText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case 0:
			return false
		case '\\':
			u, ok := unicodeEscape(b, i)
			switch {
			case !ok: // not a \u escape (or not JSON, which the parsers refuse)
			case u == 0 || u >= 0xDC00 && u <= 0xDFFF:
				return false
			case u >= 0xD800 && u <= 0xDBFF:
				if low, ok := unicodeEscape(b, i+6); !ok || low < 0xDC00 || low > 0xDFFF {
					return false
				}
				i += 6 // the pair's high half; the loop steps over the low one
			}
			if ok {
				i += 4 // the hex digits
			}
			i++ // the escaped character
		}
	}
	return true
}

// unicodeEscape reads the \uXXXX escape at b[i:], if there is one.
func unicodeEscape(b []byte, i int) (rune, bool) {
	if i+5 >= len(b) || b[i] != '\\' || b[i+1] != 'u' {
		return 0, false
	}
	var u rune
	for _, c := range b[i+2 : i+6] {
		switch {
		case '0' <= c && c <= '9':
			u = u<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			u = u<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			u = u<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return u, true
}

// notText is the schema-style refusal of a body property or query parameter that is not text
// ("body/name must be UTF-8 text without NUL characters").
func notText(where string) error { return schemaError(where + notTextMessage) }

// errNotText is the refusal of an upload's header or form field that is not text.
func errNotText(what string) *Error {
	return &Error{Status: 400, Code: "InvalidRequest", Message: what + notTextMessage}
}

// ErrMetadataNotText: user metadata (x-metadata, a metadata form field) that jsonb refuses.
var ErrMetadataNotText = errNotText("metadata")

// ErrURLNotText: a request URL (path or query) with bytes that are not UTF-8. The percent-
// encoded forms are not concerned: route parameters and query values are checked once decoded.
var ErrURLNotText = ErrInvalidRequest.with("url" + notTextMessage)

// queryText reads a query parameter that is passed on as text. Absent → "".
func queryText(args interface{ Peek(string) []byte }, name string) (string, error) {
	v := string(args.Peek(name))
	if !isText(v) {
		return "", notText("querystring/" + name)
	}
	return v, nil
}

// validate refuses the upload's fields that PostgreSQL could not store, before any byte of the
// object is read.
func (u *upload) validate() error {
	switch {
	case u.userMetadata != nil && !isJSONBText(u.userMetadata):
		return ErrMetadataNotText
	case !isText(u.mimetype):
		return errNotText("contentType")
	case !isText(u.cacheControl):
		return errNotText("cacheControl")
	case u.xRobotsTag != nil && !isText(*u.xRobotsTag):
		return errNotText("x-robots-tag")
	}
	return nil
}

// Reading a request body fails when the client sends less than it announced (Content-Length,
// chunked encoding) or breaks its framing, or when it stops sending for longer than the
// server's read timeout. Either is the client's doing: a 400, or a 408 for the timeout, never
// a 500, whatever was reading the body (the JSON parser, the multipart reader, a blob store's
// Put).
var (
	// ErrBodyIncomplete: the body ended before its end, or its framing was broken.
	ErrBodyIncomplete = &Error{Status: 400, Code: "InvalidRequest", Message: "Request body is incomplete or malformed"}
)

// bodyError is the refusal for a failed read of the request body; cause is kept for the log.
func bodyError(cause error) *Error {
	e := *ErrBodyIncomplete
	if isTimeout(cause) {
		e = *ErrRequestTimeout
	}
	e.Cause = cause
	return &e
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// clientBody reads a request body (or a part of it) and marks its errors as the client's
// (bodyError), so that they keep their meaning through whatever reads the body and wraps its
// errors. With the length the client announced, a body that ends short of it fails too: the
// server's stream of a body with a Content-Length ends at the connection's end without an
// error.
type clientBody struct {
	r    io.Reader
	left int64 // announced bytes not read yet; -1: no length announced
}

// newClientBody reads r, whose length is *size when size is not nil.
func newClientBody(r io.Reader, size *int64) *clientBody {
	b := &clientBody{r: r, left: -1}
	if size != nil {
		b.left = *size
	}
	return b
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if b.left >= 0 {
		b.left -= int64(n)
		if err == io.EOF && b.left > 0 {
			err = io.ErrUnexpectedEOF
		}
	}
	if err != nil && err != io.EOF {
		var e *Error
		if !errors.As(err, &e) {
			err = bodyError(err)
		}
	}
	return n, err
}
