// Package identity is the one identity of every protocol door: it turns what a caller presents
// (a bearer JWT, or a signed-URL token) into the PostgreSQL role and claims a request runs
// with. The REST API (proxy) uses it now; the TUS, S3 and image-render doors use the same
// Verifier, so a token, a key or a role rule means the same thing whichever door it comes in
// through.
//
// What it decides:
//
//   - Keys. Bearer tokens verify with the HMAC secret (AUTH_JWT_SECRET with
//     AUTH_JWT_ALGORITHM, the key being the secret's UTF-8 bytes) and with the keys of a static
//     JSON Web Key Set (JWT_JWKS: RSA, EC P-256/384/521, Ed25519 and oct keys), selected by the
//     token's kid; a token without kid tries every key that fits its alg. All JWT work is
//     github.com/golang-jwt/jwt/v5; JWKs are parsed by github.com/MicahParks/jwkset. Nothing
//     here does cryptography by hand.
//   - Refusals, worded as the reference's JWT library (jose) words them, since clients match
//     on these messages. alg "none" and algorithms no configured key has are refused before
//     any key is tried; a key is only ever used with the algorithms of its type (an RSA key
//     never verifies an HS256 token, so a token "signed" with a public key as HMAC secret
//     fails). See Error and the Err* kinds.
//   - Roles. Only roles in the allow-list (default anon, authenticated, service_role) reach
//     PostgreSQL's SET ROLE. A validly signed token asking for another role ("postgres",
//     "none", which would reset to the connecting role, or a role that does not exist) is
//     refused before any database work, with ErrRoleNotAllowed.
//   - Signed-URL tokens. They are minted in SQL (HS256 with the secret the server stores in
//     storage.signing_key), so the URL signing key is an HMAC secret: JWT_JWKS's urlSigningKey
//     when it is an oct key, otherwise AUTH_JWT_SECRET. URLSigningKey tells the server what to
//     store; VerifyURL checks such a token with the same key machinery as bearer tokens, plus
//     that key.
//
// The package knows nothing of HTTP: each door maps the Err* kinds onto its own wire errors
// (the REST API: AccessDenied for bearer tokens, InvalidJWT/InvalidSignature for URL tokens,
// HTTP 403 for a refused role).
package identity
