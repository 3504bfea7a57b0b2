package proxy

import (
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/pgstorage/storage/render"
)

// Signed URLs: the SQL API mints them (storage.url_sign*, under the caller's RLS); the proxy
// verifies them on the signed routes through package identity (spec §4).

// ErrInvalidSignature: a signed-URL token for another object or another use.
var ErrInvalidSignature = &Error{Status: 400, Code: "InvalidSignature", Message: "Invalid signature"}

// signedParam is param for the signed routes, where the token names the object: the SQL API
// percent-encodes the path of the URLs it signs (storage_internal.url_path), and clients such
// as storage-js encode the whole URL once more (encodeURI), so the path may arrive encoded
// twice. Bucket ids and keys never contain '%', so a '%' left after one decoding is always a
// second layer, and decoding it is unambiguous; the token's url claim must still match.
func signedParam(r *request, name string) string {
	v := param(r.ctx, name)
	if strings.IndexByte(v, '%') >= 0 {
		if d, err := url.PathUnescape(v); err == nil && utf8.ValidString(d) && !strings.ContainsRune(d, 0) {
			return d
		}
	}
	return v
}

// tokenParam reads the required ?token=.
func tokenParam(r *request) (string, error) {
	t, ok := queryValue(r.ctx, "token")
	if !ok {
		return "", schemaError("querystring must have required property 'token'")
	}
	return t, nil
}

// ObjectSign answers POST /object/sign/{bucket}/{key}: {"signedURL"} for an object the
// caller can see.
func (s *Server) ObjectSign(r *request) error {
	f, err := parseBody(r.ctx, false)
	if err != nil {
		return err
	}
	expiresIn := f.expiresIn()
	t := f.transform(s.cfg.Render.Limits)
	if f.err != nil {
		return f.err
	}
	var transformations, format *string
	if s.cfg.Render.Engine != nil && !t.Empty() {
		// A transform makes the URL a /render/image/sign one when it has transformations
		// (format origin alone has none: the plain URL serves the original).
		transformations = nonEmpty(t.Transformations())
		format = nonEmpty(t.Format)
	}
	url, err := s.db.URLSign(ctxOf(r), s.settings(r), param(r.ctx, "bucket"), param(r.ctx, "key"), expiresIn, transformations, format)
	if err != nil {
		return err
	}
	return writeJSON(r.ctx, append(appendJSONString(append(responseBuf(r.ctx), `{"signedURL":`...), url), '}'))
}

// ObjectSignMany answers POST /object/sign/{bucket}: one entry per path, in input order.
func (s *Server) ObjectSignMany(r *request) error {
	f, err := parseBody(r.ctx, false)
	if err != nil {
		return err
	}
	expiresIn := f.expiresIn()
	f.require("paths")
	paths := f.array("paths", 1, maxBatchNames)
	if f.err != nil {
		return f.err
	}
	signed, err := s.db.URLSignMany(ctxOf(r), s.settings(r), param(r.ctx, "bucket"), paths, expiresIn)
	if err != nil {
		return err
	}
	b := []byte{'['}
	for i, u := range signed {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendNullableString(append(b, `{"error":`...), u.Error)
		b = appendJSONString(append(b, `,"path":`...), u.Path)
		b = append(appendNullableString(append(b, `,"signedURL":`...), u.URL), '}')
	}
	return writeJSON(r.ctx, append(b, ']'))
}

// ObjectGetSigned answers GET /object/sign/{bucket}/{key}?token=: the object the token names,
// read as the service (the token is the authorization), with Expires instead of Cache-Control.
func (s *Server) ObjectGetSigned(r *request) error {
	token, err := tokenParam(r)
	if err != nil {
		return err
	}
	bucket, key := signedParam(r, "bucket"), signedParam(r, "key")
	c, err := s.verifyURLToken(token, "download", bucket+"/"+key)
	if err != nil {
		return err
	}
	o, err := s.db.ObjectInfo(ctxOf(r), s.serviceSettings(r), bucket, key, false, true)
	if err != nil {
		return err
	}
	expires := ""
	if c.ExpiresAt != nil {
		expires = c.ExpiresAt.UTC().Format(http.TimeFormat)
	}
	return s.serveBlob(r, &o, expires)
}

