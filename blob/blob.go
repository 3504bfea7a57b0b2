package blob

import (
	"context"
	"errors"
	"fmt"
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

	// List calls fn for every blob whose key starts with prefix ("" for all), in ascending
	// byte-wise order of keys (strings.Compare; S3's listing order), so that a caller can
	// merge the listing with rows sorted the same way without holding either in memory. A
	// prefix is plain text, not a pattern: "ab/" lists the keys under ab/, "ab/c" those
	// under ab/ whose next segment starts with c. A prefix no key has lists nothing, and
	// cheaply (the collector lists VariantPrefix once per blob it frees): the file store
	// reads only the directory the prefix names. It stops at fn's first error and returns
	// that error as is. Only blobs are listed: not leftovers, and not whatever else lies in
	// the store's place under a name that is no key (CheckKey refuses it), which no Put can
	// have written. Blobs put or deleted while List runs may or may not be seen. fn may
	// Delete the blob it is given.
	List(ctx context.Context, prefix string, fn func(Info) error) error

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
	// Key is the key the write was for, when the store knows it: "" for the file store's
	// temporary files of Puts, which do not record it; set for the pieces of resumable and
	// multipart uploads.
	Key string
	// Started is when the Put began, as near as the store can tell. The file store takes the
	// temporary file's modification time, which is that of its last write: a Put that is
	// still streaming keeps looking fresh.
	Started time.Time
}

// ErrNotFound is returned by Get and Size for a key that holds no blob, and by the methods of
// Resumable and Multipart for an upload that is gone (discarded, aborted, completed, or removed
// as a leftover).
var ErrNotFound = errors.New("blob: not found")

// ErrInvalidKey is returned for a key the store refuses (empty, NUL, "..", absolute paths…).
var ErrInvalidKey = errors.New("blob: invalid key")

// ErrUnavailable marks the errors of a store that cannot serve at the moment: its service is
// unreachable or failing (S3: no connection, a 5xx answer), or its disk is full or read-only.
// The servers answer them with 503 and Retry-After, not 500. It is never returned alone: test
// with errors.Is; the error also wraps the cause.
var ErrUnavailable = errors.New("blob: store unavailable")

// Unavailable marks err (nil stays nil) as ErrUnavailable, keeping it in the chain.
func Unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	return unavailableError{err}
}

type unavailableError struct{ error }

func (e unavailableError) Unwrap() []error { return []error{e.error, ErrUnavailable} }

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

