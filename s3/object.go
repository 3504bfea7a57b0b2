package s3

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/proxy"
)

// object is what the S3 door reads of a row.
type object struct {
	version      string
	updatedAt    time.Time
	meta         objectMeta
	userMetadata map[string]any
	inline       []byte // the bytes, when inline and asked for (objectInfo's withBytes); nil otherwise
}

type objectMeta struct {
	ETag         string `json:"eTag"`
	Size         int64  `json:"size"`
	Mimetype     string `json:"mimetype"`
	CacheControl string `json:"cacheControl"`
	LastModified string `json:"lastModified"`
}

// objectInfo reads the row behind GetObject, HeadObject and GetObjectTagging through
// storage.object_info, as the caller: missing or hidden is NoSuchKey, whatever the bucket (as
// the reference answers). withBytes: with the object's inline bytes (storage.inline_blobs, under
// its row policy, in the same statement), for the reads of the bytes.
func (s *Server) objectInfo(r *request, withBytes bool) (object, error) {
	var o object
	query := `select coalesce(version, ''), updated_at, metadata, user_metadata, null::bytea
	  from storage.object_info(bucket_id => $1, name => $2)`
	if withBytes {
		query = `select coalesce(o.version, ''), o.updated_at, o.metadata, o.user_metadata, i.data
		  from storage.object_info(bucket_id => $1, name => $2) o
		  left join storage.inline_blobs i on i.version = o.version`
	}
	err := s.db.Call(r.ctx, r.settings(s), query,
		[]any{r.bucket, r.key}, func(rows pgx.Rows) error {
			if !rows.Next() {
				return nil
			}
			var meta, umeta []byte
			var updated *time.Time
			if err := rows.Scan(&o.version, &updated, &meta, &umeta, &o.inline); err != nil {
				return err
			}
			if updated != nil {
				o.updatedAt = *updated
			}
			_ = json.Unmarshal(meta, &o.meta) // rows written by SQL callers may lack keys
			_ = json.Unmarshal(umeta, &o.userMetadata)
			return nil
		})
	if err != nil && fromCall(err).Code == "NoSuchBucket" {
		return o, errNoSuchKey
	}
	return o, err
}

// lastModified is the object's Last-Modified: the metadata's, else the row's update time.
func (o *object) lastModified() time.Time {
	if t, err := time.Parse(time.RFC3339Nano, o.meta.LastModified); err == nil {
		return t
	}
	return o.updatedAt
}

// writeObjectHeaders sets the headers GetObject and HeadObject carry.
func writeObjectHeaders(ctx *fasthttp.RequestCtx, o *object) {
	h := &ctx.Response.Header
	if o.meta.Mimetype != "" {
		h.SetContentType(o.meta.Mimetype)
	} else {
		h.SetContentType("application/octet-stream")
	}
	// Presigned URLs open in browsers: stored bytes never run as a page of this origin (as
	// the REST downloads, proxy.writeObjectHeaders).
	h.Set(fasthttp.HeaderXContentTypeOptions, "nosniff")
	if proxy.Sandboxed(o.meta.Mimetype) {
		h.Set(fasthttp.HeaderContentSecurityPolicy, "sandbox")
	}
	if o.meta.CacheControl != "" {
		h.Set(fasthttp.HeaderCacheControl, o.meta.CacheControl)
	}
	if o.meta.ETag != "" {
		h.Set(fasthttp.HeaderETag, o.meta.ETag)
	}
	h.Set(fasthttp.HeaderLastModified, o.lastModified().UTC().Format(http.TimeFormat))
	h.Set(fasthttp.HeaderAcceptRanges, "bytes")
	missing := 0
	for k, v := range o.userMetadata {
		sv, ok := v.(string)
		if !ok || k == "" || len(k) > 8<<10 || len(sv) > 8<<10 || !validHeaderName(k) || !validHeaderValue(sv) {
			missing++
			continue
		}
		h.Set("x-amz-meta-"+strings.ToLower(k), sv)
	}
	if missing > 0 {
		h.Set("x-amz-missing-meta", strconv.Itoa(missing))
	}
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c >= 0x7f {
			return false
		}
	}
	return true
}

