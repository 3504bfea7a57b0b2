package file

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pgstorage/storage/blob"
)

// MultipartDir is the directory under TempDir that holds multipart uploads: key's upload is the
// directory TempDir/MultipartDir/key ("/" making subdirectories, as under root and PartialDir:
// a key may be 1,024 bytes long, a file name only 255), and its pieces are dot-named files in
// it: the marker uploadMarker, which CreateMultipart makes and which says that the upload
// exists, the parts ".part-<n>", and the temporary files ".tmp-*" of PutParts in progress. No
// key segment starts with a dot (blob.CheckKey), so the pieces of key "a" and the directory of
// key "a/b" can share a directory without ever meeting. Each part file holds the part's bytes
// followed by their MD5 (partTrailer bytes), which is the part's ETag: CompleteMultipart checks
// every listed ETag before it copies a byte, and the ETag is replaced together with the bytes
// by the one rename that replaces a part.
const MultipartDir = "multipart"

// multipartIDPrefix starts the Leftover.ID of a multipart upload: "multipart/<key>". The other
// leftovers' ids start with "put-" or "partial/", so the forms cannot be taken for each other.
const multipartIDPrefix = MultipartDir + "/"

const (
	uploadMarker     = ".upload"
	partPrefix       = ".part-"
	partTempPrefix   = ".tmp-"
	partTrailer      = md5.Size
	assembleChunkLen = 64 << 20 // bytes CompleteMultipart copies between checks of its context
)

var _ blob.Multipart = (*Store)(nil)

// uploadDir returns the directory that holds key's multipart upload.
func (s *Store) uploadDir(key string) (string, error) {
	if err := blob.CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.tmp, MultipartDir, filepath.FromSlash(key)), nil
}

func partPath(dir string, n int) string {
	return filepath.Join(dir, partPrefix+strconv.Itoa(n))
}

// uploadExists returns nil if the upload in dir exists (its marker is there), else an error
// wrapping blob.ErrNotFound.
func uploadExists(dir string) error {
	_, err := os.Lstat(filepath.Join(dir, uploadMarker))
	if isNotExist(err) {
		return fmt.Errorf("%w: no multipart upload", blob.ErrNotFound)
	}
	return err
}

// CreateMultipart makes the upload's directory and its marker, durably: from then on PutPart
// finds the upload, and Leftovers reports it. The file store keeps no state: the upload is its
// key's directory, so the state is "" (and ignored by the other methods). A key has at most
// one upload at a time (keys are fresh per upload); creating it again changes nothing.
func (s *Store) CreateMultipart(ctx context.Context, key string) (string, error) {
	dir, err := s.uploadDir(key)
	if err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("blob/file: create multipart %q: %w", key, err)
	}
	if err := s.mkdirs(dir); err != nil {
		return "", fmt.Errorf("blob/file: create multipart %q: %w", key, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, uploadMarker), os.O_WRONLY|os.O_CREATE, 0o600)
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return "", fmt.Errorf("blob/file: create multipart %q: %w", key, err)
	}
	return "", nil
}

// PutPart writes r to a temporary file in the upload's directory, computing its MD5 on the
// way, appends the MD5, fsyncs, and renames the file over part n: the part is replaced whole
// or not at all. The upload must exist (blob.ErrNotFound otherwise); a part that lands while
// the upload is aborted is taken back out, so an aborted upload does not come back piece by
// piece.
func (s *Store) PutPart(ctx context.Context, key, state string, n int, r io.Reader, size int64) (string, error) {
	dir, err := s.uploadDir(key)
	if err != nil {
		return "", err
	}
	if err := blob.CheckPartNumber(n); err != nil {
		return "", err
	}
	if size < 0 {
		return "", fmt.Errorf("blob/file: put part %d of %q: bad size %d", n, key, size)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("blob/file: put part %d of %q: %w", n, key, err)
	}
	if err := uploadExists(dir); err != nil {
		return "", fmt.Errorf("blob/file: put part %d of %q: %w", n, key, err)
	}
	sum, err := s.writePart(ctx, dir, n, r, size)
	if err != nil {
		return "", fmt.Errorf("blob/file: put part %d of %q: %w", n, key, err)
	}
	return sum, nil
}

