package s3

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/stretchr/testify/require"
)

// The chunk signatures are made by the AWS SDK's stream signer, seeded with the signature of a
// request the SDK's v4 signer signed and verify accepted; the unsigned trailer streams are
// the AWS SDK S3 client's own aws-chunked encoding, captured off its HTTP client. Trailer
// signatures (no Go SDK writes them) and checksums are computed here with crypto/hmac and
// hash/crc32, independently of the code under test.

// chunkStream is an aws-chunked PUT as a client starts it: the signed request's
// authentication as verify returned it, and the signer that signs its chunks.
type chunkStream struct {
	alg, trailer string
	decoded      int64
	sig          signed
	signer       *v4.StreamSigner
	at           time.Time
	secret       string
}

// newChunkStream signs a PUT declaring alg (and x-amz-trailer, x-amz-decoded-content-length)
// and verifies it.
func newChunkStream(t *testing.T, alg, trailer string, decoded int64, session bool) *chunkStream {
	t.Helper()
	c := newClient("PUT", base+"/s3/b/k")
	if session {
		c = c.session()
	}
	c.payload = alg
	c.header = [][2]string{{"Content-Encoding", "aws-chunked"},
		{"X-Amz-Decoded-Content-Length", strconv.FormatInt(decoded, 10)}}
	if trailer != "" {
		c.header = append(c.header, [2]string{"X-Amz-Trailer", trailer})
	}
	sig, err := verify(c.signed(t).ctx(t), testAuthConfig())
	require.Nil(t, err)
	seed, decErr := hex.DecodeString(sig.Seed)
	require.NoError(t, decErr)
	return &chunkStream{alg: alg, trailer: trailer, decoded: decoded, sig: sig, at: c.at, secret: c.secret,
		signer: v4.NewStreamSigner(c.credentials(), "s3", c.region, seed)}
}

func (s *chunkStream) signedAlg() bool { return s.alg != streamingUnsignedTrailer }

// body is an aws-chunked body being written as the client writes it.
type chunkWriter struct {
	t    *testing.T
	s    *chunkStream
	b    bytes.Buffer
	sigs []string // the chunk signatures written, in order
	data bytes.Buffer
}

func (s *chunkStream) writer(t *testing.T) *chunkWriter { return &chunkWriter{t: t, s: s} }

// chunk writes one chunk (the final one when data is empty).
func (w *chunkWriter) chunk(data []byte) *chunkWriter {
	w.b.WriteString(strconv.FormatInt(int64(len(data)), 16))
	if w.s.signedAlg() {
		sig, err := w.s.signer.GetSignature(context.Background(), nil, data, w.s.at)
		require.NoError(w.t, err)
		w.sigs = append(w.sigs, hex.EncodeToString(sig))
		w.b.WriteString(chunkSignaturePrefix + w.sigs[len(w.sigs)-1])
	}
	w.b.WriteString("\r\n")
	w.b.Write(data)
	w.data.Write(data)
	if len(data) > 0 {
		w.b.WriteString("\r\n")
	}
	return w
}

// chunks writes data in chunks of the given sizes, then the final chunk.
func (w *chunkWriter) chunks(data []byte, sizes ...int) *chunkWriter {
	for _, n := range sizes {
		w.chunk(data[:n])
		data = data[n:]
	}
	require.Empty(w.t, data)
	return w.chunk(nil)
}

// end writes what follows the final chunk: "\r\n", or the trailer block carrying the
// checksum value given ("" = the right one), signed for the signed trailer algorithm.
func (w *chunkWriter) end(value string) []byte {
	if w.s.alg == streamingSigned {
		w.b.WriteString("\r\n")
		return w.b.Bytes()
	}
	var lines string
	if w.s.trailer != "" {
		if value == "" {
			value = testChecksum(w.t, strings.TrimPrefix(w.s.trailer, checksumPrefix), w.data.Bytes())
		}
		lines = w.s.trailer + ":" + value + "\n"
	}
	w.b.WriteString(strings.ReplaceAll(lines, "\n", "\r\n"))
	if w.s.signedAlg() {
		w.b.WriteString(trailerSignatureHeader + ":" + w.s.trailerSignature(w.sigs[len(w.sigs)-1], lines) + "\r\n")
	}
	w.b.WriteString("\r\n")
	return w.b.Bytes()
}

