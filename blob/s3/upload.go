package s3

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// maxParts is S3's limit on the parts of one upload.
const maxParts = 10000

// headSize is how much of a body of unknown size upload reads before it takes a whole part
// buffer: most uploads are small, and those must not each pin PartSize of memory.
const headSize = 64 << 10

// abortTimeout bounds the clean-up of a failed multipart upload.
const abortTimeout = 30 * time.Second

// parts hands out part buffers. They are pooled store-wide, so a steady stream of uploads
// allocates next to nothing; each upload holds at most Concurrency of them at once.
type parts struct {
	pool sync.Pool
	head sync.Pool
}

func newParts(size int64) *parts {
	p := &parts{}
	p.pool.New = func() any { b := make([]byte, size); return &b }
	p.head.New = func() any { b := make([]byte, headSize); return &b }
	return p
}

// upload stores a body of unknown size, or of a size larger than one part. A body that ends
// within the first part goes out as one PutObject from memory; anything longer as a multipart
// upload whose parts are read into at most Concurrency buffers (PartSize each) while earlier
// parts are being sent. We do this ourselves rather than with the SDK's upload manager
// (feature/s3/manager, deprecated): the manager reads the first part into a growing slice and
// pools Concurrency+1 more buffers, about (Concurrency+3)×PartSize of allocation per upload,
// and aborts failed uploads with the request's context, which fails when that context was
// the reason for the failure.
func (s *Store) upload(ctx context.Context, k *string, body io.Reader, size int64) error {
	if size > s.partSize*maxParts {
		return fmt.Errorf("%d bytes need more than %d parts of %d bytes", size, maxParts, s.partSize)
	}
	headp := s.parts.head.Get().(*[]byte)
	n, err := io.ReadFull(body, *headp)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = s.putBuffered(ctx, k, (*headp)[:n])
		s.parts.head.Put(headp)
		return err
	}
	if err != nil {
		s.parts.head.Put(headp)
		return err
	}
	first := s.parts.pool.Get().(*[]byte)
	copy(*first, *headp)
	s.parts.head.Put(headp)
	m, err := io.ReadFull(body, (*first)[headSize:])
	n += m
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = s.putBuffered(ctx, k, (*first)[:n])
		s.parts.pool.Put(first)
		return err
	}
	if err != nil {
		s.parts.pool.Put(first)
		return err
	}
	return s.multipart(ctx, k, body, first)
}

// putBuffered sends a body held in memory. It is seekable, so the SDK signs its SHA-256 (the
// server checks it) and may retry.
func (s *Store) putBuffered(ctx context.Context, k *string, b []byte) error {
	_, err := s.client.PutObject(ctx, &awss3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           k,
		Body:          bytes.NewReader(b),
		ContentLength: aws.Int64(int64(len(b))),
		IfNoneMatch:   aws.String("*"),
	})
	return err
}

// multipart uploads first (a full part) and the rest of body as parts, then completes the
// upload with If-None-Match: *. On any failure it aborts the upload, on a context of its
// own: the request's context may be the thing that failed.
func (s *Store) multipart(ctx context.Context, k *string, body io.Reader, first *[]byte) (err error) {
	up, err := s.client.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{
		Bucket: aws.String(s.bucket),
		Key:    k,
	})
	if err != nil {
		s.parts.pool.Put(first)
		return err
	}
	defer func() {
		if err != nil {
			if aerr := s.abort(ctx, k, up.UploadId); aerr != nil {
				err = errors.Join(err, aerr)
			}
		}
	}()

	// Parts go out on their own goroutines; the first failure cancels the rest and stops
	// the reading. The upload owns at most Concurrency buffers: it takes new ones from the
	// store's pool until it has that many, then waits for a sent part's buffer to come back.
	// (Recycling only through the sync.Pool would not bound it: a buffer put back on one P is
	// invisible to Get on another, which then allocates.)
	uctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	free := make(chan *[]byte, s.concurrency)
	owned := 1
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		done  []types.CompletedPart
		buf   = first
		n     = len(*first)
		last  bool
		rerr  error
		count int32
	)
	defer func() {
		// Everything is back once the senders are done; hand it to the next upload.
		wg.Wait()
		for range len(free) {
			s.parts.pool.Put(<-free)
		}
	}()
	send := func(num int32, buf *[]byte, n int) {
		defer wg.Done()
		defer func() { free <- buf }()
		out, err := s.client.UploadPart(uctx, &awss3.UploadPartInput{
			Bucket:        aws.String(s.bucket),
			Key:           k,
			UploadId:      up.UploadId,
			PartNumber:    aws.Int32(num),
			Body:          bytes.NewReader((*buf)[:n]),
			ContentLength: aws.Int64(int64(n)),
		})
		if err != nil {
			cancel(fmt.Errorf("part %d: %w", num, err))
			return
		}
		mu.Lock()
		done = append(done, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
		mu.Unlock()
	}
	for {
		count++
		wg.Add(1)
		go send(count, buf, n)
		if last {
			break
		}
		buf = nil
		select {
		case buf = <-free:
		default:
			if owned < s.concurrency {
				owned++
				buf = s.parts.pool.Get().(*[]byte)
				break
			}
			select {
			case buf = <-free:
			case <-uctx.Done():
			}
		}
		if uctx.Err() != nil {
			// A part failed (or ctx ended): stop reading the body.
			if buf != nil {
				free <- buf
			}
			break
		}
		n, rerr = io.ReadFull(body, *buf)
		if rerr == io.ErrUnexpectedEOF {
			rerr, last = nil, true
		}
		if rerr == nil && count == maxParts {
			rerr = fmt.Errorf("body needs more than %d parts of %d bytes", maxParts, s.partSize)
		}
		if rerr != nil {
			// io.EOF: the previous part was the last, nothing more to send.
			if rerr == io.EOF {
				rerr = nil
			}
			free <- buf
			break
		}
	}
	wg.Wait()
	if rerr != nil {
		return rerr
	}
	if err := context.Cause(uctx); err != nil {
		return err
	}

	slices.SortFunc(done, func(a, b types.CompletedPart) int {
		return cmp.Compare(aws.ToInt32(a.PartNumber), aws.ToInt32(b.PartNumber))
	})
	_, err = s.client.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             k,
		UploadId:        up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
		IfNoneMatch:     aws.String("*"),
	})
	return err
}

// abort removes a failed upload's parts. NoSuchUpload means there is nothing to remove.
func (s *Store) abort(ctx context.Context, k, uploadID *string) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, err := s.client.AbortMultipartUpload(actx, &awss3.AbortMultipartUploadInput{
		Bucket:   aws.String(s.bucket),
		Key:      k,
		UploadId: uploadID,
	})
	if err == nil || isNoSuchUpload(err) {
		return nil
	}
	return fmt.Errorf("abort multipart upload %s: %w", aws.ToString(uploadID), err)
}
