package identity

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
)

// The role allow-list: a validly signed token reaches SET ROLE only with an allowed role.

func TestRoleAllowList(t *testing.T) {
	t.Parallel()
	k := testKeys()
	v := jwksVerifier(t, testSecret, testJWKS(t))

	t.Run("Allowed", func(t *testing.T) {
		t.Parallel()
		for payload, role := range map[string]string{
			`{"role":"anon"}`:          "anon",
			`{"role":"authenticated"}`: "authenticated",
			`{"role":"service_role"}`:  "service_role",
			`{}`:                       "anon", // missing, empty and null roles are anon, as today
			`{"role":""}`:              "anon",
			`{"role":null}`:            "anon",
		} {
			id, err := v.Verify(sign(hs256Header, payload))
			require.NoError(t, err, payload)
			require.Equal(t, role, id.Role, payload)
		}
	})

	for _, tc := range []struct {
		name, payload, message string
	}{
		{"Admin", `{"role":"admin"}`, `Access denied: role "admin" is not allowed`},
		{"Postgres", `{"role":"postgres"}`, `Access denied: role "postgres" is not allowed`},
		{"None", `{"role":"none"}`, `Access denied: role "none" is not allowed`},
		{"NoneUpper", `{"role":"NONE"}`, `Access denied: role "NONE" is not allowed`},
		{"Injection", `{"role":"x; drop table"}`, `Access denied: role "x; drop table" is not allowed`},
		{"Quotes", `{"role":"a\"b\\c\n"}`, `Access denied: role "a\"b\\c\n" is not allowed`},
		{"CaseMatters", `{"role":"Anon"}`, `Access denied: role "Anon" is not allowed`},
		{"Padded", `{"role":" anon"}`, `Access denied: role " anon" is not allowed`},
		{"Number", `{"role":5}`, `Access denied: role 5 is not allowed`},
		{"Bool", `{"role":true}`, `Access denied: role true is not allowed`},
		{"Array", `{"role":["anon"]}`, `Access denied: role ["anon"] is not allowed`},
		{"Long", `{"role":"` + strings.Repeat("é", 40) + `"}`, `Access denied: role "` + strings.Repeat("é", 32) + `"… is not allowed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// With the secret and with a JWKS key: the signature is good, the role is not.
			for _, tok := range []string{
				sign(hs256Header, tc.payload),
				signedPayload(t, jwt.SigningMethodES256, k.ec, "ec-1", tc.payload),
			} {
				id, err := v.Verify(tok)
				require.ErrorIs(t, err, ErrRoleNotAllowed)
				require.NotErrorIs(t, err, ErrInvalidToken)
				require.Equal(t, Identity{}, id)
				require.Equal(t, tc.message, err.Error())
			}
		})
	}

	t.Run("BadSignatureIsNotARoleRefusal", func(t *testing.T) {
		t.Parallel()
		_, err := v.Verify(sign(hs256Header, `{"role":"postgres"}`, "another secret"))
		require.ErrorIs(t, err, ErrInvalidToken)
		require.Equal(t, "signature verification failed", err.Error())
	})

	t.Run("Configured", func(t *testing.T) {
		t.Parallel()
		v, err := New(Config{Secret: testSecret, AllowedRoles: []string{"authenticated", "editor"}})
		require.NoError(t, err)
		id, err := v.Verify(sign(hs256Header, `{"role":"editor"}`))
		require.NoError(t, err)
		require.Equal(t, "editor", id.Role)
		_, err = v.Verify(sign(hs256Header, `{"role":"service_role"}`))
		require.ErrorIs(t, err, ErrRoleNotAllowed)
		// A token without role asks for anon, which this list leaves out.
		_, err = v.Verify(sign(hs256Header, `{"sub":"u"}`))
		require.ErrorIs(t, err, ErrRoleNotAllowed)
		require.Equal(t, `Access denied: role "anon" is not allowed`, err.Error())
	})
}

// signedPayload signs payload verbatim with m and key under kid.
func signedPayload(t *testing.T, m jwt.SigningMethod, key any, kid, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	input := enc([]byte(`{"alg":"`+m.Alg()+`","kid":"`+kid+`","typ":"JWT"}`)) + "." + enc([]byte(payload))
	sig, err := m.Sign(input, key)
	require.NoError(t, err)
	return input + "." + enc(sig)
}
