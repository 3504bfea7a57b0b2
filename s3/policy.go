package s3

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/url"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/proxy"
)

// Browser POST uploads (S3.md §2.5, §4.8): an HTML form posted to /s3/{bucket} carries its own
// signature, over a policy (base64 JSON: an expiration and conditions every other field must
// meet), in its fields; the file is its last part. Unlike the reference, content-length-range
// is enforced, ${filename} in the key is replaced by the file's name, the bucket's MIME rules
// apply, and success_action_status / success_action_redirect answer as AWS does.

const (
	maxFormFields     = 20      // fields before the file, as the reference reads them
	maxFormFieldBytes = 1 << 20 // all their names and values together
)

var (
	errPolicyFormat        = s3err(400, "InvalidSignature", "Invalid POST policy")
	errPolicyNoExpiration  = s3err(400, "InvalidSignature", "Missing policy expiration")
	errPolicyExpiration    = s3err(400, "InvalidSignature", "Invalid policy expiration")
	errPolicyConditions    = s3err(400, "InvalidSignature", "Invalid policy conditions")
	errPolicyCondition     = s3err(400, "InvalidSignature", "Invalid policy condition")
	errPolicyUnsupported   = s3err(400, "InvalidSignature", "Unsupported policy condition")
	errDuplicateFormField  = s3err(400, "InvalidSignature", "Duplicate form field in POST policy request")
	errFormTooLarge        = s3err(400, "MaxPostPreDataLengthExceeded", "Your POST request fields preceding the upload file were too large.")
	errFormNoFile          = s3err(400, "InvalidArgument", "POST requires exactly one file upload per request.")
	errFormBody            = s3err(400, "MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data.")
	errEntityTooSmallForm  = s3err(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size")
	errPolicyFieldNotKnown = "Policy condition failed: field \"%s\" is not covered by the policy"
)

// form is a browser upload's fields (names lower-cased; values as sent) and its file part.
type form struct {
	fields   map[string]string
	file     *multipart.Part
	filename string
}

// readForm reads the fields up to the file part, which stays unread: the body to store.
func readForm(ctx *fasthttp.RequestCtx) (*form, *Error) {
	_, params, err := mime.ParseMediaType(string(ctx.Request.Header.ContentType()))
	if err != nil || params["boundary"] == "" {
		return nil, errFormBody
	}
	var body io.Reader = proxy.RequestBody(ctx)
	if body == nil {
		body = bytes.NewReader(ctx.PostBody())
	}
	mr := multipart.NewReader(body, params["boundary"])
	f := &form{fields: map[string]string{}}
	total := 0
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil, errFormNoFile
		}
		if err != nil {
			return nil, errFormBody
		}
		name := strings.ToLower(part.FormName())
		if part.FileName() != "" || name == "file" {
			f.file, f.filename = part, part.FileName()
			return f, nil
		}
		if len(f.fields) == maxFormFields {
			return nil, errFormTooLarge
		}
		v, err := io.ReadAll(io.LimitReader(part, int64(maxFormFieldBytes-total+1)))
		if err != nil {
			return nil, errFormBody
		}
		total += len(name) + len(v)
		if total > maxFormFieldBytes {
			return nil, errFormTooLarge
		}
		if _, dup := f.fields[name]; dup {
			return nil, errDuplicateFormField
		}
		f.fields[name] = string(v)
	}
}

// policy is a verified POST policy's limits beyond its field conditions.
type policy struct {
	minSize, maxSize int64 // content-length-range; maxSize -1 = none
}

