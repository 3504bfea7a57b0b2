package proxy

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"
)

// listEntry is one entry of a listing: a file (ID set) or a folder.
type listEntry struct {
	Key            *string
	Name           string
	ID             *string
	UpdatedAt      *time.Time
	CreatedAt      *time.Time
	LastAccessedAt *time.Time
	Metadata       json.RawMessage
}

func scanListEntries(out *[]listEntry, withKey bool) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		// One destination list for every row: e is copied into out after each scan (pgx
		// allocates fresh values behind the pointer fields, so copies share nothing).
		var e listEntry
		dst := []any{&e.Key, &e.Name, &e.ID, &e.UpdatedAt, &e.CreatedAt, &e.LastAccessedAt, (*pgJSON)(&e.Metadata)}
		if !withKey {
			dst = dst[1:]
		}
		for rows.Next() {
			if err := rows.Scan(dst...); err != nil {
				return err
			}
			*out = append(*out, e)
		}
		return nil
	}
}

type listParams struct {
	Bucket, Prefix, Search string
	Limit, Offset          int
	SortColumn, SortOrder  string
}

// ObjectList calls storage.object_list (list v1).
func (db *DB) ObjectList(ctx context.Context, settings []any, p listParams) ([]listEntry, error) {
	var out []listEntry
	err := db.call(ctx, settings,
		`select name, id::text, updated_at, created_at, last_accessed_at, metadata
		 from storage.object_list(bucket_id => $1, prefix => $2, limits => $3, offsets => $4,
		   search => $5, sort_column => $6, sort_order => $7)`,
		[]any{p.Bucket, p.Prefix, p.Limit, p.Offset, p.Search, p.SortColumn, p.SortOrder},
		scanListEntries(&out, false))
	return out, err
}

type listV2Params struct {
	Bucket, Prefix        string
	Limit                 int
	StartAfter            *string
	StartAfterTime        *time.Time
	WithDelimiter         bool
	SortColumn, SortOrder string
}

// ObjectListV2 calls storage.object_list_v2.
func (db *DB) ObjectListV2(ctx context.Context, settings []any, p listV2Params) ([]listEntry, error) {
	var out []listEntry
	err := db.call(ctx, settings,
		`select key, name, id::text, updated_at, created_at, last_accessed_at, metadata
		 from storage.object_list_v2(bucket_id => $1, prefix => $2, limits => $3, start_after => $4,
		   with_delimiter => $5, sort_column => $6, sort_order => $7, start_after_time => $8)`,
		[]any{p.Bucket, p.Prefix, p.Limit, p.StartAfter, p.WithDelimiter, p.SortColumn, p.SortOrder, p.StartAfterTime},
		scanListEntries(&out, true))
	return out, err
}
