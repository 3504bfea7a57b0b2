package tests

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/proxy"
)

// Signed URLs and signed uploads over real HTTP (spec §2.7, §2.8, §4 and §11 items 55–68):
// the tokens the routes mint (decoded and verified here), the signed download and the signed
// upload, exact statuses, bodies and headers, the rows and blobs left behind. Clients are
// played as storage-js 2.119.0 plays them: it reads signedURL (single), [{error,path,signedURL}]
// (batch) and url (upload sign), prefixes the relative URL with its base and passes the result
// through encodeURI. Cases that move bytes run once per blob backend; the others run on the
// file backend. Subtests are named after the §11 item they pin where there is one.

// ---------------------------------------------------------------------------------------------
// Helpers.

// The errors of the signed routes.
var (
	errSignInvalid     = apiError{"400", "InvalidSignature", "InvalidSignature", "Invalid signature"}
	errSignNotDownload = apiError{"400", "InvalidSignature", "InvalidSignature", "Token is not scoped for download"}
	errSignNotUpload   = apiError{"400", "InvalidSignature", "InvalidSignature", "Token is not scoped for upload"}
	errSignExpired     = apiError{"400", "InvalidJWT", "InvalidJWT", `"exp" claim timestamp check failed`}
	errSignBadSig      = apiError{"400", "InvalidJWT", "InvalidJWT", "signature verification failed"}
	errSignMalformed   = apiError{"400", "InvalidJWT", "InvalidJWT", "Invalid Compact JWS"}
	errSignNoToken     = apiError{"400", "InvalidRequest", "Error", "querystring must have required property 'token'"}
	errSignExpiresIn   = apiError{"400", "InvalidParameter", "InvalidParameter", "Invalid Parameter expiresIn"}
)

// signBatchMissing is the error of a batch entry the caller cannot sign (spec §2.7 O15).
const signBatchMissing = "Either the object does not exist or you do not have access to it"

// signFileBackend is the file backend, for the cases whose outcome does not depend on where
// the bytes are.
func signFileBackend(t *testing.T) objectBackend {
	t.Helper()
	for _, be := range objectBackends {
		if be.name == "file" {
			return be
		}
	}
	t.Fatal("no file backend")
	return objectBackend{}
}

// withUploadURLExpiry sets UPLOAD_SIGNED_URL_EXPIRATION_TIME.
func withUploadURLExpiry(seconds int64) httpOpt {
	return func(c *serverConfig) { c.UploadURLExpiry = seconds }
}

// withJWTAlgorithm sets AUTH_JWT_ALGORITHM.
func withJWTAlgorithm(alg string) httpOpt { return func(c *serverConfig) { c.JWTAlgorithm = alg } }

// signEncodeURI escapes s like JavaScript's encodeURI, which storage-js applies to the base
// URL + signedURL: everything but letters, digits and -_.!~*'();/?:@&=+$,# is escaped.
func signEncodeURI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.!~*'();/?:@&=+$,#", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// signTokenOf returns the token of a signed URL (the part after "?token=").
func signTokenOf(t *testing.T, url string) string {
	t.Helper()
	i := strings.LastIndex(url, "?token=")
	require.GreaterOrEqual(t, i, 0, "no ?token= in %q", url)
	return url[i+len("?token="):]
}

// signDecode splits a compact JWT without verifying it and returns its header and claims,
// numbers kept exact.
func signDecode(t *testing.T, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3, "token %q", token)
	for i, dst := range []*map[string]any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		require.NoError(t, err, "segment %d of %q", i, token)
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		require.NoError(t, d.Decode(dst), "segment %d: %s", i, raw)
	}
	return header, claims
}

// signClaimInt returns an integer claim.
func signClaimInt(t *testing.T, claims map[string]any, name string) int64 {
	t.Helper()
	n, ok := claims[name].(json.Number)
	require.True(t, ok, "claim %s = %#v is not a number", name, claims[name])
	v, err := n.Int64()
	require.NoError(t, err, "claim %s = %s is not an integer", name, n)
	return v
}

// signerOf is the signer claim of an upload token minted by a caller whose JWT had role and
// sub ("" = none): the upload is written as that identity. The signer's own iat and exp are
// left out.
func signerOf(role, sub string) map[string]any {
	claims := map[string]any{"role": role}
	if sub != "" {
		claims["sub"] = sub
	}
	return map[string]any{"role": role, "claims": claims}
}

// signRequireToken asserts a token minted by the server: an HS256 JWT, header exactly
// {"alg":"HS256","typ":"JWT"}, verifiable with golang-jwt and the server's secret, iat about
// now and exp = iat + lifetime, with exactly the claims want plus iat and exp. It returns exp.
func signRequireToken(t *testing.T, token string, lifetime int64, want map[string]any) int64 {
	t.Helper()
	header, claims := signDecode(t, token)
	require.Equal(t, map[string]any{"alg": "HS256", "typ": "JWT"}, header)
	parsed, err := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt()).
		Parse(token, func(*jwt.Token) (any, error) { return []byte(httpJWTSecret), nil })
	require.NoError(t, err, "the token does not verify with the server's secret")
	require.True(t, parsed.Valid)
	iat, exp := signClaimInt(t, claims, "iat"), signClaimInt(t, claims, "exp")
	require.Equal(t, lifetime, exp-iat, "exp - iat")
	require.InDelta(t, time.Now().Unix(), iat, 10, "iat is now")
	rest := map[string]any{}
	for k, v := range claims {
		if k != "iat" && k != "exp" {
			rest[k] = v
		}
	}
	require.Equal(t, want, rest, "claims of %s", token)
	return exp
}

// signURL signs bucket/key for expiresIn seconds as token over POST /object/sign and returns
// the signedURL, asserting the reply is exactly {"signedURL":"/object/sign/<b>/<k>?token=…"}
// with the key as is (not encoded). The request path carries the key as storage-js sends it.
func (o *objEnv) signURL(t *testing.T, bucket, key, token string, expiresIn int) string {
	t.Helper()
	r := o.do(t, "POST", "/object/sign/"+escapeKey(bucket)+"/"+escapeKey(key), token, fmt.Sprintf(`{"expiresIn":%d}`, expiresIn))
	requireOKJSON(t, r)
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &m))
	require.Equal(t, []string{"signedURL"}, sortedKeys(m), "body: %s", r.Body)
	u, ok := m["signedURL"].(string)
	require.True(t, ok, "body: %s", r.Body)
	require.Equal(t, "/object/sign/"+signPathEscape(bucket+"/"+key)+"?token="+signTokenOf(t, u), u)
	return u
}

// signUpload asks for an upload URL for bucket/key as token and returns url and token,
// asserting the reply is exactly {"url":"/object/upload/sign/<b>/<k>?token=<token>","token":<token>}.
func (o *objEnv) signUpload(t *testing.T, bucket, key, token string, opts ...reqOpt) (string, string) {
	t.Helper()
	r := o.do(t, "POST", "/object/upload/sign/"+escapeKey(bucket)+"/"+escapeKey(key), token, "{}", opts...)
	requireOKJSON(t, r)
	var m map[string]string
	require.NoError(t, json.Unmarshal(r.Body, &m), "body: %s", r.Body)
	require.Len(t, m, 2, "body: %s", r.Body)
	require.NotEmpty(t, m["token"], "body: %s", r.Body)
	require.Equal(t, "/object/upload/sign/"+signPathEscape(bucket+"/"+key)+"?token="+m["token"], m["url"], "body: %s", r.Body)
	return m["url"], m["token"]
}

// fetch GETs a relative signed URL the way storage-js hands it to fetch: encodeURI'd, without
// any Authorization.
func (o *objEnv) fetch(t *testing.T, signedURL string, opts ...reqOpt) httpResponse {
	t.Helper()
	return o.do(t, "GET", signEncodeURI(signedURL), "", "", opts...)
}

