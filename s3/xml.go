package s3

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"hash"
	"io"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/proxy"
)

const (
	xmlHeader = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>`
	xmlNS     = "http://s3.amazonaws.com/doc/2006-03-01/"
	// maxXMLBody caps the XML bodies the door reads whole (DeleteObjects, CreateBucket's
	// configuration): 1000 keys of 1 KiB fit.
	maxXMLBody = 1 << 20
)

// xmlDoc writes one S3 XML document: the declaration, then the root carrying the namespace,
// without whitespace between elements (S3.md §3.1).
type xmlDoc struct {
	b     []byte
	root  string
	empty int // len(b) right after the root's start tag: nothing written inside yet
}

func newXML(root string) *xmlDoc {
	d := &xmlDoc{b: make([]byte, 0, 512), root: root}
	d.b = append(d.b, xmlHeader...)
	d.b = append(d.b, '<')
	d.b = append(d.b, root...)
	d.b = append(d.b, ` xmlns="`+xmlNS+`">`...)
	d.empty = len(d.b)
	return d
}

func (d *xmlDoc) open(tag string) { d.b = append(append(append(d.b, '<'), tag...), '>') }

func (d *xmlDoc) close(tag string) { d.b = append(append(append(d.b, "</"...), tag...), '>') }

// elem writes <tag>text</tag>, or <tag/> for an empty text.
func (d *xmlDoc) elem(tag, text string) {
	if text == "" {
		d.b = append(append(append(d.b, '<'), tag...), "/>"...)
		return
	}
	d.open(tag)
	d.b = appendEscaped(d.b, text)
	d.close(tag)
}

// bytes ends the document; an empty root closes itself (<DeleteResult xmlns="…"/>), as the
// reference writes it (S3.md §3.1).
func (d *xmlDoc) bytes() []byte {
	if len(d.b) == d.empty {
		d.b = append(d.b[:len(d.b)-1], "/>"...)
		return d.b
	}
	d.close(d.root)
	return d.b
}

// send writes the document as the response with status.
func (d *xmlDoc) send(ctx *fasthttp.RequestCtx, status int) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/xml; charset=utf-8")
	ctx.SetBody(d.bytes())
}

// appendEscaped escapes text for XML: &, <, > and CR as references; quotes are left as they
// are (ETags are written "…"); characters XML 1.0 cannot carry become U+FFFD.
func appendEscaped(b []byte, s string) []byte {
	for _, c := range s {
		switch {
		case c == '&':
			b = append(b, "&amp;"...)
		case c == '<':
			b = append(b, "&lt;"...)
		case c == '>':
			b = append(b, "&gt;"...)
		case c == '\r':
			b = append(b, "&#xD;"...)
		case c == '\t' || c == '\n' || c >= 0x20 && c < 0xD800 || c >= 0xE000 && c < 0xFFFE || c >= 0x10000 && c <= 0x10FFFF:
			b = utf8.AppendRune(b, c)
		default:
			b = utf8.AppendRune(b, utf8.RuneError)
		}
	}
	return b
}

// readBody reads a request body the door needs whole (XML documents), up to maxXMLBody, and
// checks it against the declared SHA-256 and Content-MD5.
func readBody(r *request) ([]byte, error) {
	ctx := r.ctx
	var body []byte
	if stream := proxy.RequestBody(ctx); stream != nil {
		b, err := io.ReadAll(io.LimitReader(stream, maxXMLBody+1))
		if err != nil {
			return nil, errIncompleteBody
		}
		body = b
	} else {
		body = ctx.PostBody()
	}
	if len(body) > maxXMLBody {
		return nil, errBodyTooLarge
	}
	v, err := newVerifier(r)
	if err != nil {
		return nil, err
	}
	v.sum(body)
	if err := v.check(); err != nil {
		return nil, err
	}
	return body, nil
}

// payload checks a request body against what the client declared of it: the SHA-256 the
// signature covers (x-amz-content-sha256, unless UNSIGNED-PAYLOAD) and Content-MD5. The
// reference checks neither; a body that does not match stores nothing here.
type payload struct {
	sha, md5 hash.Hash
	wantSHA  []byte
	wantMD5  []byte
}

// newVerifier reads the declarations; a malformed one is refused before any byte is read.
func newVerifier(r *request) (*payload, error) {
	p := &payload{}
	switch h := r.sig.PayloadHash; {
	case h == "" || h == "UNSIGNED-PAYLOAD":
	case len(h) == 64:
		want, err := hex.DecodeString(h)
		if err != nil {
			return nil, errInvalidArgument.with("x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a SHA-256 in hexadecimal")
		}
		p.sha, p.wantSHA = sha256.New(), want
	default:
		return nil, errInvalidArgument.with("x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a SHA-256 in hexadecimal")
	}
	if v := r.ctx.Request.Header.Peek("Content-MD5"); v != nil {
		want, err := base64.StdEncoding.DecodeString(string(v))
		if err != nil || len(want) != md5.Size {
			return nil, errInvalidDigest
		}
		p.md5, p.wantMD5 = md5.New(), want
	}
	return p, nil
}

func (p *payload) sum(b []byte) {
	if p.sha != nil {
		p.sha.Write(b)
	}
	if p.md5 != nil {
		p.md5.Write(b)
	}
}

func (p *payload) check() error {
	if p.sha != nil && !bytes.Equal(p.sha.Sum(nil), p.wantSHA) {
		return errSHA256Mismatch
	}
	if p.md5 != nil && !bytes.Equal(p.md5.Sum(nil), p.wantMD5) {
		return errBadDigest
	}
	return nil
}

// xmlWellFormed checks a request document the way the reference's parser does: one root, no
// DOCTYPE, only predefined and numeric entities (S3.md §3.1).
func xmlWellFormed(body []byte) error {
	d := xml.NewDecoder(bytes.NewReader(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))))
	depth, roots := 0, 0
	for {
		t, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return errMalformedXML.with("Invalid XML payload: " + err.Error())
		}
		switch t := t.(type) {
		case xml.Directive:
			if bytes.HasPrefix(bytes.TrimSpace(t), []byte("DOCTYPE")) {
				return errMalformedXML.with("Invalid XML payload: DOCTYPE is not supported")
			}
		case xml.StartElement:
			if depth == 0 {
				roots++
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	if roots != 1 {
		return errMalformedXML.with("Invalid XML payload: the document must have exactly one root element")
	}
	return nil
}
