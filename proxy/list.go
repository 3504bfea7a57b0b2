package proxy

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidCursor: a list-v2 cursor this server did not issue.
var ErrInvalidCursor = &Error{Status: 400, Code: "InvalidParameter", Message: "Invalid Parameter continuation token"}

// ObjectList answers POST /object/list/{bucket} (list v1).
func (s *Server) ObjectList(r *request) error {
	f, err := parseBody(r.ctx, false)
	if err != nil {
		return err
	}
	f.require("prefix")
	p := listParams{Bucket: param(r.ctx, "bucket"), Limit: 100}
	p.Prefix = deref(f.string("prefix"))
	p.Search = deref(f.string("search"))
	p.Limit = f.int("limit", 1, 100)
	p.Offset = f.int("offset", 0, 0)
	p.SortColumn, p.SortOrder = f.sortBy("name", "updated_at", "created_at", "last_accessed_at")
	if f.err != nil {
		return f.err
	}
	b := append(responseBuf(r.ctx), '[')
	n := 0
	err = s.db.ObjectList(ctxOf(r), s.settings(r), p, func(e *listRow) {
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = appendRawString(append(b, `{"name":`...), e.Name)
		b = appendRawUUID(append(b, `,"id":`...), e.ID)
		b = appendRawJSTime(append(b, `,"updated_at":`...), e.UpdatedAt)
		b = appendRawJSTime(append(b, `,"created_at":`...), e.CreatedAt)
		b = appendRawJSTime(append(b, `,"last_accessed_at":`...), e.LastAccessedAt)
		b = append(appendRawJSON(append(b, `,"metadata":`...), e.Metadata), '}')
	})
	if err != nil {
		return err
	}
	return writeJSON(r.ctx, append(b, ']'))
}

// ObjectListV2 answers POST /object/list-v2/{bucket}: one page, the cursor of the next one.
func (s *Server) ObjectListV2(r *request) error {
	f, err := parseBody(r.ctx, false)
	if err != nil {
		return err
	}
	p := listV2Params{Bucket: param(r.ctx, "bucket"), Prefix: deref(f.string("prefix"))}
	limit := min(f.int("limit", 1, 1000), 1000)
	p.WithDelimiter = derefBool(f.bool("with_delimiter"))
	p.SortColumn, p.SortOrder = f.sortBy("name", "updated_at", "created_at")
	cursor := f.string("cursor")
	if f.err != nil {
		return f.err
	}
	if cursor != nil && *cursor != "" {
		if err := decodeCursor(*cursor, &p); err != nil {
			return err
		}
	}
	p.Limit = limit + 1 // one more tells whether there is a next page
	// Folders and objects are rendered into buffers of their own, joined at the end. The last
	// entry rendered is remembered (copied: rows are views) for the next page's cursor.
	folders := []byte(`,"folders":[`)
	objects := []byte(`,"objects":[`)
	var last cursorEntry
	n := 0
	err = s.db.ObjectListV2(ctxOf(r), s.settings(r), p, func(e *listRow) {
		if n++; n > limit {
			return
		}
		last.name = append(last.name[:0], e.Name...)
		at := e.CreatedAt
		if p.SortColumn == "updated_at" {
			at = e.UpdatedAt
		}
		last.at = append(last.at[:0], at...)
		last.atNull = at == nil
		if e.ID == nil && p.WithDelimiter {
			if len(folders) > len(`,"folders":[`) {
				folders = append(folders, ',')
			}
			folders = appendListV2Entry(folders, e, true)
			return
		}
		if len(objects) > len(`,"objects":[`) {
			objects = append(objects, ',')
		}
		objects = appendListV2Entry(objects, e, p.WithDelimiter)
	})
	if err != nil {
		return err
	}
	hasNext := n > limit
	b := append(append(responseBuf(r.ctx), `{"hasNext":`...), boolJSON(hasNext)...)
	if hasNext {
		b = appendJSONString(append(b, `,"nextCursor":`...), encodeCursor(&last, p))
		b = appendJSONString(append(b, `,"nextCursorKey":`...), string(last.name))
	}
	b = append(append(append(append(b, folders...), ']'), objects...), ']', '}')
	return writeJSON(r.ctx, b)
}

