package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/pgstorage/storage/blob"
)

// A resumable upload's partial blob is a multipart upload of its key, whose parts hold its
// first bytes, and at most one tail: an object that holds the bytes after the last part, fewer
// than S3's minimum part size, until the next Append (or Finish) puts them at the head of a
// part. A tail is named by the key and the offset it ends at, PartialPrefix + key + "/" + end
// under the store's Prefix: a name blob.CheckKey refuses (its first segment starts with a
// dot), so no key reaches it and List skips it. Naming tails by their end means that the
// state an Append returns names a tail no other Append from a recorded state can overwrite
// with other bytes: an Append whose result was lost wrote a tail that the recorded state does
// not name, or the same name, which the Append rerun from the recorded state overwrites.
//
// The state is the multipart upload's id, how many parts (numbered from 1) hold how many
// bytes, and the end of a tail that a recorded Append consumed, which the next Append deletes.
// Parts past the recorded count (an Append whose result was lost) are overwritten by the next
// Append or left out by Finish; tails and multipart uploads the state does not name are
// removed by Finish and Discard, or by the collector as leftovers.
const PartialPrefix = ".partial/"

// finishGrace is how long an Append goes on storing what it has read, and a Finish or Discard
// goes on working, once their context is done: the bytes read are the client's progress, and
// a request canceled in the middle of an S3 call must not leave the caller without a result.
const finishGrace = 30 * time.Second

// spoolBufSize is the buffer that moves a body into the spool file: bytes go straight to disk,
// so an upload in progress holds only this much memory.
const spoolBufSize = 64 << 10

var spoolBufs = sync.Pool{New: func() any { b := make([]byte, spoolBufSize); return &b }}

var _ blob.Resumable = (*Store)(nil)

// rstate is the decoded state of a partial blob.
type rstate struct {
	uploadID  string // the multipart upload; "" until the first part
	parts     int32  // parts 1..parts hold the first partBytes bytes
	partBytes int64
	stale     int64 // end of a tail no longer needed once this state is recorded; 0: none
}

// String encodes the state as a query string ("" for the zero state: nothing stored yet, or
// only a tail), which keeps it readable in the database and easy to extend.
func (st rstate) String() string {
	v := url.Values{}
	if st.uploadID != "" {
		v.Set("upload", st.uploadID)
		v.Set("parts", strconv.FormatInt(int64(st.parts), 10))
		v.Set("bytes", strconv.FormatInt(st.partBytes, 10))
	}
	if st.stale > 0 {
		v.Set("stale", strconv.FormatInt(st.stale, 10))
	}
	return v.Encode()
}

func parseState(s string) (rstate, error) {
	var st rstate
	v, err := url.ParseQuery(s)
	if err != nil {
		return st, fmt.Errorf("bad state %q: %w", s, err)
	}
	num := func(name string) (int64, error) {
		if !v.Has(name) {
			return 0, nil
		}
		return strconv.ParseInt(v.Get(name), 10, 64)
	}
	st.uploadID = v.Get("upload")
	parts, err1 := num("parts")
	partBytes, err2 := num("bytes")
	stale, err3 := num("stale")
	st.partBytes, st.stale = partBytes, stale
	err = errors.Join(err1, err2, err3)
	for name := range v {
		switch name {
		case "upload", "parts", "bytes", "stale":
		default:
			err = errors.Join(err, fmt.Errorf("unknown field %q", name))
		}
	}
	if err == nil && (parts < 0 || parts > maxParts || st.partBytes < 0 || st.stale < 0 ||
		(st.uploadID == "") != (parts == 0) || parts > 0 && st.partBytes < parts*MinPartSize) {
		err = errors.New("inconsistent values")
	}
	if err != nil {
		return rstate{}, fmt.Errorf("bad state %q: %w", s, err)
	}
	st.parts = int32(parts)
	return st, nil
}

// tailKey names the tail of key that ends at end.
func (s *Store) tailKey(key string, end int64) *string {
	return aws.String(s.prefix + PartialPrefix + key + "/" + strconv.FormatInt(end, 10))
}

// appendPartSize is the size at which Append cuts a long body into parts: a part size's worth
// of body after a tail (less than MinPartSize) still makes one part, so an Append of up to
// PartSize bytes becomes at most one part, whatever came before it (with 6 MiB appends, as
// Supabase's clients send, one 6 MiB part each).
func (s *Store) appendPartSize() int64 {
	return min(s.partSize+MinPartSize, MaxPartSize)
}

