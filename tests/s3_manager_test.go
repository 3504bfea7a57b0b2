package tests

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"
)

// The AWS SDK for Go's transfer managers (feature/s3/manager), as applications and tools
// built on the SDK move large objects: 200 MiB up in 16 MiB parts, 8 at a time, then down the
// same way, on both backends. The uploader sends what it sends (its checksums, its part
// order); the bytes come from a generator read at any offset and go down to a file, so the
// test holds no object in memory.

// genAt is n deterministic bytes readable at any offset: each 8-byte word is a hash of its
// index and the seed, so no two parts are alike and a part stored in another's place, or a
// range read from the wrong offset, changes the SHA-256.
type genAt struct {
	seed uint64
	n    int64
}

func (g genAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= g.n {
		return 0, io.EOF
	}
	var err error
	if rem := g.n - off; int64(len(p)) > rem {
		p, err = p[:rem], io.EOF
	}
	var w [8]byte
	for i := 0; i < len(p); {
		pos := off + int64(i)
		x := g.seed*0x9e3779b97f4a7c15 + uint64(pos/8) + 0x9e3779b97f4a7c15 // splitmix64
		x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
		x = (x ^ (x >> 27)) * 0x94d049bb133111eb
		binary.LittleEndian.PutUint64(w[:], x^(x>>31))
		i += copy(p[i:], w[pos%8:])
	}
	return len(p), err
}

// sectionDigests returns the SHA-256 of the n bytes of r and the multipart ETag of them in
// parts of partSize.
func sectionDigests(t *testing.T, r io.ReaderAt, n, partSize int64) (sha string, etag string) {
	t.Helper()
	whole, parts := sha256.New(), md5.New()
	count := 0
	for off := int64(0); off < n; off += partSize {
		part := md5.New()
		_, err := io.Copy(io.MultiWriter(whole, part), io.NewSectionReader(r, off, min(partSize, n-off)))
		require.NoError(t, err)
		parts.Write(part.Sum(nil))
		count++
	}
	return hex.EncodeToString(whole.Sum(nil)), `"` + hex.EncodeToString(parts.Sum(nil)) + "-" + strconv.Itoa(count) + `"`
}

func TestS3ManagerRoundTrip(t *testing.T) {
	t.Parallel()
	const size, partSize = 200 << 20, 16 << 20
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		ctx := context.Background()
		o := newObjEnv(t, be, withUploadLimit(size))
		c := o.s3Service()
		src := genAt{seed: 0x5eed, n: size}
		wantSHA, wantETag := sectionDigests(t, src, size, partSize)
		require.Regexp(t, `-13"$`, wantETag)

		// Up: a seekable body, which the uploader cuts into sections without buffering them.
		up := manager.NewUploader(c, func(u *manager.Uploader) { u.PartSize, u.Concurrency = partSize, 8 })
		out, err := up.Upload(ctx, &awss3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("big.bin"),
			Body: io.NewSectionReader(src, 0, size), ContentType: aws.String("application/x-big")})
		require.NoError(t, err)
		require.NotEmpty(t, out.UploadID, "the uploader used a multipart upload")
		require.Equal(t, wantETag, aws.ToString(out.ETag))
		head, err := c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("b"), Key: aws.String("big.bin")})
		require.NoError(t, err)
		require.Equal(t, int64(size), aws.ToInt64(head.ContentLength))
		require.Equal(t, wantETag, aws.ToString(head.ETag))
		require.Equal(t, "application/x-big", aws.ToString(head.ContentType))
		require.Equal(t, strconv.Itoa(size)+" "+wantETag, o.row(t, "b", "big.bin", `(metadata->>'size') || ' ' || (metadata->>'eTag')`))

		// Down: ranged GETs, 8 at a time, written where they belong in a file.
		f, err := os.Create(filepath.Join(t.TempDir(), "big.bin"))
		require.NoError(t, err)
		defer f.Close()
		down := manager.NewDownloader(c, func(d *manager.Downloader) { d.PartSize, d.Concurrency = partSize, 8 })
		n, err := down.Download(ctx, f, &awss3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("big.bin")})
		require.NoError(t, err)
		require.Equal(t, int64(size), n)
		gotSHA, _ := sectionDigests(t, f, size, partSize)
		require.Equal(t, wantSHA, gotSHA, "the downloaded bytes")

		o.requireNoUploads(t)
		o.requireNothingStored(t, "b/big.bin")
	})
}
