package s3

import (
	"bytes"
	"errors"
	"io"
	"strings"

	"github.com/pgstorage/storage/proxy"
)

// uploadBody is the body of a PutObject or UploadPart as the blob store reads it: decoded when
// it comes aws-chunked, and checked while it streams against everything the client declared of
// it (the signed SHA-256, Content-MD5, an x-amz-checksum-* header, chunk signatures and
// trailers). A check that fails makes the read fail instead of ending, so the store discards
// the bytes and no row is written; failed says why.
type uploadBody struct {
	r      io.Reader
	length int64 // the decoded length when declared; -1 unknown
	failed *Error
	chk    *checksumCheck
	pv     *payload
}

// newUploadBody sets up the request's body.
func newUploadBody(r *request) (*uploadBody, error) {
	ctx := r.ctx
	var raw io.Reader = proxy.RequestBody(ctx)
	if raw == nil {
		raw = bytes.NewReader(ctx.PostBody())
	}
	b := &uploadBody{length: int64(ctx.Request.Header.ContentLength())}
	if b.length < 0 {
		b.length = -1 // chunked transfer coding: the limit applies while streaming
	}
	chk, cerr := requestChecksum(&ctx.Request.Header)
	if cerr != nil {
		return nil, cerr
	}
	b.chk = chk
	if algo := r.sig.PayloadHash; strings.HasPrefix(algo, "STREAMING-") {
		dl := decodedContentLength(ctx.Request.Header.Peek("x-amz-decoded-content-length"))
		cb, err := newChunkedBody(raw, r.sig, algo, string(ctx.Request.Header.Peek("x-amz-trailer")), dl)
		if err != nil {
			return nil, err
		}
		b.length = dl
		raw = cb
		// The signed hash is the algorithm's name: only Content-MD5 applies, to the decoded bytes.
		noHash := *r
		noHash.sig.PayloadHash = ""
		if b.pv, err = newPayloadCheck(&noHash); err != nil {
			return nil, err
		}
	} else {
		var err *Error
		if b.pv, err = newPayloadCheck(r); err != nil {
			return nil, err
		}
	}
	b.r = raw
	return b, nil
}

// newPayloadCheck is newVerifier with its refusal typed.
func newPayloadCheck(r *request) (*payload, *Error) {
	p, err := newVerifier(r)
	if err != nil {
		return nil, err.(*Error)
	}
	return p, nil
}

func (b *uploadBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.pv.sum(p[:n])
	if b.chk != nil {
		b.chk.Write(p[:n])
	}
	if errors.Is(err, io.EOF) {
		if perr := b.pv.check(); perr != nil {
			b.failed = perr.(*Error)
			return n, b.failed
		}
		if b.chk != nil {
			if cerr := b.chk.verify(); cerr != nil {
				b.failed = cerr
				return n, cerr
			}
		}
		return n, err
	}
	var e *Error
	if err != nil && errors.As(err, &e) {
		b.failed = e
	}
	return n, err
}

// result is what a failed store of the body answers: the body's own refusal when one of its
// checks failed (whatever the store wrapped it in), else err.
func (b *uploadBody) result(err error) error {
	if b.failed != nil {
		return b.failed
	}
	return err
}

// partLength is the body's declared (decoded) length, which a part must have.
func (b *uploadBody) partLength() (int64, error) {
	if b.length < 0 {
		return 0, errMissingLength
	}
	return b.length, nil
}
