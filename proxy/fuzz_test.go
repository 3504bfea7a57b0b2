package proxy

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/render"
)

// Fuzz targets for everything the REST door parses from clients before the database sees it
// (`make fuzz`; the seeds also run as plain tests). Each asserts properties, not only the
// absence of a panic: accepted ranges lie inside the object, decoders accept only what the
// database can store, refusals are the client's (4xx), formats round-trip.

// requireClientError asserts err is a refusal of the client's input in the REST error format:
// a *Error with a 4xx status, never an internal error.
func requireClientError(t *testing.T, err error) {
	t.Helper()
	var e *Error
	require.True(t, errors.As(err, &e), "error %T %v is not an *Error", err, err)
	require.True(t, e.Status >= 400 && e.Status < 500, "status %d for %v", e.Status, err)
}

// FuzzParseRange: a satisfiable Range is a non-empty part inside the object, formatting it
// back gives the same range, and only a bytes range can be unsatisfiable (anything else is
// the whole object).
func FuzzParseRange(f *testing.F) {
	for _, h := range []string{"", "bytes=0-0", "bytes=0-", "bytes=-1", "bytes=-0", "bytes=5-2",
		"bytes=0-99999999999", "bytes= 1-2 ", "bytes=1-2,4-5", "items=0-1", "bytes=-", "bytes=a-b",
		"bytes=9223372036854775807-", "bytes=-9223372036854775808", "bytes=+1-+2", "bytes=0x1-2"} {
		f.Add(h, int64(10))
		f.Add(h, int64(0))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -(size + 1) // object sizes are never negative
		}
		offset, length, partial, ok := parseRange([]byte(h), size)
		switch {
		case !ok:
			require.True(t, strings.HasPrefix(h, "bytes="), "a %q header made the object unsatisfiable", h)
			require.Zero(t, offset+length)
		case !partial:
			require.Equal(t, int64(0), offset)
			require.Equal(t, size, length)
		default:
			require.GreaterOrEqual(t, offset, int64(0))
			require.GreaterOrEqual(t, length, int64(1))
			require.LessOrEqual(t, offset, size-length, "range [%d,+%d) outside %d bytes", offset, length, size)
			again := "bytes=" + strconv.FormatInt(offset, 10) + "-" + strconv.FormatInt(offset+length-1, 10)
			o2, l2, p2, ok2 := parseRange([]byte(again), size)
			require.Equal(t, []any{offset, length, true, true}, []any{o2, l2, p2, ok2}, again)
		}
	})
}

