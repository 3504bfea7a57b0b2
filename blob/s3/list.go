package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/pgstorage/storage/blob"
)

// List pages through ListObjectsV2 under Prefix + prefix. S3 lists keys in UTF-8 binary order, which is
// byte order, and so does versitygw 1.8.0 (its POSIX backend sorts full keys, not directory by
// directory: "a-b" < "a/b" < "a0", checked by the suite). List does not take that on trust: a
// key that does not sort after the one before it fails the listing, so a server that
// disagrees, or one that repeats a page (see decodeKey), makes List fail instead of misleading
// a caller that merges it with sorted rows. Objects under Prefix whose remaining name is not a
// key blob.CheckKey accepts (a "folder" marker, another program's object, the tails of
// resumable uploads under PartialPrefix) are skipped: no Put can have written them. A prefix
// no object has costs one request.
func (s *Store) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	return s.eachObject(ctx, s.prefix+prefix, func(o types.Object, name string) error {
		key := strings.TrimPrefix(name, s.prefix)
		if blob.CheckKey(key) != nil {
			return nil
		}
		return fn(blob.Info{Key: key, Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)})
	})
}

// eachObject calls fn for each object whose name starts with prefix, in byte order of names
// (checked, see List), with the name decoded. It stops at fn's first error and returns it as is.
func (s *Store) eachObject(ctx context.Context, prefix string, fn func(o types.Object, name string) error) error {
	in := &awss3.ListObjectsV2Input{
		Bucket:       aws.String(s.bucket),
		EncodingType: types.EncodingTypeUrl,
	}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	if s.listPageSize > 0 {
		in.MaxKeys = aws.Int32(s.listPageSize)
	}
	pages := awss3.NewListObjectsV2Paginator(s.client, in)
	var last, token string
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("blob/s3: list: %w", err)
		}
		for _, o := range page.Contents {
			k, err := decodeKey(page.EncodingType, aws.ToString(o.Key))
			if err != nil {
				return fmt.Errorf("blob/s3: list: %w", err)
			}
			if last != "" && k <= last {
				return fmt.Errorf("blob/s3: list: the server listed %q after %q, out of byte order", k, last)
			}
			last = k
			if !strings.HasPrefix(k, prefix) {
				continue
			}
			if err := fn(o, k); err != nil {
				return err
			}
		}
		if aws.ToBool(page.IsTruncated) {
			next := aws.ToString(page.NextContinuationToken)
			if next == "" || next == token {
				return fmt.Errorf("blob/s3: list: the server gave no new continuation token after %q", last)
			}
			token = next
		}
	}
	return nil
}

// Leftovers pages through ListMultipartUploads under Prefix, then through the tails of
// resumable uploads (objects under Prefix+PartialPrefix). Every unfinished upload there is
// reported, whoever started it (a Put, a resumable upload, a blob.Multipart upload): the prefix
// is the store's own. An upload's Key is its key without Prefix, Started its Initiated time
// (the time of its last part would take a ListParts per upload: the caller keeps the uploads
// in flight by Key anyway), and ID encodes both upload id and key (see leftoverID). A tail's Key is the key of its upload, Started its LastModified, and ID its
// name under Prefix (PartialPrefix + key + "/" + end), which no upload's ID starts like.
func (s *Store) Leftovers(ctx context.Context, fn func(blob.Leftover) error) error {
	err := s.eachUpload(ctx, s.prefix, func(u types.MultipartUpload, k string) error {
		key := strings.TrimPrefix(k, s.prefix)
		return fn(blob.Leftover{ID: leftoverID(aws.ToString(u.UploadId), key), Key: key, Started: aws.ToTime(u.Initiated)})
	})
	if err != nil {
		return err
	}
	return s.eachObject(ctx, s.prefix+PartialPrefix, func(o types.Object, name string) error {
		id := strings.TrimPrefix(name, s.prefix)
		key, ok := parseTail(strings.TrimPrefix(id, PartialPrefix))
		if !ok {
			return nil
		}
		return fn(blob.Leftover{ID: id, Key: key, Started: aws.ToTime(o.LastModified)})
	})
}

// eachUpload calls fn for each multipart upload whose key starts with prefix, with the key
// decoded. It stops at fn's first error and returns it as is.
func (s *Store) eachUpload(ctx context.Context, prefix string, fn func(u types.MultipartUpload, key string) error) error {
	in := &awss3.ListMultipartUploadsInput{
		Bucket:       aws.String(s.bucket),
		EncodingType: types.EncodingTypeUrl,
	}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	if s.listPageSize > 0 {
		in.MaxUploads = aws.Int32(s.listPageSize)
	}
	// No SDK paginator: its duplicate-token check compares key markers only, which would
	// stop at a key with uploads on two pages, and without it a server that repeats its
	// markers would page forever.
	for {
		page, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil && in.UploadIdMarker != nil && hasCode(err, "InvalidArgument") {
			// versitygw 1.8.0 refuses the upload id marker it returned itself: it drops
			// KeyMarker's key, then looks for the upload among the next key's. Continue after
			// the key instead. A key's uploads past the page's end (only Puts racing for one
			// key make two) are missed by this pass then; S3 does not need this.
			in.UploadIdMarker = nil
			page, err = s.client.ListMultipartUploads(ctx, in)
		}
		if err != nil {
			return fmt.Errorf("blob/s3: leftovers: %w", err)
		}
		for _, u := range page.Uploads {
			k, err := decodeKey(page.EncodingType, aws.ToString(u.Key))
			if err != nil {
				return fmt.Errorf("blob/s3: leftovers: %w", err)
			}
			if !strings.HasPrefix(k, prefix) {
				continue
			}
			if err := fn(u, k); err != nil {
				return err
			}
		}
		if !aws.ToBool(page.IsTruncated) {
			return nil
		}
		if err := s.nextUploads(in, page); err != nil {
			return err
		}
	}
}

