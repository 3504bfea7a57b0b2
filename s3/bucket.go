package s3

import (
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/valyala/fasthttp"
)

// listBuckets answers GET /s3/: the buckets the caller may see (RLS), by name.
func (s *Server) listBuckets(r *request) error {
	if _, err := readBody(r); err != nil {
		return err
	}
	w := newXML("ListAllMyBucketsResult")
	n := 0
	err := s.db.Call(r.ctx, r.settings(s), `select name, created_at from storage.bucket_list()`, nil,
		func(rows pgx.Rows) error {
			for rows.Next() {
				var name string
				var created *time.Time
				if err := rows.Scan(&name, &created); err != nil {
					return err
				}
				if n == 0 {
					w.open("Buckets")
				}
				n++
				w.open("Bucket")
				w.elem("Name", name)
				if created != nil {
					w.elem("CreationDate", isoTime(*created))
				}
				w.close("Bucket")
			}
			return nil
		})
	if err != nil {
		return err
	}
	if n == 0 {
		w.elem("Buckets", "")
	} else {
		w.close("Buckets")
	}
	w.send(r.ctx, fasthttp.StatusOK)
	return nil
}

// createBucket answers PUT /s3/{b}: x-amz-acl: public-read makes it public. A
// CreateBucketConfiguration body is read and ignored (there is one region).
func (s *Server) createBucket(r *request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if len(body) > 0 {
		if err := xmlWellFormed(body); err != nil {
			return err
		}
	}
	public := string(r.ctx.Request.Header.Peek("x-amz-acl")) == "public-read"
	if err := s.db.Call(r.ctx, r.settings(s), `select storage.bucket_create(name => $1, id => $1, public => $2)`,
		[]any{r.bucket, public}, nil); err != nil {
		return err
	}
	r.ctx.Response.Header.Set(fasthttp.HeaderLocation, "/"+r.bucket)
	r.ctx.SetStatusCode(fasthttp.StatusOK)
	return nil
}

// deleteBucket answers DELETE /s3/{b}: an empty bucket the caller may delete.
func (s *Server) deleteBucket(r *request) error {
	if _, err := readBody(r); err != nil {
		return err
	}
	if err := s.db.Call(r.ctx, r.settings(s), `select storage.bucket_delete(id => $1)`, []any{r.bucket}, nil); err != nil {
		return err
	}
	r.ctx.SetStatusCode(fasthttp.StatusNoContent)
	return nil
}

// bucketVisible looks the bucket up as the caller (RLS): NoSuchBucket when missing or hidden.
func (s *Server) bucketVisible(r *request) error {
	if _, err := readBody(r); err != nil {
		return err
	}
	return s.db.Call(r.ctx, r.settings(s), `select storage.bucket_get(id => $1)`, []any{r.bucket}, nil)
}

// headBucket answers HEAD /s3/{b}.
func (s *Server) headBucket(r *request) error {
	if err := s.bucketVisible(r); err != nil {
		return err
	}
	if s.cfg.Region != "" {
		r.ctx.Response.Header.Set("x-amz-bucket-region", s.cfg.Region)
	}
	r.ctx.SetStatusCode(fasthttp.StatusOK)
	return nil
}

// getLocation answers GET /s3/{b}?location: the configured region, verbatim.
func (s *Server) getLocation(r *request) error {
	if err := s.bucketVisible(r); err != nil {
		return err
	}
	d := &xmlDoc{root: "LocationConstraint"}
	d.b = append(d.b, xmlHeader...)
	if s.cfg.Region == "" {
		d.b = append(d.b, `<LocationConstraint xmlns="`+xmlNS+`"/>`...)
	} else {
		d.b = append(d.b, `<LocationConstraint xmlns="`+xmlNS+`">`...)
		d.b = appendEscaped(d.b, s.cfg.Region)
		d.b = append(d.b, `</LocationConstraint>`...)
	}
	r.ctx.SetContentType("application/xml; charset=utf-8")
	r.ctx.SetBody(d.b)
	return nil
}

// getVersioning answers GET /s3/{b}?versioning: never enabled.
func (s *Server) getVersioning(r *request) error {
	if err := s.bucketVisible(r); err != nil {
		return err
	}
	w := newXML("VersioningConfiguration")
	w.elem("Status", "Suspended")
	w.elem("MfaDelete", "Disabled")
	w.send(r.ctx, fasthttp.StatusOK)
	return nil
}
