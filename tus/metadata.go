package tus

import (
	"encoding/base64"
	"strings"
)

// pair is one entry of Upload-Metadata: a key and its decoded value (nil: no value).
type pair struct {
	Key   string
	Value *string
}

// metadata is Upload-Metadata in the order sent.
type metadata []pair

// parseMetadata parses Upload-Metadata: comma-separated "key" or "key value" pairs, keys
// non-empty ASCII without spaces or commas and unique, values standard base64 (padded).
func parseMetadata(h string) (metadata, bool) {
	var m metadata
	seen := map[string]bool{}
	for item := range strings.SplitSeq(h, ",") {
		item = strings.Trim(item, " ")
		key, value, hasValue := strings.Cut(item, " ")
		if key == "" || seen[key] || strings.ContainsAny(key, " ,") || !ascii(key) {
			return nil, false
		}
		seen[key] = true
		p := pair{Key: key}
		if hasValue {
			if !validBase64(value) {
				return nil, false
			}
			v, err := base64.StdEncoding.DecodeString(value)
			if err != nil {
				return nil, false
			}
			s := string(v)
			p.Value = &s
		}
		m = append(m, p)
	}
	return m, true
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// validBase64 checks the tus grammar for values: a multiple of 4 characters of the standard
// alphabet, with at most two '=' at the end.
func validBase64(v string) bool {
	if len(v)%4 != 0 {
		return false
	}
	body := strings.TrimRight(v, "=")
	if len(v)-len(body) > 2 {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// get returns the value of key ("" and false when absent or without a value).
func (m metadata) get(key string) (string, bool) {
	for _, p := range m {
		if p.Key == key && p.Value != nil {
			return *p.Value, true
		}
	}
	return "", false
}

// set replaces (or appends) key's value.
func (m metadata) set(key, value string) metadata {
	for i := range m {
		if m[i].Key == key {
			m[i].Value = &value
			return m
		}
	}
	return append(m, pair{Key: key, Value: &value})
}

// String renders m as an Upload-Metadata header.
func (m metadata) String() string {
	var b strings.Builder
	for i, p := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.Key)
		if p.Value != nil {
			b.WriteByte(' ')
			b.WriteString(base64.StdEncoding.EncodeToString([]byte(*p.Value)))
		}
	}
	return b.String()
}
