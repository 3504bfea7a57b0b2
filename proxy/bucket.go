package proxy

import (
	"regexp"
	"strconv"
	"strings"
)

// BucketCreate answers POST /bucket: {"name"} on success.
func (s *Server) BucketCreate(r *request) error {
	f, err := parseBody(r.ctx, false)
	if err != nil {
		return err
	}
	f.require("name")
	p := bucketCreateParams{
		ID:               f.string("id"),
		Public:           f.bool("public"),
		FileSizeLimit:    f.sizeLimit("file_size_limit"),
		AllowedMimeTypes: f.strings("allowed_mime_types"),
		Type:             f.enum("type", "STANDARD", "ANALYTICS"),
	}
	if name := f.string("name"); name != nil {
		p.Name = *name
	}
	if f.err != nil {
		return f.err
	}
	if err := s.db.BucketCreate(ctxOf(r), s.settings(r), p); err != nil {
		return err
	}
	return writeJSON(r.ctx, append(appendJSONString([]byte(`{"name":`), p.Name), '}'))
}

// BucketList answers GET /bucket with the buckets the caller may see.
func (s *Server) BucketList(r *request) error {
	args := r.ctx.QueryArgs()
	var p bucketListParams
	var err error
	if p.Limit, err = queryInt(args, "limit", 1); err != nil {
		return err
	}
	if p.Offset, err = queryInt(args, "offset", 0); err != nil {
		return err
	}
	if p.SortColumn, err = queryEnum(args, "sortColumn", "id", "name", "created_at", "updated_at"); err != nil {
		return err
	}
	if p.SortOrder, err = queryEnum(args, "sortOrder", "asc", "desc"); err != nil {
		return err
	}
	if p.Search, err = queryText(args, "search"); err != nil {
		return err
	}
	buckets, err := s.db.BucketList(ctxOf(r), s.settings(r), p)
	if err != nil {
		return err
	}
	withType := !legacyPythonClient(string(r.ctx.UserAgent()), string(r.ctx.Request.Header.Peek("X-Client-Info")))
	b := append(make([]byte, 0, 64+256*len(buckets)), '[')
	for i := range buckets {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendBucket(b, &buckets[i], withType)
	}
	return writeJSON(r.ctx, append(b, ']'))
}

// BucketGet answers GET /bucket/{id}: one bucket, without "type" (as the reference).
func (s *Server) BucketGet(r *request) error {
	b, err := s.db.BucketGet(ctxOf(r), s.settings(r), param(r.ctx, "id"))
	if err != nil {
		return err
	}
	return writeJSON(r.ctx, appendBucket(responseBuf(r.ctx), &b, false))
}

// BucketUpdate answers PUT /bucket/{id}. At least one of public, file_size_limit and
// allowed_mime_types must be given; null clears a limit.
func (s *Server) BucketUpdate(r *request) error {
	f, err := parseBody(r.ctx, false)
	if err != nil {
		return err
	}
	if !f.has("public") && !f.has("file_size_limit") && !f.has("allowed_mime_types") {
		return schemaError("body must have at least one of the properties public, file_size_limit, allowed_mime_types")
	}
	p := bucketUpdateParams{
		ID:                    param(r.ctx, "id"),
		Public:                f.bool("public"),
		FileSizeLimit:         f.sizeLimit("file_size_limit"),
		AllowedMimeTypes:      f.strings("allowed_mime_types"),
		ClearFileSizeLimit:    f.has("file_size_limit") && isNull(f.obj["file_size_limit"]),
		ClearAllowedMimeTypes: f.has("allowed_mime_types") && isNull(f.obj["allowed_mime_types"]),
	}
	if f.err != nil {
		return f.err
	}
	if err := s.db.BucketUpdate(ctxOf(r), s.settings(r), p); err != nil {
		return err
	}
	return writeJSON(r.ctx, messageBody("Successfully updated"))
}

// BucketDelete answers DELETE /bucket/{id}. The body may be absent, {} or empty JSON.
func (s *Server) BucketDelete(r *request) error {
	if _, err := parseBody(r.ctx, true); err != nil {
		return err
	}
	if err := s.db.BucketDelete(ctxOf(r), s.settings(r), param(r.ctx, "id")); err != nil {
		return err
	}
	return writeJSON(r.ctx, messageBody("Successfully deleted"))
}

// BucketEmpty answers POST /bucket/{id}/empty. Only the service role may call it: the one
// role check the reference makes at the HTTP layer (HTTP 403). The objects go later, in a
// durable job (storage.bucket_empty_jobs) that the collector works.
func (s *Server) BucketEmpty(r *request) error {
	if r.id.Role != serviceRole {
		return ErrInvalidRole
	}
	if _, err := parseBody(r.ctx, true); err != nil {
		return err
	}
	if err := s.db.BucketEmpty(ctxOf(r), s.settings(r), param(r.ctx, "id")); err != nil {
		return err
	}
	if s.cfg.EmptyQueued != nil {
		s.cfg.EmptyQueued()
	}
	return writeJSON(r.ctx, messageBody("Empty bucket has been queued. Completion may take up to an hour."))
}

// serviceRole is the PostgreSQL role of service keys (BYPASSRLS).
const serviceRole = "service_role"

// appendBucket renders a bucket in the reference's field order; a NULL owner is "" (its
// serialiser's rule for string fields), limits stay null.
func appendBucket(b []byte, bk *bucket, withType bool) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, bk.ID)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, bk.Name)
	if withType {
		b = append(b, `,"type":`...)
		b = appendJSONString(b, bk.Type)
	}
	b = append(b, `,"owner":`...)
	b = appendStringOrEmpty(b, bk.Owner)
	b = append(b, `,"public":`...)
	b = strconv.AppendBool(b, bk.Public)
	b = append(b, `,"file_size_limit":`...)
	b = appendInt64OrNull(b, bk.FileSizeLimit)
	b = append(b, `,"allowed_mime_types":`...)
	b = appendStringsOrNull(b, bk.AllowedMimeTypes)
	b = append(b, `,"created_at":`...)
	b = appendJSTime(b, bk.CreatedAt)
	b = append(b, `,"updated_at":`...)
	b = appendJSTime(b, bk.UpdatedAt)
	return append(b, '}')
}

var (
	storage3UA     = regexp.MustCompile(`supabase-py/storage3 v(\d+)\.(\d+)\.(\d+)`)
	supabasePyInfo = regexp.MustCompile(`supabase-py/(\d+)\.(\d+)\.(\d+)`)
)

// legacyPythonClient reports whether the caller is a Python client too old to accept a
// bucket's "type" (storage3 < 0.12.1 or supabase-py < 2.18.0), which the reference then omits.
func legacyPythonClient(userAgent, clientInfo string) bool {
	older := func(re *regexp.Regexp, s string, limit [3]int) bool {
		m := re.FindStringSubmatch(s)
		if m == nil {
			return false
		}
		for i := 0; i < 3; i++ {
			v, _ := strconv.Atoi(m[i+1])
			if v != limit[i] {
				return v < limit[i]
			}
		}
		return false
	}
	return older(storage3UA, userAgent, [3]int{0, 12, 1}) ||
		older(supabasePyInfo, strings.TrimSpace(clientInfo), [3]int{2, 18, 0})
}
