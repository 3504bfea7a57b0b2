package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/pgstorage/storage/blob"
)

// TempDir is the directory under root that holds in-progress uploads: every Put writes a
// temporary file here (named put-*) and links it under its key only once it is complete and
// fsynced. A file that stays here is the leftover of a Put cut short by a crash; nothing
// references it, and the `reconcile` command deletes the stale ones (by age: a young one may be
// an upload in progress). Deleting a leftover never harms a stored blob, even when it is a
// second link to one (a crash between linking and removing the temporary name). Keys cannot
// reach it: blob.CheckKey refuses segments that start with a dot.
const TempDir = ".tmp"

// Store keeps each blob in its own file, root/key. It is safe for concurrent use.
type Store struct {
	root string // absolute and clean, so joined paths stay comparable to it
	tmp  string // root/TempDir
}

var _ blob.Store = (*Store)(nil)

// New opens (creating if needed) a store rooted at root.
func New(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("blob/file: %w", err)
	}
	s := &Store{root: abs, tmp: filepath.Join(abs, TempDir)}
	// Missing parents are made traversable (0755): the data dir that holds the blobs may also
	// hold the embedded PostgreSQL cluster, which another OS user must reach. The blobs
	// themselves are users' private data: only the server's own user may read them.
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, fmt.Errorf("blob/file: %w", err)
	}
	if err := os.MkdirAll(s.tmp, 0o700); err != nil {
		return nil, fmt.Errorf("blob/file: %w", err)
	}
	return s, nil
}

// Root returns the store's absolute root directory.
func (s *Store) Root() string { return s.root }

// path returns the file that holds key, or an error wrapping blob.ErrInvalidKey. blob.CheckKey
// rules out everything that could climb out of root ("..", absolute paths, NUL, backslashes),
// so the join cannot escape.
func (s *Store) path(key string) (string, error) {
	if err := blob.CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// copyBufs holds copy buffers: larger than io.Copy's 32 KiB (fewer syscalls on big uploads) and
// reused, so a Put allocates next to nothing however large the blob. A Put holds one only
// while bytes are waiting to be read (see copyBody); waitBufs are for waiting on the rest.
var (
	copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}
	waitBufs = sync.Pool{New: func() any { b := make([]byte, waitBufSize); return &b }}
)

// waitBufSize is the small buffer's size: deliberately not a power of two, so that a client
// writing power-of-two chunks (16 KiB, 64 KiB) fills it only when more than a chunk has
// arrived, and the large read after it finds bytes instead of waiting for the next chunk.
const waitBufSize = 20000

// copyBody copies r to w. A Put's reader is often a client's upload, which may pause (or
// stall until the server's idle timeout drops it): a read that waits holds its buffer all the
// while, so copyBody waits with a small buffer and takes a large one only while reads fill
// what they are given, going back to the small one as soon as a read comes back short (the
// client's bytes ran out, the next read may wait). Each read's bytes are written at once,
// except that a full small buffer is carried into the large one before it is written. A
// client whose pauses fall exactly where reads end can still make a read wait with the large
// buffer: the cap on uploads in progress and the idle timeout bound that.
func copyBody(w io.Writer, r io.Reader) (int64, error) {
	smallp := waitBufs.Get().(*[]byte)
	defer waitBufs.Put(smallp)
	var bigp *[]byte
	defer func() {
		if bigp != nil {
			copyBufs.Put(bigp)
		}
	}()
	buf, filled, written := *smallp, 0, int64(0)
	for {
		n, rerr := r.Read(buf[filled:])
		short := filled+n < len(buf)
		filled += n
		if bigp == nil && !short && rerr == nil {
			// Bytes are waiting: read on into a large buffer, after the small one's bytes.
			bigp = copyBufs.Get().(*[]byte)
			buf = append((*bigp)[:0], buf...)[:len(*bigp)]
			continue
		}
		if filled > 0 {
			if _, err := w.Write(buf[:filled]); err != nil {
				return written, err
			}
			written += int64(filled)
			filled = 0
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
		if short && bigp != nil {
			copyBufs.Put(bigp)
			bigp, buf = nil, *smallp
		}
	}
}

// Put writes r to a temporary file, fsyncs it, and hard-links it under key. os.Link fails
// with EEXIST instead of replacing an existing file, so two Puts racing for one key cannot
// clobber each other: exactly one wins, the other gets blob.ErrExists.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	final, err := s.path(key)
	if err != nil {
		return err
	}
	return s.commit("put", key, final, func(f *os.File) error {
		src := r
		if size >= 0 {
			// One byte more than promised is enough to tell that the reader is too long,
			// without reading (and storing) an unbounded excess.
			src = io.LimitReader(r, size+1)
		}
		n, err := copyBody(f, blob.ContextReader(ctx, src))
		if err != nil {
			return err
		}
		if size >= 0 && n != size {
			return fmt.Errorf("reader yielded %s bytes, size says %d", countString(n, size), size)
		}
		return nil
	})
}

