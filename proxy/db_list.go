package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// listRow is one entry of a listing, a file (ID not NULL) or a folder, as the driver received
// it: each field views the driver's read buffer, valid only until the next row. A page holds
// up to a thousand rows of six or seven values; rendering them in place instead of scanning
// them into Go values spares the allocations (one per value) and the decoding, which were most
// of a listing's cost in the proxy.
type listRow struct {
	Key, Name, ID                        []byte // text, text, uuid (16 bytes, binary)
	UpdatedAt, CreatedAt, LastAccessedAt []byte // timestamptz, binary
	Metadata                             []byte // jsonb, text
}

// listColumns are the wire types of listRow's fields, in order: what the listing statements
// select, and the formats pgx asks for them.
var listColumns = [...]struct {
	oid    uint32
	format int16
}{
	{pgtype.TextOID, pgtype.TextFormatCode},
	{pgtype.TextOID, pgtype.TextFormatCode},
	{pgtype.UUIDOID, pgtype.BinaryFormatCode},
	{pgtype.TimestamptzOID, pgtype.BinaryFormatCode},
	{pgtype.TimestamptzOID, pgtype.BinaryFormatCode},
	{pgtype.TimestamptzOID, pgtype.BinaryFormatCode},
	{pgtype.JSONBOID, pgtype.TextFormatCode},
}

// eachListRow hands every row to each. withKey: the statement selects key first (list v2).
func eachListRow(each func(*listRow), withKey bool) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		cols := listColumns[:]
		if !withKey {
			cols = cols[1:]
		}
		fds := rows.FieldDescriptions()
		if len(fds) != len(cols) {
			return fmt.Errorf("listing: %d columns, want %d", len(fds), len(cols))
		}
		for i, fd := range fds {
			if fd.DataTypeOID != cols[i].oid || fd.Format != cols[i].format {
				return fmt.Errorf("listing: column %s is type %d format %d, want type %d format %d",
					fd.Name, fd.DataTypeOID, fd.Format, cols[i].oid, cols[i].format)
			}
		}
		var r listRow
		dst := []*[]byte{&r.Key, &r.Name, &r.ID, &r.UpdatedAt, &r.CreatedAt, &r.LastAccessedAt, &r.Metadata}
		if !withKey {
			dst = dst[1:]
		}
		for rows.Next() {
			for i, v := range rows.RawValues() {
				*dst[i] = v
			}
			if len(r.ID) != 0 && len(r.ID) != 16 {
				return fmt.Errorf("listing: uuid of %d bytes", len(r.ID))
			}
			for _, ts := range [...][]byte{r.UpdatedAt, r.CreatedAt, r.LastAccessedAt} {
				if ts != nil && (len(ts) != 8 || isInfinite(ts)) {
					return errors.New("listing: timestamp out of range")
				}
			}
			each(&r)
		}
		return nil
	}
}

type listParams struct {
	Bucket, Prefix, Search string
	Limit, Offset          int
	SortColumn, SortOrder  string
}

// ObjectList calls storage.object_list (list v1), handing each entry to each.
func (db *DB) ObjectList(ctx context.Context, settings []any, p listParams, each func(*listRow)) error {
	return db.call(ctx, settings,
		`select name, id, updated_at, created_at, last_accessed_at, metadata
		 from storage.object_list(bucket_id => $1, prefix => $2, limits => $3, offsets => $4,
		   search => $5, sort_column => $6, sort_order => $7)`,
		[]any{p.Bucket, p.Prefix, p.Limit, p.Offset, p.Search, p.SortColumn, p.SortOrder},
		eachListRow(each, false))
}

type listV2Params struct {
	Bucket, Prefix        string
	Limit                 int
	StartAfter            *string
	StartAfterTime        *time.Time
	WithDelimiter         bool
	SortColumn, SortOrder string
}

// ObjectListV2 calls storage.object_list_v2, handing each entry to each.
func (db *DB) ObjectListV2(ctx context.Context, settings []any, p listV2Params, each func(*listRow)) error {
	return db.call(ctx, settings,
		`select key, name, id, updated_at, created_at, last_accessed_at, metadata
		 from storage.object_list_v2(bucket_id => $1, prefix => $2, limits => $3, start_after => $4,
		   with_delimiter => $5, sort_column => $6, sort_order => $7, start_after_time => $8)`,
		[]any{p.Bucket, p.Prefix, p.Limit, p.StartAfter, p.WithDelimiter, p.SortColumn, p.SortOrder, p.StartAfterTime},
		eachListRow(each, true))
}

// pgEpochMicros is 2000-01-01 00:00:00 UTC, PostgreSQL's timestamp epoch, in Unix microseconds.
const pgEpochMicros = 946684800 * 1_000_000

// isInfinite: a binary timestamptz holding 'infinity' or '-infinity'.
func isInfinite(ts []byte) bool {
	v := int64(binary.BigEndian.Uint64(ts))
	return v == math.MaxInt64 || v == math.MinInt64
}

// rawTime decodes a binary timestamptz (8 bytes, checked by eachListRow).
func rawTime(ts []byte) time.Time {
	return time.UnixMicro(int64(binary.BigEndian.Uint64(ts)) + pgEpochMicros).UTC()
}

// appendRawJSTime renders a binary timestamptz as a JavaScript Date serialises (UTC,
// milliseconds); NULL → null.
func appendRawJSTime(b []byte, ts []byte) []byte {
	if ts == nil {
		return append(b, "null"...)
	}
	t := rawTime(ts)
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return appendJSTime(b, &t)
	}
	h, mi, s := t.Clock()
	ms := t.Nanosecond() / 1e6
	return append(b, '"',
		byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
		byte('0'+int(mo)/10), byte('0'+int(mo)%10), '-', byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':',
		byte('0'+s/10), byte('0'+s%10), '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z', '"')
}

// appendRawUUID renders a binary uuid as a JSON string; NULL → null.
func appendRawUUID(b []byte, u []byte) []byte {
	if u == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return append(b, '"')
}

// appendRawString renders a text value as a JSON string; NULL → null.
func appendRawString(b []byte, s []byte) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendJSONString(b, bytesView(s))
}

// appendRawJSON renders a json(b) value compacted; NULL → null.
func appendRawJSON(b []byte, j []byte) []byte {
	if j == nil {
		return append(b, "null"...)
	}
	return appendCompactJSON(b, j)
}

// bytesView is b as a string without a copy, for reading only while b is unchanged.
func bytesView(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
