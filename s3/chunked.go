package s3

// aws-chunked request bodies (S3.md §2.9): the body is framed as
//
//	<hex size>[;chunk-signature=<64 hex>]\r\n<data>\r\n … 0[;chunk-signature=…]\r\n
//
// followed by "\r\n", or, for the …-TRAILER algorithms, by trailer lines "name:value\r\n" and
// an empty line. chunkedBody strips the framing while the body streams: chunk data goes
// straight from the connection into the caller's buffer, hashed on the way, so memory stays
// at one bufio buffer whatever the chunk and body sizes.
//
// Stricter than the reference, as AWS is: the trailer's checksum is computed and compared,
// the trailer signature is verified, and the decoded size must be x-amz-decoded-content-length.
// Every refusal is an *Error returned by Read in place of io.EOF, so the blob store that reads
// the body discards what it had and nothing is stored. A chunk's signature can only be checked
// once its last byte has passed; a mismatch then fails the upload before anything is committed.

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"strconv"
	"strings"
)

// The aws-chunked algorithms (x-amz-content-sha256 values).
const (
	streamingSigned          = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	streamingSignedTrailer   = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	streamingUnsignedTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
)

const (
	// maxChunkHeader is the longest chunk header line, CRLF excluded (S3.md §2.9).
	maxChunkHeader = 256
	// maxChunkSize is the largest chunk (S3.md §2.9).
	maxChunkSize = 8 << 20
	// maxTrailerLines bounds the trailer block: a checksum and a trailer signature.
	maxTrailerLines = 2
	// chunkBufferSize is the decoder's one buffer; chunk data larger than what is left of it
	// is read straight into the caller's slice.
	chunkBufferSize = 4 << 10

	chunkSignaturePrefix   = ";chunk-signature="
	trailerSignatureHeader = "x-amz-trailer-signature"
)

// Refusals of aws-chunked bodies. The reference's words where it has them (S3.md §2.9), AWS's
// where only AWS checks (decoded length, trailer contents, checksums).
var (
	errChunkHeaderTooLong  = s3err(413, "EntityTooLarge", "The chunk header exceeded 256 bytes")
	errChunkTooLarge       = s3err(413, "EntityTooLarge", "The chunk exceeded 8388608 bytes")
	errChunkHeader         = s3err(400, "InvalidRequest", "Invalid chunk header")
	errChunkSize           = s3err(400, "InvalidRequest", "Invalid chunk size")
	errChunkSignature      = s3err(400, "InvalidRequest", "Invalid chunk signature")
	errMissingChunkSig     = s3err(400, "InvalidSignature", "Missing chunk signature")
	errChunkCRLF           = s3err(400, "InvalidRequest", "Missing CRLF after chunk data")
	errMissingFinalChunk   = s3err(400, "InvalidRequest", "Missing final chunk")
	errAfterFinalChunk     = s3err(400, "InvalidRequest", "Unexpected data after final chunk")
	errIncompleteChunkHead = s3err(400, "InvalidRequest", "Incomplete chunk header")
	errChunkDataEnd        = s3err(400, "InvalidRequest", "Unexpected end of chunk data")
	errIncompleteTrailer   = s3err(400, "InvalidRequest", "Incomplete trailer section")
	errMalformedTrailer    = s3err(400, "MalformedTrailerError", "The request contained trailing data that was not well-formed or did not conform to our published schema.")
	errTrailerUnsupported  = s3err(400, "InvalidRequest", "The value specified in the x-amz-trailer header is not supported")
	errAnonymousStreaming  = s3err(400, "InvalidRequest", "Anonymous requests don't support this x-amz-content-sha256 value. Please use UNSIGNED-PAYLOAD or STREAMING-UNSIGNED-PAYLOAD-TRAILER.")
	// errDecodedTooLong: the chunks carry more than x-amz-decoded-content-length. AWS answers
	// both a short and a long body with IncompleteBody; this one is refused at the chunk
	// header that crosses the length, before any of its bytes are passed on.
	errDecodedTooLong = errIncompleteBody
	// errBodyRead: the connection failed under the body (the cause is kept for the log).
	errBodyRead = s3err(400, "IncompleteBody", "The request body terminated unexpectedly")
)

