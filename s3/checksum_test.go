package s3

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"

	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

// TestNewChecksumVectors pins each algorithm to published values: the AWS SDK for Go's
// checksum tests ("hello world", service/internal/checksum/algorithms_test.go), the values
// S3 returns for "abcdefg" (as versitygw's integration tests, run against AWS, assert), and
// the CRC catalogue's check values for "123456789".
func TestNewChecksumVectors(t *testing.T) {
	t.Parallel()
	be32 := func(v uint32) string { return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, v)) }
	be64 := func(v uint64) string { return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint64(nil, v)) }
	for _, tc := range []struct{ alg, input, want string }{
		{"crc32", "hello world", "DUoRhQ=="},
		{"crc32c", "hello world", "yZRlqg=="},
		{"crc64nvme", "hello world", "jSnVw/bqjr4="},
		{"sha1", "hello world", "Kq5sNclPz7QV2+lfQIuc6R7oRu0="},
		{"sha256", "hello world", "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="},
		{"crc32", "abcdefg", "MSpqpg=="},
		{"crc32c", "abcdefg", "5if0QQ=="},
		{"crc64nvme", "abcdefg", "SmzZ/LTp1CA="},
		{"sha1", "abcdefg", "L7XhNBn8iSRoZeejJPR27GJOh0A="},
		{"sha256", "abcdefg", "fRpUEnsiJQL1t5tfsIAwYRUqRPkrN+I8ZSe69mXU2po="},
		{"crc32", "123456789", be32(0xCBF43926)},
		{"crc32c", "123456789", be32(0xE3069283)},
		{"crc64nvme", "123456789", be64(0xAE8B14860A799888)},
		{"crc32", "", "AAAAAA=="},
		{"CRC32C", "hello world", "yZRlqg=="}, // as x-amz-sdk-checksum-algorithm writes it
	} {
		t.Run(tc.alg+"/"+tc.input, func(t *testing.T) {
			t.Parallel()
			h, ok := newChecksum(tc.alg)
			require.True(t, ok)
			h.Write([]byte(tc.input))
			require.Equal(t, tc.want, checksumValue(h))

			// Written in pieces, the same.
			h.Reset()
			for i := range len(tc.input) {
				h.Write([]byte{tc.input[i]})
			}
			require.Equal(t, tc.want, checksumValue(h))
		})
	}
	for _, alg := range []string{"", "md5", "sha512", "crc64", "xxhash64", "crc32 "} {
		_, ok := newChecksum(alg)
		require.False(t, ok, alg)
	}
}