// trailerSignature signs the trailer lines ("name:value\n" each) as AWS documents for
// STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, with a signing key derived here.
func (s *chunkStream) trailerSignature(prev, lines string) string {
	mac := func(key []byte, data string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(data))
		return m.Sum(nil)
	}
	day := s.at.Format("20060102")
	key := mac(mac(mac(mac([]byte("AWS4"+s.secret), day), "us-east-1"), "s3"), "aws4_request")
	sum := sha256.Sum256([]byte(lines))
	return hex.EncodeToString(mac(key, "AWS4-HMAC-SHA256-TRAILER\n"+s.at.Format(amzDateLayout)+"\n"+
		day+"/us-east-1/s3/aws4_request\n"+prev+"\n"+hex.EncodeToString(sum[:])))
}

// testChecksum computes a checksum value without newChecksum: CRC32 with hash/crc32, the
// others from checksum_test.go's independently checked vectors' algorithms.
func testChecksum(t *testing.T, alg string, data []byte) string {
	t.Helper()
	if alg == "crc32" {
		return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(data)))
	}
	h, ok := newChecksum(alg) // pinned by TestNewChecksumVectors
	require.True(t, ok, alg)
	h.Write(data)
	return checksumValue(h)
}

// decodeChunked decodes body with reads of readSize bytes: the decoded bytes, and the refusal
// (nil once Read returned io.EOF).
func decodeChunked(s *chunkStream, body []byte, readSize int) ([]byte, error) {
	c, err := newChunkedBody(bytes.NewReader(body), s.sig, s.alg, s.trailer, s.decoded)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	buf := make([]byte, readSize)
	for {
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			// Reads after the end keep saying so.
			if n, again := c.Read(buf); n != 0 || again != io.EOF {
				return nil, errors.New("read after EOF did not return io.EOF")
			}
			return out.Bytes(), nil
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				return nil, errors.New("refusal is not an *Error: " + err.Error())
			}
			if _, again := c.Read(buf); again != err {
				return nil, errors.New("refusal not sticky")
			}
			return out.Bytes(), err
		}
	}
}

func testBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

var chunkAlgorithms = []struct{ alg, trailer string }{
	{streamingSigned, ""},
	{streamingSignedTrailer, "x-amz-checksum-crc32"},
	{streamingUnsignedTrailer, "x-amz-checksum-crc32"},
	{streamingUnsignedTrailer, "x-amz-checksum-crc32c"},
	{streamingUnsignedTrailer, "x-amz-checksum-crc64nvme"},
	{streamingSignedTrailer, "x-amz-checksum-sha1"},
	{streamingSignedTrailer, "x-amz-checksum-sha256"},
	{streamingUnsignedTrailer, ""},
}

// TestChunkedOneChunk is S3.md §8 assertion 22: one 123-byte chunk and the final chunk.
func TestChunkedOneChunk(t *testing.T) {
	t.Parallel()
	for _, session := range []bool{false, true} {
		t.Run("session="+strconv.FormatBool(session), func(t *testing.T) {
			t.Parallel()
			data := testBytes(123)
			s := newChunkStream(t, streamingSigned, "", 123, session)
			body := s.writer(t).chunks(data, 123).end("")
			require.True(t, bytes.HasPrefix(body, []byte("7b;chunk-signature=")))
			got, err := decodeChunked(s, body, 32<<10)
			require.NoError(t, err)
			require.Equal(t, data, got)
		})
	}
}

// TestChunkedManyChunks decodes chunks of odd sizes, up to the 8 MiB maximum, with every
// algorithm and trailer checksum, read in 1-byte, 7-byte and 32 KiB pieces.
func TestChunkedManyChunks(t *testing.T) {
	t.Parallel()
	for _, a := range chunkAlgorithms {
		for _, readSize := range []int{1, 7, 32 << 10} {
			t.Run(a.alg+"/"+a.trailer+"/read="+strconv.Itoa(readSize), func(t *testing.T) {
				t.Parallel()
				sizes := []int{1, 8192, 65536, 3, 100000, 7, 4095, 4096, 4097}
				if readSize > 1 {
					sizes = append(sizes, maxChunkSize)
				}
				total := 0
				for _, n := range sizes {
					total += n
				}
				data := testBytes(total)
				s := newChunkStream(t, a.alg, a.trailer, int64(total), false)
				got, err := decodeChunked(s, s.writer(t).chunks(data, sizes...).end(""), readSize)
				require.NoError(t, err)
				require.True(t, bytes.Equal(data, got), "decoded bytes differ")
			})
		}
	}
}