// invalidStreamingAlgorithm refuses an x-amz-content-sha256 that starts with STREAMING- but
// names no algorithm decoded here (S3.md §2.9, §8 assertion 27).
func invalidStreamingAlgorithm(v string) *Error {
	return s3err(400, "InvalidRequest", "Invalid streaming algorithm: "+v)
}

// decodedContentLength parses x-amz-decoded-content-length: -1 when missing or not a
// non-negative decimal, which newChunkedBody refuses.
func decodedContentLength(v []byte) int64 {
	if len(v) == 0 || len(v) > 19 {
		return -1
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return -1
		}
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// chunkedBody decodes an aws-chunked request body while it streams.
type chunkedBody struct {
	br *bufio.Reader

	signed   bool // chunk and trailer signatures are verified
	trailers bool // a trailer block follows the final chunk
	mismatch *Error
	want     int64 // x-amz-decoded-content-length
	decoded  int64 // data bytes announced by the chunk headers so far

	left    int64 // data bytes of the current chunk not yet passed on
	inChunk bool  // a data chunk is open: its CRLF and signature are still to check
	done    bool
	err     *Error // sticky: every Read after a refusal returns it

	// Signature chain: the string to sign's fixed prefix, the HMAC keyed with the signing key,
	// the previous signature in hex (the seed first), and the current chunk's declared one.
	payloadPrefix []byte // "AWS4-HMAC-SHA256-PAYLOAD\n<date>\n<scope>\n"
	trailerPrefix []byte // "AWS4-HMAC-SHA256-TRAILER\n<date>\n<scope>\n"
	mac           hash.Hash
	chunkSHA      hash.Hash // SHA-256 of the current chunk's data; of the trailer lines at the end
	prev          [2 * sha256.Size]byte
	declared      [sha256.Size]byte
	hasDeclared   bool
	// Scratch for sums: a local array handed to hash.Hash's methods would escape to the heap
	// once per chunk.
	sum    [sha256.Size]byte
	sumHex [2 * sha256.Size]byte

	// The trailer's checksum: its header name, the running hash of the decoded bytes and the
	// value the trailer carried.
	checksumName string // "x-amz-checksum-<alg>", "" = none declared
	checksum     hash.Hash
	checksumSent string
}

// newChunkedBody decodes body, an aws-chunked request body (S3.md §2.9). algorithm is
// x-amz-content-sha256; sig the request's verified signature (its key, seed, date and scope
// sign the chunks); trailer is x-amz-trailer ("" = none); decodedLength is
// x-amz-decoded-content-length as decodedContentLength parses it (-1 = missing or invalid).
func newChunkedBody(body io.Reader, sig signed, algorithm, trailer string, decodedLength int64) (*chunkedBody, *Error) {
	c := &chunkedBody{want: decodedLength}
	switch algorithm {
	case streamingSigned:
		c.signed = true
	case streamingSignedTrailer:
		c.signed, c.trailers = true, true
	case streamingUnsignedTrailer:
		c.trailers = true
	default:
		return nil, invalidStreamingAlgorithm(algorithm)
	}
	if c.signed && len(sig.SigningKey) == 0 {
		return nil, errAnonymousStreaming
	}
	if decodedLength < 0 {
		return nil, errMissingLength
	}

	// x-amz-trailer names the one checksum the trailer carries. AWS accepts an unsigned
	// trailer stream without one (the trailer block is then empty); a signed trailer exists
	// to sign a checksum, so it must name one.
	trailer = strings.ToLower(strings.TrimSpace(trailer))
	switch {
	case trailer == "" && c.signed && c.trailers:
		return nil, errTrailerUnsupported
	case trailer == "":
	case !c.trailers:
		return nil, errTrailerUnsupported
	default:
		alg, ok := strings.CutPrefix(trailer, checksumPrefix)
		if !ok {
			return nil, errTrailerUnsupported
		}
		if c.checksum, ok = newChecksum(alg); !ok {
			return nil, errTrailerUnsupported
		}
		c.checksumName = trailer
	}

	if c.signed {
		c.mismatch = errSignatureMismatch
		if sig.Session {
			c.mismatch = errSessionMismatch
		}
		if len(sig.Seed) != len(c.prev) {
			return nil, c.mismatch
		}
		copy(c.prev[:], sig.Seed)
		c.payloadPrefix = []byte("AWS4-HMAC-SHA256-PAYLOAD\n" + sig.Date + "\n" + sig.Scope + "\n")
		c.trailerPrefix = []byte("AWS4-HMAC-SHA256-TRAILER\n" + sig.Date + "\n" + sig.Scope + "\n")
		c.mac = hmac.New(sha256.New, sig.SigningKey)
		c.chunkSHA = sha256.New()
	}
	c.br = bufio.NewReaderSize(body, chunkBufferSize)
	return c, nil
}

// checksumResult is the trailer's checksum once Read has returned io.EOF: the algorithm in
// lower case and the verified value ("", "" when the trailer carried none). S3 echoes it in
// the response's x-amz-checksum-<alg> header.
func (c *chunkedBody) checksumResult() (alg, value string) {
	if !c.done || c.checksumName == "" {
		return "", ""
	}
	return strings.TrimPrefix(c.checksumName, checksumPrefix), c.checksumSent
}

// Read returns decoded body bytes; io.EOF only once the whole body has been read and
// verified, every refusal as an *Error.
func (c *chunkedBody) Read(p []byte) (int, error) {
	for {
		switch {
		case c.err != nil:
			return 0, c.err
		case c.done:
			return 0, io.EOF
		case len(p) == 0:
			return 0, nil
		case c.left > 0:
			return c.readData(p)
		case c.inChunk:
			c.fail(c.endChunk())
		default:
			c.fail(c.nextChunk())
		}
	}
}

func (c *chunkedBody) fail(err *Error) {
	if err != nil {
		c.err = err
	}
}

// readData passes on bytes of the current chunk, hashing them.
func (c *chunkedBody) readData(p []byte) (int, error) {
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	if n > 0 {
		c.left -= int64(n)
		if c.chunkSHA != nil {
			c.chunkSHA.Write(p[:n])
		}
		if c.checksum != nil {
			c.checksum.Write(p[:n])
		}
		return n, nil // a read error shows again on the next Read
	}
	if err == nil {
		return 0, nil
	}
	c.err = c.readError(err, errChunkDataEnd)
	return 0, c.err
}

// readError maps a failed read of the body: its end where more was due is the refusal given,
// any other failure keeps its cause (an *Error from a wrapped stream passes through).
func (c *chunkedBody) readError(err error, atEnd *Error) *Error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return atEnd
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	wrapped := *errBodyRead
	wrapped.cause = err
	return &wrapped
}

