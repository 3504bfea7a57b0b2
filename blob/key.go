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

// variantRoot is the first segment of every variant key. Version keys start with a version's
// first characters, which are lowercase hex (UUID text), so every variant key sorts after every
// version key: a listing in byte order gives all the version keys first, then the variants.
const variantRoot = "render/"

// VariantPrefix is the prefix of the keys of every cached variant of version (a rendered image,
// see VariantKey): render/<vv>/<version>/. Variants are a cache that no row references; they
// are freed together with their source version, so each version's variants live under a prefix
// of their own, which the collector lists (one directory of the file store) to delete them all
// before the version's blob. The shard <vv> is the version's first two characters, as in
// VersionKey, so that no directory of the file store holds more than a few thousand versions'
// directories per million. Versions are UUID text (the database makes them); for those, one
// version's prefix never starts another's.
func VariantPrefix(version string) string {
	return variantRoot + VersionKey(version) + "/"
}

// VariantKey is the key of the variant named variant of version: VariantPrefix(version) +
// variant. The renderer names variants with one key segment (e.g. a digest of the rendering's
// parameters and an extension), written once like every blob: the source version is
// immutable, so a variant never changes either.
func VariantKey(version, variant string) string {
	return VariantPrefix(version) + variant
}

// VariantVersion returns the source version of a key under some VariantPrefix, and whether key
// is one: render/<vv>/<version>/<rest>, where <vv> is the first two characters of a version of
// three or more (VersionKey's shard) and <rest> is not empty. Reconcile uses it to find the
// version a variant depends on.
func VariantVersion(key string) (version string, ok bool) {
	rest, ok := strings.CutPrefix(key, variantRoot)
	if !ok {
		return "", false
	}
	shard, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return "", false
	}
	version, variant, ok := strings.Cut(rest, "/")
	if !ok || variant == "" || len(version) < 3 || version[:2] != shard {
		return "", false
	}
	return version, true
}