// detached returns a context for the S3 calls of an Append, Finish or Discard: it outlives ctx
// by finishGrace, so that the work ctx's end interrupts (the bytes read so far) is still stored.
func detached(ctx context.Context) (context.Context, func()) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(finishGrace, cancel) })
	return sctx, func() { stop(); cancel() }
}

// Append stores r's bytes after the first offset bytes of key's partial blob. It reads the
// body into a spool file (a temporary file, already unlinked: a crash leaves nothing) one part
// at a time, after the tail if there is one, and uploads each full part; what remains at the
// end of r becomes a part if it is at least MinPartSize, else the new tail. Nothing of a part
// is held in memory.
func (s *Store) Append(ctx context.Context, key, state string, offset int64, r io.Reader, size int64) (int64, string, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return offset, state, err
	}
	st, err := parseState(state)
	if err != nil {
		return offset, state, fmt.Errorf("blob/s3: append %q: %w", key, err)
	}
	tail := offset - st.partBytes
	if offset < 0 || size < -1 || tail < 0 || tail >= MinPartSize {
		return offset, state, fmt.Errorf("blob/s3: append %q: offset %d, size %d do not fit state %q", key, offset, size, state)
	}
	if err := ctx.Err(); err != nil {
		return offset, state, fmt.Errorf("blob/s3: append %q: %w", key, err)
	}
	sctx, cancel := detached(ctx)
	defer cancel()
	sp, err := newSpool(s.spoolDir)
	if err != nil {
		return offset, state, fmt.Errorf("blob/s3: append %q: %w", key, err)
	}
	defer sp.close()

	a := &appender{s: s, ctx: sctx, key: key, k: k, orig: st, st: st, sp: sp}
	off, rerr, err := a.run(offset, tail, blob.ContextReader(ctx, limit(r, size)))
	if err != nil {
		// The store failed: the recorded progress stays what it was.
		if rerr != nil {
			err = fmt.Errorf("%w (after reading the body failed: %v)", err, rerr)
		}
		return offset, state, fmt.Errorf("blob/s3: append %q: %w", key, err)
	}
	if rerr != nil {
		return off, a.st.String(), fmt.Errorf("blob/s3: append %q: reading the body: %w", key, rerr)
	}
	return off, a.st.String(), nil
}

func limit(r io.Reader, size int64) io.Reader {
	if size >= 0 {
		return io.LimitReader(r, size)
	}
	return r
}

// appender is one Append in progress.
type appender struct {
	s         *Store
	ctx       context.Context // for S3 calls: see detached
	key       string
	k         *string
	orig      rstate // the state the Append started from
	st        rstate // the state as far as this Append has got
	sp        *spool
	confirmed bool // the multipart upload of st is known to exist
}

// run does the Append from offset, whose last tail bytes are in a tail object. It returns the
// new offset (a.st is the new state), r's error, and the store's error (then the offset and
// a.st are not to be recorded).
func (a *appender) run(offset, tail int64, r io.Reader) (int64, error, error) {
	if a.st.stale > 0 && a.st.stale != offset {
		// Recorded, so the tail it names is no longer needed. A failure leaves it to Finish
		// or Discard, which remove every tail of the key.
		_ = a.s.deleteObject(a.ctx, a.s.tailKey(a.key, a.st.stale))
	}
	a.st.stale = 0
	if tail > 0 {
		if _, err := a.s.getTail(a.ctx, a.key, offset, tail, a.sp); err != nil {
			return offset, nil, err
		}
		a.st.stale = offset // consumed by this Append, by a part or by the next tail
	}
	bound := a.s.appendPartSize()
	read := int64(0)
	for {
		n, rerr, werr := a.sp.fill(r, bound)
		read += n
		if werr != nil {
			return offset, rerr, werr
		}
		if rerr == nil && a.sp.n == bound {
			// A full part, and maybe more to come.
			if err := a.uploadPart(); err != nil {
				return offset, nil, err
			}
			continue
		}
		if read == 0 {
			// Nothing new: the partial blob stays as recorded; only say if it is gone.
			a.st = a.orig
			if tail == 0 {
				if err := a.confirm(); err != nil {
					return offset, rerr, err
				}
			}
			return offset, rerr, nil
		}
		switch {
		case a.sp.n >= MinPartSize:
			if err := a.uploadPart(); err != nil {
				return offset, rerr, err
			}
		case a.sp.n > 0:
			if err := a.putTail(); err != nil {
				return offset, rerr, err
			}
		}
		return a.st.partBytes + a.sp.n, rerr, nil
	}
}

