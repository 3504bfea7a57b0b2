package s3_test

import (
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/blob/blobtest"
)

// TestMultipartPartTooSmall: S3 refuses to complete an upload with a part other than the last
// below its 5 MiB minimum; that is ErrPartTooSmall (callers check sizes first: this is the
// safety net), and the upload stays as it was: a list S3 accepts completes it.
func TestMultipartPartTooSmall(t *testing.T) {
	t.Parallel()
	st := newStore(t, config())
	ctx := t.Context()
	state, err := st.CreateMultipart(ctx, "small")
	require.NoError(t, err)
	var parts []blob.Part
	for n := 1; n <= 2; n++ {
		etag, err := st.PutPart(ctx, "small", state, n, blobtest.NewGen(uint64(n), 100), 100)
		require.NoError(t, err)
		parts = append(parts, blob.Part{Number: n, ETag: etag})
	}
	err = st.CompleteMultipart(ctx, "small", state, parts)
	require.ErrorIs(t, err, blob.ErrPartTooSmall)
	require.NotErrorIs(t, err, blob.ErrInvalidPart)
	_, err = st.Size(ctx, "small")
	require.ErrorIs(t, err, blob.ErrNotFound)

	require.NoError(t, st.CompleteMultipart(ctx, "small", state, parts[1:]))
	rc, err := st.Get(ctx, "small", 0, -1)
	require.NoError(t, err)
	defer rc.Close()
	require.Equal(t, blobtest.Bytes(100, 2), readAll(t, rc))
}

// TestMultipartNative: an upload is a native multipart upload of the blob's object under the
// store's prefix, whose id is the state, and the part ETags are the ones S3 lists (unquoted).
func TestMultipartNative(t *testing.T) {
	t.Parallel()
	cfg := config()
	st := newStore(t, cfg)
	ctx := t.Context()
	state, err := st.CreateMultipart(ctx, "ab/native")
	require.NoError(t, err)
	etag, err := st.PutPart(ctx, "ab/native", state, 3, blobtest.NewGen(1, 1000), 1000)
	require.NoError(t, err)
	out, err := srv.Client().ListParts(ctx, &awss3.ListPartsInput{
		Bucket: aws.String(cfg.Bucket), Key: aws.String(cfg.Prefix + "ab/native"), UploadId: aws.String(state),
	})
	require.NoError(t, err)
	require.Len(t, out.Parts, 1)
	require.EqualValues(t, 3, aws.ToInt32(out.Parts[0].PartNumber))
	require.Equal(t, `"`+etag+`"`, aws.ToString(out.Parts[0].ETag))
	require.NoError(t, st.AbortMultipart(ctx, "ab/native", state))
	require.Empty(t, multipartUploads(t, cfg.Prefix))
}

func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return b
}