// endChunk checks what follows a data chunk (CRLF) and the chunk's signature.
func (c *chunkedBody) endChunk() *Error {
	for _, want := range [2]byte{'\r', '\n'} {
		b, err := c.br.ReadByte()
		if err != nil {
			return c.readError(err, errChunkCRLF)
		}
		if b != want {
			return errChunkCRLF
		}
	}
	c.inChunk = false
	return c.verifyChunk()
}

// verifyChunk checks the signature of the chunk whose data was just hashed (S3.md §2.9):
// HMAC(key, "AWS4-HMAC-SHA256-PAYLOAD\n<date>\n<scope>\n<previous>\n<sha256("")>\n<sha256(data)>").
func (c *chunkedBody) verifyChunk() *Error {
	if !c.signed {
		return nil
	}
	hex.Encode(c.sumHex[:], c.chunkSHA.Sum(c.sum[:0]))
	c.chunkSHA.Reset()
	c.mac.Reset()
	c.mac.Write(c.payloadPrefix)
	c.mac.Write(c.prev[:])
	c.mac.Write(emptyHashLine)
	c.mac.Write(c.sumHex[:])
	return c.checkSignature()
}

// checkSignature compares the HMAC written so far with the declared signature (constant time)
// and makes it the previous signature of the chain.
func (c *chunkedBody) checkSignature() *Error {
	mac := c.mac.Sum(c.sum[:0])
	if !c.hasDeclared || !hmac.Equal(mac, c.declared[:]) {
		return c.mismatch
	}
	c.hasDeclared = false
	hex.Encode(c.prev[:], mac)
	return nil
}