// confirm checks that the multipart upload of the state exists (not aborted as a leftover or
// by Discard), when nothing this Append did has shown it, so that a partial blob that is gone
// is blob.ErrNotFound rather than a tail that leads nowhere.
func (a *appender) confirm() error {
	if a.st.uploadID == "" || a.confirmed {
		return nil
	}
	_, err := a.s.client.ListParts(a.ctx, &awss3.ListPartsInput{
		Bucket: aws.String(a.s.bucket), Key: a.k, UploadId: aws.String(a.st.uploadID), MaxParts: aws.Int32(1),
	})
	if err != nil {
		return a.s.uploadErr(err)
	}
	a.confirmed = true
	return nil
}

// uploadPart uploads the spool as the next part, creating the multipart upload first if the
// partial blob has none yet, and empties the spool.
func (a *appender) uploadPart() error {
	if a.st.parts >= a.s.partLimit {
		return fmt.Errorf("the partial blob has %d parts, S3's limit: a blob has at most %d parts", a.st.parts, a.s.partLimit)
	}
	if a.st.uploadID == "" {
		up, err := a.s.client.CreateMultipartUpload(a.ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String(a.s.bucket), Key: a.k})
		if err != nil {
			return err
		}
		a.st.uploadID, a.confirmed = aws.ToString(up.UploadId), true
	}
	if _, err := a.s.uploadPart(a.ctx, a.k, a.st.uploadID, a.st.parts+1, a.sp); err != nil {
		return err
	}
	a.confirmed = true
	a.st.parts++
	a.st.partBytes += a.sp.n
	a.sp.n = 0
	return nil
}

// putTail stores the spool as the tail that ends after it.
func (a *appender) putTail() error {
	if err := a.confirm(); err != nil {
		return err
	}
	_, err := a.s.client.PutObject(a.ctx, &awss3.PutObjectInput{
		Bucket:        aws.String(a.s.bucket),
		Key:           a.s.tailKey(a.key, a.st.partBytes+a.sp.n),
		Body:          a.sp.reader(),
		ContentLength: aws.Int64(a.sp.n),
	})
	return err
}

// uploadPart uploads the spool as part num. The body is a file section, so the SDK signs its
// SHA-256 and may retry.
func (s *Store) uploadPart(ctx context.Context, k *string, uploadID string, num int32, sp *spool) (*string, error) {
	out, err := s.client.UploadPart(ctx, &awss3.UploadPartInput{
		Bucket:        aws.String(s.bucket),
		Key:           k,
		UploadId:      aws.String(uploadID),
		PartNumber:    aws.Int32(num),
		Body:          sp.reader(),
		ContentLength: aws.Int64(sp.n),
	})
	if err != nil {
		return nil, s.uploadErr(err)
	}
	return out.ETag, nil
}

// uploadErr makes a multipart upload that is not there blob.ErrNotFound.
func (s *Store) uploadErr(err error) error {
	if isNoSuchUpload(err) {
		return fmt.Errorf("%w: the partial blob's multipart upload is gone: %v", blob.ErrNotFound, err)
	}
	return err
}

// getTail reads the tail of key that ends at end, of n bytes, into sp, and returns its ETag.
func (s *Store) getTail(ctx context.Context, key string, end, n int64, sp *spool) (*string, error) {
	out, err := s.client.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(s.bucket), Key: s.tailKey(key, end)})
	if err != nil {
		if err := s.mapErr("get tail of", key, err); errors.Is(err, blob.ErrNotFound) {
			return nil, fmt.Errorf("%w: the partial blob's tail ending at %d is gone", blob.ErrNotFound, end)
		}
		return nil, err
	}
	defer out.Body.Close()
	got, rerr, werr := sp.fill(out.Body, n+1)
	switch {
	case werr != nil:
		return nil, werr
	case rerr != nil:
		return nil, fmt.Errorf("reading the tail ending at %d: %w", end, rerr)
	case got != n:
		return nil, fmt.Errorf("the tail ending at %d holds %d bytes, the state says %d", end, got, n)
	}
	return out.ETag, nil
}

