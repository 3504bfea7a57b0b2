package proxy

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Identity is the verified caller of a request.
type Identity struct {
	Role   string // PostgreSQL role to run as: the JWT's role claim, anon when absent
	Sub    string // the sub claim, "" when absent
	Claims string // the JWT payload, verbatim JSON ("" for an anonymous request)
	Token  string // the raw token ("" for an anonymous request)
}

// anonymous is the identity of a request without a token on routes that allow one.
var anonymous = Identity{Role: "anon"}

// Verifier checks bearer tokens: HMAC with the configured secret and algorithm; exp and nbf
// when present (exp is not required, as in the reference); no alg none, no other algorithm.
type Verifier struct {
	secret    []byte
	parser    *jwt.Parser
	urlParser *jwt.Parser // signed-URL tokens: the SQL API signs them HS256 whatever alg is
	verified  tokenCache
}

// NewVerifier returns a Verifier for secret (its UTF-8 bytes are the key) and alg (HS256,
// HS384 or HS512).
func NewVerifier(secret, alg string) *Verifier {
	return &Verifier{
		secret:    []byte(secret),
		parser:    jwt.NewParser(jwt.WithValidMethods([]string{alg})),
		urlParser: jwt.NewParser(jwt.WithValidMethods([]string{"HS256", alg})),
	}
}

// tokenFromHeader strips a leading "Bearer" (any case) and whitespace; a bare token is
// accepted too, as the reference does.
func tokenFromHeader(h []byte) string {
	h = bytes.TrimSpace(h)
	if len(h) > 6 && strings.EqualFold(string(h[:6]), "bearer") && (h[6] == ' ' || h[6] == '\t') {
		h = bytes.TrimSpace(h[7:])
	}
	return string(h)
}

// Verify checks token and returns the identity it carries. Failures are AccessDenied with the
// message the reference's JWT library gives for the same failure.
func (v *Verifier) Verify(token string) (Identity, error) {
	if id, ok := v.verified.get(token, time.Now()); ok {
		return id, nil
	}
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return v.secret, nil })
	if err != nil {
		return Identity{}, ErrAccessDenied.with(jwtMessage(err))
	}
	id := Identity{Role: "anon", Token: token}
	if r, ok := claims["role"].(string); ok && r != "" {
		id.Role = r
	}
	if s, ok := claims["sub"].(string); ok {
		id.Sub = s
	}
	// The payload verbatim: policies see exactly the claims that were signed.
	payload, err := base64.RawURLEncoding.DecodeString(token[strings.IndexByte(token, '.')+1 : strings.LastIndexByte(token, '.')])
	if err != nil {
		return Identity{}, ErrAccessDenied.with("Invalid Compact JWS")
	}
	id.Claims = string(payload)
	var exp time.Time
	if e, err := claims.GetExpirationTime(); err == nil && e != nil {
		exp = e.Time
	}
	v.verified.put(token, id, exp)
	return id, nil
}

// tokenCacheSize bounds the verified-token cache: a few MiB at most, and far more distinct
// tokens than one server sees within their lifetimes in practice.
const tokenCacheSize = 4096

// tokenCache remembers tokens that passed verification. Clients send the same token with
// every request, and checking it again (HMAC, base64, JSON) is about a tenth of a small
// request's CPU. The key is the whole token, signature included, so only a token that was
// verified byte for byte is found; its exp is checked again on every hit, so a cached token
// stops working exactly when verifying it would start to fail (nbf needs no recheck: a token
// is cached only once it is valid, and stays so until exp). When full, the cache starts over.
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

// jwtMessage words a verification failure as the reference's library (jose) does, since
// clients and tests match on these messages.
func jwtMessage(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "Invalid Compact JWS"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "signature verification failed"
	case errors.Is(err, jwt.ErrTokenExpired):
		return `"exp" claim timestamp check failed`
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return `"nbf" claim timestamp check failed`
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return `"alg" (Algorithm) Header Parameter value not allowed`
	default:
		return "Invalid JWT"
	}
}