// putSigned uploads content to a relative signed upload URL (encodeURI'd, no Authorization)
// as a raw body with a Content-Length.
func (o *objEnv) putSigned(t *testing.T, uploadURL, content string, opts ...reqOpt) httpResponse {
	t.Helper()
	return o.send(t, "PUT", signEncodeURI(uploadURL), "", strings.NewReader(content), int64(len(content)), opts...)
}

// signOwner returns owner::text and owner_id of a row ("<null>" for NULL).
func (o *objEnv) signOwner(t *testing.T, bucket, name string) (string, string) {
	t.Helper()
	got := o.column(t, `select coalesce(owner::text, '<null>') || ' ' || coalesce(owner_id, '<null>')
		from storage.objects where bucket_id = $1 and name = $2`, bucket, name)
	require.Len(t, got, 1, "row %s/%s", bucket, name)
	owner, ownerID, _ := strings.Cut(got[0], " ")
	return owner, ownerID
}

// signMint signs claims with the server's secret (HS256), for hand-made and legacy tokens.
func signMint(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	return signJWT(t, jwt.SigningMethodHS256, []byte(httpJWTSecret), claims)
}

// signPath is a signed-route path with a token.
func signPath(route, bucket, key, token string) string {
	return route + escapeKey(bucket) + "/" + escapeKey(key) + "?token=" + token
}

// signBinary is content with every byte value.
func signBinary(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return string(b)
}

// signBatch POSTs a batch signing and returns the entries, asserting each has exactly the
// keys error, path and signedURL.
func (o *objEnv) signBatch(t *testing.T, bucket, token, body string) []map[string]any {
	t.Helper()
	r := o.do(t, "POST", "/object/sign/"+escapeKey(bucket), token, body)
	requireOKJSON(t, r)
	var out []map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &out), "body: %s", r.Body)
	for i, e := range out {
		require.Equal(t, []string{"error", "path", "signedURL"}, sortedKeys(e), "entry %d: %s", i, r.Body)
	}
	return out
}

