package identity

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// JWT_JWKS (spec §3.2): which key verifies which token, and every way a token is refused.

// testKeys are generated once per test binary: RSA generation is slow.
var testKeys = sync.OnceValue(func() (k struct {
	rsa, rsaOther *rsa.PrivateKey
	ec, ec384     *ecdsa.PrivateKey
	ed            ed25519.PrivateKey
	oct, url      []byte
}) {
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.rsaOther, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	k.oct = []byte("an oct key of the JWKS, 32 bytes+")
	k.url = []byte("the URL signing key, 32 bytes+++")
	return k
})

// jwk renders key as a JWK with kid and alg ("" leaves them out); symmetric and private keys
// are rendered with their secret material.
func jwk(t *testing.T, key any, kid, alg string) json.RawMessage {
	t.Helper()
	j, err := jwkset.NewJWKFromKey(key, jwkset.JWKOptions{
		Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: jwkset.ALG(alg)},
		Marshal:  jwkset.JWKMarshalOptions{Private: true},
	})
	require.NoError(t, err)
	b, err := json.Marshal(j.Marshal())
	require.NoError(t, err)
	return b
}

// jwksJSON builds a JWT_JWKS value.
func jwksJSON(t *testing.T, url json.RawMessage, keys ...json.RawMessage) []byte {
	t.Helper()
	v := map[string]any{"keys": keys}
	if url != nil {
		v["urlSigningKey"] = url
	}
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// testJWKS is the set most tests use: the RSA, EC P-256, Ed25519 and oct keys by kid, and the
// URL signing key.
func testJWKS(t *testing.T) []byte {
	k := testKeys()
	return jwksJSON(t, jwk(t, k.url, "url-1", ""),
		jwk(t, &k.rsa.PublicKey, "rsa-1", ""),
		jwk(t, &k.ec.PublicKey, "ec-1", "ES256"),
		jwk(t, k.ed.Public(), "ed-1", "EdDSA"),
		jwk(t, k.oct, "oct-1", ""),
	)
}

func jwksVerifier(t *testing.T, secret string, data []byte, roles ...string) *Verifier {
	t.Helper()
	s, err := ParseJWKS(data)
	require.NoError(t, err)
	cfg := Config{Secret: secret, JWKS: s}
	if roles != nil {
		cfg.AllowedRoles = roles
	}
	v, err := New(cfg)
	require.NoError(t, err)
	return v
}

// signed signs claims with m and key, with header kid when kid is not nil.
func signed(t *testing.T, m jwt.SigningMethod, key any, kid *string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != nil {
		tok.Header["kid"] = *kid
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

func kid(s string) *string { return &s }

func TestJWKSKeySelection(t *testing.T) {
	t.Parallel()
	k := testKeys()
	v := jwksVerifier(t, testSecret, testJWKS(t))
	for _, tc := range []struct {
		name string
		m    jwt.SigningMethod
		key  any
		kid  *string
	}{
		{"RS256ByKid", jwt.SigningMethodRS256, k.rsa, kid("rsa-1")},
		{"RS256NoKid", jwt.SigningMethodRS256, k.rsa, nil},
		{"RS512NoAlgOnKey", jwt.SigningMethodRS512, k.rsa, kid("rsa-1")}, // no alg on the JWK: every RS alg
		{"ES256ByKid", jwt.SigningMethodES256, k.ec, kid("ec-1")},
		{"ES256NoKid", jwt.SigningMethodES256, k.ec, nil},
		{"EdDSAByKid", jwt.SigningMethodEdDSA, k.ed, kid("ed-1")},
		{"EdDSANoKid", jwt.SigningMethodEdDSA, k.ed, nil},
		{"HS256OctByKid", jwt.SigningMethodHS256, k.oct, kid("oct-1")},
		{"HS384OctByKid", jwt.SigningMethodHS384, k.oct, kid("oct-1")},
		{"HS256OctNoKid", jwt.SigningMethodHS256, k.oct, nil},
		{"HS256SecretNoKid", jwt.SigningMethodHS256, []byte(testSecret), nil},
		// An HMAC token whose kid names no oct key falls back to the secret, as the reference.
		{"HS256SecretUnknownKid", jwt.SigningMethodHS256, []byte(testSecret), kid("legacy")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			claims := jwt.MapClaims{"sub": tc.name, "role": "authenticated", "exp": time.Now().Add(time.Minute).Unix()}
			tok := signed(t, tc.m, tc.key, tc.kid, claims)
			id, err := v.Verify(tok)
			require.NoError(t, err)
			require.Equal(t, "authenticated", id.Role)
			require.Equal(t, tc.name, id.Sub)
			require.Equal(t, tok, id.Token)
		})
	}
}

func TestJWKSRefusals(t *testing.T) {
	t.Parallel()
	k := testKeys()
	v := jwksVerifier(t, testSecret, testJWKS(t))
	claims := jwt.MapClaims{"role": "service_role"}
	pkix, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	require.NoError(t, err)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})
	pkcs1 := x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)
	edPub := []byte(k.ed.Public().(ed25519.PublicKey))
	const sigFailed = "signature verification failed"
	for _, tc := range []struct {
		name, token, message string
	}{
		{"UnknownRSAKeyByKid", signed(t, jwt.SigningMethodRS256, k.rsaOther, kid("rsa-1"), claims), sigFailed},
		{"UnknownRSAKeyNoKid", signed(t, jwt.SigningMethodRS256, k.rsaOther, nil, claims), sigFailed},
		{"UnknownKid", signed(t, jwt.SigningMethodRS256, k.rsa, kid("rsa-2"), claims), sigFailed},
		{"KidNotAString", signed(t, jwt.SigningMethodRS256, k.rsa, nil, claims) + "", ""}, // replaced below
		{"UnknownOctKey", signed(t, jwt.SigningMethodHS256, []byte("not a key of ours"), kid("oct-1"), claims), sigFailed},
		// HMAC "signed" with a public key as the secret: no public key is ever an HMAC key.
		{"HS256WithRSAPublicPEM", signed(t, jwt.SigningMethodHS256, pemKey, nil, claims), sigFailed},
		{"HS256WithRSAPublicPEMKid", signed(t, jwt.SigningMethodHS256, pemKey, kid("rsa-1"), claims), sigFailed},
		{"HS256WithRSAPublicDER", signed(t, jwt.SigningMethodHS256, pkix, kid("rsa-1"), claims), sigFailed},
		{"HS256WithRSAPublicPKCS1", signed(t, jwt.SigningMethodHS256, pkcs1, nil, claims), sigFailed},
		{"HS256WithEd25519Public", signed(t, jwt.SigningMethodHS256, edPub, kid("ed-1"), claims), sigFailed},
		// The kid names a key the alg does not fit.
		{"RS256NamingECKey", signed(t, jwt.SigningMethodRS256, k.rsa, kid("ec-1"), claims), sigFailed},
		{"ES256NamingRSAKey", signed(t, jwt.SigningMethodES256, k.ec, kid("rsa-1"), claims), sigFailed},
		{"EdDSANamingOctKey", signed(t, jwt.SigningMethodEdDSA, k.ed, kid("oct-1"), claims), sigFailed},
		// Algorithms no key accepts.
		{"AlgNone", signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil, claims), algNotAllowed},
		{"AlgNoneWithKid", signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid("rsa-1"), claims), algNotAllowed},
		{"PS256", signed(t, jwt.SigningMethodPS256, k.rsa, kid("rsa-1"), claims), algNotAllowed},
		{"ES384NoP384Key", signed(t, jwt.SigningMethodES384, k.ec384, nil, claims), algNotAllowed},
		// The EC key's JWK says ES256; the Ed25519 one EdDSA; no key accepts ES512.
		{"ES512", signed(t, jwt.SigningMethodES512, mustEC(elliptic.P521()), nil, claims), algNotAllowed},
		// Claims.
		{"Expired", signed(t, jwt.SigningMethodRS256, k.rsa, kid("rsa-1"), jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()}),
			`"exp" claim timestamp check failed`},
		{"ExpiredNoKid", signed(t, jwt.SigningMethodEdDSA, k.ed, nil, jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()}),
			`"exp" claim timestamp check failed`},
		{"NotYetValid", signed(t, jwt.SigningMethodES256, k.ec, kid("ec-1"), jwt.MapClaims{"nbf": time.Now().Add(time.Hour).Unix()}),
			`"nbf" claim timestamp check failed`},
		// The URL signing key verifies signed-URL tokens only: it is not in "keys".
		{"URLSigningKeyIsNotABearerKey", signed(t, jwt.SigningMethodHS256, k.url, kid("url-1"), claims), sigFailed},
	} {
		if tc.name == "KidNotAString" {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
			tok.Header["kid"] = 7
			s, err := tok.SignedString(k.rsa)
			require.NoError(t, err)
			tc.token, tc.message = s, sigFailed
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			id, err := v.Verify(tc.token)
			require.ErrorIs(t, err, ErrInvalidToken)
			require.Equal(t, Identity{}, id)
			require.Equal(t, tc.message, err.Error())
		})
	}
}

func mustEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// TestJWKSOnly: without AUTH_JWT_SECRET, only the set's keys verify; HMAC tokens have no
// secret to fall back to.
func TestJWKSOnly(t *testing.T) {
	t.Parallel()
	k := testKeys()
	v := jwksVerifier(t, "", jwksJSON(t, nil, jwk(t, &k.rsa.PublicKey, "rsa-1", "RS256")))
	_, err := v.Verify(signed(t, jwt.SigningMethodRS256, k.rsa, nil, jwt.MapClaims{}))
	require.NoError(t, err)
	// The key's alg is RS256: RS512 is accepted by no key.
	_, err = v.Verify(signed(t, jwt.SigningMethodRS512, k.rsa, nil, jwt.MapClaims{}))
	require.ErrorIs(t, err, ErrInvalidToken)
	require.Equal(t, algNotAllowed, err.Error())
	_, err = v.Verify(signed(t, jwt.SigningMethodHS256, []byte(testSecret), nil, jwt.MapClaims{}))
	require.Equal(t, algNotAllowed, err.Error())
	secret, urlKid := v.URLSigningKey()
	require.Nil(t, secret)
	require.Equal(t, "", urlKid)
}

// TestJWKSPrivateKeys: a set holding private keys verifies with their public halves.
func TestJWKSPrivateKeys(t *testing.T) {
	t.Parallel()
	k := testKeys()
	v := jwksVerifier(t, "", jwksJSON(t, nil, jwk(t, k.rsa, "rsa", ""), jwk(t, k.ec, "ec", ""), jwk(t, k.ed, "ed", "")))
	for _, tok := range []string{
		signed(t, jwt.SigningMethodRS256, k.rsa, kid("rsa"), jwt.MapClaims{}),
		signed(t, jwt.SigningMethodES256, k.ec, kid("ec"), jwt.MapClaims{}),
		signed(t, jwt.SigningMethodEdDSA, k.ed, kid("ed"), jwt.MapClaims{}),
	} {
		_, err := v.Verify(tok)
		require.NoError(t, err)
	}
	for _, key := range v.bearer.keys {
		switch key.key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			t.Fatalf("kept %T", key.key)
		}
	}
}