// ObjectSignUpload answers POST /object/upload/sign/{bucket}/{key}: an upload URL and its
// token, after the upload's checks as the caller (x-upsert: true allows replacing).
func (s *Server) ObjectSignUpload(r *request) error {
	upsert := string(r.ctx.Request.Header.Peek("x-upsert")) == "true"
	url, token, err := s.db.URLSignUpload(ctxOf(r), s.settings(r), param(r.ctx, "bucket"), param(r.ctx, "key"), upsert, s.cfg.UploadURLExpiry)
	if err != nil {
		return err
	}
	b := appendJSONString([]byte(`{"url":`), url)
	b = appendJSONString(append(b, `,"token":`...), token)
	return writeJSON(r.ctx, append(b, '}'))
}

// ObjectUploadSigned answers PUT /object/upload/sign/{bucket}/{key}?token=: an upload with
// the token's owner and upsert (the request's x-upsert is ignored), written as the token's
// signer, whose policies are applied again to the row as it is now; size and MIME limits apply
// now.
func (s *Server) ObjectUploadSigned(r *request) error {
	token, err := tokenParam(r)
	if err != nil {
		return err
	}
	bucket, key := signedParam(r, "bucket"), signedParam(r, "key")
	c, err := s.verifyURLToken(token, "upload", bucket+"/"+key)
	if err != nil {
		return err
	}
	u, err := parseUpload(r.ctx, false)
	if err != nil {
		return err
	}
	u.bucket, u.name = bucket, key
	u.upsert = c.Upsert != nil && *c.Upsert
	if u.userMetadata == nil {
		u.userMetadata = []byte(`{}`)
	}
	if r.id, err = s.verifier.Uploader(c, token); err != nil {
		return authError(err, true)
	}
	if _, _, err := s.store(r, u, c.Owner); err != nil {
		return err
	}
	return writeJSON(r.ctx, append(appendJSONString([]byte(`{"Key":`), u.bucket+"/"+u.name), '}'))
}

// expiresIn reads the required expiresIn: an integer ≥ 1, written as JSON pleases ("60",
// 60.0, 6e1); its upper bound is the SQL API's. Integer-valued numbers beyond int64 are passed
// on as the largest int64, which the SQL API refuses as out of range.
func (f *fields) expiresIn() int64 {
	f.require("expiresIn")
	raw, ok := f.obj["expiresIn"]
	if !ok {
		return 0
	}
	s := strings.Trim(string(raw), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		v, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || v != math.Trunc(v) {
			f.fail("body/expiresIn must be integer")
			return 0
		}
		n = math.MaxInt64
		if v < math.MaxInt64 {
			n = int64(v)
		}
	}
	if n < 1 {
		f.fail("body/expiresIn must be >= 1")
	}
	return n
}

// transform reads the optional transform object of POST /object/sign with the render routes'
// query schema (spec §4.1); absent or null → no transformation.
func (f *fields) transform(l render.Limits) render.Options {
	raw, ok := f.obj["transform"]
	if !ok || isNull(raw) || f.err != nil {
		return render.Options{}
	}
	var obj bodyObject
	if json.Unmarshal(raw, &obj) != nil || obj == nil {
		f.fail("body/transform must be object")
		return render.Options{}
	}
	o, msg := render.Parse(func(name string) (string, bool) {
		v, ok := obj[name]
		if !ok || isNull(v) {
			return "", false
		}
		var s string
		if json.Unmarshal(v, &s) == nil {
			return s, true
		}
		return string(v), true // numbers (and anything else, which the schema refuses)
	}, l, "body/transform")
	if msg != "" {
		f.fail(msg)
	}
	return o
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
