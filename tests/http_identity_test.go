package tests

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob/file"
	"github.com/pgstorage/storage/identity"
	"github.com/pgstorage/storage/proxy"
)

// One identity (package identity) behind the REST API: JWT_JWKS keys, the refusals, the
// URL signing key, and the role allow-list.

// withVerifier makes the server verify tokens with v instead of the HMAC-only default.
func withVerifier(v *identity.Verifier) httpOpt { return func(c *serverConfig) { c.Verifier = v } }

// jwkJSON renders key as a JWK with kid (oct keys with their secret).
func jwkJSON(t *testing.T, key any, kid string) json.RawMessage {
	t.Helper()
	j, err := jwkset.NewJWKFromKey(key, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid},
		Marshal: jwkset.JWKMarshalOptions{Private: true}})
	require.NoError(t, err)
	b, err := json.Marshal(j.Marshal())
	require.NoError(t, err)
	return b
}

// signWithKid signs claims with m and key, naming kid in the header unless it is "".
func signWithKid(t *testing.T, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

// TestHTTPJWKS: tokens signed by each key of JWT_JWKS (RSA, EC P-256, Ed25519), chosen by kid
// or tried without one, and by the HMAC secret, reach the database as their sub: each user
// sees exactly its own object under an owner policy. Tokens no key of the set signed are
// refused with the reference's messages.
func TestHTTPJWKS(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	urlKey := []byte("url signing key of this test, 32+")
	raw, err := json.Marshal(map[string]any{
		"keys": []json.RawMessage{
			jwkJSON(t, &rsaKey.PublicKey, "rsa-1"),
			jwkJSON(t, &ecKey.PublicKey, "ec-1"),
			jwkJSON(t, edKey.Public(), "ed-1"),
		},
		"urlSigningKey": jwkJSON(t, urlKey, "url-1"),
	})
	require.NoError(t, err)
	set, err := identity.ParseJWKS(raw)
	require.NoError(t, err)
	v, err := identity.New(identity.Config{Secret: httpJWTSecret, JWKS: set})
	require.NoError(t, err)
	b := setupHTTP(t, withVerifier(v))

	b.createBucket(t, `{"name":"docs"}`)
	ownerSQL(t, b.db, `create policy own_insert on storage.objects for insert to authenticated
		with check (bucket_id = 'docs' and owner_id = (select auth.uid())::text)`)
	ownerSQL(t, b.db, `create policy own_select on storage.objects for select to authenticated
		using (bucket_id = 'docs' and owner_id = (select auth.uid())::text)`)

	type user struct {
		name, sub, token string
	}
	exp := time.Now().Add(time.Hour).Unix()
	var users []user
	for _, s := range []struct {
		name string
		m    jwt.SigningMethod
		key  any
		kid  string
	}{
		{"rs256-kid", jwt.SigningMethodRS256, rsaKey, "rsa-1"},
		{"rs256", jwt.SigningMethodRS256, rsaKey, ""},
		{"es256-kid", jwt.SigningMethodES256, ecKey, "ec-1"},
		{"es256", jwt.SigningMethodES256, ecKey, ""},
		{"eddsa-kid", jwt.SigningMethodEdDSA, edKey, "ed-1"},
		{"eddsa", jwt.SigningMethodEdDSA, edKey, ""},
		{"hs256-secret", jwt.SigningMethodHS256, []byte(httpJWTSecret), ""},
	} {
		sub := uuid.NewString()
		users = append(users, user{s.name, sub, signWithKid(t, s.m, s.key, s.kid,
			jwt.MapClaims{"sub": sub, "role": "authenticated", "exp": exp})})
	}
	for _, u := range users {
		r := b.do(t, "POST", "/object/docs/"+u.name+".txt", u.token, "bytes of "+u.name, withHeader("Content-Type", "text/plain"))
		requireOKJSON(t, r)
	}
	var owners []string
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		`select array_agg(name || '=' || owner_id order by name) from storage.objects`).Scan(&owners))
	require.Len(t, owners, len(users))
	for _, u := range users {
		require.Contains(t, owners, u.name+".txt="+u.sub)
		require.Equal(t, []string{"f:" + u.name + ".txt"}, b.v1Names(t, u.token, "docs", map[string]any{"prefix": ""}), u.name)
		r := b.do(t, "GET", "/object/authenticated/docs/"+u.name+".txt", u.token, "")
		require.Equal(t, 200, r.Status, "%s: %s", u.name, r)
		require.Equal(t, "bytes of "+u.name, string(r.Body))
	}
	// Another user's object is hidden by the policy.
	r := b.do(t, "GET", "/object/authenticated/docs/"+users[0].name+".txt", users[2].token, "")
	requireAPIErrorCode(t, r, 400, "404", "NoSuchKey")

	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		pkix, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
		require.NoError(t, err)
		pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})
		claims := jwt.MapClaims{"role": "service_role", "exp": exp}
		denied := func(message string) apiError { return apiError{"403", "AccessDenied", "Unauthorized", message} }
		const sigFailed = "signature verification failed"
		for _, tc := range []struct {
			name, token string
			want        apiError
		}{
			{"KeyNotInSet", signWithKid(t, jwt.SigningMethodRS256, otherRSA, "rsa-1", claims), denied(sigFailed)},
			{"KeyNotInSetNoKid", signWithKid(t, jwt.SigningMethodRS256, otherRSA, "", claims), denied(sigFailed)},
			{"HS256WithRSAPublicKeyPEM", signWithKid(t, jwt.SigningMethodHS256, pemKey, "", claims), denied(sigFailed)},
			{"HS256WithRSAPublicKeyPEMAndKid", signWithKid(t, jwt.SigningMethodHS256, pemKey, "rsa-1", claims), denied(sigFailed)},
			{"HS256WithRSAPublicKeyDER", signWithKid(t, jwt.SigningMethodHS256, pkix, "rsa-1", claims), denied(sigFailed)},
			{"AlgNone", signWithKid(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims),
				denied(`"alg" (Algorithm) Header Parameter value not allowed`)},
			{"Expired", signWithKid(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", jwt.MapClaims{"role": "service_role",
				"exp": time.Now().Add(-time.Minute).Unix()}), denied(`"exp" claim timestamp check failed`)},
			{"RS256NamingTheECKey", signWithKid(t, jwt.SigningMethodRS256, rsaKey, "ec-1", claims), denied(sigFailed)},
			{"URLSigningKeyIsNotABearerKey", signWithKid(t, jwt.SigningMethodHS256, urlKey, "url-1", claims), denied(sigFailed)},
		} {
			requireAPIError(t, b.do(t, "GET", "/bucket", tc.token, ""), 400, tc.want)
		}
	})

	// Signed URLs are minted in SQL with the secret the server stores: URLSigningKey's.
	t.Run("URLSigningKey", func(t *testing.T) {
		t.Parallel()
		secret, kid := v.URLSigningKey()
		require.Equal(t, urlKey, secret)
		require.Equal(t, "url-1", kid)
		ownerSQL(t, b.db, "select storage.signing_secret_set($1)", string(secret))
		r := b.do(t, "POST", "/object/sign/docs/"+users[1].name+".txt", users[1].token, `{"expiresIn":60}`)
		var signed struct{ SignedURL string }
		require.NoError(t, json.Unmarshal(requireOKBytes(t, r), &signed), "%s", r)
		u, err := url.Parse(signed.SignedURL)
		require.NoError(t, err)
		_, err = jwt.NewParser().ParseWithClaims(u.Query().Get("token"), jwt.MapClaims{}, func(*jwt.Token) (any, error) { return urlKey, nil })
		require.NoError(t, err, "minted with the URL signing key")
		r = b.do(t, "GET", signed.SignedURL, "", "")
		require.Equal(t, 200, r.Status, "%s", r)
		require.Equal(t, "bytes of "+users[1].name, string(r.Body))
		// The same token under the URL signing key's kid, as the SQL API will name it.
		tok := signWithKid(t, jwt.SigningMethodHS256, urlKey, "url-1", jwt.MapClaims{"url": "docs/" + users[1].name + ".txt",
			"scope": "download", "exp": exp})
		r = b.do(t, "GET", "/object/sign/docs/"+users[1].name+".txt?token="+tok, "", "")
		require.Equal(t, 200, r.Status, "%s", r)
	})
}

