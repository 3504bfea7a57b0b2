package tus

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/digest"
	"github.com/pgstorage/storage/limits"
	"github.com/pgstorage/storage/proxy"
)

// digits is the cacheControl value the reference turns into max-age (anything else: no-cache).
var digits = regexp.MustCompile(`^-?\d+$`)

// create answers POST: a new upload (TUS.md §6.2), with its first bytes when the body is
// application/offset+octet-stream.
func (s *Server) create(c *call) *Error {
	ctx := c.ctx
	if _, ok := header(ctx, "Upload-Concat"); ok {
		return errConcat
	}
	lengthH, hasLength := header(ctx, "Upload-Length")
	_, deferred := header(ctx, "Upload-Defer-Length")
	if hasLength == deferred {
		return errLengthRequired
	}
	mh, ok := header(ctx, "Upload-Metadata")
	if !ok {
		return errMetadataRequired
	}
	md, _ := parseMetadata(mh) // validated by validateHeaders
	bucket, _ := md.get("bucketName")
	name, _ := md.get("objectName")
	if bucket == "" {
		return errBucketName
	}
	if name == "" {
		return invalidKey("")
	}
	if e := s.verifySigned(c, bucket, name); e != nil {
		return e
	}
	var length *int64
	if hasLength {
		n, _ := parseSize(lengthH)
		length = &n
	}
	var mimetype *string
	if ct, ok := md.get("contentType"); ok {
		mimetype = &ct
	}
	cacheControl := "no-cache"
	if cc, _ := md.get("cacheControl"); digits.MatchString(cc) {
		cacheControl = "max-age=" + cc
	}
	md = md.set("cacheControl", cacheControl)
	var userMetadata any // NULL unless valid JSON (invalid JSON is ignored, as by the reference)
	if m, ok := md.get("metadata"); ok && json.Valid([]byte(m)) {
		if !proxy.StorableJSON([]byte(m)) { // refused as the REST uploads refuse it
			return tusErr(400, proxy.ErrMetadataNotText.Message)
		}
		userMetadata = m
	}

	var id uploadID
	var expires time.Time
	err := s.db.Call(ctxOf(c), s.settings(c),
		`select version, expires_at from storage_internal.resumable_create(bucket_id => $1, name => $2, upsert => $3,
		   mimetype => $4, cache_control => $5, upload_length => $6, user_metadata => $7, metadata => $8, expires_in => $9)`,
		[]any{bucket, name, c.upsert, mimetype, cacheControl, length, userMetadata, md.String(), s.cfg.Expiry},
		func(rows pgx.Rows) error {
			if rows.Next() {
				return rows.Scan(&id.Version, &expires)
			}
			return nil
		})
	if err != nil {
		return fromCall(err)
	}
	id.Bucket, id.Name = bucket, name
	ctx.Response.Header.Set("Location", s.location(c, id))

	var res *result
	switch {
	case string(ctx.Request.Header.ContentType()) == offsetOctetStream:
		var e *Error
		if res, e = s.append(c, id, 0, false); e != nil {
			return e
		}
		ctx.Response.Header.Set("Upload-Offset", strconv.FormatInt(res.offset, 10))
	case length != nil && *length == 0:
		var e *Error
		if res, e = s.append(c, id, 0, true); e != nil {
			return e
		}
	}
	switch {
	case res != nil && res.complete:
		ctx.Response.Header.Set("Tus-Complete", "1")
	case res != nil:
		writeExpires(ctx, res.expires)
	default:
		writeExpires(ctx, expires)
	}
	ctx.Response.Header.SetContentType("text/plain;charset=UTF-8")
	ctx.SetStatusCode(fasthttp.StatusCreated)
	return nil
}