// FuzzPrecondition: the conditional headers give 0, 304 or 412 only; a list holding the
// object's ETag (or *) never fails If-Match, and makes If-None-Match a 304; unparsable dates
// are ignored.
func FuzzPrecondition(f *testing.F) {
	const etag = `"0123456789abcdef0123456789abcdef"`
	lm := "2026-08-01T12:00:00.123Z"
	f.Add("", "", "", "", etag, lm)
	f.Add(etag, "", "", "", etag, lm)
	f.Add("*", "*", "", "", etag, lm)
	f.Add(`W/`+etag, `W/`+etag, "", "", etag, lm)
	f.Add(`"x", `+etag, `"y",`+etag, "", "", etag, lm)
	f.Add("", "", "Sat, 01 Aug 2026 12:00:00 GMT", "Sat, 01 Aug 2026 11:59:59 GMT", etag, lm)
	f.Add("", "", "Sat, 01 Aug 2026 11:59:59 GMT", "Sat, 01 Aug 2026 12:00:00 GMT", etag, lm)
	f.Add("", "", "Saturday, 01-Aug-26 12:00:00 GMT", "Sat Aug  1 12:00:00 2026", etag, lm)
	f.Add("", "", "garbage", "garbage", `W/"weak"`, "not a time")
	f.Fuzz(func(t *testing.T, ifMatch, ifNoneMatch, ifModifiedSince, ifUnmodifiedSince, etag, lastModified string) {
		var ctx fasthttp.RequestCtx
		h := &ctx.Request.Header
		for name, v := range map[string]string{fasthttp.HeaderIfMatch: ifMatch, fasthttp.HeaderIfNoneMatch: ifNoneMatch,
			fasthttp.HeaderIfModifiedSince: ifModifiedSince, fasthttp.HeaderIfUnmodifiedSince: ifUnmodifiedSince} {
			if v != "" {
				h.Set(name, v)
			}
		}
		im, inm := h.Peek(fasthttp.HeaderIfMatch), h.Peek(fasthttp.HeaderIfNoneMatch) // as fasthttp keeps them
		status := Precondition(&ctx, etag, lastModified)
		require.Contains(t, []int{0, 304, 412}, status)
		holds := func(list []byte) bool {
			for _, tag := range strings.Split(string(list), ",") {
				if tag = strings.TrimSpace(tag); tag == "*" || tag == etag && !strings.HasPrefix(etag, "W/") {
					return true
				}
			}
			return false
		}
		if im != nil && holds(im) {
			require.NotEqual(t, 412, status, "If-Match %q holds %q", im, etag)
		}
		if im == nil && inm != nil && holds(inm) {
			require.NotEqual(t, 0, status, "If-None-Match %q holds %q", inm, etag)
		}
		if im == nil && inm == nil {
			_, errIMS := fasthttp.ParseHTTPDate([]byte(ifModifiedSince))
			_, errIUS := fasthttp.ParseHTTPDate([]byte(ifUnmodifiedSince))
			if errIMS != nil && errIUS != nil {
				require.Equal(t, 0, status, "unparsable dates are ignored")
			}
		}
		// A strong match is a weak match: If-None-Match never lets through what If-Match holds.
		if im != nil && etagListMatches(string(im), etag, true) {
			require.True(t, etagListMatches(string(im), etag, false))
		}
	})
}

// jsonbStorable is the reference for isJSONBText on valid JSON: PostgreSQL stores the
// document as jsonb unless a string (key or value) holds NUL, its text is not UTF-8, or a
// \u escape is a UTF-16 surrogate outside a high-low pair (checked on the escapes found by
// a regular expression: an odd run of backslashes starts one).
func jsonbStorable(t *testing.T, doc []byte) bool {
	if !utf8.Valid(doc) || bytes.IndexByte(doc, 0) >= 0 {
		return false
	}
	escapes := unicodeEscapes.FindAllSubmatchIndex(doc, -1)
	for i := 0; i < len(escapes); i++ {
		m := escapes[i]
		if (m[3]-m[2])%2 == 0 {
			continue // an escaped backslash, then the text uXXXX
		}
		u, _ := strconv.ParseUint(string(doc[m[4]:m[5]]), 16, 16)
		switch {
		case u >= 0xDC00 && u <= 0xDFFF:
			return false
		case u >= 0xD800 && u <= 0xDBFF:
			if i+1 == len(escapes) {
				return false
			}
			n := escapes[i+1]
			low, _ := strconv.ParseUint(string(doc[n[4]:n[5]]), 16, 16)
			if n[0] != m[1] || n[3]-n[2] != 1 || low < 0xDC00 || low > 0xDFFF {
				return false
			}
			i++
		}
	}
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return true
		}
		require.NoError(t, err)
		if s, ok := tok.(string); ok && strings.IndexByte(s, 0) >= 0 {
			return false
		}
	}
}

var unicodeEscapes = regexp.MustCompile(`(\\+)u([0-9a-fA-F]{4})`)