// TestChunkedEmptyBody decodes a 0-byte body: the final chunk alone.
func TestChunkedEmptyBody(t *testing.T) {
	t.Parallel()
	for _, a := range chunkAlgorithms {
		t.Run(a.alg+"/"+a.trailer, func(t *testing.T) {
			t.Parallel()
			s := newChunkStream(t, a.alg, a.trailer, 0, false)
			body := s.writer(t).chunks(nil).end("")
			c, err := newChunkedBody(bytes.NewReader(body), s.sig, s.alg, s.trailer, s.decoded)
			require.Nil(t, err)
			n, rerr := c.Read(make([]byte, 10))
			require.Equal(t, 0, n)
			require.Equal(t, io.EOF, rerr)
			if a.trailer != "" {
				alg, value := c.checksumResult()
				require.Equal(t, strings.TrimPrefix(a.trailer, checksumPrefix), alg)
				require.Equal(t, testChecksum(t, alg, nil), value)
			}
		})
	}
}

// sdkCapture is the AWS SDK S3 client's HTTP client: it keeps each request and its body and
// answers 200, so the test sees exactly what the SDK puts on the wire.
type sdkCapture struct {
	req  *http.Request
	body []byte
}

func (c *sdkCapture) Do(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	c.req, c.body = r, body
	return &http.Response{StatusCode: 200, Header: http.Header{"Etag": {`"0"`}}, Body: http.NoBody, Request: r}, nil
}

// sdkPut is a PutObject as the AWS SDK S3 client sends it to endpoint.
func sdkPut(t *testing.T, endpoint string, in *awss3.PutObjectInput) *wire {
	t.Helper()
	capture := &sdkCapture{}
	client := awss3.New(awss3.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider(testAK, testSK, ""),
		BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		HTTPClient: capture,
		// What config.LoadDefaultConfig sets: a checksum on every upload.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
	})
	in.Bucket, in.Key = aws.String("b"), aws.String("k")
	_, err := client.PutObject(context.Background(), in)
	require.NoError(t, err)
	w := newWire(capture.req, capture.req.URL.RequestURI(), string(capture.body))
	w.host = capture.req.URL.Host
	// Sent to wait for the server's go-ahead, not signed; fasthttp's Request.Read would leave
	// the body unread for the handler to decide.
	return w.set("Expect", "")
}

// sdkChunked decodes what the SDK sent as verify and the door would: the signature, then the
// body through newChunkedBody with the request's own headers.
func sdkChunked(t *testing.T, w *wire) ([]byte, *chunkedBody, error) {
	t.Helper()
	ctx := w.ctx(t)
	cfg := testAuthConfig()
	cfg.Now = nil // the SDK signs with the clock
	sig, verr := verify(ctx, cfg)
	require.Nil(t, verr)
	h := &ctx.Request.Header
	c, err := newChunkedBody(bytes.NewReader(ctx.PostBody()), sig, string(h.Peek("X-Amz-Content-Sha256")),
		string(h.Peek("X-Amz-Trailer")), decodedContentLength(h.Peek("X-Amz-Decoded-Content-Length")))
	if err != nil {
		return nil, nil, err
	}
	got, rerr := io.ReadAll(c)
	return got, c, rerr
}

// TestChunkedSDKTrailer decodes the SDK S3 client's STREAMING-UNSIGNED-PAYLOAD-TRAILER bodies
// (what it sends over HTTPS by default) with each checksum algorithm: one chunk when the
// length is known, 64 KiB chunks when it is not; a checksum altered on the way is refused.
func TestChunkedSDKTrailer(t *testing.T) {
	t.Parallel()
	for _, alg := range []types.ChecksumAlgorithm{"", types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc32c,
		types.ChecksumAlgorithmCrc64nvme, types.ChecksumAlgorithmSha1, types.ChecksumAlgorithmSha256} {
		for _, known := range []bool{true, false} {
			t.Run(string(alg)+"/known="+strconv.FormatBool(known), func(t *testing.T) {
				t.Parallel()
				data := testBytes(150_000)
				var body io.Reader = bytes.NewReader(data)
				if !known {
					body = io.MultiReader(body) // not seekable: the SDK cannot tell its length
				}
				w := sdkPut(t, "https://localhost:5000/s3", &awss3.PutObjectInput{Body: body, ChecksumAlgorithm: alg})
				require.Equal(t, streamingUnsignedTrailer, w.get("X-Amz-Content-Sha256"))
				name := "crc32"
				if alg != "" {
					name = strings.ToLower(string(alg))
				}
				require.Equal(t, checksumPrefix+name, w.get("X-Amz-Trailer"))
				if !known {
					// Without the length the SDK sends no x-amz-decoded-content-length, which
					// S3 requires; an SDK that knows the length sends it (signed, above).
					require.Empty(t, w.get("X-Amz-Decoded-Content-Length"))
					_, _, err := sdkChunked(t, w)
					require.Equal(t, errMissingLength, err)
					w.set("X-Amz-Decoded-Content-Length", strconv.Itoa(len(data)))
					require.Contains(t, w.body, "10000\r\n") // 64 KiB chunks
				}
				got, c, err := sdkChunked(t, w)
				require.NoError(t, err)
				require.True(t, bytes.Equal(data, got), "decoded bytes differ")
				gotAlg, value := c.checksumResult()
				require.Equal(t, name, gotAlg)
				require.Equal(t, testChecksum(t, name, data), value)
				require.Contains(t, w.body, "\r\n0\r\n"+checksumPrefix+name+":"+value+"\r\n\r\n")

				// The same request with a well-formed checksum of other bytes.
				w.body = strings.Replace(w.body, value, testChecksum(t, name, []byte("other")), 1)
				_, _, err = sdkChunked(t, w)
				require.Equal(t, checksumMismatch(name), err)
			})
		}
	}
}

