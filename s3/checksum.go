package s3

// S3's additional checksums (x-amz-checksum-<alg>): a whole-body value declared in a header,
// or sent after the body in an aws-chunked trailer (chunked.go). The reference parses neither
// (S3.md §2.10); here a declared checksum is computed while the body streams and a mismatch
// stores nothing, with AWS's error codes and wording.

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"strings"

	"github.com/valyala/fasthttp"
)

// Refusals of checksum declarations, in AWS's words.
var (
	// errChecksumHeader: an x-amz-checksum-<alg> header naming no algorithm S3 knows.
	errChecksumHeader = s3err(400, "InvalidRequest", "The algorithm type you specified in x-amz-checksum- header is invalid.")
	// errMultipleChecksums: more than one x-amz-checksum-<alg> header, or one beside x-amz-trailer.
	errMultipleChecksums = s3err(400, "InvalidRequest", "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")
	// errChecksumAlgorithm: x-amz-sdk-checksum-algorithm naming no algorithm S3 knows.
	errChecksumAlgorithm = s3err(400, "InvalidRequest", "Checksum algorithm provided is unsupported. Please try again with any of the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]")
	// errSDKChecksumAlone: x-amz-sdk-checksum-algorithm without the checksum it announces.
	errSDKChecksumAlone = s3err(400, "InvalidRequest", "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found.")
)

// invalidChecksumValue refuses a checksum header whose value is not the base64 of a digest of
// its algorithm's size (or, for x-amz-sdk-checksum-algorithm, names another algorithm).
func invalidChecksumValue(header string) *Error {
	return s3err(400, "InvalidRequest", "Value for "+header+" header is invalid.")
}

// invalidTrailingChecksum is invalidChecksumValue for a value sent in the aws-chunked trailer.
func invalidTrailingChecksum(header string) *Error {
	return s3err(400, "InvalidRequest", "Value for "+header+" trailing header is invalid.")
}

// checksumMismatch is the refusal of a body whose checksum is not the declared one.
func checksumMismatch(alg string) *Error {
	return s3err(400, "BadDigest", "The "+strings.ToUpper(alg)+" you specified did not match the calculated checksum.")
}

const checksumPrefix = "x-amz-checksum-"

var (
	crc32cTable = crc32.MakeTable(crc32.Castagnoli)
	// crc64NVMETable is CRC-64/NVME's polynomial 0xad93d23594c93659, bit-reversed as
	// hash/crc64 expects; made once, since crc64.MakeTable builds a new table for it per call.
	crc64NVMETable = crc64.MakeTable(0x9a6c9329ac4bc9b5)
)

// newChecksum returns the hash of an S3 checksum algorithm named as in x-amz-checksum-<alg>
// headers and trailers ("crc32", "crc32c", "crc64nvme", "sha1", "sha256"; any case), or false.
func newChecksum(alg string) (hash.Hash, bool) {
	switch strings.ToLower(alg) {
	case "crc32":
		return crc32.NewIEEE(), true
	case "crc32c":
		return crc32.New(crc32cTable), true
	case "crc64nvme":
		return crc64.New(crc64NVMETable), true
	case "sha1":
		return sha1.New(), true
	case "sha256":
		return sha256.New(), true
	}
	return nil, false
}

// checksumValue renders a finished hash as S3 sends it: base64 of the big-endian digest (the
// byte order hash/crc32 and hash/crc64 already use for Sum).
func checksumValue(h hash.Hash) string {
	var buf [sha256.Size]byte
	return base64.StdEncoding.EncodeToString(h.Sum(buf[:0]))
}

// validChecksum tells whether value is a well-formed checksum for a hash of h's size.
func validChecksum(h hash.Hash, value string) bool {
	var buf [sha256.Size + 3]byte // base64's decoder wants room for a whole last quantum
	if base64.StdEncoding.DecodedLen(len(value)) > len(buf) {
		return false
	}
	n, err := base64.StdEncoding.Decode(buf[:], []byte(value))
	return err == nil && n == h.Size()
}

// checksumCheck computes a body's checksum as it streams (Write) and compares it with the
// declared one at the end (verify).
type checksumCheck struct {
	alg  string // lower case, as in the header name
	want string // the declared value, base64
	h    hash.Hash
}

// requestChecksum reads a request's declared whole-body checksum: exactly one
// x-amz-checksum-<alg> header, which x-amz-sdk-checksum-algorithm (when sent) must name. It
// returns nil when none was declared. A checksum sent as an aws-chunked trailer (x-amz-trailer)
// is chunkedBody's to verify; here x-amz-trailer only counts as the checksum
// x-amz-sdk-checksum-algorithm announces. Malformed declarations are refused in AWS's words.
func requestChecksum(h *fasthttp.RequestHeader) (*checksumCheck, *Error) {
	var c *checksumCheck
	for k, v := range h.All() {
		if len(k) <= len(checksumPrefix) || !strings.EqualFold(string(k[:len(checksumPrefix)]), checksumPrefix) {
			continue
		}
		alg := strings.ToLower(string(k[len(checksumPrefix):]))
		switch alg {
		case "type", "algorithm", "mode":
			// CreateMultipartUpload's and GetObject's headers, not checksums.
			continue
		}
		sum, ok := newChecksum(alg)
		if !ok {
			return nil, errChecksumHeader
		}
		if c != nil {
			return nil, errMultipleChecksums
		}
		c = &checksumCheck{alg: alg, want: strings.TrimSpace(string(v)), h: sum}
	}
	trailer := strings.ToLower(strings.TrimSpace(string(h.Peek("X-Amz-Trailer"))))
	if c != nil && trailer != "" {
		return nil, errMultipleChecksums
	}
	if sdk := strings.TrimSpace(string(h.Peek("X-Amz-Sdk-Checksum-Algorithm"))); sdk != "" {
		if _, ok := newChecksum(sdk); !ok {
			return nil, errChecksumAlgorithm
		}
		declared, found := strings.CutPrefix(trailer, checksumPrefix)
		if c != nil {
			declared, found = c.alg, true
		}
		switch {
		case !found:
			return nil, errSDKChecksumAlone
		case !strings.EqualFold(sdk, declared):
			return nil, invalidChecksumValue("x-amz-sdk-checksum-algorithm")
		}
	}
	if c != nil && !validChecksum(c.h, c.want) {
		return nil, invalidChecksumValue(checksumPrefix + c.alg)
	}
	return c, nil
}

// Write adds body bytes to the checksum; it never fails.
func (c *checksumCheck) Write(p []byte) (int, error) { return c.h.Write(p) }

// verify compares the checksum of everything written with the declared one.
func (c *checksumCheck) verify() *Error {
	if checksumValue(c.h) != c.want {
		return checksumMismatch(c.alg)
	}
	return nil
}
