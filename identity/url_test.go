package identity

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// Signed-URL tokens (spec §4): which key verifies them, and URLSigningKey, what the server
// stores for the SQL API to sign with.

func TestVerifyURL(t *testing.T) {
	t.Parallel()
	k := testKeys()
	download := func(extra ...any) jwt.MapClaims {
		c := jwt.MapClaims{"url": "b/k", "scope": "download", "exp": time.Now().Add(time.Minute).Unix()}
		for i := 0; i < len(extra); i += 2 {
			c[extra[i].(string)] = extra[i+1]
		}
		return c
	}

	t.Run("SecretOnly", func(t *testing.T) {
		t.Parallel()
		// AUTH_JWT_ALGORITHM HS512: the SQL API still signs HS256 with the secret.
		v, err := New(Config{Secret: testSecret, Algorithm: "HS512"})
		require.NoError(t, err)
		secret, urlKid := v.URLSigningKey()
		require.Equal(t, []byte(testSecret), secret)
		require.Equal(t, "", urlKid)
		for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS256, jwt.SigningMethodHS512} {
			c, err := v.VerifyURL(signed(t, m, []byte(testSecret), nil, download()), "download", "b/k")
			require.NoError(t, err)
			require.Equal(t, "b/k", c.URL)
		}
		_, err = v.VerifyURL(signed(t, jwt.SigningMethodHS384, []byte(testSecret), nil, download()), "download", "b/k")
		require.ErrorIs(t, err, ErrInvalidToken)
		require.Equal(t, algNotAllowed, err.Error())
		// A bearer token is HS512 only.
		_, err = v.Verify(signed(t, jwt.SigningMethodHS256, []byte(testSecret), nil, jwt.MapClaims{}))
		require.Equal(t, algNotAllowed, err.Error())
	})

	t.Run("URLSigningKey", func(t *testing.T) {
		t.Parallel()
		v := jwksVerifier(t, testSecret, testJWKS(t))
		secret, urlKid := v.URLSigningKey()
		require.Equal(t, k.url, secret)
		require.Equal(t, "url-1", urlKid)
		for _, tc := range []struct {
			name string
			m    jwt.SigningMethod
			key  any
			kid  *string
		}{
			{"ByKid", jwt.SigningMethodHS256, k.url, kid("url-1")},
			{"NoKid", jwt.SigningMethodHS256, k.url, nil}, // what the SQL API mints until it names the kid
			{"SecretNoKid", jwt.SigningMethodHS256, []byte(testSecret), nil},
			{"JWKSKey", jwt.SigningMethodRS256, k.rsa, kid("rsa-1")}, // the same key machinery as bearer tokens
		} {
			c, err := v.VerifyURL(signed(t, tc.m, tc.key, tc.kid, download()), "download", "b/k")
			require.NoError(t, err, tc.name)
			require.Equal(t, "download", c.Scope, tc.name)
		}
		for _, tc := range []struct {
			name, token, message string
		}{
			{"SecretUnderURLKid", signed(t, jwt.SigningMethodHS256, []byte(testSecret), kid("url-1"), download()), "signature verification failed"},
			{"URLKeyHS512", signed(t, jwt.SigningMethodHS512, k.url, kid("url-1"), download()), "signature verification failed"},
			{"OtherKey", signed(t, jwt.SigningMethodHS256, []byte("not ours"), nil, download()), "signature verification failed"},
			{"AlgNone", signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil, download()), algNotAllowed},
			{"Expired", signed(t, jwt.SigningMethodHS256, k.url, kid("url-1"), download("exp", time.Now().Add(-time.Second).Unix())),
				`"exp" claim timestamp check failed`},
		} {
			_, err := v.VerifyURL(tc.token, "download", "b/k")
			require.ErrorIs(t, err, ErrInvalidToken, tc.name)
			require.Equal(t, tc.message, err.Error(), tc.name)
		}
	})

	t.Run("URLSigningKeyWithoutSecret", func(t *testing.T) {
		t.Parallel()
		v := jwksVerifier(t, "", jwksJSON(t, jwk(t, k.url, "", ""), jwk(t, k.ed.Public(), "ed-1", "")))
		secret, urlKid := v.URLSigningKey()
		require.Equal(t, k.url, secret)
		require.Equal(t, "", urlKid)
		_, err := v.VerifyURL(signed(t, jwt.SigningMethodHS256, k.url, nil, download()), "download", "b/k")
		require.NoError(t, err)
	})

	t.Run("ScopeAndObject", func(t *testing.T) {
		t.Parallel()
		v := hmacVerifier(t, "HS256")
		tok := func(c jwt.MapClaims) string { return signed(t, jwt.SigningMethodHS256, []byte(testSecret), nil, c) }
		upload := tok(jwt.MapClaims{"url": "b/k", "scope": "upload", "upsert": false})
		legacyDownload := tok(jwt.MapClaims{"url": "b/k"})
		legacyUpload := tok(jwt.MapClaims{"url": "b/k", "upsert": true})
		for _, tc := range []struct {
			token, scope, url string
			kind              error
			message           string
		}{
			{upload, "upload", "b/k", nil, ""},
			{legacyDownload, "download", "b/k", nil, ""},
			{legacyUpload, "upload", "b/k", nil, ""},
			{upload, "download", "b/k", ErrWrongScope, "Token is not scoped for download"},
			{legacyUpload, "download", "b/k", ErrWrongScope, "Token is not scoped for download"},
			{legacyDownload, "upload", "b/k", ErrWrongScope, "Token is not scoped for upload"},
			{upload, "upload", "b/K", ErrWrongURL, "Invalid signature"},
			{legacyDownload, "download", "b/k/", ErrWrongURL, "Invalid signature"},
		} {
			c, err := v.VerifyURL(tc.token, tc.scope, tc.url)
			if tc.kind == nil {
				require.NoError(t, err)
				require.Equal(t, "b/k", c.URL)
				continue
			}
			require.ErrorIs(t, err, tc.kind)
			require.Equal(t, tc.message, err.Error())
		}
		c, err := v.VerifyURL(upload, "upload", "b/k")
		require.NoError(t, err)
		require.NotNil(t, c.Upsert)
		require.False(t, *c.Upsert)
	})

	t.Run("RoleDoesNotMatter", func(t *testing.T) {
		t.Parallel()
		// The token is the authorization; its role claim is never used as a role.
		v := hmacVerifier(t, "HS256")
		_, err := v.VerifyURL(signed(t, jwt.SigningMethodHS256, []byte(testSecret), nil, download("role", "postgres")), "download", "b/k")
		require.NoError(t, err)
	})
}