// Finish completes the multipart upload with parts 1..n of the state (ListParts, filtered: an
// Append whose result was lost may have left more), after uploading the tail as the last part;
// or, when the partial blob has no multipart upload (fewer than MinPartSize bytes), puts the
// tail (or nothing) under key. Either way conditionally (If-None-Match: *), as Put does. Then
// it removes the key's tails and any other multipart upload of the key (of lost Appends).
//
// A Finish whose result was not recorded is run again by the caller: when the partial blob is
// gone and key holds a blob of exactly size bytes (or, for a tail-only partial blob, one with
// the tail's ETag: the same bytes), that is the earlier Finish's work and Finish succeeds.
// Keys are fresh per upload, so a blob under key is one this upload made.
func (s *Store) Finish(ctx context.Context, key, state string, size int64) error {
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	st, err := parseState(state)
	if err != nil {
		return fmt.Errorf("blob/s3: finish %q: %w", key, err)
	}
	tail := size - st.partBytes
	if tail < 0 || tail >= MinPartSize {
		return fmt.Errorf("blob/s3: finish %q: size %d does not fit state %q", key, size, state)
	}
	sctx, cancel := detached(ctx)
	defer cancel()
	if st.uploadID == "" {
		err = s.finishSmall(sctx, key, k, size)
	} else {
		err = s.finishMultipart(sctx, key, k, st, tail)
	}
	if errors.Is(err, errPartialGone) {
		if got, serr := s.Size(sctx, key); serr != nil || got != size {
			return fmt.Errorf("%w: blob/s3: finish %q: %v", blob.ErrNotFound, key, err)
		}
		err = nil // finished before
	}
	if err != nil {
		if isPreconditionFailed(err) {
			return fmt.Errorf("%w: %q", blob.ErrExists, key)
		}
		return fmt.Errorf("blob/s3: finish %q: %w", key, err)
	}
	// The blob is complete: what is left of the partial blob goes. Should this fail, the
	// collector removes it as leftovers, whose key is no longer of an upload in flight.
	_ = s.removePartial(sctx, key, "")
	return nil
}

// errPartialGone says that the partial blob Finish was to complete is not there.
var errPartialGone = errors.New("the partial blob is gone")

// finishSmall puts the tail (size bytes, maybe none) under key.
func (s *Store) finishSmall(ctx context.Context, key string, k *string, size int64) error {
	sp, err := newSpool(s.spoolDir)
	if err != nil {
		return err
	}
	defer sp.close()
	var etag *string
	if size > 0 {
		etag, err = s.getTail(ctx, key, size, size, sp)
		if errors.Is(err, blob.ErrNotFound) {
			return errPartialGone
		}
		if err != nil {
			return err
		}
	}
	in := &awss3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           k,
		ContentLength: aws.Int64(size),
		IfNoneMatch:   aws.String("*"),
	}
	if size > 0 {
		in.Body = sp.reader()
	}
	_, err = s.client.PutObject(ctx, in)
	if err == nil || !isPreconditionFailed(err) {
		return err
	}
	// Key holds a blob: the earlier Finish's, if it has the same bytes.
	out, herr := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: k})
	if herr == nil && aws.ToInt64(out.ContentLength) == size && (size == 0 || etag != nil && aws.ToString(out.ETag) == aws.ToString(etag)) {
		return nil
	}
	return err
}

// finishMultipart uploads the tail as part n+1 and completes the upload with parts 1..n+1.
func (s *Store) finishMultipart(ctx context.Context, key string, k *string, st rstate, tail int64) error {
	parts, err := s.listParts(ctx, k, st)
	if err != nil {
		if isNoSuchUpload(err) {
			return errPartialGone
		}
		return err
	}
	if tail > 0 {
		if st.parts >= s.partLimit {
			return fmt.Errorf("the partial blob has %d parts, S3's limit: a blob has at most %d parts", st.parts, s.partLimit)
		}
		sp, err := newSpool(s.spoolDir)
		if err != nil {
			return err
		}
		defer sp.close()
		if _, err := s.getTail(ctx, key, st.partBytes+tail, tail, sp); err != nil {
			return err
		}
		etag, err := s.uploadPart(ctx, k, st.uploadID, st.parts+1, sp)
		if err != nil {
			return err
		}
		parts = append(parts, types.CompletedPart{ETag: etag, PartNumber: aws.Int32(st.parts + 1)})
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             k,
		UploadId:        aws.String(st.uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		IfNoneMatch:     aws.String("*"),
	})
	if isNoSuchUpload(err) {
		return errPartialGone
	}
	return err
}