// location is the absolute URL of an upload (TUS.md §4): scheme and host from
// STORAGE_PUBLIC_URL, else from the forwarding headers or Host; the path from TUS_URL_PATH,
// else /upload/resumable under the prefix the request used; /sign for signed uploads.
func (s *Server) location(c *call, id uploadID) string {
	ctx := c.ctx
	proto, host := "http", string(ctx.Host())
	if fwd, ok := header(ctx, "Forwarded"); ok {
		for part := range strings.SplitSeq(strings.Split(fwd, ",")[0], ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
			v = strings.Trim(v, `"`)
			switch strings.ToLower(k) {
			case "host":
				host = v
			case "proto":
				if v == "http" || v == "https" {
					proto = v
				}
			}
		}
	} else {
		if h, ok := header(ctx, "X-Forwarded-Host"); ok && h != "" {
			host = h
			if port, ok := header(ctx, "X-Forwarded-Port"); ok && port != "80" && port != "443" && s.cfg.PublicURL == nil {
				if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
					host = host[:i]
				}
				host += ":" + port
			}
		}
		if p, ok := header(ctx, "X-Forwarded-Proto"); ok && (p == "http" || p == "https") {
			proto = p
		}
	}
	if u := s.cfg.PublicURL; u != nil {
		proto, host = u.Scheme, u.Host
	}
	path := s.cfg.URLPath
	if path == "" {
		path = basePath
		if uri := string(ctx.Path()); strings.HasPrefix(uri, "/storage/v1/") {
			path = "/storage/v1" + basePath
		}
	}
	if s.cfg.AllowForwardedPath {
		if p, ok := header(ctx, "X-Forwarded-Prefix"); ok {
			path = strings.TrimRight(p, "/") + path
		}
	}
	if c.signed {
		path += "/sign"
	}
	return proto + "://" + host + path + "/" + id.String()
}

// head answers HEAD: the upload's offset and what was declared (TUS.md §6.3). It takes no
// lock: the recorded offset is always durable, and a PATCH in progress only moves it forward.
func (s *Server) head(c *call) *Error {
	id, e := pathID(c.ctx)
	if e != nil {
		return e
	}
	if e := s.verifySigned(c, id.Bucket, id.Name); e != nil {
		return e
	}
	var u upload
	found := false
	err := s.db.Call(ctxOf(c), s.settings(c), `select `+uploadColumns("")+` from storage_internal.resumable_get($1)`,
		[]any{id.Version}, func(rows pgx.Rows) error {
			if rows.Next() {
				found = true
				return u.scan(rows)
			}
			return nil
		})
	if err != nil {
		return fromCall(err)
	}
	if !found || u.Bucket != id.Bucket || u.Name != id.Name {
		return errNotFound
	}
	if u.expired() {
		return errGone
	}
	hdr := &c.ctx.Response.Header
	hdr.Set(fasthttp.HeaderCacheControl, "no-store")
	hdr.Set("Upload-Offset", strconv.FormatInt(u.Offset, 10))
	if u.Length != nil {
		hdr.Set("Upload-Length", strconv.FormatInt(*u.Length, 10))
	} else {
		hdr.Set("Upload-Defer-Length", "1")
	}
	if u.Metadata != "" {
		hdr.Set("Upload-Metadata", u.Metadata)
	}
	if u.CompletedAt == nil {
		writeExpires(c.ctx, u.ExpiresAt)
	}
	hdr.SetContentType("text/plain;charset=UTF-8")
	return nil
}

