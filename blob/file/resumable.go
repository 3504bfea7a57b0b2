package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/pgstorage/storage/blob"
)

// PartialDir is the directory under TempDir that holds the partial blobs of resumable uploads:
// key's partial blob is the file TempDir/PartialDir/key, "/" making subdirectories as under
// root. A tree rather than one escaped name per key because a key may be 1,024 bytes long and
// a file name only 255 (blob.CheckKey bounds each segment to that). Like root's, empty
// directories stay: with keys sharded like "ab/…" there are few, and removing them would race
// with an Append creating a partial blob in one.
const PartialDir = "partial"

// partialIDPrefix starts the Leftover.ID of a partial blob: "partial/<key>". Temporary files of
// Puts have ids "put-*" without a "/", so the two forms cannot be taken for each other.
const partialIDPrefix = PartialDir + "/"

var _ blob.Resumable = (*Store)(nil)

// partialPath returns the file that holds key's partial blob.
func (s *Store) partialPath(key string) (string, error) {
	if err := blob.CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.tmp, PartialDir, filepath.FromSlash(key)), nil
}

// Append writes r's bytes into key's partial blob at offset, truncating first whatever an
// unrecorded Append left beyond it, and fsyncs before it returns: the returned size is durable.
// The file store needs no state of its own (the file is the partial blob, its first offset
// bytes the recorded ones), so the state is always "".
func (s *Store) Append(ctx context.Context, key, state string, offset int64, r io.Reader, size int64) (_ int64, _ string, err error) {
	defer func() { err = diskError(err) }()
	p, err := s.partialPath(key)
	if err != nil {
		return offset, state, err
	}
	if offset < 0 || size < -1 {
		return offset, state, fmt.Errorf("blob/file: append %q: bad offset %d or size %d", key, offset, size)
	}
	if err := ctx.Err(); err != nil {
		return offset, state, fmt.Errorf("blob/file: append %q: %w", key, err)
	}
	f, err := s.openPartial(p, offset)
	if err != nil {
		return offset, state, fmt.Errorf("blob/file: append %q: %w", key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return offset, state, fmt.Errorf("blob/file: append %q: %w", key, err)
	}
	if fi.Size() < offset {
		// Durable bytes are missing: the file system lost what an fsync reported written.
		return offset, state, fmt.Errorf("blob/file: append %q: partial blob holds %d bytes, fewer than its recorded %d", key, fi.Size(), offset)
	}
	if fi.Size() > offset {
		if err := f.Truncate(offset); err != nil {
			return offset, state, fmt.Errorf("blob/file: append %q: %w", key, err)
		}
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return offset, state, fmt.Errorf("blob/file: append %q: %w", key, err)
	}

	src := r
	if size >= 0 {
		src = io.LimitReader(r, size)
	}
	w := &writeErr{w: f, f: f, off: offset}
	n, rerr := copyBody(w, blob.ContextReader(ctx, src))
	if w.err != nil {
		// The disk failed, not r: what was written may be torn, so none of it counts.
		return offset, state, fmt.Errorf("blob/file: append %q: %w", key, w.err)
	}
	// What was read is kept even when r failed: the caller records it and the client resumes
	// from there.
	if err := f.Sync(); err != nil {
		return offset, state, fmt.Errorf("blob/file: append %q: %w", key, err)
	}
	if rerr != nil {
		return offset + n, "", fmt.Errorf("blob/file: append %q: reading the body: %w", key, rerr)
	}
	return offset + n, "", nil
}

// openPartial opens the partial blob at p for writing. At offset 0 it is created if missing
// (and its directory entry made durable, so the fsync of its bytes is worth something);
// beyond, a missing one is blob.ErrNotFound: its upload was discarded, or removed as a
// leftover.
func (s *Store) openPartial(p string, offset int64) (*os.File, error) {
	if offset > 0 {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if isNotExist(err) {
			return nil, fmt.Errorf("%w: no partial blob", blob.ErrNotFound)
		}
		return f, err
	}
	dir := filepath.Dir(p)
	if err := s.mkdirs(dir); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// writeErr remembers a write error, so that Append can tell a failing disk from a failing
// body: copyBody returns either. When f is set it also starts the writeback of every
// writebackChunk written, so that the disk works while the body still arrives.
type writeErr struct {
	w   io.Writer
	err error

	f            *os.File
	off, pending int64 // where the bytes not yet handed to writeback start, and how many
}

// writebackChunk is how many bytes an Append writes before it starts their writeback.
const writebackChunk = 1 << 20

func (w *writeErr) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		w.err = err
	}
	if w.f != nil {
		if w.pending += int64(n); w.pending >= writebackChunk {
			startWriteback(w.f, w.off, w.pending)
			w.off, w.pending = w.off+w.pending, 0
		}
	}
	return n, err
}