// emptyHashLine is the chunk string to sign's line between the previous signature and the
// data's hash: the hex SHA-256 of the (absent) chunk headers. A variable, so writing it to the
// HMAC allocates nothing.
var emptyHashLine = []byte("\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n")

var newline = []byte{'\n'}

// nextChunk reads a chunk header; the final one also ends the body.
func (c *chunkedBody) nextChunk() *Error {
	line, err := c.readLine(maxChunkHeader)
	switch {
	case err == io.EOF && len(line) == 0:
		return errMissingFinalChunk
	case err == io.EOF:
		return errIncompleteChunkHead
	case err == errLineTooLong:
		return errChunkHeaderTooLong
	case err == errLineEnding:
		return errChunkHeader
	case err != nil:
		return c.readError(err, errIncompleteChunkHead)
	}

	sizeEnd := bytes.IndexByte(line, ';')
	if sizeEnd < 0 {
		sizeEnd = len(line)
	}
	size, e := chunkSize(line[:sizeEnd])
	if e != nil {
		return e
	}
	if e := c.chunkSignature(line[sizeEnd:]); e != nil {
		return e
	}
	if size > c.want-c.decoded {
		return errDecodedTooLong
	}
	c.decoded += size
	if size > 0 {
		c.left, c.inChunk = size, true
		return nil
	}

	// The final chunk: its (empty) data is signed too.
	if e := c.verifyChunk(); e != nil {
		return e
	}
	if c.decoded != c.want {
		return errIncompleteBody
	}
	if c.trailers {
		if e := c.readTrailer(); e != nil {
			return e
		}
	} else {
		line, err := c.readLine(maxChunkHeader)
		switch {
		case err == nil && len(line) == 0:
		case err == nil || err == errLineTooLong || err == errLineEnding:
			return errAfterFinalChunk
		default:
			return c.readError(err, errChunkCRLF)
		}
	}
	// Nothing may follow the body.
	if _, err := c.br.ReadByte(); err == nil {
		return errAfterFinalChunk
	} else if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return c.readError(err, errBodyRead)
	}
	c.done = true
	return nil
}

// chunkSize parses a chunk header's hex size.
func chunkSize(s []byte) (int64, *Error) {
	if len(s) == 0 {
		return 0, errChunkSize
	}
	var n int64
	for _, d := range s {
		var v byte
		switch {
		case '0' <= d && d <= '9':
			v = d - '0'
		case 'a' <= d && d <= 'f':
			v = d - 'a' + 10
		case 'A' <= d && d <= 'F':
			v = d - 'A' + 10
		default:
			return 0, errChunkSize
		}
		n = n<<4 | int64(v)
		if n > maxChunkSize {
			return 0, errChunkTooLarge
		}
	}
	return n, nil
}

