package tus

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

// Fuzz targets for what TUS requests carry (`make fuzz`; the seeds also run as plain tests).

// FuzzMetadata: Upload-Metadata is refused or parsed into unique, well-formed keys, and what
// the server stores (String) parses back to the same pairs.
func FuzzMetadata(f *testing.F) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, h := range []string{"", "bucketName " + b64("b") + ",objectName " + b64("dir/a.txt") + ",contentType " + b64("text/plain") + ",cacheControl " + b64("3600"),
		"flag", "a ,b", " a  " + b64("x") + " ", "a " + b64("x") + ",a " + b64("y"), "a bad!", "a YQ", "a YQ===", "a ====",
		"é " + b64("x"), "a\t" + b64("x"), ",", "a " + b64("\x00\xff"), "metadata " + b64(`{"k":1}`)} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		m, ok := parseMetadata(h)
		if !ok {
			require.Nil(t, m)
			return
		}
		seen := map[string]bool{}
		for _, p := range m {
			require.NotEmpty(t, p.Key)
			require.True(t, ascii(p.Key), "%q", p.Key)
			require.False(t, seen[p.Key], "duplicate %q", p.Key)
			seen[p.Key] = true
		}
		again, ok := parseMetadata(m.String())
		require.True(t, ok, "%q", m.String())
		require.Equal(t, m, again)
	})
}

// FuzzUploadID: an upload URL's id is refused (400) or names a bucket, an object and a
// version, and the id the server would write for those names the same upload.
func FuzzUploadID(f *testing.F) {
	enc := base64.RawURLEncoding.EncodeToString
	for _, s := range []string{enc([]byte("b/dir/a.txt/0b6e5a1c-1111-2222-3333-444455556666")), enc([]byte("b/a/")),
		enc([]byte("b")), enc([]byte("/")), enc([]byte("b//v")), enc([]byte("b/a/v")) + "==", "!!!", "", "YQ", "YQ=", "YR"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := parseID(s)
		if err != nil {
			require.Equal(t, 400, err.Status)
			return
		}
		require.NotEmpty(t, id.Version)
		require.NotContains(t, id.Version, "/")
		require.NotContains(t, id.Bucket, "/")
		again, err := parseID(id.String())
		require.Nil(t, err)
		require.Equal(t, id, again)
		require.Equal(t, id.lockKey(), again.lockKey())
	})
}

// FuzzHeaders: the protocol headers are all well-formed (nil), or Tus-Resumable is missing
// (412), or the 400 names exactly the malformed ones; an accepted Upload-Length and
// Upload-Offset are canonical non-negative decimals.
func FuzzHeaders(f *testing.F) {
	f.Add("PATCH", "1.0.0", "application/offset+octet-stream", "10", "0", "a YQ==", "")
	f.Add("POST", "1.0.0", "", "", "", "bucketName YQ==,objectName Yg==", "1")
	f.Add("HEAD", "", "", "", "", "", "")
	f.Add("PATCH", "0.2.2", "text/plain", "-1", "01", "a,a", "2")
	f.Add("POST", "1.0.0", "", "9223372036854775808", "+1", "a  b", "")
	f.Fuzz(func(t *testing.T, method, resumable, contentType, length, offset, metadata, deferLength string) {
		var ctx fasthttp.RequestCtx
		h := &ctx.Request.Header
		h.SetMethod(method)
		for name, v := range map[string]string{"Tus-Resumable": resumable, "Content-Type": contentType,
			"Upload-Length": length, "Upload-Offset": offset, "Upload-Metadata": metadata, "Upload-Defer-Length": deferLength} {
			if v != "" {
				h.Set(name, v)
			}
		}
		e := validateHeaders(&ctx)
		if e == nil {
			for _, name := range []string{"Upload-Length", "Upload-Offset"} {
				if v, ok := header(&ctx, name); ok {
					n, ok := parseSize(v)
					require.True(t, ok, "%s %q", name, v)
					require.Equal(t, v, strconv.FormatInt(n, 10))
				}
			}
			if v, ok := header(&ctx, "Upload-Metadata"); ok {
				_, ok := parseMetadata(v)
				require.True(t, ok)
			}
			return
		}
		if e == errResumableRequired {
			require.Empty(t, h.Peek("Tus-Resumable"))
			return
		}
		require.Equal(t, 400, e.Status)
		bad := strings.Fields(strings.TrimPrefix(e.Body, "Invalid "))
		require.NotEmpty(t, bad)
		for _, name := range bad {
			require.NotEmpty(t, h.Peek(name), "%s named but not sent", name)
		}
	})
}