// listParts returns parts 1..st.parts of the upload, checking that they are all there and hold
// st.partBytes bytes.
func (s *Store) listParts(ctx context.Context, k *string, st rstate) ([]types.CompletedPart, error) {
	parts := make([]types.CompletedPart, 0, st.parts+1)
	var total int64
	in := &awss3.ListPartsInput{Bucket: aws.String(s.bucket), Key: k, UploadId: aws.String(st.uploadID)}
	for {
		page, err := s.client.ListParts(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, p := range page.Parts {
			num := aws.ToInt32(p.PartNumber)
			if num < 1 || num > st.parts {
				continue // an Append whose result was lost made it
			}
			if num != int32(len(parts))+1 {
				return nil, fmt.Errorf("part %d listed after part %d", num, len(parts))
			}
			parts = append(parts, types.CompletedPart{ETag: p.ETag, PartNumber: p.PartNumber})
			total += aws.ToInt64(p.Size)
		}
		next := aws.ToString(page.NextPartNumberMarker)
		if !aws.ToBool(page.IsTruncated) || int32(len(parts)) == st.parts {
			break
		}
		if next == "" || next == aws.ToString(in.PartNumberMarker) {
			return nil, fmt.Errorf("list parts: the server gave no new marker after %q", next)
		}
		in.PartNumberMarker = aws.String(next)
	}
	if int32(len(parts)) != st.parts || total != st.partBytes {
		return nil, fmt.Errorf("the multipart upload has %d of parts 1..%d, %d bytes, the state says %d", len(parts), st.parts, total, st.partBytes)
	}
	return parts, nil
}

// Discard aborts the multipart upload of the state and any other of the key (of lost Appends),
// and deletes the key's tails.
func (s *Store) Discard(ctx context.Context, key, state string) error {
	if _, err := s.objectKey(key); err != nil {
		return err
	}
	sctx, cancel := detached(ctx)
	defer cancel()
	// A state that does not parse names no upload; the listing finds them all anyway.
	st, _ := parseState(state)
	if err := s.removePartial(sctx, key, st.uploadID); err != nil {
		return fmt.Errorf("blob/s3: discard %q: %w", key, err)
	}
	return nil
}

// removePartial aborts uploadID (if not "") and every multipart upload of key, and deletes the
// tails of key.
func (s *Store) removePartial(ctx context.Context, key, uploadID string) error {
	k := aws.String(s.prefix + key)
	var errs []error
	if uploadID != "" {
		errs = append(errs, s.abort(ctx, k, aws.String(uploadID)))
	}
	errs = append(errs, s.eachUpload(ctx, s.prefix+key, func(u types.MultipartUpload, k2 string) error {
		if k2 == *k {
			errs = append(errs, s.abort(ctx, k, u.UploadId))
		}
		return nil
	}))
	dir := s.prefix + PartialPrefix + key + "/"
	errs = append(errs, s.eachObject(ctx, dir, func(o types.Object, name string) error {
		if isDigits(strings.TrimPrefix(name, dir)) {
			errs = append(errs, s.deleteObject(ctx, aws.String(name)))
		}
		return nil
	}))
	return errors.Join(errs...)
}

// deleteObject deletes the object named k (a tail). One that is gone is not an error.
func (s *Store) deleteObject(ctx context.Context, k *string) error {
	_, err := s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: k})
	if err := s.mapErr("delete", *k, err); err != nil && !errors.Is(err, blob.ErrNotFound) {
		return err
	}
	return nil
}

// parseTail splits a tail's name under Prefix+PartialPrefix, "<key>/<end>", or reports false.
func parseTail(name string) (key string, ok bool) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 || !isDigits(name[i+1:]) || blob.CheckKey(name[:i]) != nil {
		return "", false
	}
	return name[:i], true
}

func isDigits(s string) bool {
	if s == "" || len(s) > 19 {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// spool is the temporary file an Append reads a part into before uploading it: S3 needs a
// part's length before its first byte, and a body's length is not known before it ends. It is
// unlinked as soon as it is created, so a crash leaves no file behind.
type spool struct {
	f *os.File
	n int64 // bytes in it
}

func newSpool(dir string) (*spool, error) {
	f, err := os.CreateTemp(dir, "blob-s3-part-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return &spool{f: f}, nil
}

func (sp *spool) close() { sp.f.Close() }

// fill reads r into the spool until it holds limit bytes or r ends. It returns how many bytes
// it read, r's error (nil at r's end) and the spool's write error.
func (sp *spool) fill(r io.Reader, limit int64) (n int64, rerr, werr error) {
	bufp := spoolBufs.Get().(*[]byte)
	defer spoolBufs.Put(bufp)
	for sp.n < limit {
		buf := *bufp
		if rest := limit - sp.n; rest < int64(len(buf)) {
			buf = buf[:rest]
		}
		m, err := r.Read(buf)
		if m > 0 {
			if _, werr := sp.f.WriteAt(buf[:m], sp.n); werr != nil {
				return n, nil, werr
			}
			sp.n += int64(m)
			n += int64(m)
		}
		if err == io.EOF {
			return n, nil, nil
		}
		if err != nil {
			return n, err, nil
		}
	}
	return n, nil, nil
}

// reader reads the spool's bytes, seekable for the SDK (signing, retries).
func (sp *spool) reader() io.ReadSeeker { return io.NewSectionReader(sp.f, 0, sp.n) }