// Multipart is implemented by stores that can build a blob from numbered parts uploaded
// independently: in any order, concurrently, by many servers, over hours (S3 multipart
// uploads). The caller keeps the upload's state and its parts (number, etag, size) in the
// database. A multipart upload is not a blob: Get, Size and List do not see it until
// CompleteMultipart; Leftovers reports its pieces (Key set, Started = last write as near as the
// store can tell), so that the collector removes those of uploads the database no longer has.
//
// Unlike Resumable, the caller need not serialise calls per key: parts of one upload may be
// put at the same time (the caller orders CompleteMultipart and AbortMultipart after them).
// Every method refuses a key that CheckKey refuses, with ErrInvalidKey, and answers an upload
// that is gone (aborted, completed, removed as a leftover) with ErrNotFound.
type Multipart interface {
	// CreateMultipart begins a multipart upload that will become the blob under key and
	// returns its opaque state ("" is allowed: the file store needs none).
	CreateMultipart(ctx context.Context, key string) (state string, err error)
	// PutPart streams r, exactly size bytes (size >= 0, known), as part number n (1..10000) of
	// key's upload, replacing any earlier part n (last writer wins). It returns the part's
	// store ETag, opaque, to be given back to CompleteMultipart. The part is durable when
	// PutPart returns. r failing (or ctx ending) fails the PutPart and leaves no part n, or the
	// earlier part n intact. Memory stays bounded (no whole part in memory: spool to disk like
	// Resumable does for S3 when the SDK needs a seekable body, or stream with a known length).
	//
	// Both stores return the hex MD5 of the part's bytes, without the double quotes an HTTP
	// ETag header puts around it (an S3 service that encrypts with KMS returns something else:
	// still a valid ETag to give back, but no MD5).
	PutPart(ctx context.Context, key, state string, n int, r io.Reader, size int64) (etag string, err error)
	// CopyPart is PutPart from a range of an existing blob (S3's UploadPartCopy): length
	// bytes of src from offset. Stores may copy server-side (S3: UploadPartCopy). A src that
	// holds no blob is ErrNotFound; the caller checks the range against src's size beforehand
	// (a range past its end fails).
	CopyPart(ctx context.Context, key, state string, n int, src string, offset, length int64) (etag string, err error)
	// CompleteMultipart makes the blob under key from parts (ascending Number, each with the
	// ETag its PutPart/CopyPart returned), as Put would: complete and durable, visible at once,
	// never overwriting (ErrExists). Afterwards the upload's pieces are gone. The S3 store
	// completes natively (no byte copied); the file store assembles the part files once into
	// the blob (temp file, fsync, link, directory fsync, as Put). A part that is missing or
	// whose ETag differs → ErrInvalidPart (new error value). The caller has checked sizes
	// (S3's 5 MiB minimum for every part but the last): the store does not need to.
	//
	// parts that CheckParts refuses are ErrInvalidPart too, before the store is asked. A part
	// S3 finds too small is ErrPartTooSmall. After ErrInvalidPart, ErrPartTooSmall or
	// ErrExists the upload stays as it was, for the caller to complete with other parts or to
	// abort. ErrExists is checked first, so a CompleteMultipart run again after one whose
	// result was not recorded says ErrExists (keys being fresh per upload, that blob is the
	// earlier run's); an upload that is gone is ErrNotFound.
	CompleteMultipart(ctx context.Context, key, state string, parts []Part) error
	// AbortMultipart removes the upload's pieces. One already gone is not an error.
	AbortMultipart(ctx context.Context, key, state string) error
}

// Part is one part of a multipart upload, as CompleteMultipart takes it.
type Part struct {
	Number int
	// ETag is what PutPart or CopyPart returned for the part. Double quotes around it (as
	// S3 clients send ETags back) are ignored.
	ETag string
}

// MaxPartNumber is the highest part number of a multipart upload (S3's limit): parts are
// numbered 1..MaxPartNumber.
const MaxPartNumber = 10000

// ErrInvalidPart is returned by CompleteMultipart when a listed part is missing, its ETag is
// not the part's, or the list itself is not one CheckParts accepts.
var ErrInvalidPart = errors.New("blob: invalid part")

// ErrPartTooSmall is returned by CompleteMultipart when the backing store refuses a part other
// than the last for being smaller than its minimum (S3: 5 MiB). Callers check sizes first; this
// is the safety net.
var ErrPartTooSmall = errors.New("blob: part too small")

// CheckParts returns nil if CompleteMultipart can take parts, else an error wrapping
// ErrInvalidPart: at least one part, numbers within 1..MaxPartNumber, strictly ascending (S3
// refuses any other order, so the file store does too, and both stores answer alike).
func CheckParts(parts []Part) error {
	if len(parts) == 0 {
		return fmt.Errorf("%w: no parts", ErrInvalidPart)
	}
	prev := 0
	for _, p := range parts {
		switch {
		case p.Number < 1 || p.Number > MaxPartNumber:
			return fmt.Errorf("%w: part number %d is outside 1..%d", ErrInvalidPart, p.Number, MaxPartNumber)
		case p.Number <= prev:
			return fmt.Errorf("%w: part %d listed after part %d: parts must be in ascending order", ErrInvalidPart, p.Number, prev)
		}
		prev = p.Number
	}
	return nil
}

// CheckPartNumber returns nil if n is a part number PutPart and CopyPart take (1..MaxPartNumber).
func CheckPartNumber(n int) error {
	if n < 1 || n > MaxPartNumber {
		return fmt.Errorf("blob: part number %d is outside 1..%d", n, MaxPartNumber)
	}
	return nil
}
