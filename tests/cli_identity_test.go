package tests

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/tests/testdb"
)

// The binary's identity configuration: JWT_JWKS and AUTH_ALLOWED_ROLES.

// TestCLIIdentityConfiguration: a bad JWT_JWKS or AUTH_ALLOWED_ROLES stops serve with one
// line naming the variable, before anything is created, and never echoes the key material.
func TestCLIIdentityConfiguration(t *testing.T) {
	bin := cliBinary(t)
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	const secretK = "c2VjcmV0LWtleS1tYXRlcmlhbA" // base64url of an oct key's bytes
	rsaJWK := string(jwkJSON(t, &rsaKey.PublicKey, "rsa-1"))
	unreachable := "DATABASE_URL=postgres://nobody@127.0.0.1:1/x"

	for _, tc := range []struct {
		name string
		env  []string
		want []string
	}{
		{"JWT_JWKS not JSON", []string{`JWT_JWKS={"keys":[{"kty":"oct","k":"` + secretK + `"}]`}, []string{"JWT_JWKS: not valid JSON"}},
		{"JWT_JWKS not an object", []string{`JWT_JWKS=[]`}, []string{"JWT_JWKS: must be a JSON object"}},
		{"JWT_JWKS bad key", []string{`JWT_JWKS={"keys":[{"kty":"RSA","e":"AQAB"}]}`}, []string{"JWT_JWKS: keys[0]:"}},
		{"JWT_JWKS RSA urlSigningKey", []string{`JWT_JWKS={"keys":[],"urlSigningKey":` + rsaJWK + `}`},
			[]string{"JWT_JWKS: urlSigningKey: must be an oct (HMAC) key"}},
		{"AUTH_ALLOWED_ROLES none", []string{"AUTH_ALLOWED_ROLES=anon,none"}, []string{"AUTH_ALLOWED_ROLES", "SET ROLE none"}},
		{"AUTH_ALLOWED_ROLES empty", []string{"AUTH_ALLOWED_ROLES= , "}, []string{"AUTH_ALLOWED_ROLES", "empty"}},
		// Not configuration errors as such, but found before the database is reached.
		{"JWT_JWKS alone without urlSigningKey", []string{unreachable, `JWT_JWKS={"keys":[` + rsaJWK + `]}`},
			[]string{"AUTH_JWT_SECRET is required", "JWT_JWKS has keys and a urlSigningKey"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dataDir := filepath.Join(cliTempDir(t), "data")
			env := cliEnv(append([]string{"STORAGE_DATA_DIR=" + dataDir, "SERVER_HOST=127.0.0.1", "SERVER_PORT=" + cliFreePort(t)}, tc.env...)...)
			res := cliRun(t, bin, env, "serve")
			require.Equal(t, 1, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, cliTail(res.stderr))
			msg := cliOneLine(t, res.stderr)
			for _, w := range tc.want {
				require.Contains(t, msg, w)
			}
			require.NotContains(t, msg, secretK, "the key material was echoed")
			require.Empty(t, res.stdout)
			require.NoDirExists(t, dataDir, "a configuration error must be reported before anything is created")
		})
	}
}

// TestCLIJWKSOnly: with DATABASE_URL, JWT_JWKS's keys and urlSigningKey replace
// AUTH_JWT_SECRET: bearer tokens signed by the set's key work, signed URLs are minted in SQL
// with the urlSigningKey and verify, refused roles are 403, and serve prints no keys.
func TestCLIJWKSOnly(t *testing.T) {
	bin := cliBinary(t)
	t.Parallel()
	db := testdb.New(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	// Any bytes, as oct keys are (the SQL API keeps the key as bytea).
	urlKey := append([]byte{0xff, 0xfe, 0, 1}, "the rest of a 32-byte URL key"...)
	jwks, err := json.Marshal(map[string]any{
		"keys":          []json.RawMessage{jwkJSON(t, &rsaKey.PublicKey, "rsa-1")},
		"urlSigningKey": jwkJSON(t, urlKey, "url-1"),
	})
	require.NoError(t, err)
	s := cliServe(t, bin, "", cliEnv("DATABASE_URL="+db.URL, "JWT_JWKS="+string(jwks), "SERVER_HOST=127.0.0.1",
		"SERVER_PORT=0", "STORAGE_FILE_BACKEND_PATH="+filepath.Join(t.TempDir(), "blobs"),
		"STORAGE_DATA_DIR="+filepath.Join(cliTempDir(t), "data")))
	s.keyless = true
	s.waitReady()
	defer func() { require.Equal(t, 0, s.stop(syscall.SIGTERM)) }()
	require.NotContains(t, s.stdout.String(), "KEY=")

	service := signWithKid(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", jwt.MapClaims{"role": "service_role",
		"exp": time.Now().Add(time.Hour).Unix()})
	code, body := cliHTTP(t, http.MethodPost, s.url+"/bucket", service, `{"name":"jw"}`)
	require.Equal(t, http.StatusOK, code, body)
	code, body = cliHTTP(t, http.MethodPost, s.url+"/object/jw/a.json", service, `{"a":1}`)
	require.Equal(t, http.StatusOK, code, body)
	code, body = cliHTTP(t, http.MethodPost, s.url+"/object/sign/jw/a.json", service, `{"expiresIn":60}`)
	require.Equal(t, http.StatusOK, code, body)
	var signed struct{ SignedURL string }
	require.NoError(t, json.Unmarshal([]byte(body), &signed), body)
	code, body = cliHTTP(t, http.MethodGet, s.url+signed.SignedURL, "", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, `{"a":1}`, body)

	admin := signWithKid(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", jwt.MapClaims{"role": "admin"})
	code, body = cliHTTP(t, http.MethodGet, s.url+"/bucket", admin, "")
	require.Equal(t, http.StatusForbidden, code, body)
	require.JSONEq(t, `{"statusCode":"403","code":"AccessDenied","error":"Unauthorized","message":"Access denied: role \"admin\" is not allowed"}`, body)
}
