package proxy

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// Responses are rendered by appending to a byte slice in the field order of the reference's
// response schemas; these helpers keep that code short and allocation-light.

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string (escaping as encoding/json does, minus the HTML
// escapes, which the reference does not apply).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			if r == utf8.RuneError {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendJSTime appends t as JavaScript's Date#toISOString renders it (UTC, milliseconds, Z),
// which is what the reference sends for every timestamp; a NULL timestamp is rendered null.
func appendJSTime(b []byte, t *time.Time) []byte {
	if t == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	return append(b, '"')
}

// appendStringOrEmpty renders a NULL text as "" — the reference's serialiser does that for
// every field its schema types as a plain string (e.g. a bucket's owner).
func appendStringOrEmpty(b []byte, s *string) []byte {
	if s == nil {
		return append(b, `""`...)
	}
	return appendJSONString(b, *s)
}

func appendInt64OrNull(b []byte, v *int64) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, *v, 10)
}

func appendStringsOrNull(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// messageBody renders {"message": m}, the success body of several routes.
func messageBody(m string) []byte {
	return append(appendJSONString(append(make([]byte, 0, len(m)+16), `{"message":`...), m), '}')
}

// jsonField is one property of a request body, kept raw until a handler decides how to read
// it; null and absent differ (for bucket updates they mean "clear" and "keep").
type jsonField = json.RawMessage
