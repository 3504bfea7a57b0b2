package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// Bearer tokens with the HMAC secret (spec §3.2–3.3): how they are verified, the messages of
// the reference's JWT library for each refusal, and the verified-token cache.

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

const algNotAllowed = `"alg" (Algorithm) Header Parameter value not allowed`

// hmacVerifier is a Verifier with testSecret for alg and the default roles, as the server
// runs without JWT_JWKS.
func hmacVerifier(t *testing.T, alg string) *Verifier {
	t.Helper()
	v, err := New(Config{Secret: testSecret, Algorithm: alg})
	require.NoError(t, err)
	return v
}

func mint(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	require.NoError(t, err)
	return s
}

func TestVerify(t *testing.T) {
	t.Parallel()
	v := hmacVerifier(t, "HS256")

	// refused asserts an ErrInvalidToken refusal with message.
	refused := func(t *testing.T, token, message string) {
		t.Helper()
		id, err := v.Verify(token)
		require.Error(t, err)
		require.Equal(t, Identity{}, id)
		var e *Error
		require.True(t, errors.As(err, &e), "%T", err)
		require.ErrorIs(t, err, ErrInvalidToken)
		require.NotErrorIs(t, err, ErrRoleNotAllowed)
		require.Equal(t, message, e.Message)
	}

	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		payload := `{"sub":"8a5e1a1c-7c7f-4a3c-9d5e-3f3c1b2a4d01", "role":"authenticated","email":"a@b.c","app_metadata":{"x":[1,2.50]}}`
		tok := sign(hs256Header, payload)
		id, err := v.Verify(tok)
		require.NoError(t, err)
		require.Equal(t, Identity{
			Role:   "authenticated",
			Sub:    "8a5e1a1c-7c7f-4a3c-9d5e-3f3c1b2a4d01",
			Claims: payload, // verbatim: spacing, order and number forms kept
			Token:  tok,
		}, id)
	})

	t.Run("ValidWithExpAndNbf", func(t *testing.T) {
		t.Parallel()
		tok := mint(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{
			"role": "service_role", "exp": time.Now().Add(time.Minute).Unix(), "nbf": time.Now().Add(-time.Minute).Unix(),
		})
		id, err := v.Verify(tok)
		require.NoError(t, err)
		require.Equal(t, "service_role", id.Role)
		require.Equal(t, "", id.Sub)
	})

	t.Run("MissingRoleIsAnon", func(t *testing.T) {
		t.Parallel()
		for _, payload := range []string{`{"sub":"u1"}`, `{"sub":"u1","role":""}`, `{"sub":"u1","role":null}`} {
			tok := sign(hs256Header, payload)
			id, err := v.Verify(tok)
			require.NoError(t, err, payload)
			require.Equal(t, Identity{Role: "anon", Sub: "u1", Claims: payload, Token: tok}, id, payload)
		}
	})

	t.Run("EmptyClaims", func(t *testing.T) {
		t.Parallel()
		tok := sign(hs256Header, `{}`)
		id, err := v.Verify(tok)
		require.NoError(t, err)
		require.Equal(t, Identity{Role: "anon", Claims: `{}`, Token: tok}, id)
	})

	t.Run("WrongSecret", func(t *testing.T) {
		t.Parallel()
		refused(t, sign(hs256Header, `{"role":"service_role"}`, "another-secret"), "signature verification failed")
	})

	t.Run("TamperedPayload", func(t *testing.T) {
		t.Parallel()
		good := sign(hs256Header, `{"role":"anon"}`)
		other := sign(hs256Header, `{"role":"service_role"}`)
		// other's header and payload with good's signature.
		forged := other[:len(other)-43] + good[len(good)-43:]
		refused(t, forged, "signature verification failed")
	})

	t.Run("NonCanonicalEncoding", func(t *testing.T) {
		t.Parallel()
		// Base64url text whose last character carries padding bits has several spellings of
		// the same bytes; only the one with zero padding bits is the token that was signed. A
		// respelled token (accepted, it would pass any check made on the exact string, such as
		// a list of revoked tokens) is refused as malformed, in any segment.
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		respell := func(seg string) string { // the same bytes, the lowest padding bit set
			return seg[:len(seg)-1] + string(alphabet[strings.IndexByte(alphabet, seg[len(seg)-1])|1])
		}
		hs256 := func(input string) string {
			mac := hmac.New(sha256.New, []byte(testSecret))
			mac.Write([]byte(input))
			return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
		}
		// {"role":"anon"}  (16 bytes, 22 characters: 4 padding bits), signature 43 characters
		// (2 padding bits), header {"alg":"HS256"} 15 bytes: none, so padded with a space.
		header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256"} `))
		payload := base64.RawURLEncoding.EncodeToString([]byte(`{"role":"anon"} `))
		good := hs256(header + "." + payload)
		_, err := v.Verify(good)
		require.NoError(t, err)
		for _, tok := range []string{
			good[:len(good)-43] + respell(good[len(good)-43:]),
			hs256(header + "." + respell(payload)),
			hs256(respell(header) + "." + payload),
		} {
			require.NotEqual(t, good, tok)
			refused(t, tok, "Invalid Compact JWS")
		}
	})

	t.Run("Expired", func(t *testing.T) {
		t.Parallel()
		tok := mint(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"role": "service_role", "exp": time.Now().Add(-time.Minute).Unix()})
		refused(t, tok, `"exp" claim timestamp check failed`)
	})

	t.Run("NotBeforeInTheFuture", func(t *testing.T) {
		t.Parallel()
		tok := mint(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"role": "service_role", "nbf": time.Now().Add(time.Hour).Unix()})
		refused(t, tok, `"nbf" claim timestamp check failed`)
	})

	t.Run("AlgNone", func(t *testing.T) {
		t.Parallel()
		tok := mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"role": "service_role"})
		refused(t, tok, algNotAllowed)
		// Hand-made, with and without a signature part.
		refused(t, base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`))+"."+
			base64.RawURLEncoding.EncodeToString([]byte(`{"role":"service_role"}`))+".", algNotAllowed)
		refused(t, base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))+"."+
			base64.RawURLEncoding.EncodeToString([]byte(`{"role":"service_role"}`))+".eA", algNotAllowed)
		// Not even with a kid naming the secret's (empty) kid.
		refused(t, base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":""}`))+"."+
			base64.RawURLEncoding.EncodeToString([]byte(`{"role":"service_role"}`))+".", algNotAllowed)
	})

	t.Run("WrongAlgorithm", func(t *testing.T) {
		t.Parallel()
		for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS384, jwt.SigningMethodHS512} {
			refused(t, mint(t, m, []byte(testSecret), jwt.MapClaims{"role": "service_role"}), algNotAllowed)
		}
		// An alg golang-jwt does not know, and no alg at all.
		refused(t, sign(`{"alg":"XX999"}`, `{"role":"service_role"}`), algNotAllowed)
		refused(t, sign(`{"typ":"JWT"}`, `{"role":"service_role"}`), algNotAllowed)
		// A verifier for HS512 accepts HS512 and refuses HS256.
		v512 := hmacVerifier(t, "HS512")
		id, err := v512.Verify(mint(t, jwt.SigningMethodHS512, []byte(testSecret), jwt.MapClaims{"role": "service_role"}))
		require.NoError(t, err)
		require.Equal(t, "service_role", id.Role)
		_, err = v512.Verify(sign(hs256Header, `{"role":"service_role"}`))
		require.ErrorIs(t, err, ErrInvalidToken)
	})

	t.Run("Malformed", func(t *testing.T) {
		t.Parallel()
		for _, tok := range []string{
			"not-a-jwt", "", "a.b", "a.b.c", "a.b.c.d", "...",
			"!!!." + base64.RawURLEncoding.EncodeToString([]byte(`{}`)) + ".sig",
			base64.RawURLEncoding.EncodeToString([]byte(hs256Header)) + ".%%%.sig",
			base64.RawURLEncoding.EncodeToString([]byte(hs256Header)) + "." + base64.RawURLEncoding.EncodeToString([]byte(`[1]`)) + ".sig",
		} {
			refused(t, tok, "Invalid Compact JWS")
		}
	})
}