func checksumHeaders(kv ...string) *fasthttp.RequestHeader {
	h := &fasthttp.RequestHeader{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// TestRequestChecksum covers the declarations: none, one (any header case), the
// multipart and GetObject headers that are not checksums, and each refusal in AWS's words.
func TestRequestChecksum(t *testing.T) {
	t.Parallel()
	const crc = "DUoRhQ==" // CRC32 of "hello world"
	for _, tc := range []struct {
		name     string
		headers  []string
		alg      string // "" with want nil: no checker
		want     *Error
		wantText string // the refusal's message, spelled out once
	}{
		{name: "None"},
		{name: "OnlyTrailer", headers: []string{"X-Amz-Trailer", "x-amz-checksum-crc32"}},
		{name: "NotChecksums", headers: []string{"X-Amz-Checksum-Type", "FULL_OBJECT", "X-Amz-Checksum-Algorithm", "CRC32", "X-Amz-Checksum-Mode", "ENABLED"}},
		{name: "CRC32", headers: []string{"X-Amz-Checksum-Crc32", crc}, alg: "crc32"},
		{name: "LowerCaseName", headers: []string{"x-amz-checksum-sha256", "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="}, alg: "sha256"},
		{name: "WithSDKAlgorithm", headers: []string{"X-Amz-Checksum-Crc32c", "yZRlqg==", "X-Amz-Sdk-Checksum-Algorithm", "CRC32C"}, alg: "crc32c"},
		{name: "SDKAlgorithmWithTrailer", headers: []string{"X-Amz-Trailer", "x-amz-checksum-crc64nvme", "X-Amz-Sdk-Checksum-Algorithm", "CRC64NVME"}},
		{name: "UnknownAlgorithm", headers: []string{"X-Amz-Checksum-Md5", "XrY7u+Ae7tCTyyK7j1rNww=="}, want: errChecksumHeader,
			wantText: "The algorithm type you specified in x-amz-checksum- header is invalid."},
		{name: "TwoChecksums", headers: []string{"X-Amz-Checksum-Crc32", crc, "X-Amz-Checksum-Crc32c", "yZRlqg=="}, want: errMultipleChecksums,
			wantText: "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."},
		{name: "SameTwice", headers: []string{"X-Amz-Checksum-Crc32", crc, "X-Amz-Checksum-Crc32", crc}, want: errMultipleChecksums},
		{name: "ChecksumAndTrailer", headers: []string{"X-Amz-Checksum-Crc32", crc, "X-Amz-Trailer", "x-amz-checksum-crc32"}, want: errMultipleChecksums},
		{name: "NotBase64", headers: []string{"X-Amz-Checksum-Crc32", "not base64"}, want: invalidChecksumValue("x-amz-checksum-crc32"),
			wantText: "Value for x-amz-checksum-crc32 header is invalid."},
		{name: "WrongSize", headers: []string{"X-Amz-Checksum-Crc32", "Kq5sNclPz7QV2+lfQIuc6R7oRu0="}, want: invalidChecksumValue("x-amz-checksum-crc32")},
		{name: "Empty", headers: []string{"X-Amz-Checksum-Sha1", ""}, want: invalidChecksumValue("x-amz-checksum-sha1")},
		{name: "SDKAlgorithmUnknown", headers: []string{"X-Amz-Sdk-Checksum-Algorithm", "MD5", "X-Amz-Checksum-Crc32", crc}, want: errChecksumAlgorithm,
			wantText: "Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]"},
		{name: "SDKAlgorithmAlone", headers: []string{"X-Amz-Sdk-Checksum-Algorithm", "CRC32"}, want: errSDKChecksumAlone,
			wantText: "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found."},
		{name: "SDKAlgorithmOther", headers: []string{"X-Amz-Sdk-Checksum-Algorithm", "SHA1", "X-Amz-Checksum-Crc32", crc}, want: invalidChecksumValue("x-amz-sdk-checksum-algorithm")},
		{name: "SDKAlgorithmOtherTrailer", headers: []string{"X-Amz-Sdk-Checksum-Algorithm", "SHA1", "X-Amz-Trailer", "x-amz-checksum-crc32"}, want: invalidChecksumValue("x-amz-sdk-checksum-algorithm")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := requestChecksum(checksumHeaders(tc.headers...))
			if tc.want != nil {
				require.Equal(t, tc.want, err)
				require.Nil(t, c)
				require.Equal(t, 400, err.Status)
				require.Equal(t, "InvalidRequest", err.Code)
				if tc.wantText != "" {
					require.Equal(t, tc.wantText, err.Message)
				}
				return
			}
			require.Nil(t, err)
			if tc.alg == "" {
				require.Nil(t, c)
				return
			}
			require.Equal(t, tc.alg, c.alg)
		})
	}
}

// TestChecksumCheckVerify checks a body against its declaration: equal passes, anything else
// is AWS's BadDigest naming the algorithm.
func TestChecksumCheckVerify(t *testing.T) {
	t.Parallel()
	c, err := requestChecksum(checksumHeaders("X-Amz-Checksum-Crc32", "DUoRhQ=="))
	require.Nil(t, err)
	_, werr := c.Write([]byte("hello "))
	require.NoError(t, werr)
	c.Write([]byte("world"))
	require.Nil(t, c.verify())

	c, err = requestChecksum(checksumHeaders("X-Amz-Checksum-Crc64nvme", "jSnVw/bqjr4="))
	require.Nil(t, err)
	c.Write([]byte("hello world!"))
	require.Equal(t, &Error{Status: 400, Code: "BadDigest", Message: "The CRC64NVME you specified did not match the calculated checksum."}, c.verify())
}

// TestRequestChecksumSDK checks the whole-body checksum the AWS SDK S3 client sends in a
// header when it signs the payload (plain HTTP, no aws-chunked trailer), for each algorithm,
// and refuses the same request with other bytes.
func TestRequestChecksumSDK(t *testing.T) {
	t.Parallel()
	for _, alg := range []types.ChecksumAlgorithm{types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc32c,
		types.ChecksumAlgorithmCrc64nvme, types.ChecksumAlgorithmSha1, types.ChecksumAlgorithmSha256} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			data := testBytes(70_000)
			w := sdkPut(t, "http://localhost:5000/s3", &awss3.PutObjectInput{Body: bytes.NewReader(data), ChecksumAlgorithm: alg})
			name := strings.ToLower(string(alg))
			require.NotEmpty(t, w.get("X-Amz-Checksum-"+name))
			require.Equal(t, sha256Hex(string(data)), w.get("X-Amz-Content-Sha256"))

			ctx := w.ctx(t)
			c, err := requestChecksum(&ctx.Request.Header)
			require.Nil(t, err)
			require.Equal(t, name, c.alg)
			c.Write(ctx.PostBody())
			require.Nil(t, c.verify())

			c, err = requestChecksum(&ctx.Request.Header)
			require.Nil(t, err)
			c.Write(ctx.PostBody()[1:])
			require.Equal(t, checksumMismatch(name), c.verify())
		})
	}
}
