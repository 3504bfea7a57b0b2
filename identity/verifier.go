package identity

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Identity is the verified caller of a request.
type Identity struct {
	Role   string // PostgreSQL role to run as: the JWT's role claim, anon when absent
	Sub    string // the sub claim, "" when absent
	Claims string // the JWT payload, verbatim JSON ("" for an anonymous request)
	Token  string // the raw token ("" for an anonymous request)
}

// Anonymous is the identity of a request without a token.
var Anonymous = Identity{Role: "anon"}

// DefaultRoles is the role allow-list when none is configured: the roles Supabase's clients
// and keys use.
var DefaultRoles = []string{"anon", "authenticated", "service_role"}

// Config is what a Verifier is built from (cmd/storage documents the environment variables).
type Config struct {
	// Secret is AUTH_JWT_SECRET: its UTF-8 bytes are the HMAC key of bearer tokens and, unless
	// JWKS has a urlSigningKey, of signed URLs. "" = none (then JWKS must have keys).
	Secret string
	// Algorithm is AUTH_JWT_ALGORITHM, the one algorithm Secret verifies bearer tokens with:
	// HS256 (the default when ""), HS384 or HS512.
	Algorithm string
	// JWKS is the parsed JWT_JWKS; nil = none.
	JWKS *JWKS
	// AllowedRoles is AUTH_ALLOWED_ROLES: the only roles a token may run as. nil =
	// DefaultRoles. "none" may not be listed: SET ROLE none is a reset to the connecting role.
	AllowedRoles []string
}

// Verifier checks bearer tokens and signed-URL tokens. It is safe for concurrent use.
type Verifier struct {
	bearer    *keySet
	url       *keySet // bearer's keys, the secret also for HS256, and the urlSigningKey
	parser    *jwt.Parser
	roles     map[string]bool
	urlSecret []byte
	urlKid    string
	verified  tokenCache
}

// New returns a Verifier for cfg. It fails when no key can verify a bearer token, on an
// unknown algorithm, and on an empty or unsafe role list.
func New(cfg Config) (*Verifier, error) {
	alg := cfg.Algorithm
	if alg == "" {
		alg = "HS256"
	}
	if alg != "HS256" && alg != "HS384" && alg != "HS512" {
		return nil, fmt.Errorf("algorithm %q: must be HS256, HS384 or HS512", alg)
	}
	if cfg.Secret == "" && !cfg.JWKS.HasKeys() {
		return nil, errors.New("no key to verify tokens with: set AUTH_JWT_SECRET or give JWT_JWKS keys")
	}
	roles := cfg.AllowedRoles
	if roles == nil {
		roles = DefaultRoles
	}
	if err := CheckRoles(roles); err != nil {
		return nil, err
	}
	// Strict decoding: base64url segments whose padding bits are not zero spell the same bytes
	// differently; such a token is not the one that was signed (see TestVerify).
	v := &Verifier{parser: jwt.NewParser(jwt.WithStrictDecoding()), roles: map[string]bool{}}
	for _, r := range roles {
		v.roles[r] = true
	}
	var bearer, url []key
	if cfg.Secret != "" {
		secret := []byte(cfg.Secret)
		bearer = append(bearer, key{algs: []string{alg}, key: secret, fallback: true})
		// The SQL API signs URLs HS256 whatever AUTH_JWT_ALGORITHM says.
		url = append(url, key{algs: uniq("HS256", alg), key: secret, fallback: true})
		v.urlSecret = secret
	}
	if cfg.JWKS != nil {
		bearer = append(bearer, cfg.JWKS.keys...)
		url = append(url, cfg.JWKS.keys...)
		if k := cfg.JWKS.urlSigning; k != nil {
			url = append(url, *k)
			v.urlSecret, v.urlKid = k.key.([]byte), k.kid
		}
	}
	v.bearer, v.url = newKeySet(bearer...), newKeySet(url...)
	return v, nil
}