// responseOverrides are GetObject's response-* parameters and the headers they set.
var responseOverrides = [][2]string{
	{"response-content-type", fasthttp.HeaderContentType},
	{"response-content-disposition", fasthttp.HeaderContentDisposition},
	{"response-cache-control", fasthttp.HeaderCacheControl},
	{"response-content-encoding", fasthttp.HeaderContentEncoding},
	{"response-content-language", fasthttp.HeaderContentLanguage},
}

// getObject answers GET /s3/{b}/{k}: the bytes, with Range, conditionals and response-*
// overrides.
func (s *Server) getObject(r *request) error {
	ctx := r.ctx
	var expires string
	if v, ok := queryValue(ctx, "response-expires"); ok {
		t, err := parseExpires(v)
		if err != nil {
			return invalidParameter("response-expires")
		}
		expires = t.UTC().Format(http.TimeFormat)
	}
	if _, err := readBody(r); err != nil {
		return err
	}
	gate := s.p.Downloads()
	if gate != nil && !gate.TryAcquire() {
		return errTooManyDownloads
	}
	held := false
	defer func() {
		if gate != nil && !held {
			gate.Release()
		}
	}()
	o, err := s.objectInfo(r, true)
	if err != nil {
		return err
	}
	switch proxy.Precondition(ctx, o.meta.ETag, o.lastModified().Format(time.RFC3339Nano)) {
	case fasthttp.StatusPreconditionFailed:
		return errPreconditionFailed
	case fasthttp.StatusNotModified:
		writeObjectHeaders(ctx, &o)
		ctx.Response.Header.Del(fasthttp.HeaderContentType)
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return nil
	}
	offset, length, partial, ok := proxy.ByteRange(ctx, o.meta.Size)
	if !ok {
		e := *errInvalidRange
		e.Headers = [][2]string{{fasthttp.HeaderContentRange, "bytes */" + strconv.FormatInt(o.meta.Size, 10)}}
		return &e
	}
	var body io.ReadCloser
	if o.inline != nil {
		if offset+length > int64(len(o.inline)) { // metadata a SQL caller wrote
			return errNoSuchKey
		}
		body = io.NopCloser(bytes.NewReader(o.inline[offset : offset+length]))
	} else {
		body, err = s.blobs.Get(blobCtx, blob.VersionKey(o.version), offset, length)
	}
	if errors.Is(err, blob.ErrNotFound) {
		return errNoSuchKey
	}
	if err != nil {
		return blobError(err)
	}
	writeObjectHeaders(ctx, &o)
	for _, ov := range responseOverrides {
		if v, ok := queryValue(ctx, ov[0]); ok && v != "" && validHeaderValue(v) {
			ctx.Response.Header.Set(ov[1], v)
		}
	}
	if expires != "" {
		ctx.Response.Header.Set(fasthttp.HeaderExpires, expires)
	}
	if partial {
		ctx.SetStatusCode(fasthttp.StatusPartialContent)
		ctx.Response.Header.Set(fasthttp.HeaderContentRange,
			"bytes "+strconv.FormatInt(offset, 10)+"-"+strconv.FormatInt(offset+length-1, 10)+"/"+strconv.FormatInt(o.meta.Size, 10))
	}
	body, held = proxy.ResponseStream(ctx, gate, body), true
	ctx.SetBodyStream(body, int(length))
	return nil
}

// blobCtx is the context of blob reads: not the request's, which fasthttp recycles while the
// body still streams.
var blobCtx = context.Background()

// parseExpires reads response-expires: an HTTP date or an ISO 8601 timestamp.
func parseExpires(v string) (time.Time, error) {
	if t, err := http.ParseTime(v); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339Nano, v)
}

