package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

// Request bodies and query strings are checked the way the reference's JSON schemas check
// them (with its type coercion: "60" is an integer, "true" a boolean), and refused with the
// reference's wording: "body must have required property 'name'", "querystring/limit must be
// >= 1". Unknown properties are ignored.

func schemaError(msg string) error { return ErrInvalidRequest.with(msg) }

// maxJSONBody bounds the JSON bodies the API accepts. The largest legitimate one is a batch
// of maxBatchNames keys of up to 1024 bytes each: about 1 MB as most clients write it, and up
// to three times that when an encoder escapes every non-ASCII character (\u0416 for the two
// bytes of Ж, a surrogate pair for an emoji), as Python's json does by default.
const maxJSONBody = 4 << 20

// maxBatchNames is the most names one batch request may carry (the reference's schemas:
// prefixes of DELETE /object/{bucket}, paths of POST /object/sign/{bucket}).
const maxBatchNames = 1000

// errBodyTooLarge: a JSON body over maxJSONBody.
var errBodyTooLarge = &Error{Status: 413, Code: "EntityTooLarge", Label: "Payload too large", Message: "Request body is too large"}

// bodyObject is a JSON request body, properties kept raw.
type bodyObject map[string]jsonField

// parseBody reads a JSON object body. An empty body is {} unless the request declares JSON
// content, which the reference refuses except on routes that opt in (allowEmpty).
func parseBody(ctx *fasthttp.RequestCtx, allowEmpty bool) (*fields, error) {
	if ctx.Request.Header.ContentLength() > maxJSONBody {
		return nil, errBodyTooLarge // refused unread; writeError drains or closes
	}
	raw, err := readBody(ctx, maxJSONBody+1)
	if err != nil {
		return nil, err
	}
	if len(raw) > maxJSONBody {
		return nil, errBodyTooLarge
	}
	body := bytes.TrimSpace(raw)
	if len(body) == 0 {
		if !allowEmpty && isJSONContent(ctx.Request.Header.ContentType()) {
			return nil, schemaError("Body cannot be empty when content-type is set to 'application/json'")
		}
		return &fields{obj: bodyObject{}}, nil
	}
	if body[0] != '{' {
		if body[0] == '[' || json.Valid(body) {
			return nil, schemaError("body must be object")
		}
		return nil, schemaError("Body is not valid JSON")
	}
	obj := bodyObject{}
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, schemaError("Body is not valid JSON")
	}
	return &fields{obj: obj}, nil
}

// readBody reads at most limit bytes of the request body (the server streams bodies, so there
// is no stream at all for a request without one). A body that could not be read whole is the
// client's mistake (bodyError).
func readBody(ctx *fasthttp.RequestCtx, limit int64) ([]byte, error) {
	stream := RequestBody(ctx)
	if stream == nil {
		return ctx.PostBody(), nil
	}
	var size *int64
	if n := int64(ctx.Request.Header.ContentLength()); n >= 0 {
		size = &n
	}
	return io.ReadAll(io.LimitReader(newClientBody(stream, size), limit))
}

