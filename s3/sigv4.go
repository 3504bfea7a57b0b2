package s3

// AWS Signature Version 4 verification for the S3 door (S3.md §2.3–2.8).
//
// The expected signature is computed here with crypto/hmac and crypto/sha256 rather than with
// the AWS SDK's signer: the SDK decides by itself which headers it signs, while a verifier has
// to rebuild the canonical request over exactly the SignedHeaders list the client chose. The
// tests use the SDK signer as the client.
//
// Where this verifier is stricter than the reference, it follows AWS (clock skew, presigned
// expiry bounds, scope date); where the reference is lenient in ways honest clients rely on
// (region selection, never-signable headers, repeated query names), it keeps the reference.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// authConfig is what verification needs (filled from the environment by the door).
type authConfig struct {
	AccessKeyID, SecretKey string           // S3_PROTOCOL_ACCESS_KEY_ID / _SECRET; either "" = not configured
	TenantID               string           // session-token mode's access key id (PROJECT_REF/TENANT_ID, default "storage-single-tenant")
	AnonKey                string           // session-token mode's secret (the anon JWT string); "" = errMissingAnonKey
	Region                 string           // REGION / STORAGE_S3_REGION, may be ""
	EnforceRegion          bool             // S3_PROTOCOL_ENFORCE_REGION
	Prefix                 string           // S3_PROTOCOL_PREFIX (trailing '/' removed before use)
	AllowForwardedPrefix   bool             // REQUEST_ALLOW_X_FORWARDED_PATH: X-Forwarded-Prefix replaces Prefix
	PublicHost             string           // host[:port] of STORAGE_PUBLIC_URL ("" = none), §2.8
	AllowForwardedHeader   bool             // S3_ALLOW_FORWARDED_HEADER, §2.8
	NonCanonicalHostHeader string           // S3_PROTOCOL_NON_CANONICAL_HOST_HEADER, §2.8
	Now                    func() time.Time // nil = time.Now
}

// signed is a verified request's authentication.
type signed struct {
	Session     bool   // session-token mode: Token is the JWT the request runs as (the caller verifies the JWT)
	Token       string // the session token ("" in access-key mode)
	PayloadHash string // the declared payload hash as signed: hex sha256, "UNSIGNED-PAYLOAD", a STREAMING-… value, or "" when none was declared
	Presigned   bool
	// What aws-chunked chunk signatures need: the signing key, the seed signature, x-amz-date
	// as sent and the credential scope "<date>/<region>/s3/aws4_request".
	SigningKey []byte
	Seed       string
	Date       string
	Scope      string
}

const (
	sigAlgorithm    = "AWS4-HMAC-SHA256"
	amzDateLayout   = "20060102T150405Z"
	unsignedPayload = "UNSIGNED-PAYLOAD"
	// maxClockSkew is AWS's window for a header-signed request's x-amz-date, and how far in the
	// future a presigned URL's X-Amz-Date may lie.
	maxClockSkew = 15 * time.Minute
	// maxPresignExpires is AWS's cap on X-Amz-Expires: one week.
	maxPresignExpires = 604800
)

// neverSigned are the headers the reference leaves out of the canonical request even when the
// client listed them in SignedHeaders (S3.md §2.6): proxies add or rewrite them, so a request
// that signs one of them fails to verify.
var neverSigned = map[string]bool{
	"authorization": true, "connection": true, "expect": true, "from": true, "keep-alive": true,
	"max-forwards": true, "pragma": true, "referer": true, "te": true, "trailer": true,
	"transfer-encoding": true, "upgrade": true, "user-agent": true, "x-amzn-trace-id": true,
}

// sigRequest is a signature as parsed from the Authorization header or the query, before any
// credential check.
type sigRequest struct {
	presigned     bool
	accessKey     string
	scopeDate     string // yyyymmdd of the credential scope
	region        string
	service       string
	signedHeaders []string
	signature     string
	amzDate       string // x-amz-date / X-Amz-Date as sent
	token         string // session token, "" = access-key mode
	payload       string // declared payload hash, "" = none
}