// headObject answers HEAD /s3/{b}/{k} from the row alone.
func (s *Server) headObject(r *request) error {
	ctx := r.ctx
	o, err := s.objectInfo(r, false)
	if err != nil {
		return err
	}
	switch proxy.Precondition(ctx, o.meta.ETag, o.lastModified().Format(time.RFC3339Nano)) {
	case fasthttp.StatusPreconditionFailed:
		return errPreconditionFailed
	case fasthttp.StatusNotModified:
		writeObjectHeaders(ctx, &o)
		ctx.Response.Header.Del(fasthttp.HeaderContentType)
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return nil
	}
	writeObjectHeaders(ctx, &o)
	ctx.Response.Header.SetContentLength(int(o.meta.Size))
	ctx.Response.SkipBody = true
	return nil
}

// getTagging answers GET /s3/{b}/{k}?tagging: tags are never stored.
func (s *Server) getTagging(r *request) error {
	if _, err := s.objectInfo(r, false); err != nil {
		return err
	}
	w := newXML("Tagging")
	w.elem("TagSet", "")
	w.send(r.ctx, fasthttp.StatusOK)
	return nil
}

// userMetadata collects the x-amz-meta-* headers into the JSON object stored as
// user_metadata (names lower-cased, as headers are).
func userMetadata(ctx *fasthttp.RequestCtx) []byte {
	m := map[string]string{}
	for k, v := range ctx.Request.Header.All() {
		name := strings.ToLower(string(k))
		if suffix, ok := strings.CutPrefix(name, "x-amz-meta-"); ok {
			m[suffix] = string(v)
		}
	}
	b, _ := json.Marshal(m)
	return b
}

// putObject answers PUT /s3/{b}/{k}: the REST upload's steps (upsert), the body streamed and
// checked on the way (uploadBody).
func (s *Server) putObject(r *request) error {
	ctx := r.ctx
	body, err := newUploadBody(r)
	if err != nil {
		return err
	}
	key := r.key
	if strings.HasSuffix(key, "/") && body.length == 0 {
		key += ".emptyFolderPlaceholder"
	}
	mimetype := string(ctx.Request.Header.ContentType())
	if mimetype == "" {
		mimetype = "application/octet-stream"
	}
	cache := string(ctx.Request.Header.Peek(fasthttp.HeaderCacheControl))
	if cache == "" {
		cache = "no-cache"
	}
	if gate := s.p.Uploads(); gate != nil {
		if !gate.TryAcquire() {
			return errTooManyUploads
		}
		defer gate.Release()
	}
	st, err := s.p.Store(ctx, r.id, r.op, proxy.Upload{
		Bucket: r.bucket, Name: key, Upsert: true, Mimetype: mimetype, CacheControl: cache,
		UserMetadata: userMetadata(ctx), ContentLength: body.length, Body: body, Owner: r.id.Sub,
	})
	if err != nil {
		return body.result(err)
	}
	ctx.Response.Header.Set(fasthttp.HeaderETag, `"`+st.MD5+`"`)
	ctx.SetStatusCode(fasthttp.StatusOK)
	return nil
}

// copySource parses x-amz-copy-source: [/]bucket/key, percent-decoded once (as AWS; the
// reference takes it verbatim, so SDK-encoded keys are not found there).
func copySource(h string) (bucket, key string, err error) {
	if raw, q, ok := strings.Cut(h, "?"); ok {
		if strings.HasPrefix(q, "versionId=") {
			return "", "", errNotImplemented.with("Object versions are not supported")
		}
		h = raw
	}
	h = strings.TrimPrefix(h, "/")
	bucket, key, _ = strings.Cut(h, "/")
	if bucket, err = unescape(bucket); err != nil || bucket == "" {
		return "", "", errInvalidBucketName
	}
	if key, err = unescape(key); err != nil {
		return "", "", invalidKey(key)
	}
	if key == "" {
		return "", "", errMissingCopySource
	}
	return bucket, key, nil
}

