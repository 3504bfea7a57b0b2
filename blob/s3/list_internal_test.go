package s3

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
)

// TestLeftoverID: ids split back into the upload id and key they were made of, whatever
// either holds; anything else is refused.
func TestLeftoverID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ uploadID, key string }{
		{"3b789b0b-6673-4203-8cf5-995779c3dd8f", "ab/abcdef"},
		{"with/slash+plus%percent", "a/b/c"},
		{"x", ""},
		{"x", "spaces and+plus/%25percent?query#frag"},
		{".partial", "k/5"},
		{"..", "k"},
	} {
		id := leftoverID(tc.uploadID, tc.key)
		require.NotEqual(t, byte('.'), id[0], "%q starts like a tail's id", id)
		uploadID, key, err := parseLeftoverID(id)
		require.NoError(t, err, id)
		require.Equal(t, tc.uploadID, uploadID, id)
		require.Equal(t, tc.key, key, id)
	}
	require.Equal(t, "3b789b0b/ab/cd", leftoverID("3b789b0b", "ab/cd"), "a plain upload id reads as is")
	for _, id := range []string{"", "no-slash", "/key", "%zz/key"} {
		_, _, err := parseLeftoverID(id)
		require.ErrorIs(t, err, blob.ErrInvalidKey, id)
	}
}

// TestDecodeKey: keys are unescaped only when the server says it encoded them, with "+" for
// space as AWS encodes.
func TestDecodeKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		enc     types.EncodingType
		in, out string
	}{
		{"", "a+b%20c", "a+b%20c"},
		{types.EncodingTypeUrl, "ab/cd", "ab/cd"},
		{types.EncodingTypeUrl, "a+b%2Bc%25", "a b+c%"},
		{types.EncodingTypeUrl, "k%EF%BF%BF", "k\uffff"},
	} {
		got, err := decodeKey(tc.enc, tc.in)
		require.NoError(t, err)
		require.Equal(t, tc.out, got)
	}
	_, err := decodeKey(types.EncodingTypeUrl, "bad%zz")
	require.Error(t, err)
}
