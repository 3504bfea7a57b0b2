package identity

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"hash"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Fuzz targets for token verification and JWT_JWKS parsing (`make fuzz`; the seeds also run as
// plain tests). The verifier's keys are fixed, so the only tokens that can verify are those
// signed with them: the fuzzer cannot forge a signature, and a mutated token that still
// verifies was accepted without its bytes being the ones signed.

// fuzzKeys are the verifier's keys: the secret (AUTH_JWT_SECRET), an oct and an Ed25519 key of
// JWT_JWKS, and the urlSigningKey. Ed25519 signatures are deterministic, so the expected
// signature of any signing input can be computed again.
var (
	fuzzOct = []byte("an oct key of the JWKS, 32 bytes+")
	fuzzURL = []byte("the URL signing key, 32 bytes+++")
	fuzzEd  = ed25519.NewKeyFromSeed([]byte("a fixed Ed25519 seed, 32 bytes!!"))
)

func fuzzVerifier(tb testing.TB) *Verifier {
	enc := base64.RawURLEncoding
	jwks, err := ParseJWKS([]byte(`{"keys":[` +
		`{"kty":"oct","kid":"oct","k":"` + enc.EncodeToString(fuzzOct) + `"},` +
		`{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"` + enc.EncodeToString(fuzzEd.Public().(ed25519.PublicKey)) + `"}],` +
		`"urlSigningKey":{"kty":"oct","kid":"url","alg":"HS256","k":"` + enc.EncodeToString(fuzzURL) + `"}}`))
	require.NoError(tb, err)
	v, err := New(Config{Secret: testSecret, JWKS: jwks})
	require.NoError(tb, err)
	return v
}

// signedByKey reports whether token's signature segment is, byte for byte, the one a key of
// the verifier makes over its first two segments.
func signedByKey(token string) bool {
	input, sig, ok := strings.Cut(token, ".")
	if !ok {
		return false
	}
	payload, sig, ok := strings.Cut(sig, ".")
	if !ok {
		return false
	}
	input += "." + payload
	var want [][]byte
	for _, key := range [][]byte{[]byte(testSecret), fuzzOct, fuzzURL} {
		for _, h := range []func() hash.Hash{sha256.New, sha512.New384, sha512.New} {
			m := hmac.New(h, key)
			m.Write([]byte(input))
			want = append(want, m.Sum(nil))
		}
	}
	want = append(want, ed25519.Sign(fuzzEd, []byte(input)))
	for _, w := range want {
		if base64.RawURLEncoding.EncodeToString(w) == sig {
			return true
		}
	}
	return false
}

func fuzzTokens() []string {
	edSign := func(header, payload string) string {
		enc := base64.RawURLEncoding
		input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
		return input + "." + enc.EncodeToString(ed25519.Sign(fuzzEd, []byte(input)))
	}
	return []string{
		sign(hs256Header, `{"role":"authenticated","sub":"u1"}`),
		sign(hs256Header, `{"role":"service_role","exp":4102444800}`),
		sign(hs256Header, `{"role":"postgres"}`),
		sign(hs256Header, `{"role":7}`),
		sign(hs256Header, `{"exp":1}`),
		sign(hs256Header, `{"nbf":4102444800}`),
		sign(`{"alg":"HS256","kid":"oct"}`, `{"role":"anon"}`, string(fuzzOct)),
		sign(`{"alg":"HS256","kid":"nope"}`, `{"role":"anon"}`),
		sign(`{"alg":"HS256","kid":"url"}`, `{"url":"b/k","scope":"download"}`, string(fuzzURL)),
		sign(hs256Header, `{"url":"b/k","scope":"upload","upsert":true,"owner":"u1","signer":{"role":"authenticated","claims":{"sub":"u1"}}}`),
		sign(hs256Header, `{"url":"b/k","upsert":false}`),
		edSign(`{"alg":"EdDSA","kid":"ed"}`, `{"role":"authenticated"}`),
		edSign(`{"alg":"EdDSA"}`, `{"role":"anon"}`),
		`{"alg":"none"}.e30.`, "eyJhbGciOiJub25lIn0.e30.", "a.b.c", "..", "", "not a token",
	}
}

// FuzzVerify: a bearer token verifies only when its signature is exactly the one a key makes
// over its header and payload, then runs as an allowed role with the payload verbatim as its
// claims; every refusal is an *Error of a known kind.
func FuzzVerify(f *testing.F) {
	for _, tok := range fuzzTokens() {
		f.Add(tok)
	}
	v := fuzzVerifier(f)
	f.Fuzz(func(t *testing.T, token string) {
		id, err := v.Verify(token)
		if err != nil {
			var e *Error
			require.True(t, errors.As(err, &e), "%T %v", err, err)
			require.True(t, errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrRoleNotAllowed), "%v", err)
			require.Equal(t, Identity{}, id)
			return
		}
		require.True(t, signedByKey(token), "accepted a token no key signed: %q", token)
		require.True(t, v.roles[id.Role], "role %q", id.Role)
		require.Equal(t, token, id.Token)
		parts := strings.Split(token, ".")
		payload, derr := base64.RawURLEncoding.DecodeString(parts[1])
		require.NoError(t, derr)
		require.Equal(t, string(payload), id.Claims)
	})
}