// copyObject answers PUT /s3/{b}/{k} with x-amz-copy-source: storage.object_copy (upsert),
// sharing the source's bytes. COPY (the default) keeps the source's metadata; any other
// directive replaces it from the request, as the reference does.
func (s *Server) copyObject(r *request) error {
	ctx := r.ctx
	if _, err := readBody(r); err != nil {
		return err
	}
	srcBucket, srcKey, err := copySource(string(ctx.Request.Header.Peek("x-amz-copy-source")))
	if err != nil {
		return err
	}
	if err := s.copyConditions(r, srcBucket, srcKey); err != nil {
		return err
	}
	keep := true
	var meta, umeta []byte
	if d := ctx.Request.Header.Peek("x-amz-metadata-directive"); d != nil && string(d) != "COPY" {
		keep = false
		mimetype := string(ctx.Request.Header.ContentType())
		if mimetype == "" {
			mimetype = "application/octet-stream"
		}
		cache := string(ctx.Request.Header.Peek(fasthttp.HeaderCacheControl))
		if cache == "" {
			cache = "no-cache"
		}
		meta, _ = json.Marshal(map[string]string{"mimetype": mimetype, "cacheControl": cache})
		umeta = userMetadata(ctx)
	}
	var etag string
	var updated time.Time
	err = s.db.Call(ctx, r.settings(s),
		`select coalesce(metadata->>'eTag', ''), updated_at from storage.object_copy(bucket_id => $1, source_key => $2,
		   destination_key => $3, destination_bucket => $4, upsert => true, copy_metadata => $5,
		   metadata => $6, user_metadata => $7)`,
		[]any{srcBucket, srcKey, r.key, r.bucket, keep, jsonArg(meta), jsonArg(umeta)},
		func(rows pgx.Rows) error {
			if rows.Next() {
				return rows.Scan(&etag, &updated)
			}
			return nil
		})
	if err != nil {
		if e := fromCall(err); e.Status == 404 && e.Code == "InvalidRequest" {
			return errNoSuchBucket // the destination bucket (foreign key)
		}
		return err
	}
	w := newXML("CopyObjectResult")
	w.elem("ETag", etag)
	w.elem("LastModified", isoTime(updated))
	w.send(ctx, fasthttp.StatusOK)
	return nil
}

// copyConditions applies x-amz-copy-source-if-* to the source, read as the caller; only when
// one is sent (the reference passes them to its blob store, where only S3 backends apply them).
func (s *Server) copyConditions(r *request, bucket, key string) error {
	h := &r.ctx.Request.Header
	im, inm := h.Peek("x-amz-copy-source-if-match"), h.Peek("x-amz-copy-source-if-none-match")
	ims, ius := h.Peek("x-amz-copy-source-if-modified-since"), h.Peek("x-amz-copy-source-if-unmodified-since")
	if im == nil && inm == nil && ims == nil && ius == nil {
		return nil
	}
	src := *r
	src.bucket, src.key = bucket, key
	o, err := s.objectInfo(&src, false)
	if err != nil {
		return err
	}
	lm := o.lastModified().Truncate(time.Second)
	if im != nil && !etagMatches(string(im), o.meta.ETag) {
		return errPreconditionFailed
	}
	if im == nil && ius != nil {
		if t, err := http.ParseTime(string(ius)); err == nil && lm.After(t) {
			return errPreconditionFailed
		}
	}
	if inm != nil && etagMatches(string(inm), o.meta.ETag) {
		return errPreconditionFailed
	}
	if inm == nil && ims != nil {
		if t, err := http.ParseTime(string(ims)); err == nil && !lm.After(t) {
			return errPreconditionFailed
		}
	}
	return nil
}

