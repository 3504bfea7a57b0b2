package blob

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrExists is returned by Put for a key that already holds a blob: stores never overwrite, so
// a caller that sees it picked a key that was not fresh (a bug, or a retried upload).
var ErrExists = errors.New("blob: key exists")

// Limits on keys. MaxKeyLen is S3's limit on object keys; MaxSegmentLen is NAME_MAX of common
// file systems, so that every key that one backend accepts, the other accepts too.
const (
	MaxKeyLen     = 1024
	MaxSegmentLen = 255
)

// CheckKey returns nil if every store accepts key, else an error wrapping ErrInvalidKey.
//
// A key is one or more "/"-separated segments. The file store maps segments to directories,
// so the rules are those that keep a key inside the store's root on any backend: no empty key,
// no empty segment (which also rules out a leading "/", a trailing "/" and "//"), no segment
// starting with "." ("." and ".." walk the tree; other dot names are reserved for the stores'
// own bookkeeping, like the file store's temporary directory), no backslash (a separator on
// Windows), no U+FFFE/U+FFFF (XML cannot carry them), no control characters (NUL truncates paths in syscalls; none survive S3's XML
// listings), valid UTF-8, and the length limits above. Both stores call it, so they refuse
// exactly the same keys.
func CheckKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidKey, MaxKeyLen)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: not UTF-8", ErrInvalidKey)
	}
	for _, c := range key {
		if unicode.IsControl(c) {
			return fmt.Errorf("%w: control character %U", ErrInvalidKey, c)
		}
		if c == '\\' {
			return fmt.Errorf("%w: backslash", ErrInvalidKey)
		}
		if c == 0xFFFE || c == 0xFFFF {
			// XML 1.0 cannot carry them, so S3 listings cannot return such a key intact.
			return fmt.Errorf("%w: noncharacter %U", ErrInvalidKey, c)
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%w: empty segment in %q", ErrInvalidKey, key)
		case seg[0] == '.':
			return fmt.Errorf("%w: segment %q starts with a dot", ErrInvalidKey, seg)
		case len(seg) > MaxSegmentLen:
			return fmt.Errorf("%w: segment longer than %d bytes", ErrInvalidKey, MaxSegmentLen)
		}
	}
	return nil
}

// VersionKey maps an object row's version to the key of its blob, sharded by the version's
// first two characters so that no directory of the file store grows past a few thousand
// entries per million objects. Keys sort exactly as their versions do (the shard is the
// version's own prefix), which lets reconcile merge a store listing with rows ordered by
// version.
func VersionKey(version string) string {
	if len(version) < 3 {
		return version
	}
	return version[:2] + "/" + version
}
