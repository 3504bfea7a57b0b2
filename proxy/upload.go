package proxy

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/digest"
)

// maxUserMetadata is the largest user metadata a multipart field may carry (1 MiB).
const maxUserMetadata = 1 << 20

// ErrEntityTooLarge: the object (or its user metadata) is larger than the limits allow.
var ErrEntityTooLarge = &Error{Status: 413, Code: "EntityTooLarge", Label: "Payload too large", Message: "The object exceeded the maximum allowed size"}

// ErrNoContent: a multipart upload without a file part.
var ErrNoContent = &Error{Status: 400, Code: "InvalidRequest", Message: "No content provided"}

// upload is one upload request on its way from the client to the blob store and the row.
type upload struct {
	bucket, name  string
	upsert        bool
	mimetype      string
	cacheControl  string
	userMetadata  json.RawMessage
	xRobotsTag    *string
	contentLength *int64                 // declared by a raw upload; nil when unknown or multipart
	body          io.Reader              // the object's bytes
	check         func(size int64) error // another door's last word on the bytes (Upload.Check)
}

// ObjectUpload answers POST and PUT /object/{bucket}/{key}: authorize (prepare), stream the
// bytes to a fresh blob while counting and hashing, then commit the row. PUT always upserts;
// POST upserts only with x-upsert: true (exactly).
func (s *Server) ObjectUpload(r *request) error {
	u, err := parseUpload(r.ctx, string(r.ctx.Method()) == fasthttp.MethodPut)
	if err != nil {
		return err
	}
	if u.userMetadata == nil {
		u.userMetadata = json.RawMessage(`{}`) // an upload without metadata stores {}, not NULL
	}
	id, _, err := s.store(r, u, r.id.Sub)
	if err != nil {
		return err
	}
	b := append([]byte(`{"Id":`), appendJSONString(nil, id)...)
	b = append(append(b, `,"Key":`...), appendJSONString(nil, u.bucket+"/"+u.name)...)
	return writeJSON(r.ctx, append(b, '}'))
}

// stored is what an upload wrote: the blob's size and MD5 (hex, the ETag's digest).
type stored struct {
	size int64
	md5  string
}

// store runs the three steps of an upload and returns the object's id. owner is the sub the
// row is owned by ("" keeps the current owner on an upsert). Every step runs as the uploader
// (r.id): the commit too, so the uploader's policies decide on the row as it is when it is
// written, not only on the dry-run made before the bytes moved.
func (s *Server) store(r *request, u *upload, owner string) (string, stored, error) {
	if err := u.validate(); err != nil {
		return "", stored{}, err
	}
	ctx := ctxOf(r)
	settings := s.settings(r)
	data, small, err := s.readInline(u)
	if err != nil {
		return "", stored{}, err
	}
	if small {
		return s.storeInline(r, u, owner, data)
	}
	version, limit, err := s.db.ObjectUploadPrepare(ctx, settings, uploadPrepareParams{
		Bucket: u.bucket, Name: u.name, Upsert: u.upsert, Mimetype: u.mimetype,
		ContentLength: u.contentLength, UserMetadata: u.userMetadata,
	})
	if err != nil {
		return "", stored{}, err
	}
	hashing := digest.New(md5.New()) // beside the copy: see package digest
	m := &meter{r: newClientBody(u.body, u.contentLength), limit: limit, md5: hashing}
	size := int64(-1)
	if u.contentLength != nil {
		size = *u.contentLength
	}
	err = s.blobs.Put(blobCtx, blob.VersionKey(version), m, size)
	sum := hashing.Sum().Sum(nil)
	if err != nil {
		s.abortUpload(ctx, settings, version)
		if errors.Is(err, errTooLarge) {
			return "", stored{}, ErrEntityTooLarge
		}
		return "", stored{}, internalError(err)
	}
	st := stored{size: m.n, md5: hex.EncodeToString(sum)}
	if u.check != nil {
		if err := u.check(st.size); err != nil {
			s.abortUpload(ctx, settings, version)
			return "", stored{}, err
		}
	}
	p := uploadCommitParams{
		Bucket: u.bucket, Name: u.name, Version: version, Upsert: u.upsert, Size: st.size,
		MD5: st.md5, Mimetype: u.mimetype, CacheControl: u.cacheControl,
		UserMetadata: u.userMetadata, XRobotsTag: u.xRobotsTag,
	}
	if owner != "" {
		p.OwnerID = &owner
	}
	id, err := s.db.ObjectUploadCommit(ctx, settings, p)
	if err != nil {
		s.abortUpload(ctx, settings, version)
		return "", stored{}, err
	}
	return id, st, nil
}