// TestChunkedTampered is S3.md §8 assertion 23 and its kin: a chunk signature, a chunk's data,
// the final chunk's signature or the trailer signature altered on the way is a
// SignatureDoesNotMatch in the credential mode's words.
func TestChunkedTampered(t *testing.T) {
	t.Parallel()
	flip := func(b []byte, at int) {
		if b[at] == '0' {
			b[at] = '1'
		} else {
			b[at] = '0'
		}
	}
	cases := []struct {
		name   string
		alg    string
		tamper func(body []byte, w *chunkWriter)
	}{
		{"FirstChunkSignature", streamingSigned, func(b []byte, w *chunkWriter) {
			flip(b, bytes.Index(b, []byte(w.sigs[0]))+5)
		}},
		{"SecondChunkSignature", streamingSigned, func(b []byte, w *chunkWriter) {
			flip(b, bytes.Index(b, []byte(w.sigs[1]))+63)
		}},
		{"ChunkData", streamingSigned, func(b []byte, w *chunkWriter) {
			b[bytes.Index(b, []byte(w.sigs[1]))+64+2+10]++
		}},
		{"FinalChunkSignature", streamingSigned, func(b []byte, w *chunkWriter) {
			flip(b, bytes.Index(b, []byte(w.sigs[len(w.sigs)-1])))
		}},
		{"TrailerSignature", streamingSignedTrailer, func(b []byte, w *chunkWriter) {
			flip(b, bytes.Index(b, []byte(trailerSignatureHeader+":"))+len(trailerSignatureHeader)+1)
		}},
		{"TrailerChecksumUnderSignature", streamingSignedTrailer, func(b []byte, w *chunkWriter) {
			// A checksum changed with the data it covers still breaks the trailer signature.
			i := bytes.Index(b, []byte(checksumPrefix+"crc32:")) + len(checksumPrefix+"crc32:")
			copy(b[i:], testChecksum(t, "crc32", []byte("other")))
		}},
	}
	for _, session := range []bool{false, true} {
		for _, tc := range cases {
			t.Run(tc.name+"/session="+strconv.FormatBool(session), func(t *testing.T) {
				t.Parallel()
				trailer := ""
				if tc.alg == streamingSignedTrailer {
					trailer = "x-amz-checksum-crc32"
				}
				data := testBytes(300)
				s := newChunkStream(t, tc.alg, trailer, 300, session)
				w := s.writer(t)
				body := w.chunks(data, 100, 200).end("")
				got, err := decodeChunked(s, body, 64)
				require.NoError(t, err)
				require.Equal(t, data, got)

				tc.tamper(body, w)
				want := errSignatureMismatch
				if session {
					want = errSessionMismatch
				}
				_, err = decodeChunked(s, body, 64)
				require.Equal(t, want, err)
			})
		}
	}
}

// chunkRefusal is a body (or a request) that is refused, and the refusal.
type chunkRefusal struct {
	name    string
	alg     string
	trailer string
	decoded int64 // 0: 10, the length of the bodies below; -1: x-amz-decoded-content-length missing
	anon    bool  // the request carries no signing key
	body    func(t *testing.T, s *chunkStream) []byte
	want    *Error
}

func runChunkRefusals(t *testing.T, cases []chunkRefusal) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			decoded := tc.decoded
			if decoded == 0 {
				decoded = 10
			}
			s := newChunkStream(t, streamingSigned, "", 10, false)
			s.alg, s.trailer, s.decoded = tc.alg, tc.trailer, decoded
			if tc.anon {
				s.sig = signed{}
			}
			var body []byte
			if tc.body != nil {
				body = tc.body(t, s)
			}
			_, err := decodeChunked(s, body, 4<<10)
			require.Equal(t, tc.want, err)
		})
	}
}

