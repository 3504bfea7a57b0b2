package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// JWKS is a parsed JWT_JWKS: the keys bearer tokens may be signed with, and the optional key
// signed URLs are signed with.
type JWKS struct {
	keys       []key
	urlSigning *key // nil: signed URLs use AUTH_JWT_SECRET
}

// key is one verification key and the algorithms it may verify.
type key struct {
	kid  string
	algs []string // the token algs this key verifies; a token with another alg never gets it
	key  any      // []byte (oct), *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	// fallback marks the static secret: it also verifies HMAC tokens whose kid names no oct
	// key, as the reference does.
	fallback bool
}

// minRSABits is the smallest RSA modulus accepted, as jose requires for RS256/384/512.
const minRSABits = 2048

// ParseJWKS parses JWT_JWKS: a JSON object {"keys": [JWK…], "urlSigningKey": JWK}, both
// optional. Supported keys: RSA (RS256/384/512, at least 2048 bits), EC on P-256/P-384/P-521
// (ES256/384/512), OKP Ed25519 (EdDSA) and oct (HS256/384/512). A key's "alg", when given,
// must fit its type and is then the only algorithm it verifies; without "alg" it verifies
// every algorithm of its type. Private key material is accepted and only its public half
// kept. Keys marked for encryption ("use":"enc", or key_ops without "verify") are left out,
// as jose does. urlSigningKey must be an oct key: signed URLs are minted in SQL with HS256.
func ParseJWKS(data []byte) (*JWKS, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil || top == nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return nil, fmt.Errorf("not valid JSON: %w", err)
		}
		return nil, errors.New(`must be a JSON object {"keys": [JWK…], "urlSigningKey": JWK}`)
	}
	var raw struct {
		Keys          []json.RawMessage
		URLSigningKey json.RawMessage
	}
	if err := json.Unmarshal(top["keys"], &raw.Keys); len(top["keys"]) > 0 && err != nil {
		return nil, errors.New(`"keys" must be an array of JWKs`)
	}
	raw.URLSigningKey = top["urlSigningKey"]
	s := &JWKS{}
	for i, r := range raw.Keys {
		k, ok, err := parseKey(r)
		if err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, oneLine(err))
		}
		if ok {
			s.keys = append(s.keys, k)
		}
	}
	if len(raw.URLSigningKey) > 0 && !bytes.Equal(bytes.TrimSpace(raw.URLSigningKey), []byte("null")) {
		k, ok, err := parseKey(raw.URLSigningKey)
		if err != nil {
			return nil, fmt.Errorf("urlSigningKey: %w", oneLine(err))
		}
		if _, oct := k.key.([]byte); !ok || !oct || !slices.Contains(k.algs, "HS256") {
			return nil, errors.New(`urlSigningKey: must be an oct (HMAC) key usable with HS256: signed URLs are minted in SQL with HS256`)
		}
		k.algs = []string{"HS256"}
		s.urlSigning = &k
	}
	return s, nil
}

// oneLine keeps err's text on one line (jwkset joins errors with newlines), for the
// one-line configuration errors the server prints.
func oneLine(err error) error {
	if msg := err.Error(); strings.Contains(msg, "\n") {
		return errors.New(strings.ReplaceAll(msg, "\n", ": "))
	}
	return err
}

// HasKeys reports whether s has keys that verify bearer tokens.
func (s *JWKS) HasKeys() bool { return s != nil && len(s.keys) > 0 }

// HasURLSigningKey reports whether s has a urlSigningKey.
func (s *JWKS) HasURLSigningKey() bool { return s != nil && s.urlSigning != nil }

// hmacAlgs and rsaAlgs are the algorithms an oct or RSA key can verify (an EC key: ecAlgs).
var (
	hmacAlgs = []string{"HS256", "HS384", "HS512"}
	rsaAlgs  = []string{"RS256", "RS384", "RS512"}
)