// verify authenticates ctx's request (S3.md §2.3–2.8, with AWS's clock-skew and presigned
// expiry rules). Errors are from the catalogue in errors.go. It never reads the body.
func verify(ctx *fasthttp.RequestCtx, cfg *authConfig) (signed, *Error) {
	now := time.Now()
	if cfg.Now != nil {
		now = cfg.Now()
	}
	query := parseQuery(ctx.URI().QueryString())

	// 1. The signature source (§2.3) and its parse (§2.4).
	var (
		sr  sigRequest
		err *Error
	)
	auth := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	switch {
	case bytes.HasPrefix(auth, []byte(sigAlgorithm+" ")):
		sr, err = parseAuthHeader(ctx, string(auth[len(sigAlgorithm)+1:]), now)
	case query.has("X-Amz-Credential"):
		sr, err = parsePresigned(query, now)
	default:
		// A multipart/form-data POST without header or query signature is a browser form
		// upload (§2.5); POST policies are not verified here, so it has no usable signature.
		return signed{}, errMissingSignature
	}
	if err != nil {
		return signed{}, err
	}

	// 2 and 3. The credential mode and the scope.
	c, err := cfg.credentials(&sr)
	if err != nil {
		return signed{}, err
	}

	// 4. The signature (§2.6).
	canonical := canonicalRequest(ctx, cfg, &sr, query)
	sum := sha256.Sum256([]byte(canonical))
	stringToSign := sigAlgorithm + "\n" + sr.amzDate + "\n" + c.scope + "\n" + hex.EncodeToString(sum[:])
	expected, err := c.check(stringToSign, sr.signature)
	if err != nil {
		return signed{}, err
	}
	signingKey, scope := c.key, c.scope
	return signed{
		Session:     sr.token != "",
		Token:       sr.token,
		PayloadHash: sr.payload,
		Presigned:   sr.presigned,
		SigningKey:  signingKey,
		Seed:        expected,
		Date:        sr.amzDate,
		Scope:       scope,
	}, nil
}

// signingCreds are the key a signature must have been made with, once its credential scope
// passed.
type signingCreds struct {
	key      []byte // the SigV4 signing key
	scope    string // <date>/<region>/s3/aws4_request, with the region the signature is checked with
	mismatch *Error // what a wrong signature answers (the session variant names the token)
}

// credentials picks the credential mode (§2.2: a session token means tenant id + anon key) and
// checks the scope (§2.7).
func (cfg *authConfig) credentials(sr *sigRequest) (signingCreds, *Error) {
	key, secret, mismatch := cfg.AccessKeyID, cfg.SecretKey, errSignatureMismatch
	if sr.token != "" {
		if cfg.AnonKey == "" {
			return signingCreds{}, errMissingAnonKey
		}
		key, secret, mismatch = cfg.TenantID, cfg.AnonKey, errSessionMismatch
	} else if cfg.AccessKeyID == "" || cfg.SecretKey == "" {
		return signingCreds{}, errKeysNotConfigured
	}
	if sr.accessKey != key {
		return signingCreds{}, errInvalidAccessKey
	}
	if cfg.EnforceRegion && sr.region != cfg.Region {
		return signingCreds{}, errInvalidRegion
	}
	if sr.service != "s3" {
		return signingCreds{}, errInvalidService
	}
	region := sr.region
	switch region {
	case "auto", "us-east-1", "", cfg.Region:
	default:
		// The reference signs with its own region instead, so the client's signature (over
		// its region) does not match: a mismatch, not an Invalid Region.
		region = cfg.Region
	}
	// AWS rejects a scope date that is not x-amz-date's day as a bad signature.
	if len(sr.amzDate) < 8 || sr.scopeDate != sr.amzDate[:8] {
		return signingCreds{}, mismatch
	}
	return signingCreds{key: deriveSigningKey(secret, sr.scopeDate, region),
		scope: sr.scopeDate + "/" + region + "/s3/aws4_request", mismatch: mismatch}, nil
}

// check compares signature with the one stringToSign has under c, in constant time (response
// timing tells nothing about how much of a forged signature is right; a signature of another
// length just fails), and returns the expected one.
func (c signingCreds) check(stringToSign, signature string) (string, *Error) {
	expected := hex.EncodeToString(hmacSHA256(c.key, stringToSign))
	if subtle.ConstantTimeCompare([]byte(expected), []byte(signature)) != 1 {
		return "", c.mismatch
	}
	return expected, nil
}

