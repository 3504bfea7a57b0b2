package blob

import (
	"context"
	"errors"
	"io"
)

// Store keeps immutable blobs under opaque keys. Keys are chosen by the caller, fresh for every
// write (the object's version id); a store never overwrites a blob. Every method refuses a key
// that CheckKey refuses, with ErrInvalidKey, so all backends accept the same keys.
// Implementations are safe for concurrent use and pass the suite in blob/blobtest.
type Store interface {
	// Put streams r into a new blob under key. size is the exact length when known, else -1.
	// The blob becomes visible under key only once it is complete and durable (file: written
	// to a temporary file, fsynced, linked under key, directory fsynced; S3: a completed
	// upload). If Put fails (including when r returns an error, e.g. a size limit), nothing
	// remains under key, and the error wraps r's so the caller can tell why. A size that r
	// does not match exactly fails the Put. If key already holds a blob, Put fails with
	// ErrExists and leaves it as is. Put does not read r after it returns.
	Put(ctx context.Context, key string, r io.Reader, size int64) error

	// Get opens the blob for reading from offset; length is the number of bytes wanted, or -1
	// for the rest. The caller checks ranges against the blob's size beforehand. The returned
	// reader must be closed. The file backend returns an *os.File for whole-blob reads so the
	// HTTP server can use sendfile.
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)

	// Size returns the size of the blob, or ErrNotFound.
	Size(ctx context.Context, key string) (int64, error)

	// Delete removes the blob. A blob that is already gone is not an error (idempotent).
	Delete(ctx context.Context, key string) error
}

// ErrNotFound is returned by Get and Size for a key that holds no blob.
var ErrNotFound = errors.New("blob: not found")

// ErrInvalidKey is returned for a key the store refuses (empty, NUL, "..", absolute paths…).
var ErrInvalidKey = errors.New("blob: invalid key")

// ContextReader returns a reader that fails with ctx's error once ctx is done, so a Put stops
// reading (and discards what it wrote) when its caller gives up, even while the body it reads
// still has bytes.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