// readInline reads the body of an upload small enough to store inline (Config.InlineMax; 0:
// none): one of a known length up to it, or one of unknown length (chunked, a multipart file
// part) that ends within it. small false: the body is larger, and u.body still yields all of
// it (what was read here first).
func (s *Server) readInline(u *upload) (data []byte, small bool, err error) {
	limit := s.cfg.InlineMax
	if limit <= 0 || u.contentLength != nil && *u.contentLength > limit {
		return nil, false, nil
	}
	body := newClientBody(u.body, u.contentLength) // a body that fails says how (a 4xx)
	if u.contentLength != nil {
		data = make([]byte, *u.contentLength)
		if _, err := io.ReadFull(body, data); err != nil {
			return nil, false, internalError(err)
		}
		return data, true, nil
	}
	// Read as it comes, one byte past the limit at most: most such bodies are far smaller.
	data, err = io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, false, internalError(err)
	}
	if int64(len(data)) > limit {
		u.body = io.MultiReader(bytes.NewReader(data), u.body)
		return nil, false, nil
	}
	return data, true, nil
}

// storeInline stores a small upload in one call: its bytes with the row, in one transaction
// (storage_internal.object_upload_inline), as the uploader.
func (s *Server) storeInline(r *request, u *upload, owner string, data []byte) (string, stored, error) {
	sum := md5.Sum(data)
	st := stored{size: int64(len(data)), md5: hex.EncodeToString(sum[:])}
	if u.check != nil {
		if err := u.check(st.size); err != nil {
			return "", stored{}, err
		}
	}
	p := uploadCommitParams{
		Bucket: u.bucket, Name: u.name, Upsert: u.upsert, Mimetype: u.mimetype, CacheControl: u.cacheControl,
		UserMetadata: u.userMetadata, XRobotsTag: u.xRobotsTag,
	}
	if owner != "" {
		p.OwnerID = &owner
	}
	id, err := s.db.ObjectUploadInline(ctxOf(r), s.settings(r), p, data)
	if err != nil {
		return "", stored{}, err
	}
	return id, st, nil
}

// abortUpload ends an upload that will not commit: its entry goes and its blob is queued for
// the collector. When the database cannot take the call now (no connection free, a restart),
// it is tried again in the background, after 1, 2, 4 … 32 s: otherwise the refused upload's
// blob would wait for the collector's upload expiry (STORAGE_UPLOAD_EXPIRY, a day by default).
// settings hold copies, never views of the request's buffers, so they outlive it.
func (s *Server) abortUpload(ctx context.Context, settings []any, version string) {
	if !unavailable(s.db.ObjectUploadAbort(ctx, settings, version)) {
		return
	}
	go func() {
		for wait := time.Second; wait <= 32*time.Second; wait *= 2 {
			time.Sleep(wait)
			if !unavailable(s.db.ObjectUploadAbort(context.Background(), settings, version)) {
				return
			}
		}
	}()
}

// unavailable: err is a 503 (the database or the pool could not take the call).
func unavailable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == 503
}

// parseUpload reads the upload's parameters: from the headers for a raw body, or from the
// form fields that precede the file part of a multipart/form-data body (whose reading stops
// at the file part, which becomes the body).
func parseUpload(ctx *fasthttp.RequestCtx, isPut bool) (*upload, error) {
	u := &upload{
		bucket: param(ctx, "bucket"),
		name:   param(ctx, "key"),
		upsert: isPut || string(ctx.Request.Header.Peek("x-upsert")) == "true",
	}
	if v := ctx.Request.Header.Peek("x-robots-tag"); v != nil {
		if !validRobotsTag(string(v)) {
			return nil, &Error{Status: 400, Code: "InvalidRequest", Label: "invalid_x_robots_tag", Message: "Invalid X-Robots-Tag header: " + string(v)}
		}
		tag := string(v)
		u.xRobotsTag = &tag
	}
	ct := string(ctx.Request.Header.ContentType())
	if mt, params, err := mime.ParseMediaType(ct); err == nil && mt == "multipart/form-data" {
		return u, u.readForm(ctx, params["boundary"])
	}
	u.mimetype = ct
	if u.mimetype == "" {
		u.mimetype = "application/octet-stream"
	}
	u.cacheControl = string(ctx.Request.Header.Peek(fasthttp.HeaderCacheControl))
	if u.cacheControl == "" {
		u.cacheControl = "no-cache"
	}
	u.userMetadata = decodeXMetadata(ctx.Request.Header.Peek("x-metadata"))
	if n := ctx.Request.Header.ContentLength(); n >= 0 {
		cl := int64(n)
		u.contentLength = &cl
	}
	u.body = RequestBody(ctx)
	if u.body == nil {
		u.body = bytes.NewReader(ctx.PostBody())
	}
	return u, nil
}

