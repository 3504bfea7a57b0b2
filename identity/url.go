package identity

import "github.com/golang-jwt/jwt/v5"

// URLClaims are the claims a signed-URL token carries (spec §4).
type URLClaims struct {
	URL    string `json:"url"`   // "{bucket}/{key}" the token is for
	Scope  string `json:"scope"` // "download" or "upload"; "" in legacy tokens
	Owner  string `json:"owner"` // upload tokens: the signer's sub
	Upsert *bool  `json:"upsert"`
	jwt.RegisteredClaims
}

// VerifyURL checks a signed-URL token for scope ("download" or "upload") and url
// ("{bucket}/{key}" of the request): signature and expiry (ErrInvalidToken, with the same
// messages as bearer tokens), then scope (ErrWrongScope; legacy tokens without one are told
// apart by their upsert claim), then url (ErrWrongURL).
//
// Keys: a token whose kid names the urlSigningKey (or a JWT_JWKS key) verifies with that
// key; a token without kid with AUTH_JWT_SECRET or the urlSigningKey, both HS256 (what the
// SQL API mints) as well as AUTH_JWT_ALGORITHM for the secret, or any JWT_JWKS key that fits
// its alg, as bearer tokens do. The role claim does not matter here: the token itself is the
// authorization.
func (v *Verifier) VerifyURL(token, scope, url string) (*URLClaims, error) {
	var c URLClaims
	if _, err := v.parser.ParseWithClaims(token, &c, v.url.keyFunc); err != nil {
		return nil, invalid(err)
	}
	legacy := c.Scope == "" && (c.Upsert != nil) == (scope == "upload")
	if c.Scope != scope && !legacy {
		return nil, &Error{Kind: ErrWrongScope, Message: "Token is not scoped for " + scope}
	}
	if c.URL != url {
		return nil, &Error{Kind: ErrWrongURL, Message: "Invalid signature"}
	}
	return &c, nil
}