// verifyForm authenticates a browser upload (§2.5): its signature over the policy, then the
// policy's expiration and conditions against the fields (bucket from the path).
func verifyForm(f *form, cfg *authConfig, bucket string) (signed, policy, *Error) {
	now := time.Now()
	if cfg.Now != nil {
		now = cfg.Now()
	}
	credential, signature := f.fields["x-amz-credential"], f.fields["x-amz-signature"]
	amzDate, encoded := f.fields["x-amz-date"], f.fields["policy"]
	if credential == "" || signature == "" || amzDate == "" || encoded == "" {
		return signed{}, policy{}, errSignatureFormat
	}
	sr := sigRequest{signature: signature, amzDate: amzDate, token: f.fields["x-amz-security-token"]}
	if !sr.setCredential(credential) {
		return signed{}, policy{}, errCredentials
	}
	c, err := cfg.credentials(&sr)
	if err != nil {
		return signed{}, policy{}, err
	}
	if _, err := c.check(encoded, signature); err != nil {
		return signed{}, policy{}, err
	}
	raw, derr := base64.StdEncoding.DecodeString(encoded)
	var doc struct {
		Expiration *string           `json:"expiration"`
		Conditions []json.RawMessage `json:"conditions"`
	}
	if derr != nil || json.Unmarshal(raw, &doc) != nil {
		return signed{}, policy{}, errPolicyFormat
	}
	if doc.Expiration == nil {
		return signed{}, policy{}, errPolicyNoExpiration
	}
	exp, perr := time.Parse(time.RFC3339Nano, *doc.Expiration)
	if perr != nil {
		return signed{}, policy{}, errPolicyExpiration
	}
	if !exp.After(now) {
		return signed{}, policy{}, errExpired
	}
	if doc.Conditions == nil {
		return signed{}, policy{}, errPolicyConditions
	}
	fields := map[string]string{"bucket": bucket}
	for k, v := range f.fields {
		fields[k] = v
	}
	pol := policy{maxSize: -1}
	covered := map[string]bool{}
	for _, raw := range doc.Conditions {
		if err := applyCondition(raw, fields, covered, &pol); err != nil {
			return signed{}, policy{}, err
		}
	}
	for name := range fields {
		switch {
		// The authentication fields need no condition (as in the reference): the signature
		// covers the policy, the policy the rest.
		case covered[name], name == "policy", name == "x-amz-signature", name == "file", name == "x-amz-algorithm",
			name == "x-amz-credential", name == "x-amz-date", name == "x-amz-security-token",
			strings.HasPrefix(name, "x-ignore-"):
		default:
			return signed{}, policy{}, errAccessDenied.with(strings.Replace(errPolicyFieldNotKnown, "%s", name, 1))
		}
	}
	return signed{Session: sr.token != "", Token: sr.token, SigningKey: c.key, Date: amzDate, Scope: c.scope}, pol, nil
}

// applyCondition checks one policy condition against the fields and marks what it covers.
func applyCondition(raw json.RawMessage, fields map[string]string, covered map[string]bool, pol *policy) *Error {
	var obj map[string]any
	if json.Unmarshal(raw, &obj) == nil {
		if len(obj) != 1 {
			return errPolicyCondition
		}
		for k, v := range obj {
			s, ok := v.(string)
			if !ok {
				return errPolicyCondition
			}
			return match("eq", strings.ToLower(k), s, fields, covered)
		}
	}
	var arr []any
	if json.Unmarshal(raw, &arr) != nil || len(arr) != 3 {
		return errPolicyUnsupported
	}
	op, _ := arr[0].(string)
	switch strings.ToLower(op) {
	case "eq", "starts-with":
		target, ok1 := arr[1].(string)
		value, ok2 := arr[2].(string)
		if !ok1 || !ok2 || !strings.HasPrefix(target, "$") {
			return errPolicyCondition
		}
		return match(strings.ToLower(op), strings.ToLower(target[1:]), value, fields, covered)
	case "content-length-range":
		lo, ok1 := arr[1].(float64)
		hi, ok2 := arr[2].(float64)
		if !ok1 || !ok2 || lo < 0 || hi < lo {
			return errPolicyCondition
		}
		// Sizes are whole bytes: the bounds round inwards, and a range no size fits is
		// refused like an inverted one.
		minSize, maxSize := byteCount(math.Ceil(lo)), byteCount(math.Floor(hi))
		if maxSize < minSize {
			return errPolicyCondition
		}
		pol.minSize, pol.maxSize = minSize, maxSize
		return nil
	}
	return errPolicyUnsupported
}

// byteCount converts a non-negative whole number of bytes, saturating at the largest int64
// (converting a larger float64 would wrap to a negative size).
func byteCount(v float64) int64 {
	if v >= math.MaxInt64 { // float64(math.MaxInt64) is 2^63, itself out of range
		return math.MaxInt64
	}
	return int64(v)
}

