package proxy

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// The hand-rolled JSON writers must produce what encoding/json would (minus HTML escaping,
// which the reference does not apply), and timestamps as JavaScript renders them (§1.3).

func TestAppendJSONString(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"", "plain", `quote " and backslash \`, "nl\n cr\r tab\t", "\x00\x01\x1f\x7f",
		"<script>&amp;</script>", "é ü 日本 🎉", "line\u2028sep\u2029", "bad \xff utf8 \xc3",
		`a b!-_.*'()&$=@;:+,?`,
	} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		require.NoError(t, enc.Encode(s))
		require.Equal(t, string(bytes.TrimSuffix(want.Bytes(), []byte("\n"))), string(appendJSONString(nil, s)), "%q", s)
	}
}

func TestAppendJSTime(t *testing.T) {
	t.Parallel()
	require.Equal(t, "null", string(appendJSTime(nil, nil)))
	zone := time.FixedZone("x", 2*3600+30*60)
	for in, want := range map[time.Time]string{
		time.Date(2021, 2, 17, 4, 43, 32, 770_999_999, time.UTC): `"2021-02-17T04:43:32.770Z"`, // truncated, not rounded
		time.Date(2021, 2, 17, 4, 43, 32, 0, time.UTC):           `"2021-02-17T04:43:32.000Z"`,
		time.Date(2021, 1, 1, 1, 0, 0, 5_000_000, zone):          `"2020-12-31T22:30:00.005Z"`,
	} {
		in := in
		require.Equal(t, want, string(appendJSTime(nil, &in)))
	}
}

func TestMessageBody(t *testing.T) {
	t.Parallel()
	for m, want := range map[string]string{
		"Successfully updated": `{"message":"Successfully updated"}`,
		"Successfully deleted": `{"message":"Successfully deleted"}`,
		`say "hi"`:             `{"message":"say \"hi\""}`,
	} {
		got := messageBody(m)
		require.True(t, json.Valid(got), "not JSON: %s", got)
		require.Equal(t, want, string(got))
	}
}

func TestAppendBucket(t *testing.T) {
	t.Parallel()
	created := time.Date(2024, 5, 6, 7, 8, 9, 123_456_000, time.UTC)
	limit := int64(1048576)
	owner := "8a5e1a1c-7c7f-4a3c-9d5e-3f3c1b2a4d01"
	full := bucket{ID: "b", Name: "n", Owner: &owner, Public: true, FileSizeLimit: &limit,
		AllowedMimeTypes: []string{"image/*"}, CreatedAt: &created, UpdatedAt: &created, Type: "STANDARD"}
	bare := bucket{ID: "b", Name: "n", CreatedAt: &created, UpdatedAt: &created, Type: "STANDARD"}

	for _, tc := range []struct {
		b        bucket
		withType bool
		want     string
	}{
		{full, true, `{"id":"b","name":"n","type":"STANDARD","owner":"` + owner + `","public":true,"file_size_limit":1048576,` +
			`"allowed_mime_types":["image/*"],"created_at":"2024-05-06T07:08:09.123Z","updated_at":"2024-05-06T07:08:09.123Z"}`},
		// NULL owner is "" (string field), NULL limits stay null; no type on GET /bucket/{id}.
		{bare, false, `{"id":"b","name":"n","owner":"","public":false,"file_size_limit":null,` +
			`"allowed_mime_types":null,"created_at":"2024-05-06T07:08:09.123Z","updated_at":"2024-05-06T07:08:09.123Z"}`},
	} {
		got := appendBucket(nil, &tc.b, tc.withType)
		require.True(t, json.Valid(got), "not JSON: %s", got)
		require.JSONEq(t, tc.want, string(got))
	}
}

