package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// object is a row of storage.objects as the REST API renders it.
type object struct {
	ID             string
	BucketID       string
	Name           string
	Owner          *string
	OwnerID        *string
	Version        *string
	CreatedAt      *time.Time
	UpdatedAt      *time.Time
	LastAccessedAt *time.Time
	Metadata       json.RawMessage // nil = NULL
	UserMetadata   json.RawMessage
	meta           objectMetadata // Metadata, decoded
	inline         []byte         // the bytes, when inline and asked for (ObjectInfo's withBytes); nil otherwise
}

// objectMetadata is the system metadata the server keeps in storage.objects.metadata.
type objectMetadata struct {
	ETag          string `json:"eTag"`
	Size          *int64 `json:"size"`
	Mimetype      string `json:"mimetype"`
	CacheControl  string `json:"cacheControl"`
	LastModified  string `json:"lastModified"`
	ContentLength *int64 `json:"contentLength"`
	XRobotsTag    string `json:"xRobotsTag"`
}

const objectColumns = `id::text, bucket_id, name, owner::text, owner_id, version, created_at, updated_at,
  last_accessed_at, metadata, user_metadata`

func scanObject(rows pgx.Rows) (object, error) {
	var o object
	err := rows.Scan(&o.ID, &o.BucketID, &o.Name, &o.Owner, &o.OwnerID, &o.Version, &o.CreatedAt,
		&o.UpdatedAt, &o.LastAccessedAt, (*pgJSON)(&o.Metadata), (*pgJSON)(&o.UserMetadata))
	if err != nil {
		return o, err
	}
	if len(o.Metadata) > 0 {
		_ = json.Unmarshal(o.Metadata, &o.meta) // metadata written by SQL callers may lack keys
	}
	return o, nil
}

type uploadPrepareParams struct {
	Bucket, Name  string
	Upsert        bool
	Mimetype      string
	ContentLength *int64
	UserMetadata  json.RawMessage
}

// ObjectUploadPrepare calls storage_internal.object_upload_prepare: every check an upload must pass
// before bytes move. Returns the version to write the blob under and the size limit.
func (db *DB) ObjectUploadPrepare(ctx context.Context, settings []any, p uploadPrepareParams) (version string, limit *int64, err error) {
	err = db.call(ctx, settings,
		`select version, size_limit from storage_internal.object_upload_prepare(bucket_id => $1, name => $2,
		   upsert => $3, mimetype => $4, content_length => $5, user_metadata => $6)`,
		[]any{p.Bucket, p.Name, p.Upsert, p.Mimetype, p.ContentLength, jsonArg(p.UserMetadata)},
		func(rows pgx.Rows) error {
			if rows.Next() {
				return rows.Scan(&version, &limit)
			}
			return nil
		})
	return version, limit, err
}

type uploadCommitParams struct {
	Bucket, Name, Version string
	Upsert                bool
	OwnerID               *string
	Size                  int64
	MD5                   string
	Mimetype              string
	CacheControl          string
	UserMetadata          json.RawMessage
	XRobotsTag            *string
}

// ObjectUploadCommit calls storage_internal.object_upload_commit (as the uploader) once the blob
// is durable, and returns the object's id.
func (db *DB) ObjectUploadCommit(ctx context.Context, settings []any, p uploadCommitParams) (id string, err error) {
	err = db.call(ctx, settings,
		`select storage_internal.object_upload_commit(bucket_id => $1, name => $2, version => $3, upsert => $4,
		   owner_id => $5, size => $6, md5 => $7, mimetype => $8, cache_control => $9,
		   user_metadata => $10, x_robots_tag => $11)::text`,
		[]any{p.Bucket, p.Name, p.Version, p.Upsert, p.OwnerID, p.Size, p.MD5, p.Mimetype, p.CacheControl,
			jsonArg(p.UserMetadata), p.XRobotsTag},
		func(rows pgx.Rows) error {
			if rows.Next() {
				return rows.Scan(&id)
			}
			return nil
		})
	return id, err
}

