package proxy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/identity"
)

// Bearer tokens (spec §3.1–3.3): where the REST API takes them from, and how identity's
// refusals reach the client. Verification itself is tested in package identity.

const testSecret = "unit-test-secret-unit-test-secret!!"

// sign makes a token whose payload is exactly payload (HS256 with testSecret unless key is
// given), so tests can show the claims reach policies verbatim.
func sign(header, payload string, key ...string) string {
	k := testSecret
	if len(key) > 0 {
		k = key[0]
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	mac := hmac.New(sha256.New, []byte(k))
	mac.Write([]byte(input))
	return input + "." + enc.EncodeToString(mac.Sum(nil))
}

const hs256Header = `{"alg":"HS256","typ":"JWT"}`

func mint(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	require.NoError(t, err)
	return s
}

func TestTokenFromHeader(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Bearer abc":       "abc",
		"bearer abc":       "abc",
		"BEARER abc":       "abc",
		"bEaReR abc":       "abc",
		"bearer   abc":     "abc",
		"Bearer\tabc":      "abc",
		"Bearer \t abc  ":  "abc",
		"  Bearer abc":     "abc",
		"abc":              "abc", // a bare token is accepted
		"  abc  ":          "abc",
		"a.b.c":            "a.b.c",
		"Bearerabc":        "Bearerabc", // no whitespace after the scheme: not a scheme
		"Bearer":           "Bearer",
		"Bearer ":          "Bearer",
		"":                 "",
		"Token abc":        "Token abc",
		"Basic dXNlcjpwdw": "Basic dXNlcjpwdw",
	} {
		require.Equal(t, want, tokenFromHeader([]byte(in)), "%q", in)
	}
}

// TestAuthError: identity's refusals become the REST errors of spec §1.1 and §4 in one place,
// with identity's messages.
func TestAuthError(t *testing.T) {
	t.Parallel()
	v, err := identity.New(identity.Config{Secret: testSecret})
	require.NoError(t, err)
	verifyErr := func(token string) error {
		_, err := v.Verify(token)
		require.Error(t, err)
		return err
	}
	urlErr := func(token, scope, url string) error {
		_, err := v.VerifyURL(token, scope, url)
		require.Error(t, err)
		return err
	}
	expired := mint(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()})
	download := mint(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"url": "b/k", "scope": "download"})
	for _, tc := range []struct {
		name     string
		err      error
		urlToken bool
		http     int
		body     string
	}{
		{"BearerMalformed", verifyErr("not-a-jwt"), false, 400, body("403", "AccessDenied", "Unauthorized", `"Invalid Compact JWS"`)},
		{"BearerExpired", verifyErr(expired), false, 400, body("403", "AccessDenied", "Unauthorized", `"\"exp\" claim timestamp check failed"`)},
		{"BearerRole", verifyErr(sign(hs256Header, `{"role":"postgres"}`)), false, 403,
			body("403", "AccessDenied", "Unauthorized", `"Access denied: role \"postgres\" is not allowed"`)},
		{"URLMalformed", urlErr("not-a-jwt", "download", "b/k"), true, 400, body("400", "InvalidJWT", "InvalidJWT", `"Invalid Compact JWS"`)},
		{"URLExpired", urlErr(expired, "download", "b/k"), true, 400, body("400", "InvalidJWT", "InvalidJWT", `"\"exp\" claim timestamp check failed"`)},
		{"URLScope", urlErr(download, "upload", "b/k"), true, 400, body("400", "InvalidSignature", "InvalidSignature", `"Token is not scoped for upload"`)},
		{"URLObject", urlErr(download, "download", "b/other"), true, 400, body("400", "InvalidSignature", "InvalidSignature", `"Invalid signature"`)},
		{"NotAnIdentityError", errors.New("boom"), false, 500, body("500", "InternalError", "Internal", `"Internal Server Error"`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := writtenError(t, authError(tc.err, tc.urlToken))
			require.Equal(t, tc.http, r.status)
			require.Equal(t, tc.body, r.body)
		})
	}
}
