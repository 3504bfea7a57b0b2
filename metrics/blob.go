package metrics

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgstorage/storage/blob"
)

// Blobs returns s counting its calls, failures and their time under backend=name. Both
// backends implement blob.Resumable and blob.Multipart, which the TUS and S3 doors need: a
// store that does not is returned as is, uncounted, rather than hiding what it lacks; so is
// every store when metrics are Disabled.
func (r *Registry) Blobs(s blob.Store, name string) blob.Store {
	full, ok := s.(fullStore)
	if !ok || r.off {
		return s
	}
	c := &countedStore{inner: full, ops: map[string]blobOp{}}
	for _, op := range []string{"put", "get", "size", "delete", "list", "leftovers", "remove_leftover",
		"append", "finish", "discard", "create_multipart", "put_part", "copy_part", "complete_multipart", "abort_multipart"} {
		c.ops[op] = blobOp{calls: r.blobCalls.WithLabelValues(name, op), errors: r.blobErrors.WithLabelValues(name, op),
			duration: r.blobDuration.WithLabelValues(name, op)}
	}
	return c
}

type fullStore interface {
	blob.Store
	blob.Resumable
	blob.Multipart
}

type blobOp struct {
	calls, errors prometheus.Counter
	duration      prometheus.Observer
}

// countedStore is a fullStore that counts. The map is read-only after Blobs built it.
type countedStore struct {
	inner fullStore
	ops   map[string]blobOp
}

var (
	_ blob.Resumable = (*countedStore)(nil)
	_ blob.Multipart = (*countedStore)(nil)
)

// done records one call that started at start and ended with err.
func (c *countedStore) done(op string, start time.Time, err error) {
	o := c.ops[op]
	o.calls.Inc()
	o.duration.Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, blob.ErrNotFound) {
		o.errors.Inc()
	}
}

func (c *countedStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	start := time.Now()
	err := c.inner.Put(ctx, key, r, size)
	c.done("put", start, err)
	return err
}

func (c *countedStore) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := c.inner.Get(ctx, key, offset, length)
	c.done("get", start, err)
	return rc, err
}

func (c *countedStore) Size(ctx context.Context, key string) (int64, error) {
	start := time.Now()
	n, err := c.inner.Size(ctx, key)
	c.done("size", start, err)
	return n, err
}

func (c *countedStore) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := c.inner.Delete(ctx, key)
	c.done("delete", start, err)
	return err
}

func (c *countedStore) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	start := time.Now()
	err := c.inner.List(ctx, prefix, fn)
	c.done("list", start, err)
	return err
}

func (c *countedStore) Leftovers(ctx context.Context, fn func(blob.Leftover) error) error {
	start := time.Now()
	err := c.inner.Leftovers(ctx, fn)
	c.done("leftovers", start, err)
	return err
}

func (c *countedStore) RemoveLeftover(ctx context.Context, id string) error {
	start := time.Now()
	err := c.inner.RemoveLeftover(ctx, id)
	c.done("remove_leftover", start, err)
	return err
}

func (c *countedStore) Append(ctx context.Context, key, state string, offset int64, r io.Reader, size int64) (int64, string, error) {
	start := time.Now()
	n, st, err := c.inner.Append(ctx, key, state, offset, r, size)
	c.done("append", start, err)
	return n, st, err
}

func (c *countedStore) Finish(ctx context.Context, key, state string, size int64) error {
	start := time.Now()
	err := c.inner.Finish(ctx, key, state, size)
	c.done("finish", start, err)
	return err
}

func (c *countedStore) Discard(ctx context.Context, key, state string) error {
	start := time.Now()
	err := c.inner.Discard(ctx, key, state)
	c.done("discard", start, err)
	return err
}

func (c *countedStore) CreateMultipart(ctx context.Context, key string) (string, error) {
	start := time.Now()
	st, err := c.inner.CreateMultipart(ctx, key)
	c.done("create_multipart", start, err)
	return st, err
}

func (c *countedStore) PutPart(ctx context.Context, key, state string, n int, r io.Reader, size int64) (string, error) {
	start := time.Now()
	etag, err := c.inner.PutPart(ctx, key, state, n, r, size)
	c.done("put_part", start, err)
	return etag, err
}

func (c *countedStore) CopyPart(ctx context.Context, key, state string, n int, src string, offset, length int64) (string, error) {
	start := time.Now()
	etag, err := c.inner.CopyPart(ctx, key, state, n, src, offset, length)
	c.done("copy_part", start, err)
	return etag, err
}

func (c *countedStore) CompleteMultipart(ctx context.Context, key, state string, parts []blob.Part) error {
	start := time.Now()
	err := c.inner.CompleteMultipart(ctx, key, state, parts)
	c.done("complete_multipart", start, err)
	return err
}

func (c *countedStore) AbortMultipart(ctx context.Context, key, state string) error {
	start := time.Now()
	err := c.inner.AbortMultipart(ctx, key, state)
	c.done("abort_multipart", start, err)
	return err
}