// patch answers PATCH: append the body at Upload-Offset (TUS.md §6.4).
func (s *Server) patch(c *call) *Error {
	id, e := pathID(c.ctx)
	if e != nil {
		return e
	}
	offsetH, ok := header(c.ctx, "Upload-Offset")
	if !ok {
		return errOffsetRequired
	}
	if _, ok := header(c.ctx, "Content-Type"); !ok {
		return errContentType
	}
	if e := s.verifySigned(c, id.Bucket, id.Name); e != nil {
		return e
	}
	offset, _ := parseSize(offsetH)
	res, e := s.append(c, id, offset, false)
	if e != nil {
		return e
	}
	hdr := &c.ctx.Response.Header
	hdr.Set("Upload-Offset", strconv.FormatInt(res.offset, 10))
	if res.complete {
		hdr.Set("Tus-Complete", "1")
	} else {
		writeExpires(c.ctx, res.expires)
	}
	c.ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// terminate answers DELETE: the unfinished upload and its bytes go (TUS.md §6.5).
func (s *Server) terminate(c *call) *Error {
	id, e := pathID(c.ctx)
	if e != nil {
		return e
	}
	if e := s.verifySigned(c, id.Bucket, id.Name); e != nil {
		return e
	}
	l, e := s.lock(c, id)
	if e != nil {
		return e
	}
	defer l.release()
	var state string
	err := l.held.Call(ctxOf(c), s.settings(c),
		`select storage_internal.resumable_terminate(version => $1, bucket_id => $2, name => $3, upsert => $4)`,
		[]any{id.Version, id.Bucket, id.Name, c.upsert}, func(rows pgx.Rows) error {
			if rows.Next() {
				return rows.Scan(&state)
			}
			return nil
		})
	if err != nil {
		return fromCall(err)
	}
	// The row is gone: from here the partial blob is a leftover whatever happens, and the
	// collector would remove it; removing it now leaves nothing behind at once.
	if err := s.blobs.Discard(blobCtx, blob.VersionKey(id.Version), state); err != nil {
		s.log.Warn("tus: discard a terminated upload's bytes (the collector will)", "version", id.Version, "error", err)
	}
	c.ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// result is what an append achieved.
type result struct {
	offset   int64
	complete bool
	expires  time.Time
}

// append streams the request body into the upload at offset, under the upload's lock, and
// records the progress; at the declared length it completes the upload (the object row is
// written). empty: append no body (a zero-length upload completing at creation).
func (s *Server) append(c *call, id uploadID, offset int64, empty bool) (*result, *Error) {
	ctx := ctxOf(c)
	if gate := s.p.Uploads(); gate != nil {
		if !gate.TryAcquire() {
			return nil, errTooManyUploads
		}
		defer gate.Release()
	}
	l, e := s.lock(c, id)
	if e != nil {
		return nil, e
	}
	defer l.release()

	var u upload
	var limit *int64
	found := false
	err := l.held.Call(ctx, s.settings(c),
		`select `+uploadColumns("(c.upload).")+`, c.size_limit from storage_internal.resumable_check(version => $1, upsert => $2) c`,
		[]any{id.Version, c.upsert}, func(rows pgx.Rows) error {
			if !rows.Next() {
				return nil
			}
			found = true
			return u.scan(rows, &limit)
		})
	if err != nil {
		return nil, fromCall(err)
	}
	if !found || u.Bucket != id.Bucket || u.Name != id.Name {
		return nil, errNotFound
	}
	if u.expired() {
		return nil, errGone
	}
	if offset != u.Offset {
		return nil, errOffsetConflict
	}
	cl := int64(c.ctx.Request.Header.ContentLength())
	if empty {
		cl = 0
	}
	if u.CompletedAt != nil {
		// A retried last PATCH: nothing more fits.
		if cl > 0 {
			return nil, errSizeExceeded
		}
		return &result{offset: u.Offset, complete: true}, nil
	}

	// Upload-Length on a PATCH declares a deferred length (TUS.md §6.4 step 9).
	var declared *int64
	if v, ok := header(c.ctx, "Upload-Length"); ok && c.ctx.IsPatch() {
		n, _ := parseSize(v)
		switch {
		case u.Length != nil, n < u.Offset:
			return nil, errLengthRequired
		case limit != nil && n > *limit:
			return nil, errMaxSize
		}
		declared, u.Length = &n, &n
	}
	// How many bytes this append may take.
	var room *int64
	switch {
	case u.Length != nil:
		r := *u.Length - offset
		room = &r
	case limit != nil:
		r := *limit - offset
		room = &r
	}
	if room != nil && cl > *room {
		return nil, errSizeExceeded
	}

	h, err := resumeHash(u.MD5State)
	if err != nil {
		return nil, &Error{Status: 500, Body: errInternal.Body, cause: err}
	}
	newOffset, state := offset, u.BlobState
	// rewind forgets this append: nothing of it is recorded, the client sends it again from
	// the recorded offset (whatever the store kept past it is overwritten then).
	rewind := func() {
		newOffset, state = offset, u.BlobState
		h, _ = resumeHash(u.MD5State)
	}
	var appendErr error
	if !empty {
		// Another request may ask for the lock while this body streams: it is then cut.
		streaming := s.holders.add(u.Version, c.ctx)
		var body io.Reader = proxy.RequestBody(c.ctx)
		if body == nil {
			body = bytes.NewReader(c.ctx.PostBody())
		}
		if cl >= 0 {
			body = io.LimitReader(body, cl)
		}
		hashing := digest.New(h) // beside the copy: see package digest
		m := &meter{r: body, h: hashing, room: room}
		size := cl
		newOffset, state, appendErr = s.blobs.Append(blobCtx, u.blobKey(), u.BlobState, offset, m, size)
		streaming()
		h = hashing.Sum() // every byte the meter passed on
		if limits.ConnOf(c.ctx.Conn()).Cutting() {
			c.ctx.SetConnectionClose()
		}
		if appendErr != nil && newOffset > offset && newOffset-offset != m.n {
			rewind() // the store kept a different amount than was hashed
		}
		if appendErr == nil && cl >= 0 && m.n != cl {
			appendErr = io.ErrUnexpectedEOF
		}
	}
	res := &result{offset: newOffset}
	complete := appendErr == nil && u.Length != nil && newOffset == *u.Length
	if complete {
		if err := s.finish(blobCtx, u.blobKey(), state, newOffset); err != nil {
			// Recording the last bytes without the object would make HEAD report the upload
			// whole: a client would stop there. Unrecorded, it sends them again.
			appendErr, complete = err, false
			rewind()
		}
	}
	if complete {
		var objectID string
		err := l.held.Call(ctx, s.settings(c),
			`select storage_internal.resumable_complete(version => $1, from_offset => $2, size => $3, md5 => $4, upsert => $5)::text`,
			[]any{u.Version, u.Offset, newOffset, hex.EncodeToString(h.Sum(nil)), c.upsert}, func(rows pgx.Rows) error {
				if rows.Next() {
					return rows.Scan(&objectID)
				}
				return nil
			})
		if err != nil {
			// The row was refused (a duplicate, a policy, the bucket gone): the upload ends,
			// its finished blob is queued for collection.
			if aerr := l.held.Call(ctx, s.settings(c), `select storage_internal.object_upload_abort(version => $1)`,
				[]any{u.Version}, nil); aerr != nil {
				s.log.Warn("tus: abort a refused upload (it will expire)", "version", u.Version, "error", aerr)
			}
			return nil, fromCall(err)
		}
		res.complete = true
		return res, nil
	}
	if newOffset > offset || declared != nil {
		// As the server (the connection's own role, storage_server), not as the uploader: the
		// blob state names pieces in the store, which no request role may choose.
		st, err := hashState(h)
		if err == nil {
			var ok bool
			err = l.held.QueryRow(ctx,
				`select storage_internal.resumable_advance(version => $1, from_offset => $2, to_offset => $3,
				   upload_length => $4, blob_state => $5, md5_state => $6, expires_in => $7)`,
				u.Version, offset, newOffset, declared, state, st, s.cfg.Expiry).Scan(&ok)
		}
		if err != nil {
			return nil, fromCall(err)
		}
	}
	res.expires = time.Now().Add(s.cfg.Expiry)
	if res.expires.Before(u.ExpiresAt) {
		res.expires = u.ExpiresAt
	}
	if appendErr != nil && limits.ConnOf(c.ctx.Conn()).Cutting() {
		// Released for another request: what arrived is stored and recorded; the client
		// learns the offset (its connection closes: it was sending more).
		return res, nil
	}
	if appendErr != nil {
		return nil, s.appendError(appendErr)
	}
	return res, nil
}

// finish makes the upload's blob. Its key is fresh per upload and no object holds it until
// the completion is recorded (not yet: the lock is held and CompletedAt was nil), so a blob
// already there was made by an earlier Finish of this upload whose completion a dying server
// never recorded, and the client has now sent the bytes again from an earlier offset: they
// replace it.
func (s *Server) finish(ctx context.Context, key, state string, size int64) error {
	err := s.blobs.Finish(ctx, key, state, size)
	if !errors.Is(err, blob.ErrExists) {
		return err
	}
	if err := s.blobs.Delete(ctx, key); err != nil {
		return err
	}
	return s.blobs.Finish(ctx, key, state, size)
}

// appendError maps a failed append: a body over its room is 413, a partial blob that is gone
// 410, a client that went away or stalled is answered (if at all) as such, a store that cannot
// serve now (S3 down, disk full) 503 with Retry-After, anything else is the store's failure.
func (s *Server) appendError(err error) *Error {
	switch {
	case errors.Is(err, errTooLarge):
		return errMaxSize
	case errors.Is(err, blob.ErrNotFound):
		return errGone
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Status: 400, Body: "The request body ended before its Content-Length\n", cause: err}
	case errors.Is(err, blob.ErrUnavailable):
		return fromCall(err) // 503 + Retry-After
	}
	return &Error{Status: errWriteFailed.Status, Body: errWriteFailed.Body, cause: err}
}

// resumeHash is an MD5 that has hashed what state says (a new one for no state).
func resumeHash(state []byte) (hash.Hash, error) {
	h := md5.New()
	if len(state) > 0 {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// hashState is the MD5 state to resume hashing from.
func hashState(h hash.Hash) ([]byte, error) {
	return h.(encoding.BinaryMarshaler).MarshalBinary()
}

// errTooLarge is the meter's refusal of a body past its room.
var errTooLarge = errors.New("tus: the body exceeds the upload's length or size limit")

// meter passes an append's bytes through, hashing and counting exactly those it returns, and
// fails once they would exceed room.
type meter struct {
	r    io.Reader
	h    io.Writer
	room *int64
	n    int64
}

func (m *meter) Read(p []byte) (int, error) {
	if m.room != nil {
		left := *m.room - m.n
		if left <= 0 {
			// One byte more tells a body that is too long from one that ends exactly.
			var one [1]byte
			k, err := m.r.Read(one[:])
			if k > 0 {
				return 0, errTooLarge
			}
			return 0, err
		}
		if int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := m.r.Read(p)
	m.n += int64(n)
	m.h.Write(p[:n])
	return n, err
}

// lockHold is an upload's advisory lock, on a connection held for it.
type lockHold struct {
	s    *Server
	held *proxy.Held
	key  int64
}

// lock takes the upload's advisory lock, retrying for Config.LockTimeout while another
// request (on any server) holds it: 503 "acquiring lock timeout" past it.
func (s *Server) lock(c *call, id uploadID) (*lockHold, *Error) {
	// A slot first, failing fast like the transfer caps: every slot taken means as many
	// uploads streaming, and a queue would only hold more clients longer.
	select {
	case s.slots <- struct{}{}:
	default:
		return nil, errTooManyUploads
	}
	held, err := s.locks.Hold(ctxOf(c))
	if err != nil {
		<-s.slots
		return nil, fromCall(err)
	}
	l := &lockHold{s: s, held: held, key: id.lockKey()}
	if e := s.acquire(c, id, l); e != nil {
		return nil, e
	}
	return l, nil
}

// acquire takes the upload's advisory lock on l's connection, retrying while another request
// holds it; on failure l's connection and slot are given back.
func (s *Server) acquire(c *call, id uploadID, l *lockHold) *Error {
	held, key := l.held, l.key
	deadline := time.Now().Add(s.cfg.LockTimeout)
	var asked time.Time
	for {
		var ok bool
		if err := held.QueryRow(ctxOf(c), `select pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
			held.Destroy()
			<-s.slots
			return fromCall(err)
		}
		if ok {
			return nil
		}
		if time.Since(asked) >= askEvery {
			// Whoever holds it, on any server, is asked to let go (release.go).
			asked = time.Now()
			if err := held.Exec(ctxOf(c), `select pg_notify($1, $2)`, releaseChannel, releasePayloadOf(id)); err != nil {
				s.log.Warn("tus: request a lock's release", "error", err)
			}
		}
		if time.Now().After(deadline) {
			held.Release()
			<-s.slots
			return errLockTimeout
		}
		time.Sleep(lockRetry)
	}
}

// lockRetry is the pause between attempts at a taken lock.
const lockRetry = 100 * time.Millisecond

// release unlocks and gives the connection back; a connection whose unlock failed is closed,
// which releases the lock too.
func (l *lockHold) release() {
	defer func() { <-l.s.slots }()
	var ok bool
	if err := l.held.QueryRow(blobCtx, `select pg_advisory_unlock($1)`, l.key).Scan(&ok); err != nil || !ok {
		l.held.Destroy()
		return
	}
	l.held.Release()
}

// blobCtx is the context of blob store calls: not the request's, which fasthttp recycles
// (a dropped client is seen by the body reads failing).
var blobCtx = context.Background()