// parseKey parses one JWK. ok is false for a key that is not for signatures.
func parseKey(raw json.RawMessage) (key, bool, error) {
	j, err := jwkset.NewJWKFromRawJSON(raw, jwkset.JWKMarshalOptions{Private: true}, jwkset.JWKValidateOptions{})
	if err != nil {
		return key{}, false, err
	}
	m := j.Marshal()
	if m.USE == jwkset.UseEnc || len(m.KEYOPS) > 0 && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify) {
		return key{}, false, nil
	}
	k := key{kid: m.KID}
	var fits []string
	switch pk := j.Key().(type) {
	case []byte:
		if len(pk) == 0 {
			return key{}, false, errors.New(`oct key with an empty "k"`)
		}
		k.key, fits = pk, hmacAlgs
	case *rsa.PrivateKey:
		k.key, fits = &pk.PublicKey, rsaAlgs
	case *rsa.PublicKey:
		k.key, fits = pk, rsaAlgs
	case *ecdsa.PrivateKey:
		k.key, fits = &pk.PublicKey, ecAlgs(pk.Curve)
	case *ecdsa.PublicKey:
		k.key, fits = pk, ecAlgs(pk.Curve)
	case ed25519.PrivateKey:
		k.key, fits = pk.Public().(ed25519.PublicKey), []string{"EdDSA"}
	case ed25519.PublicKey:
		k.key, fits = pk, []string{"EdDSA"}
	default:
		return key{}, false, fmt.Errorf("unsupported key type %q (RSA, EC, OKP Ed25519 and oct are)", m.KTY)
	}
	if r, ok := k.key.(*rsa.PublicKey); ok {
		if r.N.BitLen() < minRSABits {
			return key{}, false, fmt.Errorf("RSA key of %d bits: at least %d are required", r.N.BitLen(), minRSABits)
		}
		// Refused here rather than on every token: crypto/rsa would not verify with it.
		if r.E < 3 || r.E&1 == 0 || r.E > 1<<31-1 {
			return key{}, false, fmt.Errorf("RSA key with public exponent %d: it must be odd, from 3 to 2^31-1", r.E)
		}
	}
	if len(fits) == 0 {
		return key{}, false, errors.New("unsupported EC curve (P-256, P-384 and P-521 are)")
	}
	k.algs = fits
	if m.ALG != "" {
		if !slices.Contains(fits, string(m.ALG)) {
			return key{}, false, fmt.Errorf("alg %q does not fit a %s key (%v do)", m.ALG, m.KTY, fits)
		}
		k.algs = []string{string(m.ALG)}
	}
	return k, true, nil
}

// ecAlgs is the one algorithm a curve's keys verify.
func ecAlgs(c elliptic.Curve) []string {
	switch c {
	case elliptic.P256():
		return []string{"ES256"}
	case elliptic.P384():
		return []string{"ES384"}
	case elliptic.P521():
		return []string{"ES512"}
	}
	return nil
}

// keySet is what one kind of token verifies with: the keys, and every alg one of them accepts.
type keySet struct {
	keys []key
	algs map[string]bool
}

func newKeySet(keys ...key) *keySet {
	s := &keySet{keys: keys, algs: map[string]bool{}}
	for _, k := range keys {
		for _, a := range k.algs {
			s.algs[a] = true
		}
	}
	return s
}

// keyFunc selects the keys for t, for golang-jwt: refuses an alg no key accepts (alg "none"
// among them) before anything else; a token with a kid gets the keys with that kid that fit
// its alg (an HMAC token whose kid names no oct key gets the static secret, as the
// reference); a token without kid gets every key that fits its alg.
func (s *keySet) keyFunc(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if !s.algs[alg] {
		return nil, errAlgNotAllowed
	}
	kid, hasKid := "", false
	if v, ok := t.Header["kid"]; ok {
		if kid, hasKid = v.(string); !hasKid {
			return nil, errNoKey
		}
	}
	var found []jwt.VerificationKey
	for _, k := range s.keys {
		if slices.Contains(k.algs, alg) && (!hasKid || k.kid == kid) {
			found = append(found, k.key)
		}
	}
	if len(found) == 0 && hasKid {
		for _, k := range s.keys {
			if k.fallback && slices.Contains(k.algs, alg) {
				found = append(found, k.key)
			}
		}
	}
	switch len(found) {
	case 0:
		return nil, errNoKey
	case 1:
		return found[0], nil
	}
	return jwt.VerificationKeySet{Keys: found}, nil
}