// appendListV2Entry renders a list-v2 entry; key only in delimited listings.
func appendListV2Entry(b []byte, e *listRow, withKey bool) []byte {
	b = append(b, '{')
	if withKey {
		b = appendRawString(append(b, `"key":`...), e.Key)
		b = append(b, ',')
	}
	b = appendRawUUID(append(b, `"id":`...), e.ID)
	b = appendRawString(append(b, `,"name":`...), e.Name)
	b = appendRawJSON(append(b, `,"metadata":`...), e.Metadata)
	b = appendRawJSTime(append(b, `,"updated_at":`...), e.UpdatedAt)
	b = appendRawJSTime(append(b, `,"created_at":`...), e.CreatedAt)
	b = appendRawJSTime(append(b, `,"last_accessed_at":`...), e.LastAccessedAt)
	return append(b, '}')
}

// cursorEntry is what the next page's cursor needs of the last entry of a page: its name and
// its timestamp in the sort column (created_at but for updated_at sorts), binary.
type cursorEntry struct {
	name, at []byte
	atNull   bool
}

// The cursor is opaque to clients; like the reference's it is base64 of "k:v" lines: l the
// last name, o the order, c the column, a the last entry's sort timestamp (time sorts).
func encodeCursor(last *cursorEntry, p listV2Params) string {
	lines := "l:" + string(last.name) + "\no:" + p.SortOrder + "\nc:" + p.SortColumn
	if p.SortColumn != "name" && !last.atNull {
		lines += "\na:" + rawTime(last.at).Format("2006-01-02T15:04:05.000Z")
	}
	return base64.StdEncoding.EncodeToString([]byte(lines))
}

// decodeCursor applies a cursor: its position, and its order and column, which win over the
// body's sortBy.
func decodeCursor(c string, p *listV2Params) error {
	raw, err := base64.StdEncoding.DecodeString(c)
	if err != nil || !isText(string(raw)) { // its name goes to the database as text
		return ErrInvalidCursor
	}
	var last, order, column, at string
	for _, line := range strings.Split(string(raw), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return ErrInvalidCursor
		}
		switch k {
		case "l":
			last = v
		case "o":
			order = v
		case "c":
			column = v
		case "a":
			at = v
		}
	}
	if last == "" || (order != "asc" && order != "desc") || (column != "name" && column != "updated_at" && column != "created_at") {
		return ErrInvalidCursor
	}
	p.StartAfter, p.SortOrder, p.SortColumn = &last, order, column
	if column != "name" {
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return ErrInvalidCursor
		}
		p.StartAfterTime = &t
	}
	return nil
}

func boolJSON(v bool) string {
	if v {
		return "true"
	}
	return "false"
}

func derefBool(b *bool) bool { return b != nil && *b }

// int reads an integer property with a lower bound; absent or null → def.
func (f *fields) int(name string, min, def int) int {
	raw, ok := f.obj[name]
	if !ok || isNull(raw) {
		return def
	}
	n, err := parseJSONInt(raw)
	switch {
	case err != nil:
		f.fail("body/" + name + " must be integer")
	case n < min:
		f.fail("body/" + name + " must be >= " + strconv.Itoa(min))
	}
	return n
}

// sortBy reads sortBy.column (one of columns, default the first) and sortBy.order.
func (f *fields) sortBy(columns ...string) (string, string) {
	column, order := columns[0], "asc"
	raw, ok := f.obj["sortBy"]
	if !ok || isNull(raw) {
		return column, order
	}
	sub, err := parseObject(raw)
	if err != nil {
		f.fail("body/sortBy must be object")
		return column, order
	}
	if c := sub.enum("column", columns...); c != nil {
		column = *c
	}
	if o := sub.enum("order", "asc", "desc"); o != nil {
		order = *o
	}
	if sub.err != nil && f.err == nil {
		f.err = schemaError("body/sortBy/" + strings.TrimPrefix(sub.err.(*Error).Message, "body/"))
	}
	return column, order
}

func parseJSONInt(raw jsonField) (int, error) {
	return strconv.Atoi(strings.Trim(string(raw), `"`))
}

func parseObject(raw jsonField) (*fields, error) {
	obj := bodyObject{}
	err := json.Unmarshal(raw, &obj)
	return &fields{obj: obj}, err
}