// parseAuthHeader parses the Authorization header after "AWS4-HMAC-SHA256 " (§2.4).
func parseAuthHeader(ctx *fasthttp.RequestCtx, params string, now time.Time) (sigRequest, *Error) {
	// Items split on ','; name = text before the first '=', trimmed; value = text up to a
	// second '=', untrimmed (the reference's parse; a later item of the same name wins).
	var credential, signedHeaders, signature string
	for item := range strings.SplitSeq(params, ",") {
		name, value, _ := strings.Cut(item, "=")
		value, _, _ = strings.Cut(value, "=")
		switch strings.TrimSpace(name) {
		case "Credential":
			credential = value
		case "SignedHeaders":
			signedHeaders = value
		case "Signature":
			signature = value
		}
	}
	h := &ctx.Request.Header
	amzDate := string(h.Peek("X-Amz-Date"))
	if credential == "" || signedHeaders == "" || signature == "" || amzDate == "" {
		return sigRequest{}, errSignatureFormat
	}
	sr := sigRequest{
		signedHeaders: strings.Split(signedHeaders, ";"),
		signature:     signature,
		amzDate:       amzDate,
		token:         string(h.Peek("X-Amz-Security-Token")),
		payload:       string(h.Peek("X-Amz-Content-Sha256")),
	}
	if !sr.setCredential(credential) {
		return sigRequest{}, errCredentials
	}
	t, err := time.Parse(amzDateLayout, amzDate)
	if err != nil {
		return sigRequest{}, errSignatureFormat
	}
	// AWS's skew window (the reference has none, §2.10): bounds how long a captured request
	// can be replayed.
	if d := now.Sub(t); d > maxClockSkew || d < -maxClockSkew {
		return sigRequest{}, errTimeTooSkewed
	}
	return sr, nil
}

// parsePresigned parses a presigned URL's query (§2.4), expiry included, before any credential
// is looked at.
func parsePresigned(q query, now time.Time) (sigRequest, *Error) {
	credential, signedHeaders := q.get("X-Amz-Credential"), q.get("X-Amz-SignedHeaders")
	signature, amzDate := q.get("X-Amz-Signature"), q.get("X-Amz-Date")
	if credential == "" || signedHeaders == "" || signature == "" || amzDate == "" {
		return sigRequest{}, errSignatureFormat
	}
	sr := sigRequest{
		presigned:     true,
		signedHeaders: strings.Split(signedHeaders, ";"),
		signature:     signature,
		amzDate:       amzDate,
		token:         q.get("X-Amz-Security-Token"),
		payload:       q.get("X-Amz-Content-Sha256"),
	}
	if !sr.setCredential(credential) {
		return sigRequest{}, errCredentials
	}
	t, err := time.Parse(amzDateLayout, amzDate)
	if err != nil {
		return sigRequest{}, errSignatureFormat
	}
	// AWS's rules (the reference lets a URL without X-Amz-Expires live forever and puts no cap
	// on it): Expires is required, 0..604800 seconds.
	expires := q.get("X-Amz-Expires")
	if expires == "" {
		return sigRequest{}, errExpiresMissing
	}
	if !allDigits(expires) { // negative numbers included
		return sigRequest{}, errExpiration
	}
	seconds, err := strconv.Atoi(expires)
	if err != nil || seconds > maxPresignExpires { // err: all digits, so out of range
		return sigRequest{}, errExpiresTooLong
	}
	if t.Sub(now) > maxClockSkew {
		return sigRequest{}, errNotYetValid
	}
	if t.Add(time.Duration(seconds) * time.Second).Before(now) {
		return sigRequest{}, errExpired
	}
	return sr, nil
}