var signURLPattern = regexp.MustCompile(`^/object/sign/b/k\?token=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)

// ---------------------------------------------------------------------------------------------
// Signing a download URL (O14) and the signed download (O16).

func TestHTTPSignDownload(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "55_SignResponseAndClaims", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "hello")
			u := o.signURL(t, "b", "k", o.service, 60)
			require.Regexp(t, signURLPattern, u)
			signRequireToken(t, signTokenOf(t, u), 60, map[string]any{"url": "b/k", "scope": "download"})
			// A user's token carries no owner, role or sub: only url and scope.
			admin(t, o.db, `create policy sel on storage.objects for select to authenticated using (true)`)
			u = o.signURL(t, "b", "k", o.userA, 3600)
			signRequireToken(t, signTokenOf(t, u), 3600, map[string]any{"url": "b/k", "scope": "download"})
			// The schema's coercion: "60" is an integer.
			r := o.do(t, "POST", "/object/sign/b/k", o.service, `{"expiresIn":"60"}`)
			var m map[string]string
			require.NoError(t, json.Unmarshal(okBody(t, r), &m))
			signRequireToken(t, signTokenOf(t, m["signedURL"]), 60, map[string]any{"url": "b/k", "scope": "download"})
			// Image transformation is off: transform has no effect. Claims the caller puts in
			// the body are not claims of the token.
			r = o.do(t, "POST", "/object/sign/b/k", o.service, `{"expiresIn":60,"transform":{"width":100,"height":100},
				"url":"b/other","scope":"upload","role":"service_role","upsert":true,"owner":"someone","exp":1}`)
			require.NoError(t, json.Unmarshal(okBody(t, r), &m))
			require.Regexp(t, signURLPattern, m["signedURL"])
			signRequireToken(t, signTokenOf(t, m["signedURL"]), 60, map[string]any{"url": "b/k", "scope": "download"})
			// Signing creates nothing.
			require.Equal(t, []string{"b/k"}, o.objectNames(t))
		}, withRender(func(c *proxy.RenderConfig) { c.Engine = nil }))

		be.run(t, "56_SignedDownload", func(t *testing.T, o *objEnv) {
			content := signBinary(70000)
			o.mustUpload(t, "b", "k", content, withHeader("Content-Type", "image/png"), withHeader("Cache-Control", "max-age=60"))
			u := o.signURL(t, "b", "k", o.service, 120)
			_, claims := signDecode(t, signTokenOf(t, u))
			exp := signClaimInt(t, claims, "exp")

			r := o.fetch(t, u)
			requireBytes(t, r, content)
			h := r.Header
			require.Equal(t, "image/png", h.Get("Content-Type"))
			require.Equal(t, fmt.Sprint(len(content)), h.Get("Content-Length"))
			require.Equal(t, quotedMD5(content), h.Get("ETag"))
			require.NotEmpty(t, h.Get("Last-Modified"))
			require.Equal(t, "bytes", h.Get("Accept-Ranges"))
			require.Equal(t, "none", h.Get("X-Robots-Tag"))
			require.Equal(t, time.Unix(exp, 0).UTC().Format(http.TimeFormat), h.Get("Expires"), "Expires = the token's exp")
			require.Empty(t, h.Values("Cache-Control"), "no Cache-Control on a signed download")
			require.Empty(t, h.Values("Content-Disposition"))

			// No JWT is consulted: a bad Authorization header changes nothing.
			r = o.fetch(t, u, withHeader("Authorization", "Bearer not-a-jwt"))
			requireBytes(t, r, content)
			require.Empty(t, r.Header.Values("Cache-Control"))

			// The same object through the authenticated route does carry its Cache-Control.
			require.Equal(t, "max-age=60", o.get(t, "/object/authenticated/b/k", o.service).Header.Get("Cache-Control"))
		})

		be.run(t, "SignedDownloadDisposition", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "hello")
			u := o.signURL(t, "b", "k", o.service, 60)
			// storage-js appends "&download=" (true) or "&download=<name>" before encodeURI.
			r := o.fetch(t, u+"&download=")
			requireBytes(t, r, "hello")
			require.Equal(t, "attachment;", r.Header.Get("Content-Disposition"))
			r = o.fetch(t, u+"&download")
			requireBytes(t, r, "hello")
			require.Equal(t, "attachment;", r.Header.Get("Content-Disposition"))
			r = o.fetch(t, u+"&download=a b.png")
			requireBytes(t, r, "hello")
			require.Equal(t, "attachment; filename=a%20b.png; filename*=UTF-8''a%20b.png", r.Header.Get("Content-Disposition"))
			require.NotEmpty(t, r.Header.Get("Expires"))
			require.Empty(t, r.Header.Values("Cache-Control"))
		})

		be.run(t, "ExpiresFarFuture", func(t *testing.T, o *objEnv) {
			// A lifetime the spec allows that ends after the year 9999: Expires is still a
			// well-formed HTTP date of exp.
			o.mustUpload(t, "b", "k", "hello")
			lifetime := time.Date(20000, 1, 1, 0, 0, 0, 0, time.UTC).Unix() - time.Now().Unix()
			u := o.signURL(t, "b", "k", o.service, int(lifetime))
			_, claims := signDecode(t, signTokenOf(t, u))
			r := o.fetch(t, u)
			requireBytes(t, r, "hello")
			require.Equal(t, time.Unix(signClaimInt(t, claims, "exp"), 0).UTC().Format(http.TimeFormat), r.Header.Get("Expires"))
		})

		be.run(t, "SignedDownloadRange", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "0123456789", withHeader("Cache-Control", "max-age=60"))
			u := o.signURL(t, "b", "k", o.service, 60)
			_, claims := signDecode(t, signTokenOf(t, u))
			r := o.fetch(t, u, withHeader("Range", "bytes=2-5"))
			require.Equal(t, http.StatusPartialContent, r.Status, "body: %s", r.Body)
			require.Equal(t, "2345", string(r.Body))
			require.Equal(t, "bytes 2-5/10", r.Header.Get("Content-Range"))
			require.Equal(t, "4", r.Header.Get("Content-Length"))
			require.Equal(t, time.Unix(signClaimInt(t, claims, "exp"), 0).UTC().Format(http.TimeFormat), r.Header.Get("Expires"))
			require.Empty(t, r.Header.Values("Cache-Control"))
			r = o.fetch(t, u, withHeader("Range", "bytes=-3"))
			require.Equal(t, http.StatusPartialContent, r.Status)
			require.Equal(t, "789", string(r.Body))
			require.Equal(t, "bytes 7-9/10", r.Header.Get("Content-Range"))
		})

		be.run(t, "SpecialKeys", func(t *testing.T, o *objEnv) {
			// Signed URLs percent-encode the key (hardening finding 11: the reference returns it
			// raw, so "a?b" or a space made URLs that do not work). They work as returned, and
			// also once more encoded, as storage-js's encodeURI does to the whole URL.
			for _, key := range []string{
				"folder/a b (1).png",
				"sp ec!al/&$=@;:+,'*.txt",
				"a///b.txt",
				"x/ y /z.txt",
				"q?x=1&y=2.txt",
			} {
				o.mustUpload(t, "b", key, "content of "+key)
				u := o.signURL(t, "b", key, o.service, 60)
				require.Equal(t, "/object/sign/b/"+signPathEscape(key)+"?token="+signTokenOf(t, u), u)
				signRequireToken(t, signTokenOf(t, u), 60, map[string]any{"url": "b/" + key, "scope": "download"})
				requireBytes(t, o.get(t, u, ""), "content of "+key)
				requireBytes(t, o.fetch(t, u), "content of "+key)
				// Fully percent-encoded, the path names the same key.
				requireBytes(t, o.get(t, "/object/sign/b/"+percentEncodeAll(key)+"?token="+signTokenOf(t, u), ""), "content of "+key)
			}
			// A bucket whose name needs encoding too.
			o.mkBucket(t, `{"name":"my bucket (1)"}`)
			o.mustUpload(t, "my bucket (1)", "a b.txt", "in my bucket")
			u := o.signURL(t, "my bucket (1)", "a b.txt", o.service, 60)
			signRequireToken(t, signTokenOf(t, u), 60, map[string]any{"url": "my bucket (1)/a b.txt", "scope": "download"})
			requireBytes(t, o.fetch(t, u), "in my bucket")
			// A key with "?": the returned URL escapes it, so it works as returned.
			o.mustUpload(t, "b", "q?x.txt", "question")
			r := o.do(t, "POST", "/object/sign/b/q%3Fx.txt", o.service, `{"expiresIn":60}`)
			var m map[string]string
			require.NoError(t, json.Unmarshal(okBody(t, r), &m))
			tok := signTokenOf(t, m["signedURL"])
			require.Equal(t, "/object/sign/b/q%3Fx.txt?token="+tok, m["signedURL"])
			signRequireToken(t, tok, 60, map[string]any{"url": "b/q?x.txt", "scope": "download"})
			requireBytes(t, o.get(t, m["signedURL"], ""), "question")
			requireBytes(t, o.fetch(t, m["signedURL"]), "question")
			// A path that does not name the token's object is refused, encoded or not.
			requireAPIError(t, o.get(t, "/object/sign/b/q%253Fy.txt?token="+tok, ""), 400, errSignInvalid)
		})

		be.run(t, "ObjectChangesAfterSigning", func(t *testing.T, o *objEnv) {
			o.mustUpload(t, "b", "k", "first")
			u := o.signURL(t, "b", "k", o.service, 60)
			// The token names the key, not a version: a replacement is served.
			requireUploaded(t, o.upload(t, "PUT", "b", "k", o.service, "second"), "b/k")
			requireBytes(t, o.fetch(t, u), "second")
			// Deleted: NoSuchKey.
			requireOKBody(t, o.do(t, "DELETE", "/object/b/k", o.service, ""), `{"message":"Successfully deleted"}`)
			requireAPIError(t, o.fetch(t, u), 400, errNoSuchKey)
		})
	})
}

// ---------------------------------------------------------------------------------------------
// Tokens the signed routes refuse.

func TestHTTPSignTokens(t *testing.T) {
	t.Parallel()
	be := signFileBackend(t)

	be.run(t, "57_OtherPath", func(t *testing.T, o *objEnv) {
		o.mkBucket(t, `{"name":"c"}`)
		for _, k := range []string{"k", "k2", "K", "k/x"} {
			o.mustUpload(t, "b", k, "b/"+k)
		}
		o.mustUpload(t, "c", "k", "c/k")
		tok := signTokenOf(t, o.signURL(t, "b", "k", o.service, 60))
		requireBytes(t, o.get(t, signPath("/object/sign/", "b", "k", tok), ""), "b/k")
		for _, p := range [][2]string{{"b", "k2"}, {"b", "K"}, {"b", "k/x"}, {"b", "k/"}, {"c", "k"}, {"B", "k"}, {"b", "missing"}} {
			requireAPIError(t, o.get(t, signPath("/object/sign/", p[0], p[1], tok), ""), 400, errSignInvalid)
		}
		// A token signed for c/k does not open b/k either.
		tokC := signTokenOf(t, o.signURL(t, "c", "k", o.service, 60))
		requireAPIError(t, o.get(t, signPath("/object/sign/", "b", "k", tokC), ""), 400, errSignInvalid)
		requireBytes(t, o.get(t, signPath("/object/sign/", "c", "k", tokC), ""), "c/k")
	})

	be.run(t, "58_ExpiredMalformedMissing", func(t *testing.T, o *objEnv) {
		o.mustUpload(t, "b", "k", "hello")
		expired := signMint(t, jwt.MapClaims{"url": "b/k", "scope": "download",
			"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()})
		requireAPIError(t, o.get(t, "/object/sign/b/k?token="+expired, ""), 400, errSignExpired)
		notYet := signMint(t, jwt.MapClaims{"url": "b/k", "scope": "download",
			"nbf": time.Now().Add(time.Hour).Unix(), "exp": time.Now().Add(2 * time.Hour).Unix()})
		requireAPIError(t, o.get(t, "/object/sign/b/k?token="+notYet, ""), 400,
			apiError{"400", "InvalidJWT", "InvalidJWT", `"nbf" claim timestamp check failed`})
		requireAPIError(t, o.get(t, "/object/sign/b/k?token=xxx", ""), 400, errSignMalformed)
		requireAPIError(t, o.get(t, "/object/sign/b/k?token=", ""), 400, errSignMalformed)
		requireAPIError(t, o.get(t, "/object/sign/b/k?token=a.b.c", ""), 400, errSignMalformed)
		requireAPIError(t, o.get(t, "/object/sign/b/k", ""), 400, errSignNoToken)
		requireAPIError(t, o.get(t, "/object/sign/b/k?download", ""), 400, errSignNoToken)
		// The same checks on the upload route.
		requireAPIError(t, o.send(t, "PUT", "/object/upload/sign/b/u?token="+expired, "", strings.NewReader("x"), 1), 400, errSignExpired)
		requireAPIError(t, o.send(t, "PUT", "/object/upload/sign/b/u?token=xxx", "", strings.NewReader("x"), 1), 400, errSignMalformed)
		requireAPIError(t, o.send(t, "PUT", "/object/upload/sign/b/u", "", strings.NewReader("x"), 1), 400, errSignNoToken)
		o.requireNothingStored(t, "b/k")
	})

	be.run(t, "58_ExpiresWhileInUse", func(t *testing.T, o *objEnv) {
		o.mustUpload(t, "b", "k", "hello")
		u := o.signURL(t, "b", "k", o.service, 5)
		requireBytes(t, o.fetch(t, u), "hello")
		// Poll until it expires (exp is at most 5 s away).
		deadline := time.Now().Add(20 * time.Second)
		r := o.fetch(t, u)
		for r.Status == http.StatusOK && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			r = o.fetch(t, u)
		}
		requireAPIError(t, r, 400, errSignExpired)
	})

	be.run(t, "ForgedSignatures", func(t *testing.T, o *objEnv) {
		o.mustUpload(t, "b", "k", "hello")
		o.mustUpload(t, "b", "k2", "other")
		good := signTokenOf(t, o.signURL(t, "b", "k", o.service, 60))
		other := signTokenOf(t, o.signURL(t, "b", "k2", o.service, 60))
		parts := strings.Split(good, ".")

		// A signature with one character changed (the first: every bit of it counts).
		sig := []byte(parts[2])
		if sig[0] == 'A' {
			sig[0] = 'B'
		} else {
			sig[0] = 'A'
		}
		tampered := parts[0] + "." + parts[1] + "." + string(sig)
		requireAPIError(t, o.get(t, "/object/sign/b/k?token="+tampered, ""), 400, errSignBadSig)
		// k2's claims under k's signature.
		swapped := strings.Join(strings.Split(other, ".")[:2], ".") + "." + parts[2]
		requireAPIError(t, o.get(t, "/object/sign/b/k2?token="+swapped, ""), 400, errSignBadSig)
		// Claims rewritten to name k2, the signature kept.
		_, claims := signDecode(t, good)
		claims["url"] = "b/k2"
		payload, err := json.Marshal(claims)
		require.NoError(t, err)
		rewritten := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
		requireAPIError(t, o.get(t, "/object/sign/b/k2?token="+rewritten, ""), 400, errSignBadSig)
		// Another secret.
		foreign := signJWT(t, jwt.SigningMethodHS256, []byte("another-secret-of-at-least-32-bytes!!"),
			jwt.MapClaims{"url": "b/k", "scope": "download", "exp": time.Now().Add(time.Hour).Unix()})
		requireAPIError(t, o.get(t, "/object/sign/b/k?token="+foreign, ""), 400, errSignBadSig)
		// alg none, with and without a signature part, and another HMAC algorithm with the
		// right secret: all InvalidJWT.
		none := signJWT(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType,
			jwt.MapClaims{"url": "b/k", "scope": "download", "exp": time.Now().Add(time.Hour).Unix()})
		hs512 := signJWT(t, jwt.SigningMethodHS512, []byte(httpJWTSecret),
			jwt.MapClaims{"url": "b/k", "scope": "download", "exp": time.Now().Add(time.Hour).Unix()})
		for _, tok := range []string{none, none + "eA", hs512} {
			r := o.get(t, "/object/sign/b/k?token="+tok, "")
			e := requireAPIErrorCode(t, r, 400, "400", "InvalidJWT")
			require.Equal(t, "InvalidJWT", e.Error, "body: %s", r.Body)
			require.Contains(t, []string{"signature verification failed", `"alg" (Algorithm) Header Parameter value not allowed`, "Invalid Compact JWS"}, e.Message)
		}
		// Bearer keys are JWTs signed with the same secret, but name no object.
		for _, key := range []string{o.service, o.anon, o.userA} {
			requireAPIError(t, o.get(t, "/object/sign/b/k?token="+key, ""), 400, errSignInvalid)
		}
		// The genuine token still works.
		requireBytes(t, o.get(t, "/object/sign/b/k?token="+good, ""), "hello")
	})

	be.run(t, "59_LegacyDownloadTokens", func(t *testing.T, o *objEnv) {
		o.mustUpload(t, "b", "k", "hello")
		// No scope and no upsert: a legacy download token, accepted even without exp.
		requireBytes(t, o.get(t, "/object/sign/b/k?token="+signMint(t, jwt.MapClaims{"url": "b/k"}), ""), "hello")
		requireBytes(t, o.get(t, "/object/sign/b/k?token="+signMint(t, jwt.MapClaims{"url": "b/k", "exp": time.Now().Add(time.Minute).Unix()}), ""), "hello")
		// A token without exp never expires.
		requireBytes(t, o.get(t, "/object/sign/b/k?token="+signMint(t, jwt.MapClaims{"url": "b/k", "scope": "download"}), ""), "hello")
		// An upsert claim makes a scope-less token an upload token.
		for _, c := range []jwt.MapClaims{
			{"url": "b/k", "upsert": false},
			{"url": "b/k", "upsert": true},
			{"url": "b/k", "upsert": false, "owner": userA.Sub},
			{"url": "b/k", "scope": "upload"},
			{"url": "b/k", "scope": "upload", "upsert": false},
			{"url": "b/k", "scope": "Download"},
			{"url": "b/k", "scope": "download "},
		} {
			requireAPIError(t, o.get(t, "/object/sign/b/k?token="+signMint(t, c), ""), 400, errSignNotDownload)
		}
		// Scope is checked before url.
		requireAPIError(t, o.get(t, "/object/sign/b/k?token="+signMint(t, jwt.MapClaims{"url": "b/other", "upsert": false}), ""), 400, errSignNotDownload)
		requireAPIError(t, o.get(t, "/object/sign/b/k?token="+signMint(t, jwt.MapClaims{"url": "b/other"}), ""), 400, errSignInvalid)
	})

	be.run(t, "SecretOutOfStep", func(t *testing.T, o *objEnv) {
		// The proxy verifies with its own secret: URLs minted with a database secret that
		// differs from it do not open anything.
		o.mustUpload(t, "b", "k", "hello")
		admin(t, o.db, `select storage.signing_secret_set('another-secret-of-at-least-32-bytes!!')`)
		u := o.signURL(t, "b", "k", o.service, 60)
		requireAPIError(t, o.fetch(t, u), 400, errSignBadSig)
		// Back in step, new URLs work again.
		admin(t, o.db, `select storage.signing_secret_set($1)`, httpJWTSecret)
		requireBytes(t, o.fetch(t, o.signURL(t, "b", "k", o.service, 60)), "hello")
	})

	t.Run("OtherJWTAlgorithm", func(t *testing.T) {
		t.Parallel()
		// AUTH_JWT_ALGORITHM=HS512: the server's own signed URLs must verify on it.
		o := &objEnv{setupHTTP(t, withJWTAlgorithm("HS512"))}
		o.service = signJWT(t, jwt.SigningMethodHS512, []byte(httpJWTSecret), jwt.MapClaims{"role": "service_role", "exp": time.Now().Add(time.Hour).Unix()})
		o.mkBucket(t, `{"name":"b"}`)
		o.mustUpload(t, "b", "k", "hello")
		t.Run("Download", func(t *testing.T) {
			t.Parallel()
			requireBytes(t, o.fetch(t, o.signURL(t, "b", "k", o.service, 60)), "hello")
		})
		t.Run("Upload", func(t *testing.T) {
			t.Parallel()
			up, _ := o.signUpload(t, "b", "u", o.service)
			requireOKBody(t, o.putSigned(t, up, "uploaded"), `{"Key":"b/u"}`)
			require.Equal(t, "uploaded", o.content(t, "b", "u"))
		})
	})
}

// ---------------------------------------------------------------------------------------------
// Signing: validation and RLS.

func TestHTTPSignRequests(t *testing.T) {
	t.Parallel()
	be := signFileBackend(t)

	be.run(t, "60_ExpiresIn", func(t *testing.T, o *objEnv) {
		o.mustUpload(t, "b", "k", "hello")
		// Refused by the schema (InvalidRequest) or, in range for it, by the bound on exp
		// (InvalidParameter); either way HTTP 400 and a message naming expiresIn. "" = absent.
		for _, c := range []struct{ value, code string }{
			{"0", "InvalidRequest"}, {"-1", "InvalidRequest"}, {`"abc"`, "InvalidRequest"},
			{"1.5", "InvalidRequest"}, {"null", "InvalidRequest"}, {"", "InvalidRequest"},
			{"99999999999999999999", ""}, {"1e21", ""}, {"9007199254740", "InvalidParameter"},
		} {
			single, batch := `{}`, `{"paths":["k"]}`
			if c.value != "" {
				single, batch = `{"expiresIn":`+c.value+`}`, `{"expiresIn":`+c.value+`,"paths":["k"]}`
			}
			for _, p := range [][2]string{{"/object/sign/b/k", single}, {"/object/sign/b", batch}} {
				r := o.do(t, "POST", p[0], o.service, p[1])
				e := requireErrorShape(t, r)
				require.Equal(t, 400, r.Status, "%s %s: %s", p[0], p[1], r.Body)
				require.Equal(t, "400", e.StatusCode, "%s %s: %s", p[0], p[1], r.Body)
				if c.code != "" {
					require.Equal(t, c.code, e.Code, "%s %s: %s", p[0], p[1], r.Body)
				}
				require.Contains(t, e.Message, "expiresIn", "%s %s: %s", p[0], p[1], r.Body)
			}
		}
		// The wording of the reference's schema and of its range check.
		requireAPIError(t, o.do(t, "POST", "/object/sign/b/k", o.service, `{"expiresIn":0}`), 400,
			apiError{"400", "InvalidRequest", "Error", "body/expiresIn must be >= 1"})
		requireAPIError(t, o.do(t, "POST", "/object/sign/b/k", o.service, `{"expiresIn":"abc"}`), 400,
			apiError{"400", "InvalidRequest", "Error", "body/expiresIn must be integer"})
		requireAPIError(t, o.do(t, "POST", "/object/sign/b/k", o.service, `{}`), 400,
			apiError{"400", "InvalidRequest", "Error", "body must have required property 'expiresIn'"})
		requireAPIError(t, o.do(t, "POST", "/object/sign/b/k", o.service, `{"expiresIn":9007199254740}`), 400, errSignExpiresIn)
		// The largest lifetime that keeps exp in JavaScript's safe millisecond range passes.
		u := o.signURL(t, "b", "k", o.service, 9007199254740-int(time.Now().Unix())-60)
		requireBytes(t, o.fetch(t, u), "hello")
	})

	be.run(t, "60_IntegerValuedNumbers", func(t *testing.T, o *objEnv) {
		// JSON Schema integers include integer-valued numbers in any notation (60.0, 6e1):
		// the reference's validator accepts them.
		o.mustUpload(t, "b", "k", "hello")
		for _, n := range []string{"60.0", "6e1", "6.0E1"} {
			r := o.do(t, "POST", "/object/sign/b/k", o.service, `{"expiresIn":`+n+`}`)
			var m map[string]string
			require.NoError(t, json.Unmarshal(okBody(t, r), &m), "expiresIn %s", n)
			signRequireToken(t, signTokenOf(t, m["signedURL"]), 60, map[string]any{"url": "b/k", "scope": "download"})
		}
	})

	be.run(t, "61_SignMissing", func(t *testing.T, o *objEnv) {
		o.mustUpload(t, "b", "k", "hello")
		requireAPIError(t, o.do(t, "POST", "/object/sign/b/missing", o.service, `{"expiresIn":60}`), 400, errNoSuchKey)
		requireAPIError(t, o.do(t, "POST", "/object/sign/nobucket/k", o.service, `{"expiresIn":60}`), 400, errNoSuchKey)
		requireAPIError(t, o.do(t, "POST", "/object/sign/b/a%25b", o.service, `{"expiresIn":60}`), 400, errInvalidKey("a%b"))
		requireAPIError(t, o.do(t, "POST", "/object/sign/b/k", "", `{"expiresIn":60}`), 400, errNoAuthHeader)
		requireAPIErrorCode(t, o.do(t, "POST", "/object/sign/b/k", "not-a-jwt", `{"expiresIn":60}`), 400, "403", "AccessDenied")
		requireAPIError(t, o.do(t, "POST", "/object/sign/b", "", `{"expiresIn":60,"paths":["k"]}`), 400, errNoAuthHeader)
		requireAPIError(t, o.do(t, "POST", "/object/upload/sign/b/u", "", `{}`), 400, errNoAuthHeader)
	})

	be.run(t, "InvalidBucketName", func(t *testing.T, o *objEnv) {
		// Sign routes validate the bucket name before touching the database (spec §2.3).
		bad := percentEncodeAll("a{b}")
		t.Run("Sign", func(t *testing.T) {
			t.Parallel()
			requireAPIError(t, o.do(t, "POST", "/object/sign/"+bad+"/k", o.service, `{"expiresIn":60}`), 400, errBadName)
		})
		t.Run("SignMany", func(t *testing.T) {
			t.Parallel()
			requireAPIError(t, o.do(t, "POST", "/object/sign/"+bad, o.service, `{"expiresIn":60,"paths":["k"]}`), 400, errBadName)
		})
		t.Run("SignUpload", func(t *testing.T) {
			t.Parallel()
			requireAPIError(t, o.do(t, "POST", "/object/upload/sign/"+bad+"/k", o.service, `{}`), 400, errBadName)
		})
	})

	be.run(t, "RLS", func(t *testing.T, o *objEnv) {
		o.mustUpload(t, "b", "k", "hello")
		// No SELECT policy: the object is not found for users, whatever their role.
		for _, tok := range []string{o.anon, o.userA} {
			requireAPIError(t, o.do(t, "POST", "/object/sign/b/k", tok, `{"expiresIn":60}`), 400, errNoSuchKey)
			got := o.signBatch(t, "b", tok, `{"expiresIn":60,"paths":["k"]}`)
			require.Equal(t, []map[string]any{{"error": signBatchMissing, "path": "k", "signedURL": nil}}, got)
		}
		// A SELECT policy for authenticated: userA signs, and the URL opens without auth.
		admin(t, o.db, `create policy sel on storage.objects for select to authenticated using (bucket_id = 'b')`)
		u := o.signURL(t, "b", "k", o.userA, 60)
		signRequireToken(t, signTokenOf(t, u), 60, map[string]any{"url": "b/k", "scope": "download"})
		requireAPIError(t, o.do(t, "POST", "/object/sign/b/k", o.anon, `{"expiresIn":60}`), 400, errNoSuchKey)
		requireBytes(t, o.fetch(t, u), "hello")
		// The URL is the authorization: it still opens once the policy is gone.
		admin(t, o.db, `drop policy sel on storage.objects`)
		requireBytes(t, o.fetch(t, u), "hello")
		requireAPIError(t, o.do(t, "POST", "/object/sign/b/k", o.userA, `{"expiresIn":60}`), 400, errNoSuchKey)
	})

	be.run(t, "RLSOperationScoped", func(t *testing.T, o *objEnv) {
		// Policies can tell signing apart (storage.operation()).
		o.mustUpload(t, "b", "k", "hello")
		admin(t, o.db, `create policy sign_only on storage.objects for select to authenticated
			using (storage.allow_any_operation(array['object.sign', 'object.sign_many']))`)
		u := o.signURL(t, "b", "k", o.userA, 60)
		requireBytes(t, o.fetch(t, u), "hello")
		got := o.signBatch(t, "b", o.userA, `{"expiresIn":60,"paths":["k"]}`)
		require.Len(t, got, 1)
		require.Nil(t, got[0]["error"])
		requireAPIError(t, o.get(t, "/object/authenticated/b/k", o.userA), 400, errNoSuchKey)
		// The signed upload is authorized twice, as the signer: when the URL is signed and when
		// the bytes arrive (object.upload_signed). A policy allowing only the signing lets the
		// URL be made but not used.
		admin(t, o.db, `create policy ins on storage.objects for insert to authenticated
			with check (storage.allow_only_operation('object.sign_upload_url'))`)
		up, _ := o.signUpload(t, "b", "u", o.userA)
		requireAPIError(t, o.putSigned(t, up, "up"), 400, errRLSInsert)
		require.Equal(t, []string{"b/k"}, o.objectNames(t), "the refused upload stored no row")
		o.requireBlobsAccounted(t) // and its bytes are queued for collection
		admin(t, o.db, `alter policy ins on storage.objects
			with check (storage.allow_any_operation(array['object.sign_upload_url', 'object.upload_signed']))`)
		requireOKBody(t, o.putSigned(t, up, "up"), `{"Key":"b/u"}`)
		requireAPIError(t, o.upload(t, "POST", "b", "direct", o.userA, "x"), 400, errRLSInsert)
	})
}

// ---------------------------------------------------------------------------------------------
// Batch signing (O15).

func TestHTTPSignBatch(t *testing.T) {
	t.Parallel()
	be := signFileBackend(t)

	be.run(t, "62_OrderAndErrors", func(t *testing.T, o *objEnv) {
		for _, k := range []string{"k1", "k2", "dir/a b.txt"} {
			o.mustUpload(t, "b", k, "content "+k)
		}
		got := o.signBatch(t, "b", o.service, `{"expiresIn":90,"paths":["k2","nope","dir/a b.txt","k1","k2"]}`)
		require.Len(t, got, 5)
		for i, p := range []string{"k2", "nope", "dir/a b.txt", "k1", "k2"} {
			require.Equal(t, p, got[i]["path"], "entry %d", i)
			if p == "nope" {
				require.Equal(t, map[string]any{"error": signBatchMissing, "path": "nope", "signedURL": nil}, got[i])
				continue
			}
			require.Nil(t, got[i]["error"], "entry %d", i)
			u, ok := got[i]["signedURL"].(string)
			require.True(t, ok, "entry %d: %v", i, got[i])
			require.Equal(t, "/object/sign/b/"+signPathEscape(p)+"?token="+signTokenOf(t, u), u)
			signRequireToken(t, signTokenOf(t, u), 90, map[string]any{"url": "b/" + p, "scope": "download"})
			requireBytes(t, o.fetch(t, u), "content "+p)
		}
		// Exactly the second entry of §11 item 62.
		r := o.do(t, "POST", "/object/sign/b", o.service, `{"expiresIn":60,"paths":["k1","nope"]}`)
		var raw []json.RawMessage
		require.NoError(t, json.Unmarshal(okBody(t, r), &raw))
		require.Len(t, raw, 2)
		require.JSONEq(t, `{"error":"Either the object does not exist or you do not have access to it","path":"nope","signedURL":null}`, string(raw[1]))
	})

	be.run(t, "RLS", func(t *testing.T, o *objEnv) {
		o.mustUpload(t, "b", "mine", "m")
		o.mustUpload(t, "b", "theirs", "t")
		admin(t, o.db, `update storage.objects set owner_id = $1 where name = 'mine'`, userA.Sub)
		admin(t, o.db, `update storage.objects set owner_id = $1 where name = 'theirs'`, userB.Sub)
		admin(t, o.db, `create policy own on storage.objects for select to authenticated using (owner_id = (select auth.uid())::text)`)
		got := o.signBatch(t, "b", o.userA, `{"expiresIn":60,"paths":["theirs","mine"]}`)
		require.Equal(t, map[string]any{"error": signBatchMissing, "path": "theirs", "signedURL": nil}, got[0])
		require.Nil(t, got[1]["error"])
		requireBytes(t, o.fetch(t, got[1]["signedURL"].(string)), "m")
	})

	be.run(t, "63_Limits", func(t *testing.T, o *objEnv) {
		o.mustUpload(t, "b", "k", "hello")
		paths := make([]string, 1001)
		for i := range paths {
			paths[i] = fmt.Sprintf("p%d", i)
		}
		body := func(ps []string) string {
			b, err := json.Marshal(map[string]any{"expiresIn": 60, "paths": ps})
			require.NoError(t, err)
			return string(b)
		}
		for _, b := range []string{body(paths), body([]string{}), `{"expiresIn":60}`, `{"expiresIn":60,"paths":"k"}`, `{"expiresIn":60,"paths":[1]}`, `{"expiresIn":60,"paths":null}`} {
			r := o.do(t, "POST", "/object/sign/b", o.service, b)
			e := requireAPIErrorCode(t, r, 400, "400", "InvalidRequest")
			require.Equal(t, "Error", e.Error, "body: %s", r.Body)
			require.Contains(t, e.Message, "paths", "body: %s", r.Body)
		}
		// 1000 is allowed.
		got := o.signBatch(t, "b", o.service, body(append(paths[:999:999], "k")))
		require.Len(t, got, 1000)
		require.Equal(t, "p0", got[0]["path"])
		require.Equal(t, signBatchMissing, got[0]["error"])
		require.Equal(t, "k", got[999]["path"])
		require.Nil(t, got[999]["error"])
	})

	be.run(t, "63_MissingBucket", func(t *testing.T, o *objEnv) {
		r := o.do(t, "POST", "/object/sign/nobucket", o.service, `{"expiresIn":60,"paths":["k","x/y"]}`)
		requireOKJSON(t, r)
		require.JSONEq(t, `[{"error":"`+signBatchMissing+`","path":"k","signedURL":null},{"error":"`+signBatchMissing+`","path":"x/y","signedURL":null}]`, string(r.Body))
	})
}

// ---------------------------------------------------------------------------------------------
// Signed upload (O17, O18).

func TestHTTPSignUpload(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		be.run(t, "64_SignUploadURL", func(t *testing.T, o *objEnv) {
			admin(t, o.db, `create policy ins on storage.objects for insert to authenticated with check (bucket_id = 'b')`)
			url, tok := o.signUpload(t, "b", "u", o.userA)
			require.Regexp(t, `^/object/upload/sign/b/u\?token=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`, url)
			// Default lifetime: 7200 s.
			signRequireToken(t, tok, 7200, map[string]any{"url": "b/u", "scope": "upload", "upsert": false, "owner": userA.Sub,
				"signer": signerOf("authenticated", userA.Sub)})
			// The service key has no sub: no owner claim.
			_, tok = o.signUpload(t, "b", "u", o.service)
			signRequireToken(t, tok, 7200, map[string]any{"url": "b/u", "scope": "upload", "upsert": false, "signer": signerOf("service_role", "")})
			_, tok = o.signUpload(t, "b", "u", o.service, withHeader("x-upsert", "true"))
			signRequireToken(t, tok, 7200, map[string]any{"url": "b/u", "scope": "upload", "upsert": true, "signer": signerOf("service_role", "")})
			// Only the exact string "true" upserts.
			_, tok = o.signUpload(t, "b", "u", o.service, withHeader("x-upsert", "TRUE"))
			signRequireToken(t, tok, 7200, map[string]any{"url": "b/u", "scope": "upload", "upsert": false, "signer": signerOf("service_role", "")})
			// The body is ignored; no row, no upload in flight, no blob.
			r := o.do(t, "POST", "/object/upload/sign/b/u", o.service, "")
			requireOKJSON(t, r)
			o.requireNothingStored(t)
		})

		be.run(t, "64_UploadURLExpiry", func(t *testing.T, o *objEnv) {
			_, tok := o.signUpload(t, "b", "u", o.service)
			signRequireToken(t, tok, 60, map[string]any{"url": "b/u", "scope": "upload", "upsert": false, "signer": signerOf("service_role", "")})
		}, withUploadURLExpiry(60))

		be.run(t, "65_PutRaw", func(t *testing.T, o *objEnv) {
			admin(t, o.db, `create policy ins on storage.objects for insert to authenticated with check (bucket_id = 'b')`)
			url, _ := o.signUpload(t, "b", "u", o.userA)
			content := signBinary(100000)
			r := o.putSigned(t, url, content, withHeader("Content-Type", "image/png"), withHeader("Cache-Control", "max-age=30"))
			requireOKBodyExact(t, r, `{"Key":"b/u"}`)
			require.Equal(t, content, o.content(t, "b", "u"))
			owner, ownerID := o.signOwner(t, "b", "u")
			require.Equal(t, userA.Sub, owner)
			require.Equal(t, userA.Sub, ownerID)
			info := o.info(t, "b", "u")
			require.Equal(t, "image/png", info["content_type"])
			require.Equal(t, "max-age=30", info["cache_control"])
			require.Equal(t, quotedMD5(content), info["etag"])
			require.Equal(t, map[string]any{}, info["metadata"])
			// x-metadata (base64 JSON) is the user metadata of a raw signed upload.
			url, _ = o.signUpload(t, "b", "meta", o.service)
			r = o.putSigned(t, url, "m", withHeader("x-metadata", base64.StdEncoding.EncodeToString([]byte(`{"a":1}`))))
			requireOKBodyExact(t, r, `{"Key":"b/meta"}`)
			require.Equal(t, map[string]any{"a": json.Number("1")}, o.info(t, "b", "meta")["metadata"])
			o.requireBlobsAccounted(t)
		})

		be.run(t, "65_PutMultipart", func(t *testing.T, o *objEnv) {
			admin(t, o.db, `create policy ins on storage.objects for insert to authenticated with check (bucket_id = 'b')`)
			url, _ := o.signUpload(t, "b", "dir/m.txt", o.userA)
			body, ct := multipartForm(t, [][2]string{{"cacheControl", "3600"}, {"metadata", `{"a":1}`}}, true, "text/plain", "multipart content")
			// Another user's Authorization header is ignored: the owner comes from the token.
			r := o.putSigned(t, url, body, withHeader("Content-Type", ct), withHeader("Authorization", "Bearer "+o.userB))
			requireOKBodyExact(t, r, `{"Key":"b/dir/m.txt"}`)
			require.Equal(t, "multipart content", o.content(t, "b", "dir/m.txt"))
			owner, ownerID := o.signOwner(t, "b", "dir/m.txt")
			require.Equal(t, userA.Sub, owner)
			require.Equal(t, userA.Sub, ownerID)
			info := o.info(t, "b", "dir/m.txt")
			require.Equal(t, "text/plain", info["content_type"])
			require.Equal(t, "max-age=3600", info["cache_control"])
			require.Equal(t, map[string]any{"a": json.Number("1")}, info["metadata"])
			o.requireBlobsAccounted(t)
		})

		be.run(t, "65_UpsertFromTokenOnly", func(t *testing.T, o *objEnv) {
			// Token upsert false: the request's x-upsert does not let it replace.
			url, _ := o.signUpload(t, "b", "u", o.service)
			o.mustUpload(t, "b", "u", "already there")
			r := o.putSigned(t, url, "replacement", withHeader("x-upsert", "true"))
			requireAPIError(t, r, 400, errKeyExists)
			require.Equal(t, "already there", o.content(t, "b", "u"))
			o.requireNothingStored(t, "b/u")

			// A token used once cannot write the key again.
			url, _ = o.signUpload(t, "b", "v", o.service)
			requireOKBodyExact(t, o.putSigned(t, url, "first"), `{"Key":"b/v"}`)
			requireAPIError(t, o.putSigned(t, url, "second", withHeader("x-upsert", "true")), 400, errKeyExists)
			require.Equal(t, "first", o.content(t, "b", "v"))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "66_ExistingKey", func(t *testing.T, o *objEnv) {
			id := o.mustUpload(t, "b", "k", "old")
			admin(t, o.db, `update storage.objects set owner = $1::uuid, owner_id = $1 where name = 'k'`, userA.Sub)
			requireAPIError(t, o.do(t, "POST", "/object/upload/sign/b/k", o.service, "{}"), 400, errKeyExists)
			requireAPIError(t, o.do(t, "POST", "/object/upload/sign/b/k", o.service, "{}", withHeader("x-upsert", "false")), 400, errKeyExists)
			url, tok := o.signUpload(t, "b", "k", o.service, withHeader("x-upsert", "true"))
			signRequireToken(t, tok, 7200, map[string]any{"url": "b/k", "scope": "upload", "upsert": true, "signer": signerOf("service_role", "")})
			// Signing changed nothing.
			require.Equal(t, "old", o.content(t, "b", "k"))
			// The PUT replaces the content, keeps the id; the request's x-upsert: false does not matter.
			requireOKBodyExact(t, o.putSigned(t, url, "new content", withHeader("x-upsert", "false")), `{"Key":"b/k"}`)
			require.Equal(t, "new content", o.content(t, "b", "k"))
			require.Equal(t, id, o.info(t, "b", "k")["id"])
			// The service key's token has no owner: the row keeps its owner.
			owner, ownerID := o.signOwner(t, "b", "k")
			require.Equal(t, userA.Sub, owner)
			require.Equal(t, userA.Sub, ownerID)
			// An upsert token may be used again.
			requireOKBodyExact(t, o.putSigned(t, url, "newer"), `{"Key":"b/k"}`)
			require.Equal(t, "newer", o.content(t, "b", "k"))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "BucketLimitsAtUploadTime", func(t *testing.T, o *objEnv) {
			o.mkBucket(t, `{"name":"small","file_size_limit":10,"allowed_mime_types":["text/plain"]}`)
			// Signing knows neither size nor type: it passes.
			url, _ := o.signUpload(t, "small", "k", o.service)
			requireAPIError(t, o.putSigned(t, url, strings.Repeat("x", 20), withHeader("Content-Type", "text/plain")), 400, errTooLarge)
			o.requireNothingStored(t)
			body, ct := multipartForm(t, nil, true, "text/plain", strings.Repeat("x", 20))
			requireAPIError(t, o.putSigned(t, url, body, withHeader("Content-Type", ct)), 400, errTooLarge)
			require.Empty(t, o.objectNames(t))
			require.Empty(t, o.inFlight(t))
			require.Empty(t, listBlobs(t, o.blobs))
			requireAPIError(t, o.putSigned(t, url, "tiny", withHeader("Content-Type", "image/png")), 400, errMime("image/png"))
			o.requireNothingStored(t)
			body, ct = multipartForm(t, nil, true, "image/png", "tiny")
			requireAPIError(t, o.putSigned(t, url, body, withHeader("Content-Type", ct)), 400, errMime("image/png"))
			o.requireNothingStored(t)
			// Chunked (no Content-Length): counted while it streams.
			r := o.send(t, "PUT", signEncodeURI(url), "", strings.NewReader(strings.Repeat("x", 20)), -1, withHeader("Content-Type", "text/plain"))
			requireAPIError(t, r, 400, errTooLarge)
			require.Empty(t, o.objectNames(t))
			require.Empty(t, o.inFlight(t))
			require.Empty(t, listBlobs(t, o.blobs))
			// A placeholder may hold nothing.
			ph, _ := o.signUpload(t, "small", "dir/.emptyFolderPlaceholder", o.service)
			requireAPIError(t, o.putSigned(t, ph, "x", withHeader("Content-Type", "text/plain")), 400, errTooLarge)
			requireOKBodyExact(t, o.send(t, "PUT", signEncodeURI(ph), "", nil, 0, withHeader("Content-Type", "image/png")), `{"Key":"small/dir/.emptyFolderPlaceholder"}`)
			// Within the limits it passes.
			requireOKBodyExact(t, o.putSigned(t, url, "0123456789", withHeader("Content-Type", "text/plain")), `{"Key":"small/k"}`)
			require.Equal(t, "0123456789", o.content(t, "small", "k"))
			o.requireBlobsAccounted(t)
		})

		be.run(t, "SpecialKeys", func(t *testing.T, o *objEnv) {
			for _, key := range []string{"folder/a b (1).png", "sp ec!al/&$=@;:+,'*.txt"} {
				url, tok := o.signUpload(t, "b", key, o.service)
				signRequireToken(t, tok, 7200, map[string]any{"url": "b/" + key, "scope": "upload", "upsert": false, "signer": signerOf("service_role", "")})
				require.Equal(t, "/object/upload/sign/b/"+signPathEscape(key)+"?token="+tok, url, "the key is percent-encoded")
				requireOKBody(t, o.putSigned(t, url, "content of "+key), `{"Key":`+jsonString("b/"+key)+`}`)
				require.Equal(t, "content of "+key, o.content(t, "b", key))
			}
		})
	})
}

func TestHTTPSignUploadRefusals(t *testing.T) {
	t.Parallel()
	be := signFileBackend(t)

	be.run(t, "SignTimeChecks", func(t *testing.T, o *objEnv) {
		// No INSERT policy: RLS refuses at sign time, for anon and users.
		for _, tok := range []string{o.anon, o.userA} {
			requireAPIError(t, o.do(t, "POST", "/object/upload/sign/b/u", tok, "{}"), 400, errRLSInsert)
		}
		requireAPIError(t, o.do(t, "POST", "/object/upload/sign/nobucket/u", o.service, "{}"), 400, errNoSuchBucket)
		requireAPIError(t, o.do(t, "POST", "/object/upload/sign/b/a%25b", o.service, "{}"), 400, errInvalidKey("a%b"))
		// An INSERT policy lets anon sign (no owner claim: the anon key has no sub).
		admin(t, o.db, `create policy ins on storage.objects for insert to anon with check (bucket_id = 'b')`)
		url, tok := o.signUpload(t, "b", "u", o.anon)
		signRequireToken(t, tok, 7200, map[string]any{"url": "b/u", "scope": "upload", "upsert": false, "signer": signerOf("anon", "")})
		requireOKBodyExact(t, o.putSigned(t, url, "from anon"), `{"Key":"b/u"}`)
		owner, ownerID := o.signOwner(t, "b", "u")
		require.Equal(t, "<null>", owner)
		require.Equal(t, "<null>", ownerID)
		// Upserting needs UPDATE and SELECT as well.
		requireAPIError(t, o.do(t, "POST", "/object/upload/sign/b/u", o.anon, "{}", withHeader("x-upsert", "true")), 400, errRLSInsert)
	})

	be.run(t, "67_ScopeMismatch", func(t *testing.T, o *objEnv) {
		o.mustUpload(t, "b", "k", "hello")
		down := signTokenOf(t, o.signURL(t, "b", "k", o.service, 60))
		requireAPIError(t, o.send(t, "PUT", "/object/upload/sign/b/k?token="+down, "", strings.NewReader("x"), 1, withHeader("x-upsert", "true")), 400, errSignNotUpload)
		_, up := o.signUpload(t, "b", "u", o.service)
		requireAPIError(t, o.get(t, "/object/sign/b/u?token="+up, ""), 400, errSignNotDownload)
		// Scope is checked before url: an upload token for u on k's download route too.
		requireAPIError(t, o.get(t, "/object/sign/b/k?token="+up, ""), 400, errSignNotDownload)
		// An upload token for u does not write elsewhere.
		requireAPIError(t, o.send(t, "PUT", "/object/upload/sign/b/other?token="+up, "", strings.NewReader("x"), 1), 400, errSignInvalid)
		o.mkBucket(t, `{"name":"c"}`)
		requireAPIError(t, o.send(t, "PUT", "/object/upload/sign/c/u?token="+up, "", strings.NewReader("x"), 1), 400, errSignInvalid)
		o.requireNothingStored(t, "b/k")
		require.Equal(t, "hello", o.content(t, "b", "k"))
	})

	be.run(t, "68_LegacyAndTamperedUploadTokens", func(t *testing.T, o *objEnv) {
		exp := time.Now().Add(time.Hour).Unix()
		// A scope-less token with an upsert claim is an upload token.
		legacy := signMint(t, jwt.MapClaims{"url": "b/u", "owner": userB.Sub, "upsert": false, "exp": exp})
		requireOKBodyExact(t, o.send(t, "PUT", "/object/upload/sign/b/u?token="+legacy, "", strings.NewReader("legacy"), 6), `{"Key":"b/u"}`)
		require.Equal(t, "legacy", o.content(t, "b", "u"))
		owner, ownerID := o.signOwner(t, "b", "u")
		require.Equal(t, userB.Sub, owner)
		require.Equal(t, userB.Sub, ownerID)
		// Its upsert claim decides: false → the key now exists.
		requireAPIError(t, o.send(t, "PUT", "/object/upload/sign/b/u?token="+legacy, "", strings.NewReader("again"), 5), 400, errKeyExists)
		// true → replaced; an owner that is not a UUID is kept in owner_id only.
		legacyUpsert := signMint(t, jwt.MapClaims{"url": "b/u", "owner": "not-a-uuid", "upsert": true, "exp": exp})
		requireOKBodyExact(t, o.send(t, "PUT", "/object/upload/sign/b/u?token="+legacyUpsert, "", strings.NewReader("replaced"), 8), `{"Key":"b/u"}`)
		require.Equal(t, "replaced", o.content(t, "b", "u"))
		owner, ownerID = o.signOwner(t, "b", "u")
		require.Equal(t, "<null>", owner)
		require.Equal(t, "not-a-uuid", ownerID)
		// No scope and no upsert: a download token.
		requireAPIError(t, o.send(t, "PUT", "/object/upload/sign/b/w?token="+signMint(t, jwt.MapClaims{"url": "b/w", "exp": exp}), "", strings.NewReader("x"), 1), 400, errSignNotUpload)
		requireAPIError(t, o.send(t, "PUT", "/object/upload/sign/b/w?token="+signMint(t, jwt.MapClaims{"url": "b/w", "scope": "download", "upsert": true, "exp": exp}), "", strings.NewReader("x"), 1), 400, errSignNotUpload)

		// A genuine upload URL with its signature tampered with.
		url, tok := o.signUpload(t, "b", "t", o.service)
		parts := strings.Split(tok, ".")
		sig := []byte(parts[2])
		if sig[0] == 'A' {
			sig[0] = 'B'
		} else {
			sig[0] = 'A'
		}
		tampered := parts[0] + "." + parts[1] + "." + string(sig)
		requireAPIError(t, o.send(t, "PUT", "/object/upload/sign/b/t?token="+tampered, "", strings.NewReader("x"), 1), 400, errSignBadSig)
		// Its claims rewritten to upsert, the signature kept.
		_, claims := signDecode(t, tok)
		claims["upsert"] = true
		payload, err := json.Marshal(claims)
		require.NoError(t, err)
		forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
		requireAPIError(t, o.send(t, "PUT", "/object/upload/sign/b/t?token="+forged, "", strings.NewReader("x"), 1), 400, errSignBadSig)
		// Another secret.
		foreign := signJWT(t, jwt.SigningMethodHS256, []byte("another-secret-of-at-least-32-bytes!!"),
			jwt.MapClaims{"url": "b/t", "scope": "upload", "upsert": true, "exp": exp})
		requireAPIError(t, o.send(t, "PUT", "/object/upload/sign/b/t?token="+foreign, "", strings.NewReader("x"), 1), 400, errSignBadSig)
		require.Equal(t, []string{"b/u"}, o.objectNames(t))
		o.requireBlobsAccounted(t)
		// The genuine URL still works.
		requireOKBodyExact(t, o.putSigned(t, url, "ok"), `{"Key":"b/t"}`)
	})

	be.run(t, "BucketGoneAfterSigning", func(t *testing.T, o *objEnv) {
		o.mkBucket(t, `{"name":"tmp"}`)
		url, _ := o.signUpload(t, "tmp", "u", o.service)
		requireOKBody(t, o.do(t, "DELETE", "/bucket/tmp", o.service, ""), `{"message":"Successfully deleted"}`)
		requireAPIError(t, o.putSigned(t, url, "x"), 400, errNoSuchBucket)
		o.requireNothingStored(t)
	})
}