// FuzzVerifyURL: a signed-URL token verifies only with a key's exact signature, for the scope
// and object asked.
func FuzzVerifyURL(f *testing.F) {
	for _, tok := range fuzzTokens() {
		f.Add(tok, "download", "b/k")
		f.Add(tok, "upload", "b/k")
	}
	v := fuzzVerifier(f)
	f.Fuzz(func(t *testing.T, token, scope, url string) {
		c, err := v.VerifyURL(token, scope, url)
		if err != nil {
			var e *Error
			require.True(t, errors.As(err, &e), "%T %v", err, err)
			require.True(t, errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrWrongScope) || errors.Is(err, ErrWrongURL), "%v", err)
			return
		}
		require.True(t, signedByKey(token), "accepted a token no key signed: %q", token)
		require.Equal(t, url, c.URL)
		require.True(t, c.Scope == scope || c.Scope == "", "scope %q for %q", c.Scope, scope)
		if _, err := v.Uploader(c, token); err != nil {
			require.ErrorIs(t, err, ErrRoleNotAllowed)
		}
	})
}

// FuzzParseJWKS: JWT_JWKS is refused with an error or parsed into keys that each verify some
// algorithm, and a urlSigningKey that is an HS256 secret; a verifier built from it refuses a
// token no key of it signed.
func FuzzParseJWKS(f *testing.F) {
	enc := base64.RawURLEncoding
	for _, s := range []string{`{}`, `{"keys":[]}`, `[]`, `null`, `{"keys":{}}`, `{"keys":[{}]}`,
		`{"keys":[{"kty":"oct","k":"` + enc.EncodeToString(fuzzOct) + `","alg":"HS512","kid":"a"}]}`,
		`{"keys":[{"kty":"oct","k":"` + enc.EncodeToString(fuzzOct) + `","use":"enc"}]}`,
		`{"keys":[{"kty":"oct","k":"` + enc.EncodeToString(fuzzOct) + `","key_ops":["sign"]}]}`,
		`{"keys":[{"kty":"oct","k":"` + enc.EncodeToString(fuzzOct) + `","alg":"RS256"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + enc.EncodeToString(fuzzEd.Public().(ed25519.PublicKey)) + `"}]}`,
		`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}`,
		`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`,
		`{"urlSigningKey":{"kty":"oct","k":"` + enc.EncodeToString(fuzzURL) + `"}}`,
		`{"urlSigningKey":{"kty":"oct","k":"` + enc.EncodeToString(fuzzURL) + `","alg":"HS384"}}`,
		`{"urlSigningKey":null}`} {
		f.Add([]byte(s))
	}
	forged := sign(hs256Header, `{"role":"anon"}`, "a key the fuzzer cannot choose: 9f3a1c")
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseJWKS(data)
		if err != nil {
			require.Nil(t, s)
			require.NotContains(t, err.Error(), "\n")
			return
		}
		for _, k := range s.keys {
			require.NotEmpty(t, k.algs)
			require.NotNil(t, k.key)
		}
		if s.urlSigning != nil {
			require.Equal(t, []string{"HS256"}, s.urlSigning.algs)
			require.IsType(t, []byte(nil), s.urlSigning.key)
		}
		v, err := New(Config{Secret: testSecret, JWKS: s})
		require.NoError(t, err)
		_, err = v.Verify(forged)
		require.ErrorIs(t, err, ErrInvalidToken)
	})
}