// commit makes a new blob under key (whose file is final): write fills a temporary file in
// TempDir, which is then fsynced and hard-linked under key, and the link's directory fsynced.
// Put and CompleteMultipart share it, so a blob becomes visible one way only.
func (s *Store) commit(op, key, final string, write func(f *os.File) error) (err error) {
	defer func() { err = diskError(err) }()
	// Cheap early refusal so a duplicate does not cost a whole upload; the link below is
	// the authoritative check.
	if _, err := os.Lstat(final); err == nil {
		return fmt.Errorf("%w: %q", blob.ErrExists, key)
	}

	f, err := os.CreateTemp(s.tmp, leftoverPrefix+"*")
	if err != nil {
		return fmt.Errorf("blob/file: %w", err)
	}
	tmp := f.Name()
	// The temporary name goes in every case: on failure it is the only copy, on success the
	// blob lives on under its key's link.
	defer func() {
		if f != nil {
			f.Close()
		}
		os.Remove(tmp)
	}()

	if err := write(f); err != nil {
		return fmt.Errorf("blob/file: %s %q: %w", op, key, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("blob/file: %s %q: %w", op, key, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("blob/file: %s %q: %w", op, key, err)
	}

	dir := filepath.Dir(final)
	if err := s.link(tmp, final); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %q", blob.ErrExists, key)
		}
		return fmt.Errorf("blob/file: %s %q: %w", op, key, err)
	}
	// The new directory entry is durable only once its directory is fsynced. If that fails,
	// take the blob back out: Put must not leave a blob under key when it reports failure.
	if err := syncDir(dir); err != nil {
		os.Remove(final)
		return fmt.Errorf("blob/file: %s %q: %w", op, key, err)
	}
	return nil
}

// diskError marks err as blob.ErrUnavailable when the file system refused to store bytes: it is
// full (ENOSPC, EDQUOT) or read-only (EROFS). That is the operator's to fix, not the client's
// fault nor a bug, and a retry after the fix succeeds.
func diskError(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EROFS) {
		return blob.Unavailable(err)
	}
	return err
}

// link makes final's directory (and its parents) and hard-links tmp there, for Put and
// Finish. Delete removes a variant's directory once empty, which may happen between the two
// steps: the link then finds no directory, and link makes it again. Each retry follows a
// Delete that emptied the directory again, so ten are plenty; the bound only keeps a broken
// file system from looping.
func (s *Store) link(tmp, final string) error {
	dir := filepath.Dir(final)
	for attempt := 0; ; attempt++ {
		if err := s.mkdirs(dir); err != nil {
			return err
		}
		err := os.Link(tmp, final)
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 10 {
			return err
		}
	}
}

// countString renders how many bytes a reader yielded when it was cut at size+1.
func countString(n, size int64) string {
	if n > size {
		return "more than " + fmt.Sprint(size)
	}
	return fmt.Sprint(n)
}

// mkdirs creates dir and its missing parents (all inside root), fsyncing each parent that
// gains an entry: a blob linked into a new directory is durable only if the directory itself is.
func (s *Store) mkdirs(dir string) error {
	if dir == s.root {
		return nil
	}
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s holds a blob, not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if err := s.mkdirs(parent); err != nil {
		return err
	}
	// A concurrent Put may have created it meanwhile; that is fine. Sync the parent anyway,
	// since our blob may become durable before the other Put gets to its fsync.
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Get returns the *os.File itself for reads from offset 0 to the end (so the HTTP server can
// sendfile it) and a reader limited to the range otherwise.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	if offset < 0 || length < -1 {
		return nil, fmt.Errorf("blob/file: get %q: bad range offset %d length %d", key, offset, length)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, notFound(key, err)
	}
	// A key that names a directory (the parent of other keys) holds no blob.
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fs.ErrNotExist
		}
		return nil, notFound(key, err)
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("blob/file: get %q: %w", key, err)
		}
	}
	if length < 0 {
		// Still the *os.File: a read to the end can be sendfile'd from its current offset.
		return f, nil
	}
	return &rangeReader{Reader: io.LimitReader(f, length), f: f}, nil
}