// chunkSignature parses what follows a chunk header's size: nothing, or one
// ";chunk-signature=<64 hex>". Signed algorithms require it; unsigned ones ignore it, as the
// reference does.
func (c *chunkedBody) chunkSignature(ext []byte) *Error {
	if len(ext) == 0 {
		if c.signed {
			return errMissingChunkSig
		}
		return nil
	}
	sig, ok := bytes.CutPrefix(ext, []byte(chunkSignaturePrefix))
	if !ok || bytes.Contains(sig, []byte(chunkSignaturePrefix)) {
		return errChunkHeader
	}
	var declared [sha256.Size]byte
	if len(sig) != 2*sha256.Size {
		return errChunkSignature
	}
	if _, err := hex.Decode(declared[:], sig); err != nil {
		return errChunkSignature
	}
	if c.signed {
		c.declared, c.hasDeclared = declared, true
	}
	return nil
}

// readTrailer reads the trailer block after the final chunk: the declared checksum and, for
// the signed algorithm, x-amz-trailer-signature, then an empty line. It verifies both.
func (c *chunkedBody) readTrailer() *Error {
	var sentSig bool
	if c.signed {
		c.chunkSHA.Reset() // now the hash of the trailer lines
	}
	for lines := 0; ; lines++ {
		line, err := c.readLine(maxChunkHeader)
		switch {
		case err == errLineTooLong || err == errLineEnding:
			return errMalformedTrailer
		case err != nil:
			return c.readError(err, errIncompleteTrailer)
		}
		if len(line) == 0 {
			break
		}
		if lines == maxTrailerLines {
			return errMalformedTrailer
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return errMalformedTrailer
		}
		name, value = bytes.TrimSpace(name), bytes.TrimSpace(value)
		switch {
		case c.checksumName != "" && c.checksumSent == "" && strings.EqualFold(string(name), c.checksumName):
			if !validChecksum(c.checksum, string(value)) {
				return invalidTrailingChecksum(c.checksumName)
			}
			c.checksumSent = string(value)
			if c.signed {
				// The trailer signature covers the trailer lines as "name:value\n".
				c.chunkSHA.Write(line)
				c.chunkSHA.Write(newline)
			}
		case c.signed && !sentSig && strings.EqualFold(string(name), trailerSignatureHeader):
			if len(value) != 2*sha256.Size {
				return errChunkSignature
			}
			if _, err := hex.Decode(c.declared[:], value); err != nil {
				return errChunkSignature
			}
			c.hasDeclared, sentSig = true, true
		default:
			return errMalformedTrailer
		}
	}
	if (c.checksumName != "" && c.checksumSent == "") || (c.signed && !sentSig) {
		return errMalformedTrailer
	}
	if c.signed {
		// HMAC(key, "AWS4-HMAC-SHA256-TRAILER\n<date>\n<scope>\n<final chunk's signature>\n<sha256(trailer lines)>")
		hex.Encode(c.sumHex[:], c.chunkSHA.Sum(c.sum[:0]))
		c.mac.Reset()
		c.mac.Write(c.trailerPrefix)
		c.mac.Write(c.prev[:])
		c.mac.Write(newline)
		c.mac.Write(c.sumHex[:])
		if e := c.checkSignature(); e != nil {
			return e
		}
	}
	if c.checksumName != "" && checksumValue(c.checksum) != c.checksumSent {
		return checksumMismatch(strings.TrimPrefix(c.checksumName, checksumPrefix))
	}
	return nil
}

var (
	errLineTooLong = errors.New("line too long")
	errLineEnding  = errors.New("line not ended by CRLF")
)

// readLine reads one CRLF-ended line of at most max bytes (CRLF excluded) and returns it
// without the CRLF; the slice is valid until the next read. At the end of the body it returns
// what it had with io.EOF.
func (c *chunkedBody) readLine(max int) ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	switch {
	case len(line) > max+2 || errors.Is(err, bufio.ErrBufferFull):
		return nil, errLineTooLong
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return line, io.EOF
	case err != nil:
		return nil, err
	case len(line) < 2 || line[len(line)-2] != '\r':
		return nil, errLineEnding
	}
	return line[:len(line)-2], nil
}