// setCredential splits "<accessKey>/<yyyymmdd>/<region>/<service>/aws4_request" (5th part
// unchecked, as in the reference); false when it is not 5 parts.
func (sr *sigRequest) setCredential(credential string) bool {
	parts := strings.Split(credential, "/")
	if len(parts) != 5 {
		return false
	}
	sr.accessKey, sr.scopeDate, sr.region, sr.service = parts[0], parts[1], parts[2], parts[3]
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// canonicalRequest builds the canonical request of §2.6.
func canonicalRequest(ctx *fasthttp.RequestCtx, cfg *authConfig, sr *sigRequest, q query) string {
	var b strings.Builder
	b.Grow(512)
	b.Write(ctx.Method())
	b.WriteByte('\n')

	// URI: prefix + the path exactly as received (the client signed what it sent; S3 clients
	// encode once and never normalise dot segments).
	prefix := cfg.Prefix
	if cfg.AllowForwardedPrefix {
		if p := ctx.Request.Header.Peek("X-Forwarded-Prefix"); len(p) > 0 {
			prefix = string(p)
		}
	}
	uri := strings.TrimRight(prefix, "/") + string(ctx.Request.URI().PathOriginal())
	if uri == "" {
		uri = "/"
	}
	b.WriteString(uri)
	b.WriteByte('\n')

	b.WriteString(q.canonical())
	b.WriteByte('\n')

	names := append([]string(nil), sr.signedHeaders...)
	sort.Strings(names)
	for _, name := range names {
		value, ok := canonicalHeaderValue(ctx, cfg, name)
		if !ok {
			continue
		}
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(value)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(names, ";"))
	b.WriteByte('\n')

	switch {
	case sr.presigned && string(ctx.Method()) == fasthttp.MethodGet:
		// A presigned GET is signed over UNSIGNED-PAYLOAD whatever it declares.
		b.WriteString(unsignedPayload)
	case sr.payload != "":
		b.WriteString(sr.payload)
	default:
		b.WriteString(unsignedPayload)
	}
	return b.String()
}

// canonicalHeaderValue is the value of a signed header in the canonical request; false drops
// the header's line (absent, or never signable).
func canonicalHeaderValue(ctx *fasthttp.RequestCtx, cfg *authConfig, name string) (string, bool) {
	lower := strings.ToLower(name)
	if neverSigned[lower] {
		return "", false
	}
	h := &ctx.Request.Header
	switch lower {
	case "host":
		host := canonicalHost(ctx, cfg)
		return host, host != ""
	case "accept-encoding":
		// CDNs rewrite Accept-Encoding and keep the client's in X-Original-Accept-Encoding.
		if v := h.PeekAll("X-Original-Accept-Encoding"); len(v) > 0 {
			return joinHeaderValues(v), true
		}
	}
	values := h.PeekAll(name)
	if len(values) == 0 {
		return "", false
	}
	return joinHeaderValues(values), true
}

// joinHeaderValues trims each value, collapses runs of spaces to one and joins repeated
// headers with ','. Collapsing is AWS's rule and what every SDK signs; the reference keeps
// inner runs, so clients that collapse (all of them) fail there on such values.
func joinHeaderValues(values [][]byte) string {
	if len(values) == 1 && !bytes.Contains(values[0], []byte("  ")) {
		return string(bytes.TrimSpace(values[0])) // the usual header: one value, single spaces
	}
	var b strings.Builder
	for i, v := range values {
		if i > 0 {
			b.WriteByte(',')
		}
		space := false
		for _, c := range bytes.TrimSpace(v) {
			if c == ' ' {
				if space {
					continue
				}
				space = true
			} else {
				space = false
			}
			b.WriteByte(c)
		}
	}
	return b.String()
}

// canonicalHost is the value the client signed as host (§2.8): the public URL's host, else
// what proxies say the client connected to, else Host.
func canonicalHost(ctx *fasthttp.RequestCtx, cfg *authConfig) string {
	if cfg.PublicHost != "" {
		return cfg.PublicHost
	}
	h := &ctx.Request.Header
	if cfg.AllowForwardedHeader {
		if host := forwardedHost(string(h.Peek("Forwarded"))); host != "" {
			return strings.ToLower(host)
		}
	}
	if cfg.NonCanonicalHostHeader != "" {
		if v := h.Peek(cfg.NonCanonicalHostHeader); len(v) > 0 {
			return strings.ToLower(string(v))
		}
	}
	if v := h.Peek("X-Forwarded-Host"); len(v) > 0 {
		host := strings.ToLower(string(v))
		if port := string(h.Peek("X-Forwarded-Port")); port != "" && port != "80" && port != "443" {
			// Replace a port already in the host; "]" keeps an IPv6 literal's colons.
			if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
				host = host[:i]
			}
			host += ":" + port
		}
		return host
	}
	return string(h.Host())
}