// requireOKBytes asserts a 200 and returns the body.
func requireOKBytes(t *testing.T, r httpResponse) []byte {
	t.Helper()
	require.Equal(t, 200, r.Status, "body: %s", r.Body)
	return r.Body
}

// forbiddenRoles are validly signed role claims that must never reach SET ROLE.
var forbiddenRoles = []struct{ role, message string }{
	{"admin", `Access denied: role "admin" is not allowed`},
	{"postgres", `Access denied: role "postgres" is not allowed`},
	{"none", `Access denied: role "none" is not allowed`}, // SET ROLE none: the connecting role
	{"x; drop table", `Access denied: role "x; drop table" is not allowed`},
}

// TestHTTPRoleAllowList: a token whose role is not allowed is refused with HTTP 403 naming
// the role, on authenticated and optional-auth routes alike, before any database work: a
// server whose database does not exist answers the same, while a request that passes gets
// the database's error.
func TestHTTPRoleAllowList(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	b.createBucket(t, `{"name":"pub","public":true}`)

	// A server like b's whose pool points at a database that does not exist: any request
	// that reaches the database fails there.
	pc, err := pgxpool.ParseConfig(b.db.URL)
	require.NoError(t, err)
	pc.ConnConfig.Database = "no_such_database_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	fs, err := file.New(t.TempDir())
	require.NoError(t, err)
	dead := &httpBundle{baseURL: serveProxy(t, proxy.Config{JWTSecret: httpJWTSecret, Blobs: fs,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, pool)}

	// The control: an allowed token on the dead server reaches the database and fails there.
	r := dead.do(t, "GET", "/bucket", b.service, "")
	require.Equal(t, 500, r.Status, "%s", r)
	require.Equal(t, "DatabaseError", requireErrorShape(t, r).Code)
	r = dead.do(t, "GET", "/object/pub/k", "", "")
	require.Equal(t, 500, r.Status, "anonymous on an optional-auth route: %s", r)

	for _, srv := range []struct {
		name string
		b    *httpBundle
	}{{"Live", b}, {"DeadDatabase", dead}} {
		for _, fr := range forbiddenRoles {
			token := mintJWT(t, fr.role, withSub(userA.Sub))
			want := apiError{"403", "AccessDenied", "Unauthorized", fr.message}
			for _, route := range []struct{ method, path string }{
				{"GET", "/bucket"},              // authorization required
				{"GET", "/object/pub/k"},        // optional auth: not silently anonymous
				{"GET", "/object/info/pub/k"},   // optional auth
				{"POST", "/object/list-v2/pub"}, // bearer required, no header schema
				{"POST", "/object/sign/pub/k"},  // authorization required
				{"DELETE", "/object/pub/k"},     // authorization required
				{"POST", "/bucket/pub/empty"},   // checks the role itself, after the allow-list
				{"GET", "/object/authenticated/pub/k"},
			} {
				body := ""
				if route.method == "POST" && route.path != "/bucket/pub/empty" {
					body = `{"expiresIn":60}`
				}
				r := srv.b.do(t, route.method, route.path, token, body)
				requireAPIError(t, r, 403, want)
			}
			// HEAD answers with the status line alone.
			r := srv.b.do(t, "HEAD", "/object/pub/k", token, "")
			require.Equal(t, 403, r.Status, "%s %s", srv.name, fr.role)
			require.Empty(t, r.Body)
		}
	}

	// An invalid token on an optional-auth route is still anonymous, as in the reference.
	r = b.do(t, "GET", "/object/pub/k", "not-a-jwt", "")
	requireAPIErrorCode(t, r, 400, "404", "NoSuchKey")
	r = b.do(t, "GET", "/object/pub/k", mintJWT(t, "anon", withClaim("exp", time.Now().Add(-time.Minute).Unix())), "")
	requireAPIErrorCode(t, r, 400, "404", "NoSuchKey")
	// A missing or empty role is anon, as before.
	r = b.do(t, "GET", "/bucket", mintJWT(t, ""), "")
	require.Equal(t, "[]", string(requireOKBytes(t, r)))
	r = b.do(t, "GET", "/bucket", mintJWT(t, "", withClaim("role", "")), "")
	require.Equal(t, "[]", string(requireOKBytes(t, r)))
}

// serveProxy starts the proxy for cfg on pool on a loopback port until t ends.
func serveProxy(t *testing.T, cfg proxy.Config, pool *pgxpool.Pool) string {
	t.Helper()
	srv := proxy.New(cfg, pool).HTTPServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go srv.Serve(ln) //nolint:errcheck // returns when Shutdown closes the listener
	t.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + ln.Addr().String()
}