// nextUploads sets in's markers to continue after page, which is truncated, and fails unless
// they move forward.
func (s *Store) nextUploads(in *awss3.ListMultipartUploadsInput, page *awss3.ListMultipartUploadsOutput) error {
	// NextKeyMarker is a key, url-encoded like the others; NextUploadIdMarker is not.
	key, err := decodeKey(page.EncodingType, aws.ToString(page.NextKeyMarker))
	if err != nil {
		return fmt.Errorf("blob/s3: leftovers: %w", err)
	}
	id := aws.ToString(page.NextUploadIdMarker)
	if key == "" || key == aws.ToString(in.KeyMarker) && id == aws.ToString(in.UploadIdMarker) {
		return fmt.Errorf("blob/s3: leftovers: the server gave no new markers after key %q upload %q", key, id)
	}
	in.KeyMarker, in.UploadIdMarker = aws.String(key), nil
	if id != "" {
		in.UploadIdMarker = aws.String(id)
	}
	return nil
}

// RemoveLeftover aborts the multipart upload id names (see leftoverID), or deletes the tail it
// names (PartialPrefix + key + "/" + end), under Prefix: an id cannot reach outside the
// store's prefix. An upload that is gone already (NoSuchUpload), or a tail, is not an error.
func (s *Store) RemoveLeftover(ctx context.Context, id string) error {
	if rest, ok := strings.CutPrefix(id, PartialPrefix); ok {
		if _, ok := parseTail(rest); !ok {
			return fmt.Errorf("%w: leftover id %q is not a tail's name", blob.ErrInvalidKey, id)
		}
		if err := s.deleteObject(ctx, aws.String(s.prefix+id)); err != nil {
			return fmt.Errorf("blob/s3: remove leftover %q: %w", id, err)
		}
		return nil
	}
	uploadID, key, err := parseLeftoverID(id)
	if err != nil {
		return err
	}
	_, err = s.client.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{
		Bucket:   aws.String(s.bucket),
		Key:      aws.String(s.prefix + key),
		UploadId: aws.String(uploadID),
	})
	if err != nil && !isNoSuchUpload(err) {
		return fmt.Errorf("blob/s3: remove leftover %q: %w", id, err)
	}
	return nil
}

// leftoverID is the Leftover.ID of the upload uploadID of key (without Prefix): the upload id,
// path-escaped so that it holds no "/" (and a leading "." escaped too, so that no such id
// starts like a tail's, PartialPrefix), then "/" and the key. Aborting an upload takes both,
// and the first "/" tells them apart whatever either contains. Upload ids are usually plain
// (versitygw: a UUID), so the id reads as uploadID/key.
func leftoverID(uploadID, key string) string {
	esc := url.PathEscape(uploadID)
	if strings.HasPrefix(esc, ".") {
		esc = "%2E" + esc[1:]
	}
	return esc + "/" + key
}

// parseLeftoverID splits what leftoverID joined, or fails with blob.ErrInvalidKey.
func parseLeftoverID(id string) (uploadID, key string, err error) {
	esc, key, ok := strings.Cut(id, "/")
	if ok {
		uploadID, err = url.PathUnescape(esc)
	}
	if !ok || err != nil || uploadID == "" {
		return "", "", fmt.Errorf("%w: leftover id %q is not upload-id/key", blob.ErrInvalidKey, id)
	}
	return uploadID, key, nil
}

// decodeKey undoes the url encoding that List and Leftovers ask for (encoding-type=url) when
// the server says it applied it. Listings are XML, which cannot carry every character an
// object name may hold (blob.CheckKey refuses U+FFFE and U+FFFF, but other programs sharing
// the bucket may write them): AWS and MinIO encode names on request, so those round-trip.
// Servers that ignore the request (versitygw 1.8.0 does) send names as they are, and such a
// name comes back mangled (versitygw: as U+FFFD, and when a page ends on it the
// next page starts from the mangled name, which repeats it forever; List's order check stops
// that). Spaces are encoded as "+", as AWS does, so this is query unescaping.
func decodeKey(enc types.EncodingType, k string) (string, error) {
	if enc != types.EncodingTypeUrl {
		return k, nil
	}
	d, err := url.QueryUnescape(k)
	if err != nil {
		return "", fmt.Errorf("url-encoded key %q: %w", k, err)
	}
	return d, nil
}

// isNoSuchUpload recognizes S3's answer for an upload that is not (or no longer) there. A
// 404 with another error code (NoSuchBucket) is not it: a missing bucket is a configuration
// error, not a removed upload.
func isNoSuchUpload(err error) bool {
	var nsu *types.NoSuchUpload
	if errors.As(err, &nsu) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() != "" {
		return ae.ErrorCode() == "NoSuchUpload"
	}
	return hasStatus(err, http.StatusNotFound)
}

// hasCode reports whether err is S3's error with the given code.
func hasCode(err error, code string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}
