package proxy

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// bucket is a row of storage.buckets as the REST API renders it.
type bucket struct {
	ID               string
	Name             string
	Owner            *string
	OwnerID          *string
	Public           bool
	FileSizeLimit    *int64
	AllowedMimeTypes []string
	CreatedAt        *time.Time
	UpdatedAt        *time.Time
	Type             string
}

// bucketColumns selects a bucket row in the order scanBucket reads it.
const bucketColumns = `id, name, owner::text, owner_id, coalesce(public, false), file_size_limit,
  allowed_mime_types, created_at, updated_at, type::text`

func scanBucket(rows pgx.Rows) (bucket, error) {
	var b bucket
	err := rows.Scan(&b.ID, &b.Name, &b.Owner, &b.OwnerID, &b.Public, &b.FileSizeLimit,
		&b.AllowedMimeTypes, &b.CreatedAt, &b.UpdatedAt, &b.Type)
	return b, err
}

type bucketCreateParams struct {
	Name             string
	ID               *string
	Public           *bool
	FileSizeLimit    *string
	AllowedMimeTypes []string
	Type             *string
}

// BucketCreate calls storage.bucket_create.
func (db *DB) BucketCreate(ctx context.Context, settings []any, p bucketCreateParams) error {
	return db.call(ctx, settings,
		`select storage.bucket_create(name => $1, id => $2, public => coalesce($3, false),
		   file_size_limit => $4, allowed_mime_types => $5, type => coalesce($6, 'STANDARD'))`,
		[]any{p.Name, p.ID, p.Public, p.FileSizeLimit, p.AllowedMimeTypes, p.Type}, nil)
}

// BucketGet calls storage.bucket_get.
func (db *DB) BucketGet(ctx context.Context, settings []any, id string) (bucket, error) {
	var b bucket
	err := db.call(ctx, settings, `select `+bucketColumns+` from storage.bucket_get(id => $1)`,
		[]any{id}, func(rows pgx.Rows) (err error) {
			if rows.Next() {
				b, err = scanBucket(rows)
			}
			return err
		})
	return b, err
}

type bucketListParams struct {
	Limit      *int
	Offset     *int
	SortColumn string
	SortOrder  string
	Search     string
}

// BucketList calls storage.bucket_list.
func (db *DB) BucketList(ctx context.Context, settings []any, p bucketListParams) ([]bucket, error) {
	var out []bucket
	err := db.call(ctx, settings,
		`select `+bucketColumns+` from storage.bucket_list(limits => $1, offsets => coalesce($2, 0),
		   sort_column => coalesce(nullif($3, ''), 'name'), sort_order => coalesce(nullif($4, ''), 'asc'),
		   search => $5)`,
		[]any{p.Limit, p.Offset, p.SortColumn, p.SortOrder, p.Search}, func(rows pgx.Rows) error {
			for rows.Next() {
				b, err := scanBucket(rows)
				if err != nil {
					return err
				}
				out = append(out, b)
			}
			return nil
		})
	return out, err
}

type bucketUpdateParams struct {
	ID                    string
	Public                *bool
	FileSizeLimit         *string
	AllowedMimeTypes      []string
	ClearFileSizeLimit    bool
	ClearAllowedMimeTypes bool
}

// BucketUpdate calls storage.bucket_update.
func (db *DB) BucketUpdate(ctx context.Context, settings []any, p bucketUpdateParams) error {
	return db.call(ctx, settings,
		`select 1 from storage.bucket_update(id => $1, public => $2, file_size_limit => $3,
		   allowed_mime_types => $4, clear_file_size_limit => $5, clear_allowed_mime_types => $6)`,
		[]any{p.ID, p.Public, p.FileSizeLimit, p.AllowedMimeTypes, p.ClearFileSizeLimit, p.ClearAllowedMimeTypes}, nil)
}

// BucketDelete calls storage.bucket_delete.
func (db *DB) BucketDelete(ctx context.Context, settings []any, id string) error {
	return db.call(ctx, settings, `select storage.bucket_delete(id => $1)`, []any{id}, nil)
}

// BucketEmpty calls storage.bucket_empty, which queues the job (its id is not needed here).
func (db *DB) BucketEmpty(ctx context.Context, settings []any, id string) error {
	return db.call(ctx, settings, `select storage.bucket_empty(id => $1)`, []any{id}, nil)
}