// match applies eq or starts-with to a field (absent: ""), marking it covered.
func match(op, name, value string, fields map[string]string, covered map[string]bool) *Error {
	covered[name] = true
	got := fields[name]
	switch {
	case op == "eq" && got != value:
		return errAccessDenied.with("Policy condition failed: \"" + name + "\" does not match")
	case op == "starts-with" && !strings.HasPrefix(got, value):
		return errAccessDenied.with("Policy condition failed: \"" + name + "\" does not start with \"" + value + "\"")
	}
	return nil
}

// postObject answers a browser POST upload to /s3/{bucket}: read the fields, verify the
// policy, then the REST upload's steps as the signer (upsert), the file streamed.
func (s *Server) postObject(r *request) error {
	ctx := r.ctx
	f, ferr := readForm(ctx)
	if ferr != nil {
		return ferr
	}
	sig, pol, err := verifyForm(f, &s.auth, r.bucket)
	if err != nil {
		return err
	}
	r.sig = sig
	if err := s.identify(r); err != nil {
		return err
	}
	key := strings.ReplaceAll(f.fields["key"], "${filename}", f.filename)
	if key == "" {
		return invalidKey(key)
	}
	mimetype := f.fields["content-type"]
	if mimetype == "" {
		mimetype = f.file.Header.Get("Content-Type")
	}
	if mimetype == "" {
		mimetype = "application/octet-stream"
	}
	cache := f.fields["cache-control"]
	if cache == "" {
		cache = "no-cache"
	}
	meta := map[string]string{}
	for k, v := range f.fields {
		if suffix, ok := strings.CutPrefix(k, "x-amz-meta-"); ok {
			meta[suffix] = v
		}
	}
	umeta, _ := json.Marshal(meta)
	if gate := s.p.Uploads(); gate != nil {
		if !gate.TryAcquire() {
			return errTooManyUploads
		}
		defer gate.Release()
	}
	body := &sizedBody{r: f.file, max: pol.maxSize}
	st, serr := s.p.Store(ctx, r.id, r.op, proxy.Upload{
		Bucket: r.bucket, Name: key, Upsert: true, Mimetype: mimetype, CacheControl: cache,
		UserMetadata: umeta, ContentLength: -1, Body: body, Owner: r.id.Sub,
		Check: func(size int64) error {
			if size < pol.minSize {
				return errEntityTooSmallForm
			}
			return nil
		},
	})
	if body.tooLarge {
		return errEntityTooLarge
	}
	if serr != nil {
		var e *Error
		if errors.As(serr, &e) {
			return e
		}
		return serr
	}
	etag := `"` + st.MD5 + `"`
	ctx.Response.Header.Set(fasthttp.HeaderETag, etag)
	ctx.Response.Header.Set(fasthttp.HeaderLocation, "/"+r.bucket+"/"+key)
	if target := f.fields["success_action_redirect"]; target != "" {
		if u, err := url.Parse(target); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
			q := u.Query()
			q.Set("bucket", r.bucket)
			q.Set("key", key)
			q.Set("etag", etag)
			u.RawQuery = q.Encode()
			ctx.Response.Header.Set(fasthttp.HeaderLocation, u.String())
			ctx.SetStatusCode(fasthttp.StatusSeeOther)
			return nil
		}
	}
	switch f.fields["success_action_status"] {
	case "200":
		ctx.SetStatusCode(fasthttp.StatusOK)
	case "201":
		w := newXML("PostResponse")
		w.elem("Location", "/"+r.bucket+"/"+key)
		w.elem("Bucket", r.bucket)
		w.elem("Key", key)
		w.elem("ETag", etag)
		w.send(ctx, fasthttp.StatusCreated)
	default:
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	}
	return nil
}

// sizedBody fails once more than max bytes (>= 0) arrive: the policy's content-length-range.
type sizedBody struct {
	r        io.Reader
	max, n   int64
	tooLarge bool
}

func (b *sizedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.max >= 0 && b.n > b.max {
		b.tooLarge = true
		return 0, errEntityTooLarge
	}
	return n, err
}
