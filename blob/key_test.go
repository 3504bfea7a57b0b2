package blob_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
)

const version = "3f2a9c1e-7b4d-4e21-9a0b-5c6d7e8f9a0b"

func TestVariantKey(t *testing.T) {
	t.Parallel()
	require.Equal(t, "render/3f/"+version+"/", blob.VariantPrefix(version))
	key := blob.VariantKey(version, "0badc0de.webp")
	require.Equal(t, "render/3f/"+version+"/0badc0de.webp", key)
	require.NoError(t, blob.CheckKey(key))
	require.True(t, strings.HasPrefix(key, blob.VariantPrefix(version)))

	got, ok := blob.VariantVersion(key)
	require.True(t, ok)
	require.Equal(t, version, got)
	// Deeper keys under a version's prefix are its variants too: the collector deletes them
	// with the rest.
	got, ok = blob.VariantVersion(blob.VariantPrefix(version) + "a/b")
	require.True(t, ok)
	require.Equal(t, version, got)
}

func TestVariantVersionRefuses(t *testing.T) {
	t.Parallel()
	for _, key := range []string{
		blob.VersionKey(version),
		blob.VariantPrefix(version), // the prefix itself names no variant
		"render/3f/" + version,
		"render/3f",
		"render/",
		"render/ab/" + version + "/x", // the shard is not the version's
		"render/3f/3f/x",              // a version of two characters is not sharded
		"rendered/3f/" + version + "/x",
		"x/render/3f/" + version + "/x",
	} {
		_, ok := blob.VariantVersion(key)
		require.False(t, ok, key)
	}
}

// TestVariantKeysSortAfterVersionKeys: every variant key sorts after every version key, so a
// listing in byte order yields all the versions' blobs before any variant.
func TestVariantKeysSortAfterVersionKeys(t *testing.T) {
	t.Parallel()
	variant := blob.VariantKey("00000000-0000-4000-8000-000000000000", "a")
	for _, v := range []string{"ffffffff-ffff-4fff-bfff-ffffffffffff", "9fffffff-0000-4000-8000-000000000000", version} {
		require.Less(t, blob.VersionKey(v), variant)
	}
}
