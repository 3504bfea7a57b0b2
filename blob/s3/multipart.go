package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/pgstorage/storage/blob"
)

// A blob.Multipart upload is a native multipart upload of the blob's object (Prefix + key) in
// the backing bucket, whose upload id is the state. Parts stream straight to S3, and completing
// joins them there: no byte passes through this server twice. Leftovers reports the unfinished
// uploads, with their keys.

var _ blob.Multipart = (*Store)(nil)

// CreateMultipart starts a multipart upload of key's object and returns its upload id.
func (s *Store) CreateMultipart(ctx context.Context, key string) (string, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return "", err
	}
	out, err := s.client.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: aws.String(s.bucket), Key: k})
	if err != nil {
		return "", fmt.Errorf("blob/s3: create multipart %q: %w", key, err)
	}
	id := aws.ToString(out.UploadId)
	if id == "" {
		return "", fmt.Errorf("blob/s3: create multipart %q: the server returned no upload id", key)
	}
	return id, nil
}

// uploadID checks a state: the upload id. "" names no upload (blob.ErrNotFound).
func uploadID(state string) (*string, error) {
	if state == "" {
		return nil, fmt.Errorf("%w: no multipart upload (empty upload id)", blob.ErrNotFound)
	}
	return aws.String(state), nil
}

// PutPart streams r to UploadPart as putObject streams a Put: with its length, unsigned, not
// retried, holding its last byte back until r has ended where size says (so that a longer body
// fails before the server has the part), nothing buffered. A body that fails midway resets the
// connection (see abortiveClose): the server drops the part and keeps the earlier one.
func (s *Store) PutPart(ctx context.Context, key, state string, n int, r io.Reader, size int64) (string, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return "", err
	}
	if err := blob.CheckPartNumber(n); err != nil {
		return "", err
	}
	if size < 0 || size > MaxPartSize {
		return "", fmt.Errorf("blob/s3: put part %d of %q: size %d is outside [0, %d]", n, key, size, int64(MaxPartSize))
	}
	id, err := uploadID(state)
	if err != nil {
		return "", fmt.Errorf("blob/s3: put part %d of %q: %w", n, key, err)
	}
	g := &bodyGuard{r: &exactReader{r: blob.ContextReader(ctx, r), remaining: size}}
	in := &awss3.UploadPartInput{
		Bucket:        aws.String(s.bucket),
		Key:           k,
		UploadId:      id,
		PartNumber:    aws.Int32(int32(n)),
		ContentLength: aws.Int64(size),
		Body:          g,
	}
	var out *awss3.UploadPartOutput
	if size == 0 {
		// No body at all, as in putObject (net/http would send an empty one chunked).
		in.Body = nil
		if err = expectEOF(g); err == nil {
			out, err = s.client.UploadPart(ctx, in)
		}
	} else {
		out, err = s.client.UploadPart(ctx, in, unsignedStream)
	}
	readErr := g.close()
	if err != nil {
		if readErr != nil {
			return "", fmt.Errorf("blob/s3: put part %d of %q: reading the body: %w", n, key, readErr)
		}
		return "", s.multipartErr(fmt.Sprintf("put part %d of", n), key, err)
	}
	return trimETag(out.ETag), nil
}

// CopyPart copies the range with UploadPartCopy, server-side. S3 cannot copy an empty range
// (no Range header asks for zero bytes): then it checks that src holds a blob and puts an
// empty part.
func (s *Store) CopyPart(ctx context.Context, key, state string, n int, src string, offset, length int64) (string, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return "", err
	}
	srcK, err := s.objectKey(src)
	if err != nil {
		return "", err
	}
	if err := blob.CheckPartNumber(n); err != nil {
		return "", err
	}
	if offset < 0 || length < 0 || length > MaxPartSize {
		return "", fmt.Errorf("blob/s3: copy part %d of %q: bad range offset %d length %d", n, key, offset, length)
	}
	id, err := uploadID(state)
	if err != nil {
		return "", fmt.Errorf("blob/s3: copy part %d of %q: %w", n, key, err)
	}
	if length == 0 {
		if _, err := s.Size(ctx, src); err != nil {
			return "", err
		}
		return s.PutPart(ctx, key, state, n, eofReader{}, 0)
	}
	out, err := s.client.UploadPartCopy(ctx, &awss3.UploadPartCopyInput{
		Bucket:          aws.String(s.bucket),
		Key:             k,
		UploadId:        id,
		PartNumber:      aws.Int32(int32(n)),
		CopySource:      aws.String(copySource(s.bucket, *srcK)),
		CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1)),
	})
	if err != nil {
		if hasCode(err, "NoSuchKey") {
			return "", fmt.Errorf("%w: %q", blob.ErrNotFound, src)
		}
		return "", s.multipartErr(fmt.Sprintf("copy part %d of", n), key, err)
	}
	if out.CopyPartResult == nil {
		return "", fmt.Errorf("blob/s3: copy part %d of %q: the server returned no result", n, key)
	}
	return trimETag(out.CopyPartResult.ETag), nil
}