func isJSONContent(ct []byte) bool {
	mt, _, _ := strings.Cut(string(ct), ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

func isNull(raw jsonField) bool { return string(raw) == "null" }

// fields reads properties of a body object, remembering the first schema error so a handler
// reads all its parameters and checks once.
type fields struct {
	obj bodyObject
	err error
}

func (f *fields) fail(msg string) {
	if f.err == nil {
		f.err = schemaError(msg)
	}
}

// has reports whether the property is present (null included).
func (f *fields) has(name string) bool { _, ok := f.obj[name]; return ok }

func (f *fields) require(name string) {
	if !f.has(name) {
		f.fail("body must have required property '" + name + "'")
	}
}

// string reads a string property (numbers and booleans are coerced, as the reference does).
// Absent or null → nil.
func (f *fields) string(name string) *string {
	raw, ok := f.obj[name]
	if !ok || isNull(raw) {
		return nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if !isText(s) {
			f.fail("body/" + name + notTextMessage)
			return nil
		}
		return &s
	}
	switch raw[0] {
	case 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		s := string(raw)
		return &s
	}
	f.fail("body/" + name + " must be string")
	return nil
}

// enum reads a string property that must be one of allowed. Absent or null → nil.
func (f *fields) enum(name string, allowed ...string) *string {
	s := f.string(name)
	if s == nil {
		return nil
	}
	for _, a := range allowed {
		if *s == a {
			return s
		}
	}
	f.fail("body/" + name + " must be equal to one of the allowed values")
	return nil
}

// bool reads a boolean property; "true"/"false" strings are coerced. Absent or null → nil.
func (f *fields) bool(name string) *bool {
	raw, ok := f.obj[name]
	if !ok || isNull(raw) {
		return nil
	}
	switch string(raw) {
	case "true", `"true"`:
		v := true
		return &v
	case "false", `"false"`:
		v := false
		return &v
	}
	f.fail("body/" + name + " must be boolean")
	return nil
}

// strings reads an array of strings. Absent or null → nil.
func (f *fields) strings(name string) []string {
	raw, ok := f.obj[name]
	if !ok || isNull(raw) {
		return nil
	}
	var ss []string
	if err := json.Unmarshal(raw, &ss); err != nil {
		f.fail("body/" + name + " must be array")
		return nil
	}
	if ss == nil {
		ss = []string{}
	}
	for _, s := range ss {
		if !isText(s) {
			f.fail("body/" + name + notTextMessage)
			return nil
		}
	}
	return ss
}

// array reads an array of strings of minItems to maxItems items, checked in the order of the
// reference's schema validator: the type, then the bounds, then the items. The items are
// counted before any is decoded, so an array too long costs no more than its bytes already
// read. Absent → nil (f.require words that); null is not an array.
func (f *fields) array(name string, minItems, maxItems int) []string {
	raw, ok := f.obj[name]
	if !ok {
		return nil
	}
	if raw[0] != '[' {
		f.fail("body/" + name + " must be array")
		return nil
	}
	switch n := countItems(raw); {
	case n > maxItems:
		f.fail("body/" + name + " must NOT have more than " + strconv.Itoa(maxItems) + " items")
		return nil
	case n < minItems:
		f.fail("body/" + name + " must NOT have fewer than " + strconv.Itoa(minItems) + " items")
		return nil
	}
	return f.strings(name)
}

// countItems counts the elements of raw, a valid JSON array, without decoding them: the
// commas outside strings at the array's own depth, plus one unless it is empty.
func countItems(raw []byte) int {
	if len(bytes.TrimSpace(raw[1:len(raw)-1])) == 0 {
		return 0
	}
	n, depth, inString, escaped := 1, 0, false, false
	for _, c := range raw {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
		case c == ']' || c == '}':
			depth--
		case c == ',' && depth == 1:
			n++
		}
	}
	return n
}

// sizeLimit reads a file_size_limit: a non-negative integer or a size string such as "20MB"
// (whose format the SQL API checks). Returned as text for storage.size_parse. Absent or
// null → nil.
func (f *fields) sizeLimit(name string) *string {
	raw, ok := f.obj[name]
	if !ok || isNull(raw) {
		return nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			f.fail("body/" + name + " must be integer")
			return nil
		}
		if !isText(s) {
			f.fail("body/" + name + notTextMessage)
			return nil
		}
		return &s
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	switch {
	case err != nil:
		f.fail("body/" + name + " must be integer")
	case n < 0:
		f.fail("body/" + name + " must be >= 0")
	default:
		s := strconv.FormatInt(n, 10)
		return &s
	}
	return nil
}

// queryInt reads an integer query parameter with a lower bound. Absent → nil.
func queryInt(args *fasthttp.Args, name string, min int) (*int, error) {
	v := args.Peek(name)
	if v == nil {
		return nil, nil
	}
	n, err := strconv.Atoi(string(v))
	if err != nil {
		return nil, schemaError("querystring/" + name + " must be integer")
	}
	if n < min {
		return nil, schemaError("querystring/" + name + " must be >= " + strconv.Itoa(min))
	}
	return &n, nil
}

// queryEnum reads a query parameter that must be one of allowed. Absent → "".
func queryEnum(args *fasthttp.Args, name string, allowed ...string) (string, error) {
	v := args.Peek(name)
	if v == nil {
		return "", nil
	}
	for _, a := range allowed {
		if string(v) == a {
			return a, nil
		}
	}
	return "", schemaError("querystring/" + name + " must be equal to one of the allowed values")
}

// validContentType reports whether a Content-Type header parses as type/subtype[; params],
// the check the reference's framework makes before any route runs.
func validContentType(ct []byte) bool {
	if !isText(string(ct)) { // it becomes an object's mimetype, text in the database
		return false
	}
	mt, _, _ := strings.Cut(string(ct), ";")
	typ, sub, ok := strings.Cut(strings.Trim(mt, " "), "/")
	if !ok || !isToken(typ) || !isToken(sub) {
		return false
	}
	_, _, err := mime.ParseMediaType(string(ct))
	return err == nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+.^_`|~-", rune(c)) {
			return false
		}
	}
	return true
}
