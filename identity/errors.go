package identity

import (
	"errors"

	"github.com/golang-jwt/jwt/v5"
)

// The kinds of refusal. Every error Verify and VerifyURL return is an *Error whose Kind is
// one of these, so errors.Is(err, ErrInvalidToken) and friends tell them apart.
var (
	// ErrInvalidToken: the token is malformed, its alg is not accepted, no configured key
	// verifies its signature, or it is expired or not yet valid.
	ErrInvalidToken = errors.New("invalid token")
	// ErrRoleNotAllowed: a validly signed bearer token whose role claim is not in the
	// allow-list. It must be refused, never treated as "no token".
	ErrRoleNotAllowed = errors.New("role not allowed")
	// ErrWrongScope: a valid signed-URL token minted for the other use (download/upload).
	ErrWrongScope = errors.New("token not scoped for this use")
	// ErrWrongURL: a valid signed-URL token for another object.
	ErrWrongURL = errors.New("token for another object")
)

// Error is a refusal: its Kind (one of the Err* values) and the message a client is shown.
type Error struct {
	Kind    error
	Message string
	cause   error // the library's error, for logs and errors.Is; never shown
}

func (e *Error) Error() string { return e.Message }

// Is reports whether target is e's kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

func (e *Error) Unwrap() error { return e.cause }

// Internal causes the key function reports through golang-jwt, so jwtMessage can word them.
var (
	errAlgNotAllowed = errors.New("alg not accepted by any configured key")
	errNoKey         = errors.New("no configured key fits the token")
)

// invalid wraps a verification failure from golang-jwt as ErrInvalidToken with jose's wording.
func invalid(err error) *Error {
	return &Error{Kind: ErrInvalidToken, Message: jwtMessage(err), cause: err}
}

// jwtMessage words a verification failure as the reference's library (jose) does, since
// clients and tests match on these messages. A token no configured key can verify (an
// unknown key, a kid naming a key of another type) is a signature failure: the reference's
// own wording there is an artefact of its key lookup, not something clients match on.
func jwtMessage(err error) string {
	switch {
	case errors.Is(err, errAlgNotAllowed):
		return `"alg" (Algorithm) Header Parameter value not allowed`
	case errors.Is(err, errNoKey):
		return "signature verification failed"
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