// forwardedHost is the first host= of an RFC 7239 Forwarded header, unquoted.
func forwardedHost(fwd string) string {
	for elem := range strings.SplitSeq(fwd, ",") {
		for pair := range strings.SplitSeq(elem, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(pair), "=")
			if strings.EqualFold(k, "host") {
				return strings.Trim(v, `"`)
			}
		}
	}
	return ""
}

// query is a request's query, decoded once, repeated names collapsed into one comma-joined
// value (the reference's canonicalisation, §2.6), in first-appearance order.
type query struct {
	names  []string
	values map[string]string
}

// parseQuery decodes a raw query string. '+' stays '+' (S3 clients encode a space as %20). A
// name or value that does not decode is kept as sent: it is then re-encoded ('%' → %25) and
// cannot match what the client signed, so it ends as a signature mismatch, never a 500.
func parseQuery(raw []byte) query {
	q := query{values: map[string]string{}}
	for piece := range strings.SplitSeq(string(raw), "&") {
		if piece == "" {
			continue
		}
		name, value, _ := strings.Cut(piece, "=")
		name, value = unescapeOnce(name), unescapeOnce(value)
		if prev, ok := q.values[name]; ok {
			q.values[name] = prev + "," + value
			continue
		}
		q.names = append(q.names, name)
		q.values[name] = value
	}
	return q
}

func unescapeOnce(s string) string {
	if d, err := url.PathUnescape(s); err == nil {
		return d
	}
	return s
}

func (q query) has(name string) bool { _, ok := q.values[name]; return ok }

func (q query) get(name string) string { return q.values[name] }

// canonical is the canonical query string: every parameter but X-Amz-Signature, RFC 3986
// encoded, sorted by encoded name (AWS's order, which the SDKs produce; the reference sorts
// decoded names, which differs only for names holding reserved characters).
func (q query) canonical() string {
	type pair struct{ name, value string }
	pairs := make([]pair, 0, len(q.names))
	for _, n := range q.names {
		if n == "X-Amz-Signature" {
			continue
		}
		pairs = append(pairs, pair{uriEncode(n), uriEncode(q.values[n])})
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].name < pairs[j].name })
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.name)
		b.WriteByte('=')
		b.WriteString(p.value)
	}
	return b.String()
}

// uriEncode percent-encodes everything but RFC 3986's unreserved characters, uppercase hex.
func uriEncode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	escapes := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			escapes++
		}
	}
	if escapes == 0 { // most names and values: nothing to encode, nothing to allocate
		return s
	}
	b := make([]byte, 0, len(s)+2*escapes)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
	}
	return string(b)
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// deriveSigningKey is SigV4's key chain: "AWS4"+secret → date → region → service → request.
// A key serves every request of its day: the chain's four HMACs run once per (secret, date,
// region), not per request.
func deriveSigningKey(secret, date, region string) []byte {
	id := signingKeyID{secret, date, region}
	signingKeys.Lock()
	k, ok := signingKeys.m[id]
	signingKeys.Unlock()
	if ok {
		return k
	}
	k = hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, "s3")
	k = hmacSHA256(k, "aws4_request")
	signingKeys.Lock()
	if len(signingKeys.m) >= maxSigningKeys { // dates and regions clients choose: bounded
		clear(signingKeys.m)
	}
	signingKeys.m[id] = k
	signingKeys.Unlock()
	return k
}

type signingKeyID struct{ secret, date, region string }

// maxSigningKeys bounds the cache: a few secrets × a few regions × today and yesterday.
const maxSigningKeys = 64

var signingKeys = struct {
	sync.Mutex
	m map[signingKeyID][]byte
}{m: map[signingKeyID][]byte{}}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