// good writes the 10-byte body "0123456789" in chunks of 4 and 6 bytes, up to the final
// chunk's header line.
func good(t *testing.T, s *chunkStream) *chunkWriter {
	return s.writer(t).chunks([]byte("0123456789"), 4, 6)
}

func raw10(b string) func(*testing.T, *chunkStream) []byte {
	return func(*testing.T, *chunkStream) []byte { return []byte(b) }
}

// TestChunkedRefusals covers each refusal of S3.md §2.9 and AWS's decoded-length, trailer and
// checksum checks, including §8 assertions 24, 25 and 27, and 26 deliberately reversed.
func TestChunkedRefusals(t *testing.T) {
	t.Parallel()
	sig := strings.Repeat("a", 64)
	runChunkRefusals(t, []chunkRefusal{
		// The request's declarations.
		{name: "Assertion27BareUnsigned", alg: "STREAMING-UNSIGNED-PAYLOAD",
			want: invalidStreamingAlgorithm("STREAMING-UNSIGNED-PAYLOAD")},
		{name: "ECDSA", alg: "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
			want: invalidStreamingAlgorithm("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD")},
		{name: "MissingDecodedLength", alg: streamingSigned, decoded: -1, want: errMissingLength},
		{name: "SignedWithoutKey", alg: streamingSigned, anon: true, want: errAnonymousStreaming},
		{name: "TrailerOnSignedPayload", alg: streamingSigned, trailer: "x-amz-checksum-crc32", want: errTrailerUnsupported},
		{name: "TrailerUnknownAlgorithm", alg: streamingUnsignedTrailer, trailer: "x-amz-checksum-md5", want: errTrailerUnsupported},
		{name: "TrailerNotAChecksum", alg: streamingUnsignedTrailer, trailer: "x-amz-meta-a", want: errTrailerUnsupported},
		{name: "TrailerTwoChecksums", alg: streamingUnsignedTrailer, trailer: "x-amz-checksum-crc32,x-amz-checksum-sha1", want: errTrailerUnsupported},
		{name: "SignedTrailerWithoutTrailer", alg: streamingSignedTrailer, want: errTrailerUnsupported},

		// Framing.
		{name: "Assertion24MissingFinalChunk", alg: streamingSigned, body: func(t *testing.T, s *chunkStream) []byte {
			w := s.writer(t).chunk([]byte("0123")).chunk([]byte("456789"))
			return w.b.Bytes()
		}, want: errMissingFinalChunk},
		{name: "EmptyBody", alg: streamingSigned, want: errMissingFinalChunk},
		{name: "HeaderTooLong", alg: streamingSigned, body: raw10("a;chunk-signature=" + sig + strings.Repeat(" ", 200) + "\r\n"), want: errChunkHeaderTooLong},
		{name: "HeaderWithoutEnd", alg: streamingSigned, body: raw10(strings.Repeat("a", 5000)), want: errChunkHeaderTooLong},
		{name: "ChunkTooLarge", alg: streamingSigned, decoded: 1 << 30, body: raw10("800001;chunk-signature=" + sig + "\r\n"), want: errChunkTooLarge},
		{name: "ChunkSizeOverflow", alg: streamingUnsignedTrailer, body: raw10("ffffffffffffffffffff\r\n"), want: errChunkTooLarge},
		{name: "SizeNotHex", alg: streamingSigned, body: raw10("0x4;chunk-signature=" + sig + "\r\n"), want: errChunkSize},
		{name: "SizeEmpty", alg: streamingSigned, body: raw10(";chunk-signature=" + sig + "\r\n"), want: errChunkSize},
		{name: "SizeWithSpace", alg: streamingUnsignedTrailer, body: raw10("4 \r\n0123\r\n"), want: errChunkSize},
		{name: "SignatureShort", alg: streamingSigned, body: raw10("4;chunk-signature=" + sig[1:] + "\r\n"), want: errChunkSignature},
		{name: "SignatureNotHex", alg: streamingSigned, body: raw10("4;chunk-signature=" + sig[1:] + "g\r\n"), want: errChunkSignature},
		{name: "TwoSignatures", alg: streamingSigned, body: raw10("4;chunk-signature=" + sig + ";chunk-signature=" + sig + "\r\n"), want: errChunkHeader},
		{name: "OtherExtension", alg: streamingSigned, body: raw10("4;name=value\r\n"), want: errChunkHeader},
		{name: "MissingSignature", alg: streamingSigned, body: raw10("4\r\n0123\r\n"), want: errMissingChunkSig},
		{name: "LFOnly", alg: streamingUnsignedTrailer, body: raw10("4\n0123\r\n"), want: errChunkHeader},
		{name: "IncompleteHeader", alg: streamingSigned, body: raw10("4;chunk-sig"), want: errIncompleteChunkHead},
		{name: "TruncatedData", alg: streamingSigned, body: func(t *testing.T, s *chunkStream) []byte {
			// Cut inside the second chunk's data: "456" arrives, "789\r\n" and the final
			// chunk's line (84 bytes) do not.
			b := good(t, s).b.Bytes()
			return b[:len(b)-84-2-3]
		}, want: errChunkDataEnd},
		{name: "MissingCRLFAfterData", alg: streamingUnsignedTrailer, body: raw10("4\r\n0123xx6\r\n456789\r\n0\r\n\r\n"), want: errChunkCRLF},
		{name: "DataLongerThanChunk", alg: streamingUnsignedTrailer, body: raw10("4\r\n01234\r\n"), want: errChunkCRLF},
		{name: "EndsAfterData", alg: streamingUnsignedTrailer, body: raw10("4\r\n0123"), want: errChunkCRLF},
		{name: "EndsAfterFinalChunk", alg: streamingSigned, body: func(t *testing.T, s *chunkStream) []byte {
			return good(t, s).b.Bytes()
		}, want: errChunkCRLF},
		{name: "DataAfterFinalChunk", alg: streamingSigned, body: func(t *testing.T, s *chunkStream) []byte {
			return append(good(t, s).end(""), 'x')
		}, want: errAfterFinalChunk},
		{name: "LineAfterFinalChunk", alg: streamingSigned, body: func(t *testing.T, s *chunkStream) []byte {
			return append(good(t, s).b.Bytes(), "x\r\n\r\n"...)
		}, want: errAfterFinalChunk},
		{name: "DataAfterTrailer", alg: streamingUnsignedTrailer, trailer: "x-amz-checksum-crc32", body: func(t *testing.T, s *chunkStream) []byte {
			return append(good(t, s).end(""), "\r\n"...)
		}, want: errAfterFinalChunk},

		// x-amz-decoded-content-length.
		{name: "DecodedFewer", alg: streamingSigned, decoded: 11, body: func(t *testing.T, s *chunkStream) []byte {
			return good(t, s).end("")
		}, want: errIncompleteBody},
		{name: "DecodedMore", alg: streamingSigned, decoded: 9, body: func(t *testing.T, s *chunkStream) []byte {
			return good(t, s).end("")
		}, want: errDecodedTooLong},

		// The trailer block.
		{name: "Assertion25NoTrailerBlock", alg: streamingSignedTrailer, trailer: "x-amz-checksum-crc32", body: func(t *testing.T, s *chunkStream) []byte {
			return good(t, s).b.Bytes()
		}, want: errIncompleteTrailer},
		{name: "Assertion25EmptyTrailerBlock", alg: streamingSignedTrailer, trailer: "x-amz-checksum-crc32", body: func(t *testing.T, s *chunkStream) []byte {
			return append(good(t, s).b.Bytes(), "\r\n"...)
		}, want: errMalformedTrailer},
		{name: "UnsignedEmptyTrailerBlock", alg: streamingUnsignedTrailer, trailer: "x-amz-checksum-crc32", body: raw10("a\r\n0123456789\r\n0\r\n\r\n"), want: errMalformedTrailer},
		{name: "TrailerUnterminated", alg: streamingUnsignedTrailer, trailer: "x-amz-checksum-crc32", body: raw10("a\r\n0123456789\r\n0\r\nx-amz-checksum-crc32:poTHxg==\r\n"), want: errIncompleteTrailer},
		{name: "Assertion26WrongCRC32Unsigned", alg: streamingUnsignedTrailer, trailer: "x-amz-checksum-crc32", body: func(t *testing.T, s *chunkStream) []byte {
			return good(t, s).end(testChecksum(t, "crc32", []byte("other")))
		}, want: s3err(400, "BadDigest", "The CRC32 you specified did not match the calculated checksum.")},
		{name: "WrongCRC32Signed", alg: streamingSignedTrailer, trailer: "x-amz-checksum-crc32", body: func(t *testing.T, s *chunkStream) []byte {
			return good(t, s).end(testChecksum(t, "crc32", []byte("other")))
		}, want: checksumMismatch("crc32")},
		{name: "WrongSHA256", alg: streamingUnsignedTrailer, trailer: "x-amz-checksum-sha256", body: func(t *testing.T, s *chunkStream) []byte {
			return good(t, s).end(testChecksum(t, "sha256", []byte("other")))
		}, want: s3err(400, "BadDigest", "The SHA256 you specified did not match the calculated checksum.")},
		{name: "TrailerChecksumNotBase64", alg: streamingUnsignedTrailer, trailer: "x-amz-checksum-crc32", body: func(t *testing.T, s *chunkStream) []byte {
			return good(t, s).end("not-base64")
		}, want: s3err(400, "InvalidRequest", "Value for x-amz-checksum-crc32 trailing header is invalid.")},
		{name: "TrailerChecksumWrongSize", alg: streamingUnsignedTrailer, trailer: "x-amz-checksum-crc32", body: func(t *testing.T, s *chunkStream) []byte {
			return good(t, s).end(testChecksum(t, "sha1", []byte("0123456789")))
		}, want: invalidTrailingChecksum("x-amz-checksum-crc32")},
		{name: "TrailerUndeclaredName", alg: streamingUnsignedTrailer, trailer: "x-amz-checksum-crc32", body: raw10("a\r\n0123456789\r\n0\r\nx-amz-checksum-crc32c:poTHxg==\r\n\r\n"), want: errMalformedTrailer},
		{name: "TrailerWithoutDeclaration", alg: streamingUnsignedTrailer, body: raw10("a\r\n0123456789\r\n0\r\nx-amz-checksum-crc32:poTHxg==\r\n\r\n"), want: errMalformedTrailer},
		{name: "TrailerTwice", alg: streamingUnsignedTrailer, trailer: "x-amz-checksum-crc32", body: raw10("a\r\n0123456789\r\n0\r\nx-amz-checksum-crc32:poTHxg==\r\nx-amz-checksum-crc32:poTHxg==\r\n\r\n"), want: errMalformedTrailer},
		{name: "TrailerLineWithoutColon", alg: streamingUnsignedTrailer, trailer: "x-amz-checksum-crc32", body: raw10("a\r\n0123456789\r\n0\r\nx-amz-checksum-crc32\r\n\r\n"), want: errMalformedTrailer},
		{name: "TrailerSignatureOnUnsigned", alg: streamingUnsignedTrailer, trailer: "x-amz-checksum-crc32", body: raw10("a\r\n0123456789\r\n0\r\nx-amz-checksum-crc32:poTHxg==\r\nx-amz-trailer-signature:" + sig + "\r\n\r\n"), want: errMalformedTrailer},
		{name: "TrailerSignatureMissing", alg: streamingSignedTrailer, trailer: "x-amz-checksum-crc32", body: func(t *testing.T, s *chunkStream) []byte {
			b := good(t, s).end("")
			i := bytes.Index(b, []byte(trailerSignatureHeader))
			return append(b[:i:i], "\r\n"...)
		}, want: errMalformedTrailer},
		{name: "TrailerSignatureShort", alg: streamingSignedTrailer, trailer: "x-amz-checksum-crc32", body: func(t *testing.T, s *chunkStream) []byte {
			b := good(t, s).end("")
			i := bytes.Index(b, []byte(trailerSignatureHeader)) + len(trailerSignatureHeader) + 1
			return append(b[:i:i], sig[1:]+"\r\n\r\n"...)
		}, want: errChunkSignature},
	})
}