// readForm reads form fields up to the first file part, which becomes the body.
func (u *upload) readForm(ctx *fasthttp.RequestCtx, boundary string) error {
	var body io.Reader = RequestBody(ctx)
	if body == nil {
		body = bytes.NewReader(ctx.PostBody())
	}
	mr := multipart.NewReader(body, boundary)
	u.cacheControl = "no-cache"
	contentType := ""
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return ErrNoContent
		}
		if err != nil {
			return schemaError("Invalid multipart body: " + err.Error())
		}
		if part.FileName() == "" && part.FormName() != "" {
			v, err := io.ReadAll(io.LimitReader(part, maxUserMetadata+1))
			if err != nil {
				return schemaError("Invalid multipart body: " + err.Error())
			}
			switch part.FormName() {
			case "cacheControl":
				u.cacheControl = "max-age=" + string(v)
			case "contentType":
				contentType = string(v)
			case "metadata", "userMetadata":
				if len(v) > maxUserMetadata {
					return ErrEntityTooLarge.with("The user_metadata exceeded the maximum allowed size")
				}
				if json.Valid(v) {
					u.userMetadata = v
				}
			}
			continue
		}
		u.mimetype = contentType
		if u.mimetype == "" {
			u.mimetype = part.Header.Get("Content-Type")
		}
		if u.mimetype == "" {
			u.mimetype = "application/octet-stream"
		}
		u.body = part
		return nil
	}
}

// decodeXMetadata decodes the x-metadata header (base64 of a JSON object). Anything that does
// not decode is ignored, as in the reference.
func decodeXMetadata(h []byte) json.RawMessage {
	if len(h) == 0 {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(string(h))
	if err != nil || !json.Valid(b) {
		return nil
	}
	return bytes.TrimSpace(b)
}

// errTooLarge is the meter's refusal once a body passes its limit.
var errTooLarge = errors.New("upload exceeds the size limit")

// meter passes an upload's bytes through, counting and hashing them (MD5, the ETag), and
// fails with errTooLarge as soon as they exceed limit: a chunked body of unknown length is
// refused while streaming, and the blob store discards what it had.
type meter struct {
	r     io.Reader
	limit *int64 // nil = none
	n     int64
	md5   io.Writer
}

func (m *meter) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	m.n += int64(n)
	if m.limit != nil && m.n > *m.limit {
		return 0, errTooLarge
	}
	m.md5.Write(p[:n])
	return n, err
}

// validRobotsTag checks an X-Robots-Tag value: comma-separated directives, each optionally
// prefixed by a user agent ("googlebot: noindex").
func validRobotsTag(v string) bool {
	simple := map[string]bool{"all": true, "noindex": true, "nofollow": true, "none": true,
		"noarchive": true, "nosnippet": true, "indexifembedded": true, "notranslate": true,
		"noimageindex": true}
	for _, d := range strings.Split(v, ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		if d == "" {
			return false
		}
		if simple[d] {
			continue
		}
		key, val, ok := strings.Cut(d, ":")
		val = strings.TrimSpace(val)
		switch {
		case !ok:
			return false
		case key == "max-snippet" || key == "max-video-preview":
			if _, err := strconv.Atoi(val); err != nil {
				return false
			}
		case key == "max-image-preview":
			if val != "none" && val != "standard" && val != "large" {
				return false
			}
		case key == "unavailable_after":
			if val == "" {
				return false
			}
		default: // a user-agent prefix before a directive
			if !validRobotsTag(val) || strings.Contains(val, ",") {
				return false
			}
		}
	}
	return true
}
