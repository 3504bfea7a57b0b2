package s3

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/proxy"
)

// Multipart uploads (S3.md §6): each step is one storage_internal.s3_multipart_* call as the
// uploader, the parts' bytes go to the blob store's multipart upload (blob.Multipart), and what
// the store did is recorded as the server (proxy.DB.ServerCall). The UploadId is the version
// the object will have.

// maxPartSize is S3's largest part.
const maxPartSize = 5 << 30

var (
	errAuthorizationHeader = s3err(400, "InvalidRequest", "Headers must have required property 'authorization'")
	errNoMultipart         = s3err(501, "NotImplemented", "The blob store cannot hold multipart uploads")
	errInvalidPart         = s3err(400, "InvalidPart", "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.")
	errEntityTooSmall      = s3err(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size")
	errInvalidCopyRange    = s3err(400, "InvalidRange", "invalid range provided")
)

// multipart returns the blob store's multipart side.
func (s *Server) multipart() (blob.Multipart, error) {
	mp, ok := s.blobs.(blob.Multipart)
	if !ok {
		return nil, errNoMultipart
	}
	return mp, nil
}

// uploadID is the request's uploadId.
func uploadID(ctx *fasthttp.RequestCtx) string { return string(ctx.QueryArgs().Peek("uploadId")) }

// createMultipart answers POST /s3/{b}/{k}?uploads.
func (s *Server) createMultipart(r *request) error {
	ctx := r.ctx
	if r.sig.Presigned {
		return errAuthorizationHeader
	}
	if _, err := readBody(r); err != nil {
		return err
	}
	mp, err := s.multipart()
	if err != nil {
		return err
	}
	var mimetype, cache any
	if ct := ctx.Request.Header.ContentType(); len(ct) > 0 {
		mimetype = string(ct)
	}
	if cc := ctx.Request.Header.Peek(fasthttp.HeaderCacheControl); len(cc) > 0 {
		cache = string(cc)
	}
	settings := r.settings(s)
	var version string
	err = s.db.Call(ctx, settings,
		`select version from storage_internal.s3_multipart_create(bucket_id => $1, name => $2, mimetype => $3,
		   cache_control => $4, user_metadata => $5, expires_in => $6)`,
		[]any{r.bucket, r.key, mimetype, cache, string(userMetadata(ctx)), s.cfg.MultipartExpiry},
		func(rows pgx.Rows) error {
			if rows.Next() {
				return rows.Scan(&version)
			}
			return nil
		})
	if err != nil {
		return err
	}
	state, err := mp.CreateMultipart(blobCtx, blob.VersionKey(version))
	if err == nil && state != "" {
		err = s.db.ServerCall(ctx, `select storage_internal.s3_multipart_state(version => $1, blob_state => $2)`,
			[]any{version, state}, nil)
	}
	if err != nil {
		_ = s.db.Call(ctx, settings, `select storage_internal.object_upload_abort(version => $1)`, []any{version}, nil)
		if state != "" {
			_ = mp.AbortMultipart(blobCtx, blob.VersionKey(version), state)
		}
		return storeError(err)
	}
	w := newXML("InitiateMultipartUploadResult")
	w.elem("Bucket", r.bucket)
	w.elem("Key", r.key)
	w.elem("UploadId", version)
	w.send(ctx, fasthttp.StatusOK)
	return nil
}

// storeError is a blob store failure as the S3 door answers it.
// A refusal of the request (a body that failed its checks, an S3 error the door raised) keeps
// its answer; a database error (the call that recorded what the store did) is answered as
// such; anything else is the store's own failure (blobError), never worded as the database's
// (proxy.AsError would call a lost store connection a database outage).
func storeError(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var pe *proxy.Error
	if errors.As(err, &pe) {
		return fromCall(err)
	}
	return blobError(err)
}

// blobError is the blob store's failure: 503 SlowDown with Retry-After when the store cannot
// serve now (blob.ErrUnavailable: its S3 service down, its disk full), else 500 with the cause
// logged.
func blobError(err error) *Error {
	if errors.Is(err, blob.ErrUnavailable) {
		return fromCall(err)
	}
	return &Error{Status: 500, Code: errInternal.Code, Message: errInternal.Message, cause: err}
}

// partNumber reads partNumber: an integer from 1 to 10000.
func partNumber(ctx *fasthttp.RequestCtx) (int, error) {
	n, err := strconv.Atoi(string(ctx.QueryArgs().Peek("partNumber")))
	switch {
	case err != nil:
		return 0, errInvalidRequest.with("Querystring, partNumber must be integer")
	case n < 1:
		return 0, errInvalidRequest.with("Querystring, partNumber must be >= 1")
	case n > 10000:
		return 0, errInvalidRequest.with("Querystring, partNumber must be <= 10000")
	}
	return n, nil
}

// partCheck runs storage_internal.s3_multipart_part_check for a part of size bytes and returns
// the store's state of the upload.
func (s *Server) partCheck(r *request, version string, n int, size int64) (string, error) {
	var state string
	err := s.db.Call(r.ctx, r.settings(s),
		`select blob_state from storage_internal.s3_multipart_part_check(version => $1, bucket_id => $2, name => $3,
		   part_number => $4, size => $5)`,
		[]any{version, r.bucket, r.key, n, size}, func(rows pgx.Rows) error {
			if rows.Next() {
				return rows.Scan(&state)
			}
			return nil
		})
	return state, err
}

// putPart streams body (size bytes) as part n and records it as the server. Returns the
// part's ETag (hex MD5).
//
// The part's ETag is the store's: both stores give the part's MD5 (the file store computes it
// as it writes, S3 answers it), so the server does not hash the bytes a second time.
func (s *Server) putPart(r *request, mp blob.Multipart, version, state string, n int, body io.Reader, size int64) (string, error) {
	m := &countingReader{r: body}
	blobETag, err := mp.PutPart(blobCtx, blob.VersionKey(version), state, n, m, size)
	if err != nil {
		return "", err
	}
	if m.n != size {
		return "", errIncompleteBody
	}
	etag := strings.ToLower(strings.Trim(blobETag, `"`))
	return etag, s.recordPart(r, version, n, size, etag, blobETag)
}

// recordPart records, as the server, a part the store now holds.
func (s *Server) recordPart(r *request, version string, n int, size int64, etag, blobETag string) error {
	return s.db.ServerCall(r.ctx,
		`select storage_internal.s3_multipart_part_record(version => $1, part_number => $2, size => $3, etag => $4,
		   blob_etag => $5, expires_in => $6)`,
		[]any{version, n, size, etag, blobETag, s.cfg.MultipartExpiry}, nil)
}

// partError is the answer to a part that was not stored: the body's own refusal; else, when
// the upload is no longer there for the caller (aborted, completed or expired while the part
// streamed: the store then fails the part as it likes, "no such upload" or a dropped
// connection), the upload's state as a new check says it; else the store's failure.
func (s *Server) partError(r *request, version string, n int, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if _, cerr := s.partCheck(r, version, n, 0); cerr != nil {
		if ae := fromCall(cerr); ae.Status < 500 {
			return ae
		}
	}
	return storeError(err)
}

// countingReader counts what passes.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// uploadPart answers PUT /s3/{b}/{k}?partNumber=N&uploadId=U.
func (s *Server) uploadPart(r *request) error {
	ctx := r.ctx
	n, err := partNumber(ctx)
	if err != nil {
		return err
	}
	mp, err := s.multipart()
	if err != nil {
		return err
	}
	body, err := newUploadBody(r)
	if err != nil {
		return err
	}
	size, err := body.partLength()
	if err != nil {
		return err
	}
	if size > maxPartSize {
		return errEntityTooLarge
	}
	if gate := s.p.Uploads(); gate != nil {
		if !gate.TryAcquire() {
			return errTooManyUploads
		}
		defer gate.Release()
	}
	version := uploadID(ctx)
	state, err := s.partCheck(r, version, n, size)
	if err != nil {
		return err
	}
	etag, err := s.putPart(r, mp, version, state, n, body, size)
	if err != nil {
		return s.partError(r, version, n, body.result(err))
	}
	ctx.Response.Header.Set(fasthttp.HeaderETag, `"`+etag+`"`)
	ctx.Response.Header.Set(fasthttp.HeaderAccessControlExposeHeaders, "etag")
	ctx.SetStatusCode(fasthttp.StatusOK)
	return nil
}

// copyRange reads x-amz-copy-source-range: exactly bytes=a-b with 0 <= a <= b < size (no
// suffix or open ranges, as S3); absent, the whole source.
func copyRange(h []byte, size int64) (int64, int64, error) {
	if h == nil {
		return 0, size, nil
	}
	spec, ok := strings.CutPrefix(string(h), "bytes=")
	first, last, ok2 := strings.Cut(spec, "-")
	a, err1 := strconv.ParseInt(first, 10, 64)
	b, err2 := strconv.ParseInt(last, 10, 64)
	if !ok || !ok2 || err1 != nil || err2 != nil || a < 0 || a > b || b >= size {
		return 0, 0, errInvalidCopyRange
	}
	return a, b - a + 1, nil
}

// uploadPartCopy answers PUT /s3/{b}/{k}?partNumber=N&uploadId=U with x-amz-copy-source: the
// source row is read as the caller, then the store copies the range into the part itself (S3:
// UploadPartCopy; no byte passes through the server). The part's ETag is the store's (the
// MD5 of the range, as both stores compute it).
func (s *Server) uploadPartCopy(r *request) error {
	ctx := r.ctx
	n, err := partNumber(ctx)
	if err != nil {
		return err
	}
	mp, err := s.multipart()
	if err != nil {
		return err
	}
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
	src := *r
	src.bucket, src.key = srcBucket, srcKey
	o, err := s.objectInfo(&src, true)
	if err != nil {
		return err
	}
	offset, length, err := copyRange(ctx.Request.Header.Peek("x-amz-copy-source-range"), o.meta.Size)
	if err != nil {
		return err
	}
	if gate := s.p.Uploads(); gate != nil {
		if !gate.TryAcquire() {
			return errTooManyUploads
		}
		defer gate.Release()
	}
	version := uploadID(ctx)
	state, err := s.partCheck(r, version, n, length)
	if err != nil {
		return err
	}
	var etag string
	if o.inline != nil {
		// Inline bytes are not in the store to copy from: the part is put from them.
		if offset+length > int64(len(o.inline)) { // metadata a SQL caller wrote
			return errNoSuchKey
		}
		etag, err = s.putPart(r, mp, version, state, n, bytes.NewReader(o.inline[offset:offset+length]), length)
	} else {
		etag, err = mp.CopyPart(blobCtx, blob.VersionKey(version), state, n, blob.VersionKey(o.version), offset, length)
		if errors.Is(err, blob.ErrNotFound) {
			return errNoSuchKey
		}
		if err == nil {
			etag = strings.Trim(etag, `"`)
			err = s.recordPart(r, version, n, length, etag, etag)
		}
	}
	if err != nil {
		return s.partError(r, version, n, err)
	}
	w := newXML("CopyPartResult")
	w.elem("ETag", `"`+etag+`"`)
	w.elem("LastModified", isoTime(time.Now()))
	w.send(ctx, fasthttp.StatusOK)
	return nil
}

// completeRequest is CompleteMultipartUpload's document.
type completeRequest struct {
	Parts []struct {
		PartNumber string `xml:"PartNumber"`
		ETag       string `xml:"ETag"`
	} `xml:"Part"`
}

// parseCompleteRequest reads CompleteMultipartUpload's document: the part numbers (1 to
// 10000) and ETags in the order listed; an empty body lists none (nil: the SQL API then takes
// every uploaded part).
func parseCompleteRequest(doc []byte) (numbers []int32, etags []string, err error) {
	if len(bytes.TrimSpace(doc)) == 0 {
		return nil, nil, nil
	}
	if err := xmlWellFormed(doc); err != nil {
		return nil, nil, err
	}
	var req completeRequest
	if err := xml.Unmarshal(doc, &req); err != nil {
		return nil, nil, errMalformedXML.with("Invalid XML payload: " + err.Error())
	}
	numbers, etags = []int32{}, []string{}
	for i, p := range req.Parts {
		n, err := strconv.Atoi(strings.TrimSpace(p.PartNumber))
		if err != nil || n < 1 || n > 10000 {
			return nil, nil, errInvalidRequest.with("Body, CompleteMultipartUpload, Part, " + strconv.Itoa(i) + ", PartNumber must be an integer from 1 to 10000")
		}
		numbers = append(numbers, int32(n))
		etags = append(etags, strings.TrimSpace(p.ETag))
	}
	return numbers, etags, nil
}

// completeMultipart answers POST /s3/{b}/{k}?uploadId=U: check the part list (as the
// uploader), have the store assemble the object, commit the row (as the uploader).
func (s *Server) completeMultipart(r *request) error {
	ctx := r.ctx
	if r.sig.Presigned {
		return errAuthorizationHeader
	}
	mp, err := s.multipart()
	if err != nil {
		return err
	}
	doc, err := readBody(r)
	if err != nil {
		return err
	}
	numbers, etags, err := parseCompleteRequest(doc)
	if err != nil {
		return err
	}
	version := uploadID(ctx)
	settings := r.settings(s)
	var parts []blob.Part
	var state string
	var size int64
	digests := md5.New()
	err = s.db.Call(ctx, settings,
		`select part_number, size, etag, blob_etag, blob_state from storage_internal.s3_multipart_complete(
		   version => $1, bucket_id => $2, name => $3, part_numbers => $4, etags => $5)`,
		[]any{version, r.bucket, r.key, numbers, etags}, func(rows pgx.Rows) error {
			for rows.Next() {
				var p blob.Part
				var n int64
				var etag string
				if err := rows.Scan(&p.Number, &n, &etag, &p.ETag, &state); err != nil {
					return err
				}
				b, _ := hex.DecodeString(etag)
				digests.Write(b)
				size += n
				parts = append(parts, p)
			}
			return nil
		})
	if err != nil {
		return err
	}
	err = mp.CompleteMultipart(blobCtx, blob.VersionKey(version), state, parts)
	switch {
	case errors.Is(err, blob.ErrExists):
		// An earlier completion of this upload assembled it and did not commit: the blob
		// under its version is this upload's.
	case errors.Is(err, blob.ErrInvalidPart):
		return errInvalidPart
	case errors.Is(err, blob.ErrPartTooSmall):
		return errEntityTooSmall
	case err != nil:
		return storeError(err)
	}
	etag := hex.EncodeToString(digests.Sum(nil)) + "-" + strconv.Itoa(len(parts))
	err = s.db.Call(ctx, settings,
		`select storage_internal.s3_multipart_commit(version => $1, bucket_id => $2, name => $3, size => $4, etag => $5)`,
		[]any{version, r.bucket, r.key, size, etag}, nil)
	if err != nil {
		// Refused now (the policies changed, the upload expired): the assembled blob is
		// queued for collection with the upload.
		_ = s.db.Call(ctx, settings, `select storage_internal.object_upload_abort(version => $1)`, []any{version}, nil)
		return err
	}
	w := newXML("CompleteMultipartUploadResult")
	w.elem("Location", r.bucket+"/"+r.key)
	w.elem("Bucket", r.bucket)
	w.elem("Key", r.key)
	w.elem("ETag", `"`+etag+`"`)
	w.send(ctx, fasthttp.StatusOK)
	return nil
}

// abortMultipart answers DELETE /s3/{b}/{k}?uploadId=U.
func (s *Server) abortMultipart(r *request) error {
	ctx := r.ctx
	if _, err := readBody(r); err != nil {
		return err
	}
	mp, err := s.multipart()
	if err != nil {
		return err
	}
	version := uploadID(ctx)
	var state string
	err = s.db.Call(ctx, r.settings(s),
		`select storage_internal.s3_multipart_abort(version => $1, bucket_id => $2, name => $3)`,
		[]any{version, r.bucket, r.key}, func(rows pgx.Rows) error {
			if rows.Next() {
				return rows.Scan(&state)
			}
			return nil
		})
	if err != nil {
		return err
	}
	// The upload is gone from the database; a failure here leaves pieces the collector
	// removes as leftovers.
	if err := mp.AbortMultipart(blobCtx, blob.VersionKey(version), state); err != nil {
		s.log.Warn("s3: abort multipart upload in the blob store", "version", version, "error", err)
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// boundedInt reads an integer query parameter from lo to hi, def when absent.
func boundedInt(ctx *fasthttp.RequestCtx, name string, def, lo, hi int) (int, error) {
	v, ok := queryValue(ctx, name)
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	switch {
	case err != nil:
		return 0, errInvalidRequest.with("Querystring, " + name + " must be integer")
	case n < lo:
		return 0, errInvalidRequest.with("Querystring, " + name + " must be >= " + strconv.Itoa(lo))
	case n > hi:
		return hi, nil
	}
	return n, nil
}

// listParts answers GET /s3/{b}/{k}?uploadId=U: the caller's parts, by number.
func (s *Server) listParts(r *request) error {
	ctx := r.ctx
	if _, err := readBody(r); err != nil {
		return err
	}
	max, err := boundedInt(ctx, "max-parts", 1000, 1, 1000)
	if err != nil {
		return err
	}
	marker, err := boundedInt(ctx, "part-number-marker", 0, 0, 10000)
	if err != nil {
		return err
	}
	version := uploadID(ctx)
	type part struct {
		n       int
		size    int64
		etag    string
		created time.Time
	}
	var parts []part
	err = s.db.Call(ctx, r.settings(s),
		`select part_number, size, etag, created_at from storage.s3_list_parts(version => $1, bucket_id => $2,
		   name => $3, part_number_marker => $4, max_parts => $5)`,
		[]any{version, r.bucket, r.key, marker, max + 1}, func(rows pgx.Rows) error {
			for rows.Next() {
				var p part
				if err := rows.Scan(&p.n, &p.size, &p.etag, &p.created); err != nil {
					return err
				}
				parts = append(parts, p)
			}
			return nil
		})
	if err != nil {
		return err
	}
	truncated := len(parts) > max
	if truncated {
		parts = parts[:max]
	}
	w := newXML("ListPartsResult")
	w.elem("Bucket", r.bucket)
	w.elem("Key", r.key)
	w.elem("UploadId", version)
	w.elem("PartNumberMarker", strconv.Itoa(marker))
	if truncated {
		w.elem("NextPartNumberMarker", strconv.Itoa(parts[len(parts)-1].n))
	}
	w.elem("MaxParts", strconv.Itoa(max))
	w.elem("IsTruncated", strconv.FormatBool(truncated))
	for _, p := range parts {
		w.open("Part")
		w.elem("PartNumber", strconv.Itoa(p.n))
		w.elem("LastModified", isoTime(p.created))
		w.elem("ETag", `"`+p.etag+`"`)
		w.elem("Size", strconv.FormatInt(p.size, 10))
		w.close("Part")
	}
	w.elem("StorageClass", "STANDARD")
	w.send(ctx, fasthttp.StatusOK)
	return nil
}

// listMultipartUploads answers GET /s3/{b}?uploads: the uploads in progress the caller may
// see, by key then creation, with AWS's markers (the key and the UploadId as they are; the
// reference wraps them in base64).
func (s *Server) listMultipartUploads(r *request) error {
	ctx := r.ctx
	if _, err := readBody(r); err != nil {
		return err
	}
	max, err := boundedInt(ctx, "max-uploads", 1000, 1, 1000)
	if err != nil {
		return err
	}
	q := ctx.QueryArgs()
	prefix, delimiter := string(q.Peek("prefix")), string(q.Peek("delimiter"))
	keyMarker, uploadMarker := string(q.Peek("key-marker")), string(q.Peek("upload-id-marker"))
	urlEncode := false
	if v, ok := queryValue(ctx, "encoding-type"); ok {
		if v != "url" {
			return errInvalidRequest.with("Querystring, encoding-type must be equal to one of the allowed values")
		}
		urlEncode = true
	}
	type upload struct {
		key, id  string
		created  time.Time
		isPrefix bool
	}
	var ups []upload
	nullable := func(v string) any {
		if v == "" {
			return nil
		}
		return v
	}
	err = s.db.Call(ctx, r.settings(s),
		`select name, coalesce(version, ''), coalesce(created_at, now()), is_prefix from storage.s3_list_multipart_uploads(
		   bucket_id => $1, prefix => $2, delimiter => $3, key_marker => $4, upload_id_marker => $5, max_uploads => $6)`,
		[]any{r.bucket, prefix, nullable(delimiter), nullable(keyMarker), nullable(uploadMarker), max + 1},
		func(rows pgx.Rows) error {
			for rows.Next() {
				var u upload
				if err := rows.Scan(&u.key, &u.id, &u.created, &u.isPrefix); err != nil {
					return err
				}
				ups = append(ups, u)
			}
			return nil
		})
	if err != nil {
		return err
	}
	truncated := len(ups) > max
	if truncated {
		ups = ups[:max]
	}
	w := newXML("ListMultipartUploadsResult")
	w.elem("Bucket", r.bucket)
	w.elem("KeyMarker", keyMarker)
	w.elem("UploadIdMarker", uploadMarker)
	if truncated {
		last := ups[len(ups)-1]
		w.elem("NextKeyMarker", maybeEncode(last.key, urlEncode))
		if !last.isPrefix {
			w.elem("NextUploadIdMarker", last.id)
		}
	}
	if prefix != "" {
		w.elem("Prefix", maybeEncode(prefix, urlEncode))
	}
	if delimiter != "" {
		w.elem("Delimiter", delimiter)
	}
	w.elem("MaxUploads", strconv.Itoa(max))
	w.elem("IsTruncated", strconv.FormatBool(truncated))
	for _, u := range ups {
		if u.isPrefix {
			continue
		}
		w.open("Upload")
		w.elem("Key", maybeEncode(u.key, urlEncode))
		w.elem("UploadId", u.id)
		w.elem("StorageClass", "STANDARD")
		w.elem("Initiated", isoTime(u.created))
		w.close("Upload")
	}
	for _, u := range ups {
		if u.isPrefix {
			w.open("CommonPrefixes")
			w.elem("Prefix", maybeEncode(u.key, urlEncode))
			w.close("CommonPrefixes")
		}
	}
	if urlEncode {
		w.elem("EncodingType", "url")
	}
	w.send(ctx, fasthttp.StatusOK)
	return nil
}