// ObjectUploadAbort calls storage_internal.object_upload_abort (as the uploader) for an upload
// that will not commit: its blob is queued for collection.
func (db *DB) ObjectUploadAbort(ctx context.Context, settings []any, version string) error {
	return db.call(ctx, settings, `select storage_internal.object_upload_abort(version => $1)`, []any{version}, nil)
}

// objectInfoFrom is storage.object_info's row; a read of the bytes joins the object's inline
// bytes (storage.inline_blobs; NULL when they are in the blob store) to it, read in the same
// statement under that table's row policy: a download is one call whatever tier holds them.
const objectInfoFrom = ` from storage.object_info(bucket_id => $1, name => $2, public_only => $3) o`

// qualifiedObjectColumns is objectColumns of the row o (inline_blobs has a version too).
const qualifiedObjectColumns = `o.id::text, o.bucket_id, o.name, o.owner::text, o.owner_id, o.version, o.created_at,
  o.updated_at, o.last_accessed_at, o.metadata, o.user_metadata`

const (
	objectInfoQuery = `select ` + qualifiedObjectColumns + `, null::bytea` + objectInfoFrom
	objectReadQuery = `select ` + qualifiedObjectColumns + `, i.data` + objectInfoFrom +
		` left join storage.inline_blobs i on i.version = o.version`
)

// ObjectInfo calls storage.object_info: the row behind a download, HEAD or info request;
// withBytes (a download) adds its inline bytes.
func (db *DB) ObjectInfo(ctx context.Context, settings []any, bucket, name string, publicOnly, withBytes bool) (object, error) {
	query := objectInfoQuery
	if withBytes {
		query = objectReadQuery
	}
	var o object
	err := db.call(ctx, settings, query, []any{bucket, name, publicOnly}, func(rows pgx.Rows) error {
		if !rows.Next() {
			return nil
		}
		// pgx scans NULL as a nil slice and an empty bytea as an empty one: o.inline tells an
		// empty inline object from bytes in the store.
		err := rows.Scan(&o.ID, &o.BucketID, &o.Name, &o.Owner, &o.OwnerID, &o.Version, &o.CreatedAt,
			&o.UpdatedAt, &o.LastAccessedAt, (*pgJSON)(&o.Metadata), (*pgJSON)(&o.UserMetadata), &o.inline)
		if err == nil && len(o.Metadata) > 0 {
			_ = json.Unmarshal(o.Metadata, &o.meta) // metadata written by SQL callers may lack keys
		}
		return err
	})
	return o, err
}

// ObjectUploadInline calls storage_internal.object_upload_inline (as the uploader): a whole
// small upload, its bytes stored in PostgreSQL with the row, in one transaction. Returns the
// object's id. p's Version, Size and MD5 are not used (the function makes them).
func (db *DB) ObjectUploadInline(ctx context.Context, settings []any, p uploadCommitParams, data []byte) (id string, err error) {
	err = db.call(ctx, settings,
		`select storage_internal.object_upload_inline(bucket_id => $1, name => $2, upsert => $3, owner_id => $4,
		   data => $5, mimetype => $6, cache_control => $7, user_metadata => $8, x_robots_tag => $9)::text`,
		[]any{p.Bucket, p.Name, p.Upsert, p.OwnerID, data, p.Mimetype, p.CacheControl, jsonArg(p.UserMetadata), p.XRobotsTag},
		func(rows pgx.Rows) error {
			if rows.Next() {
				return rows.Scan(&id)
			}
			return nil
		})
	return id, err
}

// ObjectDelete calls storage.object_delete.
func (db *DB) ObjectDelete(ctx context.Context, settings []any, bucket, name string) error {
	return db.call(ctx, settings, `select storage.object_delete(bucket_id => $1, name => $2)`,
		[]any{bucket, name}, nil)
}

