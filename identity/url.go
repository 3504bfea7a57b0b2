package identity

import (
	"encoding/json"
	"strconv"

	"github.com/golang-jwt/jwt/v5"
)

// URLClaims are the claims a signed-URL token carries (spec §4).
type URLClaims struct {
	URL    string     `json:"url"`   // "{bucket}/{key}" the token is for
	Scope  string     `json:"scope"` // "download" or "upload"; "" in legacy tokens
	Owner  string     `json:"owner"` // upload tokens: the signer's sub
	Upsert *bool      `json:"upsert"`
	Signer *URLSigner `json:"signer"` // upload tokens minted by storage.url_sign_upload
	// Transformations and Format: download tokens for /render/image/sign (storage.url_sign
	// with a transform): the rendering the token grants, in the reference's string form.
	Transformations string `json:"transformations"`
	Format          string `json:"format"`
	jwt.RegisteredClaims
}

// URLSigner is who signed an upload URL (storage.url_sign_upload records it): the upload is
// written as this identity, so the signer's policies decide on the row as it is when the bytes
// arrive, not only when the URL was made.
type URLSigner struct {
	Role   string          `json:"role"`
	Claims json.RawMessage `json:"claims"` // the signer's JWT claims (without its iat and exp); absent for a SQL caller without
}

// serviceRole is the role a signed upload without a signer is written as, as the reference
// writes every signed upload.
const serviceRole = "service_role"

// Uploader returns the identity a signed upload with claims c (and raw token) is written as:
// its signer's, whose role must be allowed like a bearer token's (ErrRoleNotAllowed). Tokens
// without a signer (minted before signers were recorded, or by a server sharing the secret)
// are written as service_role with the token's owner, as the reference does.
func (v *Verifier) Uploader(c *URLClaims, token string) (Identity, error) {
	if c.Signer == nil || c.Signer.Role == "" {
		return Identity{Role: serviceRole, Sub: c.Owner, Claims: `{"role":"service_role"}`, Token: token}, nil
	}
	if !v.roles[c.Signer.Role] {
		return Identity{}, roleRefused(quoteRole(c.Signer.Role))
	}
	id := Identity{Role: c.Signer.Role, Sub: c.Owner, Claims: string(c.Signer.Claims), Token: token}
	if len(c.Signer.Claims) == 0 || string(c.Signer.Claims) == "null" {
		id.Claims = `{"role":` + strconv.Quote(id.Role) + `}`
	}
	return id, nil
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