func TestJWTMessage(t *testing.T) {
	t.Parallel()
	for err, want := range map[error]string{
		jwt.ErrTokenMalformed:        "Invalid Compact JWS",
		jwt.ErrTokenSignatureInvalid: "signature verification failed",
		jwt.ErrTokenExpired:          `"exp" claim timestamp check failed`,
		jwt.ErrTokenNotValidYet:      `"nbf" claim timestamp check failed`,
		jwt.ErrTokenUnverifiable:     algNotAllowed,
		errAlgNotAllowed:             algNotAllowed,
		errNoKey:                     "signature verification failed",
		errors.New("other"):          "Invalid JWT",
	} {
		require.Equal(t, want, jwtMessage(err), "%v", err)
	}
}

// TestVerifiedTokenCache: a verified token is answered from the cache, but never a token that
// differs from it in any byte, and never once its exp has passed.
func TestVerifiedTokenCache(t *testing.T) {
	t.Parallel()
	v := hmacVerifier(t, "HS256")
	exp := time.Now().Add(time.Minute).Truncate(time.Second)
	tok := mint(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"role": "service_role", "exp": exp.Unix()})
	first, err := v.Verify(tok)
	require.NoError(t, err)
	require.Equal(t, "service_role", first.Role)

	// The cached entry is the verified identity, with the token's exp.
	v.verified.mu.RLock()
	e, ok := v.verified.m[tok]
	v.verified.mu.RUnlock()
	require.True(t, ok)
	require.Equal(t, first, e.id)
	require.True(t, exp.Equal(e.exp), "cached exp %v, token exp %v", e.exp, exp)
	again, err := v.Verify(tok)
	require.NoError(t, err)
	require.Equal(t, first, again)

	// A hit needs the token byte for byte: another signature is verified, and refused.
	forged := tok[:len(tok)-2] + "AA"
	if forged == tok {
		forged = tok[:len(tok)-2] + "BB"
	}
	_, err = v.Verify(forged)
	require.ErrorIs(t, err, ErrInvalidToken)

	// Past exp the entry is ignored: a token cached while valid is refused once expired.
	_, ok = v.verified.get(tok, exp)
	require.False(t, ok, "at exp")
	_, ok = v.verified.get(tok, exp.Add(-time.Millisecond))
	require.True(t, ok, "before exp")
	expired := mint(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"role": "service_role", "exp": time.Now().Add(-time.Second).Unix()})
	v.verified.put(expired, Identity{Role: "service_role", Token: expired}, time.Now().Add(-time.Second))
	_, err = v.Verify(expired)
	var ae *Error
	require.True(t, errors.As(err, &ae), "%v", err)
	require.Equal(t, `"exp" claim timestamp check failed`, ae.Message)

	// A refused role is not cached either.
	admin := mint(t, jwt.SigningMethodHS256, []byte(testSecret), jwt.MapClaims{"role": "admin"})
	_, err = v.Verify(admin)
	require.ErrorIs(t, err, ErrRoleNotAllowed)
	v.verified.mu.RLock()
	_, cachedAdmin := v.verified.m[admin]
	v.verified.mu.RUnlock()
	require.False(t, cachedAdmin)

	// Refusals are not cached, and the cache stays bounded.
	v.verified.mu.RLock()
	_, cachedForged := v.verified.m[forged]
	v.verified.mu.RUnlock()
	require.False(t, cachedForged)
	for i := range tokenCacheSize + 10 {
		v.verified.put(strconv.Itoa(i), Identity{}, time.Time{})
	}
	v.verified.mu.RLock()
	n := len(v.verified.m)
	v.verified.mu.RUnlock()
	require.LessOrEqual(t, n, tokenCacheSize)
}