func uniq(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

// URLSigningKey returns the HMAC secret signed URLs are to be minted with (HS256) and the kid
// their header should carry: JWT_JWKS's urlSigningKey when there is one, else AUTH_JWT_SECRET
// and no kid. The server stores the secret where the SQL API's signer reads it. The secret is
// nil when neither is configured (then no URL can be signed). The slice must not be modified.
func (v *Verifier) URLSigningKey() (secret []byte, kid string) { return v.urlSecret, v.urlKid }

// Verify checks a bearer token and returns the identity it carries. Failures are *Error:
// ErrInvalidToken with the message the reference's JWT library gives for the same failure,
// or ErrRoleNotAllowed for a valid token whose role is not in the allow-list.
func (v *Verifier) Verify(token string) (Identity, error) {
	if id, ok := v.verified.get(token, time.Now()); ok {
		return id, nil
	}
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.bearer.keyFunc); err != nil {
		return Identity{}, invalid(err)
	}
	id := Identity{Role: "anon", Token: token}
	switch r := claims["role"].(type) {
	case nil: // absent or null: anon, as the reference
	case string:
		if r != "" {
			id.Role = r
		}
	default:
		b, _ := json.Marshal(r)
		return Identity{}, roleRefused(string(b))
	}
	if !v.roles[id.Role] {
		return Identity{}, roleRefused(quoteRole(id.Role))
	}
	if s, ok := claims["sub"].(string); ok {
		id.Sub = s
	}
	// The payload verbatim: policies see exactly the claims that were signed.
	payload, err := base64.RawURLEncoding.DecodeString(token[strings.IndexByte(token, '.')+1 : strings.LastIndexByte(token, '.')])
	if err != nil {
		return Identity{}, &Error{Kind: ErrInvalidToken, Message: "Invalid Compact JWS", cause: err}
	}
	id.Claims = string(payload)
	var exp time.Time
	if e, err := claims.GetExpirationTime(); err == nil && e != nil {
		exp = e.Time
	}
	v.verified.put(token, id, exp)
	return id, nil
}

func roleRefused(role string) *Error {
	return &Error{Kind: ErrRoleNotAllowed, Message: "Access denied: role " + role + " is not allowed"}
}

// maxRoleShown bounds how much of a refused role a message repeats.
const maxRoleShown = 64

// quoteRole renders a role for a message: Go-quoted (control and invalid bytes escaped),
// cut at maxRoleShown bytes.
func quoteRole(r string) string {
	if len(r) <= maxRoleShown {
		return strconv.Quote(r)
	}
	cut := maxRoleShown
	for cut > 0 && !utf8.RuneStart(r[cut]) {
		cut--
	}
	return strconv.Quote(r[:cut]) + "…"
}

// tokenCacheSize bounds the verified-token cache: a few MiB at most, and far more distinct
// tokens than one server sees within their lifetimes in practice.
const tokenCacheSize = 4096

// tokenCache remembers tokens that passed verification. Clients send the same token with
// every request, and checking it again (signature, base64, JSON) is about a tenth of a small
// request's CPU with HMAC, and more with RSA or ECDSA. The key is the whole token, signature
// included, so only a token that was verified byte for byte is found; its exp is checked
// again on every hit, so a cached token stops working exactly when verifying it would start
// to fail (nbf needs no recheck: a token is cached only once it is valid, and stays so until
// exp). Only accepted tokens are cached (their role is allowed). When full, it starts over.
type tokenCache struct {
	mu sync.RWMutex
	m  map[string]cachedToken
}

type cachedToken struct {
	id  Identity
	exp time.Time // zero: no exp claim
}

func (c *tokenCache) get(token string, now time.Time) (Identity, bool) {
	c.mu.RLock()
	e, ok := c.m[token]
	c.mu.RUnlock()
	if !ok || !e.exp.IsZero() && !now.Before(e.exp) {
		return Identity{}, false
	}
	return e.id, true
}

func (c *tokenCache) put(token string, id Identity, exp time.Time) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= tokenCacheSize {
		c.m = make(map[string]cachedToken, 64)
	}
	c.m[token] = cachedToken{id: id, exp: exp}
	c.mu.Unlock()
}

// CheckRoles reports whether roles can be an allow-list: at least one role, none empty, and
// not "none" in any case (SET ROLE none runs as the connecting role, often a superuser).
func CheckRoles(roles []string) error {
	if len(roles) == 0 {
		return errors.New("the role allow-list is empty")
	}
	for _, r := range roles {
		switch {
		case r == "":
			return errors.New("an empty role name")
		case strings.EqualFold(r, "none"):
			return fmt.Errorf("%q is not a role: SET ROLE none runs as the connecting role", r)
		}
	}
	return nil
}