func TestParseJWKS(t *testing.T) {
	t.Parallel()
	k := testKeys()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)

	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		s, err := ParseJWKS(testJWKS(t))
		require.NoError(t, err)
		require.True(t, s.HasKeys())
		require.True(t, s.HasURLSigningKey())
		require.Len(t, s.keys, 4)
		require.Equal(t, []string{"RS256", "RS384", "RS512"}, s.keys[0].algs)
		require.Equal(t, []string{"ES256"}, s.keys[1].algs)
		require.Equal(t, []string{"EdDSA"}, s.keys[2].algs)
		require.Equal(t, []string{"HS256", "HS384", "HS512"}, s.keys[3].algs)

		s, err = ParseJWKS([]byte(`{"keys":[]}`))
		require.NoError(t, err)
		require.False(t, s.HasKeys())
		require.False(t, s.HasURLSigningKey())
		s, err = ParseJWKS([]byte(`{"keys":[],"urlSigningKey":null,"other":1}`))
		require.NoError(t, err)
		require.False(t, s.HasURLSigningKey())
	})

	t.Run("EncryptionKeysLeftOut", func(t *testing.T) {
		t.Parallel()
		s, err := ParseJWKS([]byte(`{"keys":[` +
			strings.Replace(string(jwk(t, &k.rsa.PublicKey, "enc", "")), `{`, `{"use":"enc",`, 1) + `,` +
			strings.Replace(string(jwk(t, &k.rsa.PublicKey, "wrap", "")), `{`, `{"key_ops":["wrapKey"],`, 1) + `,` +
			strings.Replace(string(jwk(t, &k.rsa.PublicKey, "sig", "")), `{`, `{"use":"sig","key_ops":["verify"],`, 1) + `]}`))
		require.NoError(t, err)
		require.Len(t, s.keys, 1)
		require.Equal(t, "sig", s.keys[0].kid)
	})

	for _, tc := range []struct {
		name, data, err string
	}{
		{"NotJSON", `{"keys":`, "not valid JSON: unexpected end of JSON input"},
		{"Empty", ``, "not valid JSON"},
		{"Array", `[]`, `must be a JSON object {"keys": [JWK…], "urlSigningKey": JWK}`},
		{"Null", `null`, `must be a JSON object`},
		{"Trailing", `{"keys":[]} {}`, "not valid JSON: invalid character '{' after top-level value"},
		{"KeysNotAnArray", `{"keys":{}}`, `"keys" must be an array of JWKs`},
		{"KeyNotAnObject", `{"keys":[1]}`, "keys[0]:"},
		{"UnknownKty", `{"keys":[{"kty":"XYZ","kid":"a"}]}`, "keys[0]:"},
		{"RSAMissingN", `{"keys":[{"kty":"RSA","e":"AQAB"}]}`, "keys[0]:"},
		{"ECNotOnCurve", `{"keys":[{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}]}`, "keys[0]:"},
		{"Ed448", `{"keys":[{"kty":"OKP","crv":"Ed448","x":"` + strings.Repeat("A", 76) + `"}]}`, "keys[0]:"},
		{"OctEmpty", `{"keys":[{"kty":"oct","k":""}]}`, "keys[0]:"},
		{"RSATooSmall", string(jwksJSON(t, nil, jwk(t, &small.PublicKey, "s", ""))), "keys[0]: RSA key of 1024 bits: at least 2048 are required"},
		{"RSAExponentOne", strings.Replace(string(jwksJSON(t, nil, jwk(t, &k.rsa.PublicKey, "r", ""))), `"e":"AQAB"`, `"e":"AQ"`, 1),
			`keys[0]: failed to validate JSON Web Key: failed to marshal JSON Web Key: failed to validate JWK: invalid key: RSA key parameter "e" is out of range`},
		{"RSAExponentEven", strings.Replace(string(jwksJSON(t, nil, jwk(t, &k.rsa.PublicKey, "r", ""))), `"e":"AQAB"`, `"e":"AQAA"`, 1),
			"keys[0]: RSA key with public exponent 65536"},
		{"X25519", string(jwksJSON(t, nil, jwk(t, x25519.PublicKey(), "x", ""))), `keys[0]: unsupported key type "OKP"`},
		{"AlgDoesNotFitRSA", string(jwksJSON(t, nil, jwk(t, &k.rsa.PublicKey, "r", "ES256"))), `keys[0]: alg "ES256" does not fit a RSA key`},
		{"AlgDoesNotFitCurve", string(jwksJSON(t, nil, jwk(t, &k.ec.PublicKey, "", ""), jwk(t, &k.ec384.PublicKey, "e", "ES256"))), `keys[1]: alg "ES256" does not fit a EC key`},
		{"PSS", string(jwksJSON(t, nil, jwk(t, &k.rsa.PublicKey, "r", "PS256"))), `keys[0]: alg "PS256" does not fit a RSA key`},
		{"URLSigningKeyRSA", string(jwksJSON(t, jwk(t, &k.rsa.PublicKey, "u", ""))), "urlSigningKey: must be an oct (HMAC) key"},
		{"URLSigningKeyEd25519", string(jwksJSON(t, jwk(t, k.ed, "u", ""))), "urlSigningKey: must be an oct (HMAC) key"},
		{"URLSigningKeyHS512", string(jwksJSON(t, jwk(t, k.url, "u", "HS512"))), "urlSigningKey: must be an oct (HMAC) key usable with HS256"},
		{"URLSigningKeyBad", `{"urlSigningKey":{"kty":"oct"}}`, "urlSigningKey:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := ParseJWKS([]byte(tc.data))
			require.Error(t, err)
			require.Nil(t, s)
			require.Contains(t, err.Error(), tc.err)
			require.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestNewConfig(t *testing.T) {
	t.Parallel()
	_, err := New(Config{})
	require.ErrorContains(t, err, "no key to verify tokens with")
	empty, err := ParseJWKS([]byte(`{"keys":[]}`))
	require.NoError(t, err)
	_, err = New(Config{JWKS: empty})
	require.ErrorContains(t, err, "no key to verify tokens with")
	_, err = New(Config{Secret: testSecret, Algorithm: "RS256"})
	require.ErrorContains(t, err, `algorithm "RS256"`)
	for _, roles := range [][]string{{}, {"anon", "none"}, {"NONE"}, {"anon", ""}} {
		_, err = New(Config{Secret: testSecret, AllowedRoles: roles})
		require.Error(t, err, "%q", roles)
	}
}