// FuzzIsJSONBText: on valid JSON, isJSONBText agrees with a decoding of every string.
func FuzzIsJSONBText(f *testing.F) {
	for _, s := range []string{`{"a":"b"}`, `{"a":"\u0000"}`, `{"\u0000":1}`, `{"a":"\\u0000"}`,
		`{"a":"x\\\u0000"}`, `["\"\u0000"]`, "{\"a\":\"\xff\"}", `{"a":"\ud800"}`, `"\u00000"`, `1`,
		`"\ud83d\ude00"`, `"\uD83D\uDE00"`, `"\ude00\ud83d"`, `"\ud83d\\ude00"`, `"\\\ud83d"`, `"\ud83dx"`, `"\ud83d\u0041"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		got := isJSONBText(doc)
		if json.Valid(doc) {
			require.Equal(t, jsonbStorable(t, doc), got, "%q", doc)
		}
	})
}

// bodyNames are the properties the JSON routes read (bucket create/update, list v1/v2,
// move/copy, sign, sign-many, delete-many).
var bodyNames = []string{"name", "id", "public", "file_size_limit", "allowed_mime_types", "type",
	"prefix", "search", "limit", "offset", "sortBy", "with_delimiter", "cursor", "bucketId",
	"sourceKey", "destinationKey", "destinationBucket", "copyMetadata", "metadata", "expiresIn",
	"paths", "prefixes", "transform"}

// FuzzJSONBody: a JSON request body is refused with a 4xx or read into an object; each
// property reader then either refuses with the schema's wording or returns what the routes
// pass to the database: text PostgreSQL can store, integers within their bounds, arrays whose
// counted length is their decoded length, transforms within the render limits.
func FuzzJSONBody(f *testing.F) {
	for _, s := range []string{
		``, ` `, `{}`, `[]`, `null`, `"x"`, `{"name":"b","public":"true","file_size_limit":"20MB","allowed_mime_types":["image/*"],"type":"STANDARD"}`,
		`{"name":1,"id":true,"public":1,"file_size_limit":-1,"allowed_mime_types":"x","type":"x"}`,
		`{"file_size_limit":null,"allowed_mime_types":null}`, `{"file_size_limit":1e3}`,
		`{"prefix":"f/","limit":"10","offset":0,"sortBy":{"column":"name","order":"desc"},"search":"a"}`,
		`{"prefix":"","limit":0,"sortBy":{"column":"size"}}`, `{"sortBy":[]}`, `{"sortBy":{"order":1}}`,
		`{"with_delimiter":true,"cursor":"bDphCm86YXNjCmM6bmFtZQ=="}`,
		`{"bucketId":"b","sourceKey":"a","destinationKey":"c","destinationBucket":null,"copyMetadata":"false","metadata":{"k":"v"}}`,
		`{"metadata":{"k":"\u0000"}}`, `{"metadata":[1]}`,
		`{"expiresIn":60}`, `{"expiresIn":"60"}`, `{"expiresIn":6e1}`, `{"expiresIn":60.5}`, `{"expiresIn":1e400}`, `{"expiresIn":-1}`,
		`{"expiresIn":60,"transform":{"width":100,"height":"50","resize":"contain","format":"webp","quality":80,"gravity":"fp","x_offset":0.5,"y_offset":"1"}}`,
		`{"transform":{"width":-1}}`, `{"transform":null}`, `{"transform":[]}`,
		`{"paths":["a","b,c","d]"]}`, `{"paths":[]}`, `{"prefixes":["a",1]}`, `{"prefixes":["\u0000"]}`, `{"prefixes":[["a","b"]]}`,
		"{\"name\":\"\xff\"}", `{"name":"a\u0000"}`, `{"name":"a"`, `{"a":1}x`,
	} {
		f.Add(s, "application/json")
	}
	f.Add("", "text/plain")
	f.Fuzz(func(t *testing.T, body, contentType string) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetContentType(contentType)
		ctx.Request.SetBodyString(body)
		for _, allowEmpty := range []bool{false, true} {
			parsed, err := parseBody(&ctx, allowEmpty)
			if err != nil {
				requireClientError(t, err)
				continue
			}
			for _, name := range bodyNames {
				checkReaders(t, parsed.obj, name)
			}
		}
	})
}

// checkReaders runs every property reader over name, each on a fresh copy of the body (a
// reader's refusal is sticky), and checks what it accepted.
func checkReaders(t *testing.T, obj bodyObject, name string) {
	fresh := func() *fields { return &fields{obj: obj} }
	refused := func(f *fields) bool {
		if f.err == nil {
			return false
		}
		requireClientError(t, f.err)
		require.True(t, strings.HasPrefix(f.err.(*Error).Message, "body"), f.err.Error())
		return true
	}
	raw, present := obj[name]

	f := fresh()
	if s := f.string(name); !refused(f) && s != nil {
		require.True(t, isText(*s), "string %q", *s)
	}
	f = fresh()
	if b := f.bool(name); !refused(f) && b != nil {
		require.Contains(t, []string{"true", "false", `"true"`, `"false"`}, string(raw))
	}
	f = fresh()
	if ss := f.strings(name); !refused(f) {
		for _, s := range ss {
			require.True(t, isText(s), "strings item %q", s)
		}
	}
	f = fresh()
	if ss := f.array(name, 1, maxBatchNames); !refused(f) && present {
		require.GreaterOrEqual(t, len(ss), 1)
		require.LessOrEqual(t, len(ss), maxBatchNames)
		require.Equal(t, countItems(raw), len(ss), "%s", raw)
	}
	f = fresh()
	if s := f.sizeLimit(name); !refused(f) && s != nil {
		require.True(t, isText(*s), "size %q", *s)
		if raw[0] != '"' {
			n, err := strconv.ParseInt(*s, 10, 64)
			require.NoError(t, err)
			require.GreaterOrEqual(t, n, int64(0))
		}
	}
	f = fresh()
	if n := f.int(name, 1, 100); !refused(f) {
		require.GreaterOrEqual(t, n, 1)
	}
	f = fresh()
	if e := f.enum(name, "STANDARD", "ANALYTICS"); !refused(f) && e != nil {
		require.Contains(t, []string{"STANDARD", "ANALYTICS"}, *e)
	}
	f = fresh()
	column, order := f.sortBy("name", "updated_at", "created_at")
	if !refused(f) {
		require.Contains(t, []string{"name", "updated_at", "created_at"}, column)
		require.Contains(t, []string{"asc", "desc"}, order)
	}
	f = fresh()
	if n := f.expiresIn(); !refused(f) {
		require.GreaterOrEqual(t, n, int64(1))
	}
	f = fresh()
	if o := f.transform(render.DefaultLimits); !refused(f) {
		requireRenderOptions(t, o, render.DefaultLimits)
	}
	f = fresh()
	if p := f.moveParams(); !refused(f) {
		for _, s := range []string{p.Bucket, p.SourceKey, p.DestinationKey, deref(p.DestinationBucket)} {
			require.True(t, isText(s), "%q", s)
		}
	}
}

// requireRenderOptions checks an accepted transformation against the render routes' schema.
func requireRenderOptions(t *testing.T, o render.Options, l render.Limits) {
	t.Helper()
	for _, v := range []int{o.Width, o.Height} {
		require.True(t, v == 0 || v >= l.MinSize && v <= l.MaxSize, "size %d", v)
	}
	require.True(t, o.Quality == 0 || o.Quality >= 20 && o.Quality <= 100, "quality %d", o.Quality)
	require.Contains(t, []string{"", "cover", "contain", "fill"}, o.Resize)
	require.Contains(t, []string{"", "origin", "avif", "webp"}, o.Format)
	require.True(t, o.CheckFocalPoint(), "%+v", o)
}

// FuzzListCursor: a list-v2 cursor is refused as InvalidParameter or applied with a name the
// database can store, a known order and column, and a time for time sorts; and the cursor
// this server would issue for that position decodes to the same position.
func FuzzListCursor(f *testing.F) {
	f.Add(base64.StdEncoding.EncodeToString([]byte("l:a/b\no:asc\nc:name")))
	f.Add(base64.StdEncoding.EncodeToString([]byte("l:a\no:desc\nc:updated_at\na:2026-08-01T12:00:00.123Z")))
	f.Add(base64.StdEncoding.EncodeToString([]byte("l:a\no:desc\nc:created_at")))
	f.Add(base64.StdEncoding.EncodeToString([]byte("l:\no:asc\nc:name")))
	f.Add(base64.StdEncoding.EncodeToString([]byte("l:a\x00\no:asc\nc:name")))
	f.Add(base64.StdEncoding.EncodeToString([]byte("l:a:b\nx:y\no:asc\nc:name\n")))
	f.Add("not base64")
	f.Fuzz(func(t *testing.T, cursor string) {
		var p listV2Params
		if err := decodeCursor(cursor, &p); err != nil {
			require.Equal(t, ErrInvalidCursor, err)
			return
		}
		require.NotNil(t, p.StartAfter)
		require.True(t, isText(*p.StartAfter), "%q", *p.StartAfter)
		require.Contains(t, []string{"asc", "desc"}, p.SortOrder)
		require.Contains(t, []string{"name", "updated_at", "created_at"}, p.SortColumn)
		require.Equal(t, p.SortColumn != "name", p.StartAfterTime != nil)
		if strings.Contains(*p.StartAfter, "\n") {
			return // names with a line break are not valid keys; the SQL API refuses them
		}
		last := cursorEntry{name: []byte(*p.StartAfter), atNull: p.StartAfterTime == nil}
		if p.StartAfterTime != nil {
			last.at = rawTimeOf(*p.StartAfterTime)
		}
		var again listV2Params
		require.NoError(t, decodeCursor(encodeCursor(&last, p), &again))
		require.Equal(t, *p.StartAfter, *again.StartAfter)
		require.Equal(t, p.SortOrder, again.SortOrder)
		require.Equal(t, p.SortColumn, again.SortColumn)
		if p.StartAfterTime != nil {
			// The cursor keeps milliseconds, the precision of the reference's timestamps.
			require.True(t, p.StartAfterTime.Truncate(time.Millisecond).Equal(*again.StartAfterTime),
				"%v != %v", p.StartAfterTime, again.StartAfterTime)
		}
	})
}

// FuzzUpload: an upload's headers, or its multipart/form-data fields, are refused with a 4xx
// or read into what the upload stores: user metadata that is JSON, and (once validated, as
// store does first) text the database can store; the body then reads to its end or fails as
// the client's error, as the blob store's reads see it.
func FuzzUpload(f *testing.F) {
	meta := base64.StdEncoding.EncodeToString([]byte(`{"a":"b"}`))
	form := func(boundary string, parts ...string) string {
		return "--" + boundary + "\r\n" + strings.Join(parts, "\r\n--"+boundary+"\r\n") + "\r\n--" + boundary + "--\r\n"
	}
	f.Add("text/plain", "max-age=60", meta, "noindex", "hello")
	f.Add("", "", "", "", "")
	f.Add("image/png; charset=\xff", "\x00", base64.StdEncoding.EncodeToString([]byte(`{"a":"\u0000"}`)), "googlebot: noindex, max-snippet: 5", "x")
	f.Add("", "", "%%%", "unavailable_after:, none", "")
	f.Add("multipart/form-data; boundary=XX", "", "", "", form("XX",
		"Content-Disposition: form-data; name=\"cacheControl\"\r\n\r\n3600",
		"Content-Disposition: form-data; name=\"contentType\"\r\n\r\nimage/png",
		"Content-Disposition: form-data; name=\"metadata\"\r\n\r\n{\"k\":1}",
		"Content-Disposition: form-data; name=\"\"; filename=\"a.png\"\r\nContent-Type: image/jpeg\r\n\r\nPNGDATA"))
	f.Add("multipart/form-data; boundary=XX", "", "", "", form("XX",
		"Content-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nDATA"))
	f.Add("multipart/form-data; boundary=XX", "", "", "", form("XX",
		"Content-Disposition: form-data; name=\"metadata\"\r\n\r\n{\"k\":\"\\u0000\"}",
		"Content-Disposition: form-data; name=\"contentType\"\r\n\r\n\x00"))
	f.Add("multipart/form-data; boundary=XX", "", "", "", "--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end")
	f.Add("multipart/form-data; boundary=XX", "", "", "", "--XX--\r\n")
	f.Add("multipart/form-data", "", "", "", "")
	f.Fuzz(func(t *testing.T, contentType, cacheControl, xMetadata, robots, body string) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(fasthttp.MethodPost)
		h := &ctx.Request.Header
		h.SetContentType(contentType)
		for name, v := range map[string]string{fasthttp.HeaderCacheControl: cacheControl, "x-metadata": xMetadata, "x-robots-tag": robots} {
			if v != "" {
				h.Set(name, v)
			}
		}
		ctx.Request.SetBodyString(body)
		u, err := parseUpload(&ctx, false)
		if err != nil {
			requireClientError(t, err)
			return
		}
		if u.userMetadata != nil {
			require.True(t, json.Valid(u.userMetadata), "%q", u.userMetadata)
		}
		require.NotEmpty(t, u.mimetype)
		require.NotEmpty(t, u.cacheControl)
		if u.xRobotsTag != nil {
			require.True(t, validRobotsTag(*u.xRobotsTag))
		}
		if err := u.validate(); err != nil {
			requireClientError(t, err)
			return
		}
		require.True(t, isText(u.mimetype) && isText(u.cacheControl), "%q %q", u.mimetype, u.cacheControl)
		if u.userMetadata != nil {
			require.True(t, jsonbStorable(t, u.userMetadata), "%q", u.userMetadata)
		}
		if _, err := io.Copy(io.Discard, newClientBody(u.body, u.contentLength)); err != nil {
			requireClientError(t, err)
		}
	})
}

// FuzzContentType: a Content-Type the server lets through parses as a media type and is text
// the database can store as an object's mimetype.
func FuzzContentType(f *testing.F) {
	for _, s := range []string{"text/plain", "text/plain; charset=utf-8", "thisisnotarealmimetype",
		"text/plain\t", "a/b; c", "a/b;c=\"\\\"\"", "image/png; x=\xff", "multipart/form-data; boundary=x", "a/b;", " a / b "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		if !validContentType([]byte(ct)) {
			return
		}
		_, _, err := mime.ParseMediaType(ct)
		require.NoError(t, err)
		require.True(t, isText(ct))
		require.True(t, isJSONContent([]byte(ct)) == strings.EqualFold(strings.TrimSpace(strings.Split(ct, ";")[0]), "application/json"))
	})
}

// FuzzParam: a route parameter reaches the database as text: decoded once when its decoding
// is text, else as sent, with its '%' for the SQL API to refuse as an invalid name.
func FuzzParam(f *testing.F) {
	for _, s := range []string{"a/b.png", "a%20b", "%", "%zz", "%00", "%ff", "%25ff", "%2F", "\xff", "a%2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var ctx fasthttp.RequestCtx
		ctx.SetUserValue("key", raw)
		v := param(&ctx, "key")
		if v != raw || !strings.Contains(raw, "%") {
			require.True(t, isText(v) || v == raw, "%q → %q", raw, v)
		}
		if !isText(v) {
			require.Equal(t, raw, v)
		}
	})
}

// rawTimeOf is the binary timestamp (microseconds since 2000-01-01) a listing row carries,
// which encodeCursor reads back with rawTime.
func rawTimeOf(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t.UnixMicro()-pgEpochMicros))
}
