package blob

import (
	"context"
	"errors"
	"io"
	"time"
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

	// List calls fn for every blob, in ascending byte-wise order of keys (strings.Compare;
	// S3's listing order), so that a caller can merge the listing with rows sorted the same
	// way without holding either in memory. It stops at fn's first error and returns that
	// error as is. Only blobs are listed: not leftovers, and not whatever else lies in the
	// store's place under a name that is no key (CheckKey refuses it), which no Put can have
	// written. Blobs put or deleted while List runs may or may not be seen. fn may Delete the
	// blob it is given.
	List(ctx context.Context, fn func(Info) error) error

	// Leftovers calls fn for each leftover of an interrupted Put, whatever its age: a Put still
	// in progress has one too, so the caller decides by Started which are stale. It stops at
	// fn's first error and returns that error as is. fn may RemoveLeftover the leftover it is
	// given.
	Leftovers(ctx context.Context, fn func(Leftover) error) error

	// RemoveLeftover deletes the leftover whose Leftover.ID is id. One that is already gone is
	// not an error. Removing the leftover of a Put still in progress fails that Put, unless it
	// is already making its blob visible; either way, a complete blob is never harmed. An id
	// that no leftover of this store can have is refused with an error wrapping ErrInvalidKey.
	RemoveLeftover(ctx context.Context, id string) error
}

// Info describes one stored blob, as List reports it.
type Info struct {
	Key  string
	Size int64 // in bytes
	// Modified is when the blob was written: the file's modification time, the S3 object's
	// LastModified.
	Modified time.Time
}

// Leftover is what a Put that never finished (a crash, a killed process) left behind: in the
// file store a temporary file under root/.tmp, in S3 an unfinished multipart upload. It never
// shows under a key and nothing references it, but it takes space until removed.
type Leftover struct {
	// ID names the leftover to RemoveLeftover. It is opaque; its form is the store's own.
	ID string
	// Key is the key the Put was writing, when the store knows it: "" for the file store,
	// whose temporary files do not record it.
	Key string
	// Started is when the Put began, as near as the store can tell. The file store takes the
	// temporary file's modification time, which is that of its last write: a Put that is
	// still streaming keeps looking fresh.
	Started time.Time
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

// Resumable is implemented by stores that can build a blob from pieces appended by many
// requests, on any server, over hours (resumable uploads, TUS). Between requests the caller
// keeps each partial blob's progress itself, in the database: its durable size and the
// opaque state the last Append returned. The caller runs at most one Append, Finish or
// Discard at a time per key (it holds a lock), but a server may die at any instant: an
// Append whose result was never recorded must leave the partial blob as the recorded
// (offset, state) describes it, so that the next Append from there is correct.
//
// A partial blob is not a blob: Get, Size and List do not see it. Leftovers reports it (with
// Key set, and Started the time of its last write as near as the store can tell) so that the
// collector removes those of uploads the database no longer has in flight.
type Resumable interface {
	// Append adds r's bytes after the first offset bytes of key's partial blob, whose state
	// is the one returned by the Append that reached offset ("" for offset 0: the partial
	// blob is created). size is r's length when known, else -1 (r may still end early).
	// Bytes an unrecorded Append left beyond offset are overwritten or ignored.
	//
	// It returns the partial blob's new durable size and state. When r fails (a client gone,
	// a size limit), Append still makes durable everything it read from r and returns that
	// size and state with r's error (wrapped), so that the caller can record the progress.
	// When the store itself fails, it returns offset and the given state with the error: the
	// recorded progress stays valid. ctx ends the Append like a failing r would.
	Append(ctx context.Context, key, state string, offset int64, r io.Reader, size int64) (int64, string, error)

	// Finish makes the partial blob of size bytes (and state) visible under key, as Put
	// would: complete and durable, never overwriting (ErrExists). The partial blob is gone
	// afterwards. size 0 with state "" makes an empty blob.
	Finish(ctx context.Context, key, state string, size int64) error

	// Discard removes key's partial blob (state as last recorded). One already gone is not
	// an error.
	Discard(ctx context.Context, key, state string) error
}