// TestChunkedStopsAtDeclaredLength checks that a chunk crossing x-amz-decoded-content-length
// is refused at its header: none of its bytes reach the reader.
func TestChunkedStopsAtDeclaredLength(t *testing.T) {
	t.Parallel()
	for _, a := range chunkAlgorithms {
		t.Run(a.alg+"/"+a.trailer, func(t *testing.T) {
			t.Parallel()
			s := newChunkStream(t, a.alg, a.trailer, 9, false)
			got, err := decodeChunked(s, good(t, s).end(""), 1)
			require.Equal(t, errDecodedTooLong, err)
			require.Equal(t, "0123", string(got))
		})
	}
}

// The unsigned trailer's CRC32 of "0123456789", as the raw bodies above carry it.
func TestChunkedRawCRC32(t *testing.T) {
	t.Parallel()
	require.Equal(t, "poTHxg==", testChecksum(t, "crc32", []byte("0123456789")))
	s := newChunkStream(t, streamingUnsignedTrailer, "x-amz-checksum-crc32", 10, false)
	got, err := decodeChunked(s, []byte("a\r\n0123456789\r\n0\r\nx-amz-checksum-crc32:poTHxg==\r\n\r\n"), 3)
	require.NoError(t, err)
	require.Equal(t, "0123456789", string(got))
}