// etagMatches compares an If-Match style list with etag ("*" matches anything).
func etagMatches(list, etag string) bool {
	for _, tag := range strings.Split(list, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || tag == etag || `"`+tag+`"` == etag {
			return true
		}
	}
	return false
}

// deleteObject answers DELETE /s3/{b}/{k}: 204 whether or not the key existed.
func (s *Server) deleteObject(r *request) error {
	if _, err := readBody(r); err != nil {
		return err
	}
	if err := s.db.Call(r.ctx, r.settings(s), `select storage.s3_delete_object(bucket_id => $1, name => $2)`,
		[]any{r.bucket, r.key}, nil); err != nil {
		return err
	}
	r.ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// deleteRequest is DeleteObjects' document.
type deleteRequest struct {
	Objects []struct {
		Key *string `xml:"Key"`
	} `xml:"Object"`
	Quiet string `xml:"Quiet"`
}

// parseDeleteRequest reads DeleteObjects' document: the keys (1 to max of them) and Quiet.
func parseDeleteRequest(body []byte, max int) (names []string, quiet bool, err error) {
	if err := xmlWellFormed(body); err != nil {
		return nil, false, err
	}
	var doc deleteRequest
	if err := xml.Unmarshal(body, &doc); err != nil {
		return nil, false, errMalformedXML.with("Invalid XML payload: " + err.Error())
	}
	if len(doc.Objects) == 0 {
		return nil, false, errMalformedXML.with("The XML you provided was not well-formed or did not validate against our published schema")
	}
	if len(doc.Objects) > max {
		return nil, false, errTooManyKeys.with("Bulk object requests are limited to " + strconv.Itoa(max) + " objects per request.")
	}
	names = make([]string, len(doc.Objects))
	for i, o := range doc.Objects {
		if o.Key == nil {
			return nil, false, errMalformedXML.with("The XML you provided was not well-formed or did not validate against our published schema")
		}
		names[i] = *o.Key
	}
	return names, strings.TrimSpace(doc.Quiet) == "true", nil
}

// deleteObjects answers POST /s3/{b}?delete: every key the caller may delete goes; the
// answer lists each key as Deleted (gone or missing) or Error (AccessDenied), or only the
// errors when Quiet (as AWS; the reference lists all).
func (s *Server) deleteObjects(r *request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	names, quiet, err := parseDeleteRequest(body, s.cfg.MaxDeleteObjects)
	if err != nil {
		return err
	}
	var deleted, refused []string
	err = s.db.Call(r.ctx, r.settings(s), `select name, deleted from storage.s3_delete_objects(bucket_id => $1, names => $2)`,
		[]any{r.bucket, names}, func(rows pgx.Rows) error {
			for rows.Next() {
				var name string
				var gone bool
				if err := rows.Scan(&name, &gone); err != nil {
					return err
				}
				if gone {
					deleted = append(deleted, name)
				} else {
					refused = append(refused, name)
				}
			}
			return nil
		})
	if err != nil {
		return err
	}
	w := newXML("DeleteResult")
	if !quiet {
		for _, k := range deleted {
			w.open("Deleted")
			w.elem("Key", k)
			w.close("Deleted")
		}
	}
	for _, k := range refused {
		w.open("Error")
		w.elem("Key", k)
		w.elem("Code", "AccessDenied")
		w.elem("Message", "Access Denied")
		w.close("Error")
	}
	w.send(r.ctx, fasthttp.StatusOK)
	return nil
}

// queryValue returns a query parameter and whether it was present.
func queryValue(ctx *fasthttp.RequestCtx, name string) (string, bool) {
	args := ctx.QueryArgs()
	if !args.Has(name) {
		return "", false
	}
	return string(args.Peek(name)), true
}

// jsonArg passes JSON to a jsonb parameter; nil is SQL NULL.
func jsonArg(b []byte) any {
	if b == nil {
		return nil
	}
	return string(b)
}
