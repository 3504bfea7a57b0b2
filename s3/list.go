package s3

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/valyala/fasthttp"
)

// maxKeys is the largest page a listing returns.
const maxKeys = 1000

// entry is one entry of a listing page: an object or a common prefix.
type entry struct {
	name      string
	isPrefix  bool
	updatedAt *time.Time
	meta      objectMeta
}

// listParams are a listing's parameters, parsed.
type listParams struct {
	prefix, delimiter, after string
	maxKeys                  int
	urlEncode                bool
}

// parseListParams reads prefix, delimiter, max-keys and encoding-type.
func parseListParams(ctx *fasthttp.RequestCtx) (listParams, error) {
	q := ctx.QueryArgs()
	p := listParams{prefix: string(q.Peek("prefix")), delimiter: string(q.Peek("delimiter")), maxKeys: maxKeys}
	if v, ok := queryValue(ctx, "max-keys"); ok {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			return p, errInvalidRequest.with("Querystring, max-keys must be integer")
		case n < 0:
			return p, errInvalidRequest.with("Querystring, max-keys must be >= 0")
		case n > 0 && n < maxKeys: // 0 means a full page, as the reference reads it
			p.maxKeys = n
		}
	}
	if v, ok := queryValue(ctx, "encoding-type"); ok {
		if v != "url" {
			return p, errInvalidRequest.with("Querystring, encoding-type must be equal to one of the allowed values")
		}
		p.urlEncode = true
	}
	return p, nil
}

// list runs storage.s3_list_objects for one page (and one entry more, to tell whether the
// listing is truncated).
func (s *Server) list(r *request, p listParams) (page []entry, truncated bool, err error) {
	var after any
	if p.after != "" {
		after = p.after
	}
	var delim any
	if p.delimiter != "" {
		delim = p.delimiter
	}
	err = s.db.Call(r.ctx, r.settings(s),
		`select name, is_prefix, updated_at, metadata from storage.s3_list_objects(bucket_id => $1, prefix => $2,
		   delimiter => $3, start_after => $4, max_keys => $5)`,
		[]any{r.bucket, p.prefix, delim, after, p.maxKeys + 1}, func(rows pgx.Rows) error {
			for rows.Next() {
				var e entry
				var meta []byte
				if err := rows.Scan(&e.name, &e.isPrefix, &e.updatedAt, &meta); err != nil {
					return err
				}
				if meta != nil {
					_ = json.Unmarshal(meta, &e.meta)
				}
				page = append(page, e)
			}
			return nil
		})
	if len(page) > p.maxKeys {
		page, truncated = page[:p.maxKeys], true
	}
	return page, truncated, err
}

// resumeAt is what a page's continuation (NextMarker, the token's l: line) names: its last
// entry, a common prefix with its delimiter, as AWS's NextMarker (storage.s3_list_objects
// resumes past the whole prefix). The reference drops the delimiter, which cannot tell the
// prefix "c/" from a key "c", and pages after "c/" through keys such as "c.txt" again, forever
// when max-keys is 1.
func resumeAt(e entry) string { return e.name }