// ObjectDeleteMany calls storage.object_delete_many and returns the deleted rows.
func (db *DB) ObjectDeleteMany(ctx context.Context, settings []any, bucket string, names []string) ([]object, error) {
	var out []object
	err := db.call(ctx, settings,
		`select `+objectColumns+` from storage.object_delete_many(bucket_id => $1, names => $2)`,
		[]any{bucket, names}, func(rows pgx.Rows) error {
			for rows.Next() {
				o, err := scanObject(rows)
				if err != nil {
					return err
				}
				out = append(out, o)
			}
			return nil
		})
	return out, err
}

// pgJSON scans a json or jsonb column as compact JSON text, nil for NULL. PostgreSQL renders
// jsonb with a space after every ':' and ','; clients get the compact form JavaScript writes.
// The text is valid JSON by construction, so compacting it is one pass that drops whitespace
// outside strings: no parsing, one allocation.
type pgJSON json.RawMessage

// ScanBytes implements pgtype.BytesScanner (src is the driver's buffer: it is copied).
func (j *pgJSON) ScanBytes(src []byte) error {
	if src == nil {
		*j = nil
		return nil
	}
	*j = appendCompactJSON(make([]byte, 0, len(src)), src)
	return nil
}

// appendCompactJSON appends src, valid JSON, without the whitespace outside its strings.
// Listings compact a metadata value per row, so strings (most of the bytes) are skipped with
// bytes.IndexByte rather than looked at byte by byte.
func appendCompactJSON(dst, src []byte) []byte {
	dst = slices.Grow(dst, len(src))
	for {
		// Outside strings: keep everything up to the next quote but whitespace.
		i := 0
		for ; i < len(src) && src[i] != '"'; i++ {
			if c := src[i]; c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				dst = append(dst, src[:i]...)
				src, i = src[i+1:], -1
			}
		}
		if i == len(src) {
			return append(dst, src...)
		}
		// A string: through its closing quote, the first not escaped by an odd run of
		// backslashes. Valid input always has one.
		end := i + 1
		for {
			q := bytes.IndexByte(src[end:], '"')
			if q < 0 {
				return append(dst, src...)
			}
			end += q + 1
			n := 0
			for k := end - 2; k > i && src[k] == '\\'; k-- {
				n++
			}
			if n%2 == 0 {
				break
			}
		}
		dst = append(dst, src[:end]...)
		src = src[end:]
	}
}

// jsonArg passes JSON to a jsonb parameter; nil is SQL NULL.
func jsonArg(b json.RawMessage) any {
	if b == nil {
		return nil
	}
	return string(b)
}

type moveParams struct {
	Bucket, SourceKey, DestinationKey string
	DestinationBucket                 *string
}

// ObjectMove calls storage.object_move.
func (db *DB) ObjectMove(ctx context.Context, settings []any, p moveParams) error {
	return db.call(ctx, settings,
		`select storage.object_move(bucket_id => $1, source_key => $2, destination_key => $3, destination_bucket => $4)`,
		[]any{p.Bucket, p.SourceKey, p.DestinationKey, p.DestinationBucket}, nil)
}

type copyParams struct {
	moveParams
	Upsert       bool
	CopyMetadata bool
	Metadata     json.RawMessage
	UserMetadata json.RawMessage
}

// ObjectCopy calls storage.object_copy and returns the new row.
func (db *DB) ObjectCopy(ctx context.Context, settings []any, p copyParams) (object, error) {
	var o object
	err := db.call(ctx, settings,
		`select `+objectColumns+` from storage.object_copy(bucket_id => $1, source_key => $2,
		   destination_key => $3, destination_bucket => $4, upsert => $5, copy_metadata => $6,
		   metadata => $7, user_metadata => $8)`,
		[]any{p.Bucket, p.SourceKey, p.DestinationKey, p.DestinationBucket, p.Upsert, p.CopyMetadata,
			jsonArg(p.Metadata), jsonArg(p.UserMetadata)},
		func(rows pgx.Rows) (err error) {
			if rows.Next() {
				o, err = scanObject(rows)
			}
			return err
		})
	return o, err
}