type rangeReader struct {
	io.Reader
	f *os.File
}

func (r *rangeReader) Close() error { return r.f.Close() }

// Size stats the blob's file.
func (s *Store) Size(ctx context.Context, key string) (int64, error) {
	p, err := s.path(key)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if err == nil && !fi.Mode().IsRegular() {
		err = fs.ErrNotExist
	}
	if err != nil {
		return 0, notFound(key, err)
	}
	return fi.Size(), nil
}

// Delete removes the blob's file. Empty parent directories stay, with one exception: with keys
// sharded like "ab/…" there are few of them, and a Put finds its directory in place. The
// exception is a variant's directory (blob.VariantPrefix), one per version that was ever
// rendered: when Delete removes its last variant, the directory goes too, or the store would
// keep one empty directory per deleted version for ever (and List would walk them all). A Put
// racing with that removal makes the directory again (see commit).
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		// Gone already, or a directory (which holds no blob): nothing to delete.
		if err == nil || isNotExist(err) {
			return nil
		}
		return fmt.Errorf("blob/file: delete %q: %w", key, err)
	}
	if err := os.Remove(p); err != nil && !isNotExist(err) {
		return fmt.Errorf("blob/file: delete %q: %w", key, err)
	}
	if version, ok := blob.VariantVersion(key); ok {
		// rmdir removes only an empty directory: one that still holds variants (or that a
		// Put just made) stays, which is no error.
		dir := filepath.Join(s.root, filepath.FromSlash(strings.TrimSuffix(blob.VariantPrefix(version), "/")))
		if err := os.Remove(dir); err != nil && !isNotExist(err) && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("blob/file: delete %q: remove its empty directory: %w", key, err)
		}
	}
	return nil
}

// isNotExist also counts ENOTDIR: under key "a/b", a blob "a" means "a/b" cannot exist.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func notFound(key string, err error) error {
	if isNotExist(err) {
		return fmt.Errorf("%w: %q", blob.ErrNotFound, key)
	}
	return fmt.Errorf("blob/file: %q: %w", key, err)
}

// List walks the tree under the directory prefix names depth-first: root for "", dir for
// "dir/", and for "dir/ab" the entries of dir whose names start with "ab". A prefix that names
// no directory lists nothing at the cost of one failed open, so listing a version's variants
// is cheap when it has none. It reads each directory whole and sorts it by name, with "/"
// appended to the names of subdirectories: within a key, a directory's name is followed by
// "/", so this puts each directory's blobs exactly where their keys fall in byte order ("a-b"
// before "a/b" before "a0"), which a walk in plain name order (filepath.WalkDir) does not. It
// holds one sorted listing per directory on the current path, never the whole tree.
// Dot-named entries (TempDir among them) are skipped, and so is anything that is not a regular
// file or whose path is not a key blob.CheckKey accepts.
func (s *Store) List(ctx context.Context, prefix string, fn func(blob.Info) error) error {
	dir, match := "", prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir, match = prefix[:i+1], prefix[i+1:]
		// The whole segments that start a key are a key themselves: when they are not, no
		// key starts with prefix (and a prefix such as ".tmp/" cannot reach TempDir).
		if blob.CheckKey(dir[:i]) != nil {
			return nil
		}
	}
	return s.list(ctx, filepath.Join(s.root, filepath.FromSlash(dir)), dir, match, fn)
}