// listObjects answers GET /s3/{b}: ListObjectsV2 with list-type=2, else ListObjects (v1).
func (s *Server) listObjects(r *request) error {
	if _, err := readBody(r); err != nil {
		return err
	}
	ctx := r.ctx
	p, err := parseListParams(ctx)
	if err != nil {
		return err
	}
	v2 := string(ctx.QueryArgs().Peek("list-type")) == "2"
	token, hasToken := queryValue(ctx, "continuation-token")
	switch {
	case v2 && hasToken:
		if p.after, err = decodeToken(token); err != nil {
			return err
		}
	case v2:
		p.after = string(ctx.QueryArgs().Peek("start-after"))
	default:
		p.after = string(ctx.QueryArgs().Peek("marker"))
	}
	page, truncated, err := s.list(r, p)
	if err != nil {
		return err
	}
	next := ""
	if truncated && len(page) > 0 {
		next = resumeAt(page[len(page)-1])
	}
	var w *xmlDoc
	if v2 {
		w = newXML("ListBucketResult")
		w.elem("Name", r.bucket)
		w.elem("Prefix", p.prefix)
		if hasToken {
			w.elem("ContinuationToken", token)
		}
		writeContents(w, page, p.urlEncode)
		w.elem("IsTruncated", strconv.FormatBool(truncated))
		w.elem("MaxKeys", strconv.Itoa(p.maxKeys))
		if p.delimiter != "" {
			w.elem("Delimiter", p.delimiter)
		}
		if p.urlEncode {
			w.elem("EncodingType", "url")
		}
		w.elem("KeyCount", strconv.Itoa(len(page)))
		writePrefixes(w, page, p.urlEncode)
		if truncated {
			w.elem("NextContinuationToken", encodeToken(next, hasToken))
		}
	} else {
		// v1 as the reference writes it: Marker holds the next marker (not the request's),
		// NextMarker only with a delimiter, no Delimiter element.
		w = newXML("ListBucketResult")
		w.elem("Name", r.bucket)
		w.elem("Prefix", p.prefix)
		if truncated {
			w.elem("Marker", next)
			if p.delimiter != "" {
				w.elem("NextMarker", next)
			}
		}
		w.elem("MaxKeys", strconv.Itoa(p.maxKeys))
		w.elem("IsTruncated", strconv.FormatBool(truncated))
		writeContents(w, page, p.urlEncode)
		writePrefixes(w, page, p.urlEncode)
		if p.urlEncode {
			w.elem("EncodingType", "url")
		}
	}
	w.send(ctx, fasthttp.StatusOK)
	return nil
}

func writeContents(w *xmlDoc, page []entry, urlEncode bool) {
	for _, e := range page {
		if e.isPrefix {
			continue
		}
		w.open("Contents")
		w.elem("Key", maybeEncode(e.name, urlEncode))
		if e.updatedAt != nil {
			w.elem("LastModified", isoTime(*e.updatedAt))
		}
		if e.meta.ETag != "" {
			w.elem("ETag", e.meta.ETag)
		}
		w.elem("Size", strconv.FormatInt(e.meta.Size, 10))
		w.elem("StorageClass", "STANDARD")
		w.close("Contents")
	}
}

func writePrefixes(w *xmlDoc, page []entry, urlEncode bool) {
	for _, e := range page {
		if !e.isPrefix {
			continue
		}
		w.open("CommonPrefixes")
		w.elem("Prefix", maybeEncode(e.name, urlEncode))
		w.close("CommonPrefixes")
	}
}

// maybeEncode applies encoding-type=url: JavaScript's encodeURIComponent, as the reference.
func maybeEncode(s string, on bool) string {
	if !on {
		return s
	}
	var b strings.Builder
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// encodeToken makes a continuation token as the reference does: base64 of "l:<resume point>",
// with "o:asc" added on pages that were themselves continued.
func encodeToken(after string, continued bool) string {
	t := "l:" + after
	if continued {
		t += "\no:asc"
	}
	return base64.StdEncoding.EncodeToString([]byte(t))
}

// decodeToken reads a continuation token: lines "x:value" with x one of l, o, c, a; the l
// line is the resume point.
func decodeToken(token string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(token)
	// The resume point goes to the database as text: refused here, not there.
	if err != nil || !utf8.Valid(raw) || bytes.IndexByte(raw, 0) >= 0 {
		return "", invalidParameter("continuation token")
	}
	after := ""
	for _, line := range strings.Split(string(raw), "\n") {
		if len(line) < 2 || line[1] != ':' || strings.IndexByte("loca", line[0]) < 0 {
			return "", invalidParameter("continuation token")
		}
		if line[0] == 'l' {
			after = line[2:]
		}
	}
	return after, nil
}
