package proxy

import (
	"bytes"
	"errors"
	"strings"

	"github.com/pgstorage/storage/identity"
)

// Identity is the verified caller of a request (package identity decides it).
type Identity = identity.Identity

// anonymous is the identity of a request without a token on routes that allow one.
var anonymous = identity.Anonymous

// ErrRoleNotAllowed: a validly signed token whose role is not in the allow-list. An explicit
// HTTP 403, like ErrInvalidRole: the caller is known and refused, and no database work is
// done for it.
var ErrRoleNotAllowed = &Error{Status: 403, Code: "AccessDenied", Label: "Unauthorized", Message: "Access denied", HTTPStatus: 403}

// tokenFromHeader strips a leading "Bearer" (any case) and whitespace; a bare token is
// accepted too, as the reference does.
func tokenFromHeader(h []byte) string {
	h = bytes.TrimSpace(h)
	if len(h) > 6 && strings.EqualFold(string(h[:6]), "bearer") && (h[6] == ' ' || h[6] == '\t') {
		h = bytes.TrimSpace(h[7:])
	}
	return string(h)
}

// verifyURLToken checks a signed-URL token for scope and the request's bucket/key.
func (s *Server) verifyURLToken(token, scope, url string) (*identity.URLClaims, error) {
	c, err := s.verifier.VerifyURL(token, scope, url)
	if err != nil {
		return nil, authError(err, true)
	}
	return c, nil
}

// authError is the one place identity's refusals become REST errors: an invalid bearer token
// is AccessDenied (HTTP 400, body 403), an invalid signed-URL token InvalidJWT, a token for
// another use or object InvalidSignature, and a refused role HTTP 403. Messages are
// identity's (the reference's wording).
func authError(err error, urlToken bool) *Error {
	var e *identity.Error
	if !errors.As(err, &e) {
		return internalError(err)
	}
	switch {
	case errors.Is(err, identity.ErrRoleNotAllowed):
		return ErrRoleNotAllowed.with(e.Message)
	case errors.Is(err, identity.ErrInvalidToken) && urlToken:
		return &Error{Status: 400, Code: "InvalidJWT", Message: e.Message}
	case errors.Is(err, identity.ErrInvalidToken):
		return ErrAccessDenied.with(e.Message)
	case errors.Is(err, identity.ErrWrongScope), errors.Is(err, identity.ErrWrongURL):
		return ErrInvalidSignature.with(e.Message)
	}
	return internalError(err)
}