func (s *Store) writePart(ctx context.Context, dir string, n int, r io.Reader, size int64) (etag string, err error) {
	defer func() { err = diskError(err) }()
	f, err := os.CreateTemp(dir, partTempPrefix+"*")
	if isNotExist(err) {
		return "", fmt.Errorf("%w: no multipart upload", blob.ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		if err != nil {
			os.Remove(tmp)
		}
	}()

	h := md5.New()
	w := &writeErr{w: io.MultiWriter(f, h), f: f}
	// One byte more than promised tells a reader that is too long, as in Put.
	got, rerr := copyBody(w, blob.ContextReader(ctx, io.LimitReader(r, size+1)))
	switch {
	case w.err != nil:
		return "", w.err
	case rerr != nil:
		return "", fmt.Errorf("reading the body: %w", rerr)
	case got != size:
		return "", fmt.Errorf("reader yielded %s bytes, size says %d", countString(got, size), size)
	}
	sum := h.Sum(nil)
	if _, err := f.Write(sum); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	err = f.Close()
	f = nil
	if err != nil {
		return "", err
	}
	part := partPath(dir, n)
	if err := os.Rename(tmp, part); err != nil {
		if isNotExist(err) {
			// The upload was aborted (or removed as a leftover) while the part streamed.
			return "", fmt.Errorf("%w: no multipart upload", blob.ErrNotFound)
		}
		return "", err
	}
	if err := syncDir(dir); err != nil {
		return "", err
	}
	// An abort that removed the marker after the check in PutPart may have listed the
	// upload's files before this part arrived: then it is this PutPart's to remove.
	if err := uploadExists(dir); err != nil {
		os.Remove(part)
		os.Remove(dir)
		return "", err
	}
	return hex.EncodeToString(sum), nil
}

// CopyPart reads the range of src's blob and puts it as part n, as PutPart does: the MD5 that
// makes the part's ETag needs every byte read anyway.
func (s *Store) CopyPart(ctx context.Context, key, state string, n int, src string, offset, length int64) (string, error) {
	if _, err := s.uploadDir(key); err != nil {
		return "", err
	}
	if length < 0 {
		return "", fmt.Errorf("blob/file: copy part %d of %q: bad length %d", n, key, length)
	}
	rc, err := s.Get(ctx, src, offset, length)
	if err != nil {
		return "", fmt.Errorf("blob/file: copy part %d of %q from %q: %w", n, key, src, err)
	}
	defer rc.Close()
	return s.PutPart(ctx, key, state, n, rc, length)
}

// CompleteMultipart checks that every listed part is there with its ETag, then copies the
// parts in order into a new blob through Put's path (temporary file, fsync, link, directory
// fsync), the kernel copying file to file (copy_file_range: no byte through user space, and
// none at all on file systems that share extents), and removes the upload. A concurrent
// PutPart that replaces a listed part between the check and the copy is caught when the part
// is opened for the copy (its ETag changed): ErrInvalidPart, and no blob.
func (s *Store) CompleteMultipart(ctx context.Context, key, state string, parts []blob.Part) error {
	final, err := s.path(key)
	if err != nil {
		return err
	}
	dir, err := s.uploadDir(key)
	if err != nil {
		return err
	}
	if err := blob.CheckParts(parts); err != nil {
		return fmt.Errorf("blob/file: complete %q: %w", key, err)
	}
	if _, err := os.Lstat(final); err == nil {
		return fmt.Errorf("%w: %q", blob.ErrExists, key)
	}
	if err := uploadExists(dir); err != nil {
		return fmt.Errorf("blob/file: complete %q: %w", key, err)
	}
	// Fail fast, before a byte is copied: every part must be there with its ETag.
	for _, p := range parts {
		f, _, err := openPart(dir, p)
		if err != nil {
			return fmt.Errorf("blob/file: complete %q: %w", key, err)
		}
		f.Close()
	}
	err = s.commit("complete", key, final, func(f *os.File) error {
		for _, p := range parts {
			if err := copyPart(ctx, f, dir, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The blob is complete. Should the removal fail, the pieces are leftovers of a key no
	// longer in flight, which the collector removes.
	_ = removeUpload(dir)
	return nil
}

// openPart opens part p.Number in dir and checks its ETag against p.ETag. It returns the file
// and the size of the part's bytes (the file less its trailer).
func openPart(dir string, p blob.Part) (*os.File, int64, error) {
	f, err := os.Open(partPath(dir, p.Number))
	if isNotExist(err) {
		return nil, 0, fmt.Errorf("%w: part %d is missing", blob.ErrInvalidPart, p.Number)
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() < partTrailer {
		err = fmt.Errorf("part %d holds %d bytes, less than its MD5", p.Number, fi.Size())
	}
	var sum [partTrailer]byte
	if err == nil {
		_, err = f.ReadAt(sum[:], fi.Size()-partTrailer)
	}
	if err == nil {
		if etag := hex.EncodeToString(sum[:]); !strings.EqualFold(etag, strings.Trim(p.ETag, `"`)) {
			err = fmt.Errorf("%w: part %d has ETag %s, not %s", blob.ErrInvalidPart, p.Number, etag, p.ETag)
		}
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size() - partTrailer, nil
}

// copyPart appends part p's bytes to f. os.File.ReadFrom copies a limited *os.File with
// copy_file_range.
func copyPart(ctx context.Context, f *os.File, dir string, p blob.Part) error {
	pf, size, err := openPart(dir, p)
	if err != nil {
		return err
	}
	defer pf.Close()
	for rest := size; rest > 0; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := f.ReadFrom(io.LimitReader(pf, min(rest, assembleChunkLen)))
		rest -= n
		if err != nil {
			return fmt.Errorf("part %d: %w", p.Number, err)
		}
		if n == 0 {
			return fmt.Errorf("part %d: ended %d bytes early", p.Number, rest)
		}
	}
	return nil
}

// AbortMultipart removes the upload's directory with everything in it.
func (s *Store) AbortMultipart(ctx context.Context, key, state string) error {
	dir, err := s.uploadDir(key)
	if err != nil {
		return err
	}
	if err := removeUpload(dir); err != nil {
		return fmt.Errorf("blob/file: abort multipart %q: %w", key, err)
	}
	return nil
}

// removeUpload removes the upload in dir: its marker first, so that a PutPart starting from
// now on finds the upload gone and one finishing now takes its part back out, then its other
// pieces, then the directory if that leaves it empty (the directories of other keys' uploads
// below it stay, and so does a directory a PutPart is still writing a temporary file in: that
// PutPart removes it). One already gone is not an error.
func removeUpload(dir string) error {
	if err := os.Remove(filepath.Join(dir, uploadMarker)); err != nil && !isNotExist(err) {
		return err
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return err
	}
	for _, d := range des {
		if d.Name()[0] != '.' || d.IsDir() {
			continue
		}
		if err := os.Remove(filepath.Join(dir, d.Name())); err != nil && !isNotExist(err) {
			return err
		}
	}
	os.Remove(dir) // fails while not empty: fine
	return nil
}

// multipartLeftovers reports every multipart upload under dir (TempDir/MultipartDir, whose
// keys start with prefix: "" or ending with "/"), directory by directory in name order: a
// directory that holds any piece (the marker, a part, a temporary file) is an upload, whose
// Started is the latest modification of its pieces and of the directory itself (every part
// created or replaced).
func (s *Store) multipartLeftovers(ctx context.Context, dir, prefix string, fn func(blob.Leftover) error) error {
	f, err := os.Open(dir)
	if err != nil {
		if isNotExist(err) {
			return nil // no upload yet, or removed while we walked
		}
		return fmt.Errorf("blob/file: leftovers: %w", err)
	}
	des, err := f.ReadDir(-1)
	var dfi os.FileInfo
	if err == nil {
		dfi, err = f.Stat()
	}
	f.Close()
	if err != nil {
		return fmt.Errorf("blob/file: leftovers: %w", err)
	}
	var (
		pieces  bool
		started = dfi.ModTime()
		subs    []string
	)
	for _, d := range des {
		name := d.Name()
		if name[0] != '.' {
			if d.IsDir() {
				subs = append(subs, name)
			}
			continue
		}
		if !d.Type().IsRegular() {
			continue
		}
		fi, err := d.Info()
		if err != nil {
			if isNotExist(err) {
				continue // removed meanwhile
			}
			return fmt.Errorf("blob/file: leftovers: %w", err)
		}
		pieces = true
		started = latest(started, fi.ModTime())
	}
	if key := strings.TrimSuffix(prefix, "/"); pieces && blob.CheckKey(key) == nil {
		if err := fn(blob.Leftover{ID: multipartIDPrefix + key, Key: key, Started: started}); err != nil {
			return err
		}
	}
	slices.Sort(subs)
	for _, sub := range subs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.multipartLeftovers(ctx, filepath.Join(dir, sub), prefix+sub+"/", fn); err != nil {
			return err
		}
	}
	return nil
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// removeMultipartLeftover removes the upload that the leftover id "multipart/<key>" names.
func (s *Store) removeMultipartLeftover(id, key string) error {
	dir, err := s.uploadDir(key)
	if err != nil {
		return fmt.Errorf("%w: leftover id %q", blob.ErrInvalidKey, id)
	}
	if err := removeUpload(dir); err != nil {
		return fmt.Errorf("blob/file: remove leftover: %w", err)
	}
	return nil
}
