package tests

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// If-Match and If-Unmodified-Since on downloads. The reference ignores them; we answer as HTTP
// does (RFC 9110 §13): a failed precondition is 412, and it is evaluated first (§13.2.2), so
// it wins over Range (206, 416) and over If-None-Match / If-Modified-Since (304). Every case
// runs on every download route (authenticated, optional auth, public, signed, and one under
// the gateway prefix) with GET, and on the HEAD routes.

// errPreconditionFailed is the body of a GET whose precondition failed.
var errPreconditionFailed = apiError{"412", "PreconditionFailed", "precondition_failed",
	"At least one of the pre-conditions you specified did not hold"}

func TestHTTPObjectPreconditions(t *testing.T) {
	t.Parallel()
	o := newObjEnv(t, signFileBackend(t)) // private bucket "b"
	o.mkBucket(t, `{"name":"pub","public":true}`)
	const content = "0123456789"
	o.mustUpload(t, "b", "k", content, withHeader("Content-Type", "text/plain"))
	o.mustUpload(t, "pub", "k", content, withHeader("Content-Type", "text/plain"))
	etag := quotedMD5(content)
	lastModified := func(path string) time.Time {
		r := o.get(t, path, o.service)
		require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
		lm, err := http.ParseTime(r.Header.Get("Last-Modified"))
		require.NoError(t, err)
		return lm
	}
	lmPrivate, lmPublic := lastModified("/object/b/k"), lastModified("/object/pub/k")
	signed := signEncodeURI(o.signURL(t, "b", "k", o.service, 600))

	type route struct {
		name, path, token string
		lm                time.Time // the object's Last-Modified
	}
	gets := []route{
		{"authenticated", "/object/authenticated/b/k", o.userA, lmPrivate},
		{"optional", "/object/b/k", o.service, lmPrivate},
		{"public", "/object/public/pub/k", "", lmPublic},
		{"optionalAnonymousPublic", "/object/pub/k", "", lmPublic},
		{"signed", signed, "", lmPrivate},
		{"gateway", "/storage/v1/object/authenticated/b/k", o.service, lmPrivate},
	}
	heads := []route{
		{"authenticated", "/object/authenticated/b/k", o.service, lmPrivate},
		{"optional", "/object/b/k", o.service, lmPrivate},
		{"public", "/object/public/pub/k", "", lmPublic},
		{"info", "/object/info/b/k", o.service, lmPrivate},
		{"gateway", "/storage/v1/object/public/pub/k", "", lmPublic},
	}
	// userA reads the private object through a policy: the authenticated route applies RLS.
	ownerSQL(t, o.db, `create policy read_b on storage.objects for select to authenticated using (bucket_id = 'b')`)

	// Header values relative to the object's Last-Modified.
	type dates struct{ same, before, after string }
	datesOf := func(lm time.Time) dates {
		return dates{lm.UTC().Format(http.TimeFormat), lm.Add(-time.Hour).UTC().Format(http.TimeFormat),
			lm.Add(time.Hour).UTC().Format(http.TimeFormat)}
	}

	cases := []struct {
		name    string
		headers func(d dates) []string // header name, value, …
		get     int                    // GET's status
		body    string                 // GET's body on 200 / 206
		head    int                    // HEAD's status (HEAD ignores Range and If-None-Match)
	}{
		{"IfMatchCurrent", func(dates) []string { return []string{"If-Match", etag} }, 200, content, 200},
		{"IfMatchInList", func(dates) []string { return []string{"If-Match", `"other", ` + etag} }, 200, content, 200},
		{"IfMatchStar", func(dates) []string { return []string{"If-Match", "*"} }, 200, content, 200},
		{"IfMatchOther", func(dates) []string { return []string{"If-Match", `"other"`} }, 412, "", 412},
		{"IfMatchWeakNeverMatches", func(dates) []string { return []string{"If-Match", "W/" + etag} }, 412, "", 412},
		{"IfMatchUnquoted", func(dates) []string { return []string{"If-Match", strings.Trim(etag, `"`)} }, 412, "", 412},
		{"IfUnmodifiedSinceSame", func(d dates) []string { return []string{"If-Unmodified-Since", d.same} }, 200, content, 200},
		{"IfUnmodifiedSinceLater", func(d dates) []string { return []string{"If-Unmodified-Since", d.after} }, 200, content, 200},
		{"IfUnmodifiedSinceEarlier", func(d dates) []string { return []string{"If-Unmodified-Since", d.before} }, 412, "", 412},
		{"IfUnmodifiedSinceNotADateIsIgnored", func(dates) []string { return []string{"If-Unmodified-Since", "yesterday"} }, 200, content, 200},
		// If-Unmodified-Since is evaluated only without If-Match.
		{"IfMatchPassesIfUnmodifiedSinceIgnored", func(d dates) []string {
			return []string{"If-Match", etag, "If-Unmodified-Since", d.before}
		}, 200, content, 200},
		{"IfMatchFailsWhateverIfUnmodifiedSince", func(d dates) []string {
			return []string{"If-Match", `"other"`, "If-Unmodified-Since", d.after}
		}, 412, "", 412},
		// 412 before Range.
		{"FailedBeforeRange", func(dates) []string { return []string{"If-Match", `"other"`, "Range", "bytes=0-3"} }, 412, "", 412},
		{"FailedBeforeUnsatisfiableRange", func(d dates) []string {
			return []string{"If-Unmodified-Since", d.before, "Range", "bytes=100-"}
		}, 412, "", 412},
		{"PassedThenRange", func(dates) []string { return []string{"If-Match", etag, "Range", "bytes=0-3"} }, 206, "0123", 200},
		{"PassedSinceThenRange", func(d dates) []string {
			return []string{"If-Unmodified-Since", d.after, "Range", "bytes=5-"}
		}, 206, "56789", 200},
		// 412 before 304.
		{"FailedBeforeIfNoneMatch", func(dates) []string {
			return []string{"If-Match", `"other"`, "If-None-Match", etag}
		}, 412, "", 412},
		{"FailedSinceBeforeIfNoneMatch", func(d dates) []string {
			return []string{"If-Unmodified-Since", d.before, "If-None-Match", etag}
		}, 412, "", 412},
		{"FailedSinceBeforeIfModifiedSince", func(d dates) []string {
			return []string{"If-Unmodified-Since", d.before, "If-Modified-Since", d.after}
		}, 412, "", 412},
		{"PassedThenNotModified", func(dates) []string {
			return []string{"If-Match", etag, "If-None-Match", etag}
		}, 304, "", 200},
		{"PassedSinceThenNotModifiedSince", func(d dates) []string {
			return []string{"If-Unmodified-Since", d.same, "If-Modified-Since", d.same}
		}, 304, "", 200},
	}

	opts := func(hs []string) []reqOpt {
		var out []reqOpt
		for i := 0; i+1 < len(hs); i += 2 {
			out = append(out, withHeader(hs[i], hs[i+1]))
		}
		return out
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, rt := range gets {
				r := o.get(t, rt.path, rt.token, opts(c.headers(datesOf(rt.lm)))...)
				switch c.get {
				case http.StatusPreconditionFailed:
					requireAPIError(t, r, http.StatusPreconditionFailed, errPreconditionFailed)
				case http.StatusNotModified:
					require.Equal(t, http.StatusNotModified, r.Status, "GET %s: %s", rt.name, r)
					require.Empty(t, r.Body, "GET %s", rt.name)
					require.Equal(t, etag, r.Header.Get("ETag"), "GET %s", rt.name)
				default:
					require.Equal(t, c.get, r.Status, "GET %s: %s", rt.name, r)
					require.Equal(t, c.body, string(r.Body), "GET %s", rt.name)
					require.Equal(t, etag, r.Header.Get("ETag"), "GET %s", rt.name)
				}
			}
			for _, rt := range heads {
				r := o.do(t, "HEAD", rt.path, rt.token, "", opts(c.headers(datesOf(rt.lm)))...)
				require.Equal(t, c.head, r.Status, "HEAD %s", rt.name)
				require.Empty(t, r.Body, "HEAD %s", rt.name)
				if c.head == http.StatusOK {
					require.Equal(t, etag, r.Header.Get("ETag"), "HEAD %s", rt.name)
					require.Equal(t, "10", r.Header.Get("Content-Length"), "HEAD %s", rt.name)
				} else {
					require.Empty(t, r.Header.Get("ETag"), "HEAD %s", rt.name)
				}
			}
		})
	}

	t.Run("MissingObjectIsNotAPreconditionFailure", func(t *testing.T) {
		t.Parallel()
		// A response that would not be 2xx without the precondition ignores it (RFC 9110 §13.2.1).
		r := o.get(t, "/object/b/missing", o.service, withHeader("If-Match", "*"))
		requireAPIError(t, r, http.StatusBadRequest, apiError{"404", "NoSuchKey", "not_found", "Object not found"})
		r = o.do(t, "HEAD", "/object/b/missing", o.service, "", withHeader("If-Match", etag))
		require.Equal(t, http.StatusBadRequest, r.Status)
		require.Empty(t, r.Body)
	})
}