// CompleteMultipart completes the upload natively, conditionally on no object being under key
// (If-None-Match: *, as Put and Finish). The service checks that condition only while it has
// the upload, and versitygw answers a completion of an upload that is gone with success when
// the key holds an object (it takes it for a completion run twice): so CompleteMultipart looks
// for an object first, and says blob.ErrExists, as the file store does. Like Finish, it goes on
// for a grace period once ctx is done, so that a completion S3 has begun is not left with an
// unknown outcome.
func (s *Store) CompleteMultipart(ctx context.Context, key, state string, parts []blob.Part) error {
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	if err := blob.CheckParts(parts); err != nil {
		return fmt.Errorf("blob/s3: complete %q: %w", key, err)
	}
	id, err := uploadID(state)
	if err != nil {
		return fmt.Errorf("blob/s3: complete %q: %w", key, err)
	}
	sctx, cancel := detached(ctx)
	defer cancel()
	if _, err := s.Size(sctx, key); err == nil {
		return fmt.Errorf("%w: %q", blob.ErrExists, key)
	} else if !errors.Is(err, blob.ErrNotFound) {
		return fmt.Errorf("blob/s3: complete %q: %w", key, err)
	}
	completed := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		// Quoted, as S3 returned it and as AWS's own clients send it back.
		completed[i] = types.CompletedPart{PartNumber: aws.Int32(int32(p.Number)), ETag: aws.String(`"` + strings.Trim(p.ETag, `"`) + `"`)}
	}
	_, err = s.client.CompleteMultipartUpload(sctx, &awss3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             k,
		UploadId:        id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
		IfNoneMatch:     aws.String("*"),
	})
	switch {
	case err == nil:
		return nil
	case isPreconditionFailed(err):
		return fmt.Errorf("%w: %q", blob.ErrExists, key)
	case hasCode(err, "InvalidPart"), hasCode(err, "InvalidPartOrder"):
		return fmt.Errorf("%w: blob/s3: complete %q: %v", blob.ErrInvalidPart, key, err)
	case hasCode(err, "EntityTooSmall"):
		return fmt.Errorf("%w: blob/s3: complete %q: %v", blob.ErrPartTooSmall, key, err)
	}
	return s.multipartErr("complete", key, err)
}

// AbortMultipart aborts the upload. One that is gone (NoSuchUpload), or state "", is no error.
func (s *Store) AbortMultipart(ctx context.Context, key, state string) error {
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	if state == "" {
		return nil
	}
	if err := s.abort(ctx, k, aws.String(state)); err != nil {
		return fmt.Errorf("blob/s3: abort multipart %q: %w", key, err)
	}
	return nil
}

// multipartErr makes an upload that is not there blob.ErrNotFound.
func (s *Store) multipartErr(op, key string, err error) error {
	if isNoSuchUpload(err) {
		return fmt.Errorf("%w: blob/s3: %s %q: no multipart upload: %v", blob.ErrNotFound, op, key, err)
	}
	return fmt.Errorf("blob/s3: %s %q: %w", op, key, err)
}

// trimETag returns an ETag without the double quotes S3 puts around it.
func trimETag(etag *string) string { return strings.Trim(aws.ToString(etag), `"`) }

// copySource is the x-amz-copy-source naming the object name in bucket: percent-encoded but for
// unreserved characters and "/", so that a server reads the name back whether it unescapes the
// header as a path or as a query (versitygw does the latter: a bare "+" would become a space).
func copySource(bucket, name string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for _, c := range []byte(bucket + "/" + name) {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