// TestChunkedDecodedLengthHeader pins decodedContentLength: a decimal count, else -1.
func TestChunkedDecodedLengthHeader(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]int64{"0": 0, "123": 123, "9223372036854775807": 1<<63 - 1,
		"": -1, "-1": -1, "+1": -1, "12x": -1, "abc": -1, " 1": -1, "9223372036854775808": -1, "1e3": -1} {
		require.Equal(t, want, decodedContentLength([]byte(v)), v)
	}
}

// TestChunkedMemoryFlat decodes a 64 MiB body (1024 chunks of 64 KiB, as the SDKs send, with
// each algorithm; eight of 8 MiB, signed) and checks that the decoder allocates no more for it than for 10 bytes. The
// measurement runs in a child process running this test alone, since allocation counters
// are process-wide and the package's other tests run in parallel.
func TestChunkedMemoryFlat(t *testing.T) {
	t.Parallel()
	if os.Getenv("S3_CHUNKED_MEMORY_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestChunkedMemoryFlat$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "S3_CHUNKED_MEMORY_CHILD=1")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, string(out))
		require.Contains(t, string(out), "--- PASS: TestChunkedMemoryFlat")
		t.Log(strings.TrimSpace(string(out)))
		return
	}

	type body struct {
		s    *chunkStream
		wire []byte
	}
	encode := func(alg, trailer string, sizes ...int) body {
		total := 0
		for _, n := range sizes {
			total += n
		}
		s := newChunkStream(t, alg, trailer, int64(total), false)
		return body{s, s.writer(t).chunks(testBytes(total), sizes...).end("")}
	}
	sdkSizes := make([]int, 1024)
	for i := range sdkSizes {
		sdkSizes[i] = 64 << 10
	}
	large := []int{8 << 20, 8 << 20, 8 << 20, 8 << 20, 8 << 20, 8 << 20, 8 << 20, 8 << 20}

	// measure decodes b through a 32 KiB buffer and returns the allocations and bytes allocated:
	// the least of three runs, with the collector off while it counts, since what the runtime
	// itself allocates now and then only ever adds.
	buf := make([]byte, 32<<10)
	measure := func(b body) (mallocs, allocated uint64) {
		mallocs, allocated = math.MaxUint64, math.MaxUint64
		for range 3 {
			var before, after runtime.MemStats
			runtime.GC()
			gc := debug.SetGCPercent(-1)
			runtime.ReadMemStats(&before)
			c, err := newChunkedBody(bytes.NewReader(b.wire), b.s.sig, b.s.alg, b.s.trailer, b.s.decoded)
			n, rerr := io.CopyBuffer(discard{}, c, buf)
			runtime.ReadMemStats(&after)
			debug.SetGCPercent(gc)
			require.Nil(t, err)
			require.NoError(t, rerr)
			require.Equal(t, b.s.decoded, n)
			mallocs = min(mallocs, after.Mallocs-before.Mallocs)
			allocated = min(allocated, after.TotalAlloc-before.TotalAlloc)
		}
		return mallocs, allocated
	}
	for _, a := range []struct{ alg, trailer string }{
		{streamingSigned, ""}, {streamingSignedTrailer, "x-amz-checksum-crc32c"}, {streamingUnsignedTrailer, "x-amz-checksum-crc64nvme"},
	} {
		small := encode(a.alg, a.trailer, 10)
		shapes := [][]int{sdkSizes}
		if a.alg == streamingSigned {
			shapes = append(shapes, large)
		}
		for _, sizes := range shapes {
			big := encode(a.alg, a.trailer, sizes...)
			require.Equal(t, int64(64<<20), big.s.decoded)
			smallMallocs, smallBytes := measure(small)
			bigMallocs, bigBytes := measure(big)
			t.Logf("%s %s, %d chunks: %d allocations (%d bytes) for 10 bytes, %d allocations (%d bytes) for 64 MiB",
				a.alg, a.trailer, len(sizes), smallMallocs, smallBytes, bigMallocs, bigBytes)
			// One allocation per chunk would be 1024 more, a buffered chunk 64 KiB or 8 MiB.
			require.LessOrEqual(t, bigMallocs, smallMallocs+2)
			require.Less(t, bigBytes, smallBytes+4<<10)
		}
	}
}

// discard is io.Discard without ReadFrom, so io.CopyBuffer reads with the buffer given, as an
// upload's copy into the blob store does.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