// Finish cuts the partial blob to size bytes and links it under key, as Put links its
// temporary file (blob.ErrExists if key holds a blob), then removes the partial blob's name.
//
// A Finish whose result was not recorded (the server died) is run again by the caller: when
// the partial blob is already linked under key (the same file), or already gone while key
// holds a blob of exactly size bytes, that is the earlier Finish's work and Finish succeeds.
// Keys are fresh per upload, so a blob under key is one this upload made.
func (s *Store) Finish(ctx context.Context, key, state string, size int64) error {
	p, err := s.partialPath(key)
	if err != nil {
		return err
	}
	final, err := s.path(key)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("blob/file: finish %q: bad size %d", key, size)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if isNotExist(err) {
		if got, err := s.Size(ctx, key); err == nil && got == size {
			return nil
		}
		if size == 0 {
			// Nothing was ever appended: the empty blob.
			return s.Put(ctx, key, eofReader{}, 0)
		}
		return fmt.Errorf("%w: blob/file: finish %q: no partial blob", blob.ErrNotFound, key)
	}
	if err != nil {
		return fmt.Errorf("blob/file: finish %q: %w", key, err)
	}
	err = s.cut(f, size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("blob/file: finish %q: %w", key, err)
	}

	dir := filepath.Dir(final)
	if err := s.link(p, final); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("blob/file: finish %q: %w", key, err)
		}
		if !sameFile(p, final) {
			return fmt.Errorf("%w: %q", blob.ErrExists, key)
		}
	}
	if err := syncDir(dir); err != nil {
		// Unlike Put, leave the link: the partial blob stays too, and a retried Finish
		// recognizes its own link.
		return fmt.Errorf("blob/file: finish %q: %w", key, err)
	}
	// Should this removal not survive a crash, the name comes back as a second link to the
	// blob: a leftover whose removal leaves the blob whole.
	if err := os.Remove(p); err != nil && !isNotExist(err) {
		return fmt.Errorf("blob/file: finish %q: %w", key, err)
	}
	return nil
}

// cut truncates the partial blob to size (dropping what an unrecorded Append wrote past the
// recorded end) and makes that durable.
func (s *Store) cut(f *os.File, size int64) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	switch {
	case fi.Size() < size:
		return fmt.Errorf("partial blob holds %d bytes, fewer than its recorded %d", fi.Size(), size)
	case fi.Size() > size:
		if err := f.Truncate(size); err != nil {
			return err
		}
		return f.Sync()
	}
	return nil
}

func sameFile(a, b string) bool {
	fa, err := os.Lstat(a)
	if err != nil {
		return false
	}
	fb, err := os.Lstat(b)
	return err == nil && os.SameFile(fa, fb)
}

// Discard removes key's partial blob.
func (s *Store) Discard(ctx context.Context, key, state string) error {
	p, err := s.partialPath(key)
	if err != nil {
		return err
	}
	if err := removeFile(p); err != nil {
		return fmt.Errorf("blob/file: discard %q: %w", key, err)
	}
	return nil
}

// removeFile removes the regular file p; one that is gone, or is not a regular file (a
// directory of other partial blobs), is left alone.
func removeFile(p string) error {
	fi, err := os.Lstat(p)
	if isNotExist(err) || err == nil && !fi.Mode().IsRegular() {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !isNotExist(err) {
		return err
	}
	return nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