// list lists dir, whose keys start with prefix ("" for root, else ending with "/"), keeping
// only the entries whose names start with match (everything below them included).
func (s *Store) list(ctx context.Context, dir, prefix, match string, fn func(blob.Info) error) error {
	names, err := readDir(dir)
	if err != nil {
		if isNotExist(err) && dir != s.root {
			return nil // removed while we walked, or never made: no blobs there
		}
		return fmt.Errorf("blob/file: list: %w", err)
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !strings.HasPrefix(name, match) {
			continue
		}
		key := prefix + name
		if sub, ok := strings.CutSuffix(name, "/"); ok {
			if err := s.list(ctx, filepath.Join(dir, sub), key, "", fn); err != nil {
				return err
			}
			continue
		}
		if blob.CheckKey(key) != nil {
			continue
		}
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			if isNotExist(err) {
				continue // deleted since we read the directory
			}
			return fmt.Errorf("blob/file: list: %w", err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if err := fn(blob.Info{Key: key, Size: fi.Size(), Modified: fi.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// readDir returns the names in dir, except dot names, in the order their keys sort: each
// subdirectory's name with "/" appended, then all sorted byte-wise.
func readDir(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		switch name := e.Name(); {
		case name[0] == '.':
		case e.IsDir():
			names = append(names, name+"/")
		default:
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// leftoverPrefix starts the name of every temporary file Put creates in TempDir.
const leftoverPrefix = "put-"

// Leftovers lists the temporary files of Puts in TempDir, then the partial blobs of resumable
// uploads under TempDir/PartialDir in byte order of their keys, then the multipart uploads
// under TempDir/MultipartDir. A Put's temporary file has its name as ID and Key "" (it does
// not record its key); a partial blob has ID "partial/<key>" and its key; a multipart upload
// (all its pieces: one leftover) has ID "multipart/<key>" and its key. Started is the file's
// modification time (a multipart upload's: the latest of its pieces'), which an upload in
// progress keeps moving forward as it writes.
func (s *Store) Leftovers(ctx context.Context, fn func(blob.Leftover) error) error {
	des, err := os.ReadDir(s.tmp)
	if err != nil {
		return fmt.Errorf("blob/file: leftovers: %w", err)
	}
	for _, d := range des {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !strings.HasPrefix(d.Name(), leftoverPrefix) {
			continue
		}
		fi, err := d.Info()
		if err != nil {
			if isNotExist(err) {
				continue // its Put finished (or failed) meanwhile
			}
			return fmt.Errorf("blob/file: leftovers: %w", err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		if err := fn(blob.Leftover{ID: d.Name(), Started: fi.ModTime()}); err != nil {
			return err
		}
	}
	// The partial blobs' tree is laid out like root's, so List's walk lists it.
	err = s.list(ctx, filepath.Join(s.tmp, PartialDir), "", "", func(info blob.Info) error {
		return fn(blob.Leftover{ID: partialIDPrefix + info.Key, Key: info.Key, Started: info.Modified})
	})
	if err != nil {
		return err
	}
	return s.multipartLeftovers(ctx, filepath.Join(s.tmp, MultipartDir), "", fn)
}

// RemoveLeftover removes the temporary file TempDir/id, for an id "partial/<key>" the partial
// blob TempDir/PartialDir/key, or for "multipart/<key>" the multipart upload of key (as
// AbortMultipart does). The id must be a name Leftovers can report (put-*, no separator, NUL or
// ".."; or "partial/" or "multipart/" and a key blob.CheckKey accepts), so it cannot reach
// outside TempDir. A temporary file or partial blob that a crash left linked under its key too
// is only a second name of that blob: removing it leaves the blob whole.
func (s *Store) RemoveLeftover(ctx context.Context, id string) error {
	if key, ok := strings.CutPrefix(id, partialIDPrefix); ok {
		p, err := s.partialPath(key)
		if err != nil {
			return fmt.Errorf("%w: leftover id %q", blob.ErrInvalidKey, id)
		}
		if err := removeFile(p); err != nil {
			return fmt.Errorf("blob/file: remove leftover: %w", err)
		}
		return nil
	}
	if key, ok := strings.CutPrefix(id, multipartIDPrefix); ok {
		return s.removeMultipartLeftover(id, key)
	}
	if !strings.HasPrefix(id, leftoverPrefix) || strings.ContainsAny(id, "/\\\x00") || strings.Contains(id, "..") {
		return fmt.Errorf("%w: leftover id %q", blob.ErrInvalidKey, id)
	}
	if err := os.Remove(filepath.Join(s.tmp, id)); err != nil && !isNotExist(err) {
		return fmt.Errorf("blob/file: remove leftover: %w", err)
	}
	return nil
}