// TestAppendCompactJSON: the one-pass compaction gives what json.Compact gives for the text
// PostgreSQL renders (spaces after ':' and ','), and for any other valid JSON, keeping every
// byte inside strings, escaped quotes included.
func TestAppendCompactJSON(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		`{}`, `[]`, `null`, `"x"`, `12.5`,
		`{"a": 1, "b": [1, 2, {"c": null}], "d": "x y"}`,
		`{"eTag": "\"abc\"", "size": 3, "mimetype": "text/plain; charset=utf-8"}`,
		`{"k": "a \" b \\ c\\", "l": " : , "}`,
		`{"u": "\u00e9 é 日本", "t": "tab\tin"}`,
		" \n\t{ \"a\" :\r\n [ true , false ] } ",
		`{"a": "\\", "b": "x\"y \\\" z", "c": "\\\\", "d": ""}`, `[ "\\" , "" , " " ]`,
	} {
		var want bytes.Buffer
		require.NoError(t, json.Compact(&want, []byte(in)), in)
		require.Equal(t, want.String(), string(appendCompactJSON(nil, []byte(in))), "%q", in)
		var j pgJSON
		require.NoError(t, j.ScanBytes([]byte(in)))
		require.Equal(t, want.String(), string(j), "%q", in)
	}
	var j pgJSON = pgJSON(`{}`)
	require.NoError(t, j.ScanBytes(nil))
	require.Nil(t, j, "NULL scans as nil")

	// Strings of quotes, backslashes and spaces, in indented documents.
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []rune{'"', '\\', ' ', 'a', '/', '\n', 'é', ':', ','}
	for i := 0; i < 2000; i++ {
		doc := map[string]any{}
		for k := 0; k < rng.IntN(5); k++ {
			var s []rune
			for n := rng.IntN(8); n > 0; n-- {
				s = append(s, alphabet[rng.IntN(len(alphabet))])
			}
			doc[string(s)] = []any{string(s), k, nil, map[string]any{"x": string(s)}}
		}
		in, err := json.MarshalIndent(doc, " ", "  ")
		require.NoError(t, err)
		var want bytes.Buffer
		require.NoError(t, json.Compact(&want, in))
		require.Equal(t, want.String(), string(appendCompactJSON([]byte("prefix"), in)[len("prefix"):]), "%s", in)
	}
}

func BenchmarkAppendCompactJSON(b *testing.B) {
	in := []byte(`{"eTag": "\"0f343b0931126a20f133d67c2b018a3b\"", "size": 1024, "mimetype": "application/octet-stream", "cacheControl": "no-cache", "lastModified": "2026-01-01T00:00:00.000Z", "contentLength": 1024, "httpStatusCode": 200}`)
	b.SetBytes(int64(len(in)))
	buf := make([]byte, 0, 4096)
	for b.Loop() {
		buf = appendCompactJSON(buf[:0], in)
	}
}

// Listings render the driver's binary values in place: they must match the scanned path.
func TestAppendRawListValues(t *testing.T) {
	t.Parallel()
	require.Equal(t, "null", string(appendRawJSTime(nil, nil)))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		// Years 1 to about 12000, negative offsets from PostgreSQL's epoch included.
		us := rng.Int64N(375_000_000_000_000_000/1000) - 63_000_000_000_000_000/1000
		if i%2 == 0 {
			us = rng.Int64N(2_000_000_000_000_000) - 1_000_000_000_000_000 // 1968–2031
		}
		var raw [8]byte
		binary.BigEndian.PutUint64(raw[:], uint64(us-pgEpochMicros))
		want := time.UnixMicro(us)
		require.Equal(t, string(appendJSTime(nil, &want)), string(appendRawJSTime(nil, raw[:])), "%d µs", us)
	}

	require.Equal(t, "null", string(appendRawUUID(nil, nil)))
	for i := 0; i < 1000; i++ {
		u := uuid.New()
		require.Equal(t, `"`+u.String()+`"`, string(appendRawUUID(nil, u[:])))
	}

	require.Equal(t, "null", string(appendRawString(nil, nil)))
	require.Equal(t, `""`, string(appendRawString(nil, []byte{})))
	require.Equal(t, `"a \"b\"/c.txt"`, string(appendRawString(nil, []byte(`a "b"/c.txt`))))
	require.Equal(t, "null", string(appendRawJSON(nil, nil)))
	require.Equal(t, `{"a":1,"b":"x y"}`, string(appendRawJSON(nil, []byte(`{"a": 1, "b": "x y"}`))))
}
