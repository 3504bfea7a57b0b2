package tests

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/s3"
)

// The S3 door's wire contract (S3.md §8), assertion by assertion: a small raw client builds
// each request with net/http, signs it with the AWS SDK's v4 signer the way the SDK's S3
// client does (path-style, no second escaping of the path), sends it to the real server and
// compares the status line, the headers the contract names and the body byte for byte. Each
// case names its §8 assertion; where this server deliberately answers otherwise than the
// reference, the case says so next to the number.

// s3Creds is who signs a request: an access key pair, plus a session token in session mode.
type s3Creds struct{ key, secret, token string }

// s3Keys is the server-wide key pair (requests run as the service role).
var s3Keys = s3Creds{s3TestAccessKey, s3TestSecretKey, ""}

// s3Session is session-token mode: the tenant id and anon key sign, token is who the request
// runs as.
func (b *httpBundle) s3Session(token string) s3Creds {
	return s3Creds{s3.DefaultTenantID, b.anon, token}
}

// s3Req is one request as a client builds it.
type s3Req struct {
	b       *httpBundle
	method  string
	target  string // path and query exactly as sent, e.g. "/s3/b/k?tagging"
	header  [][2]string
	body    string
	creds   s3Creds
	region  string
	service string
	at      time.Time
	// payload is the payload hash signed and (header mode) declared in x-amz-content-sha256;
	// "" = the body's SHA-256 (header mode) or UNSIGNED-PAYLOAD (presigned).
	payload string
	// expires is a presigned URL's X-Amz-Expires: "" = 100, "-" = none.
	expires string
	// prepare runs on the request before signing, tamper after it.
	prepare, tamper func(*http.Request)
}

// s3 starts a request to the test server, signed with the server-wide keys, now.
func (b *httpBundle) s3(method, target string) *s3Req {
	return &s3Req{b: b, method: method, target: target, creds: s3Keys, region: s3TestRegion, service: "s3",
		at: time.Now()}
}

func (r *s3Req) h(name, value string) *s3Req {
	r.header = append(r.header, [2]string{name, value})
	return r
}

func (r *s3Req) with(body string) *s3Req { r.body = body; return r }

func (r *s3Req) as(c s3Creds) *s3Req { r.creds = c; return r }

// request is the unsigned request.
func (r *s3Req) request(t *testing.T) *http.Request {
	t.Helper()
	req, err := http.NewRequest(r.method, r.b.baseURL+r.target, strings.NewReader(r.body))
	require.NoError(t, err)
	if r.body == "" {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	for _, h := range r.header {
		req.Header.Add(h[0], h[1])
	}
	if r.prepare != nil {
		r.prepare(req)
	}
	return req
}

// s3Signer signs as the SDK's S3 client: the path as sent, not escaped a second time.
func s3Signer() *v4.Signer {
	return v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
}

func (r *s3Req) credentials() aws.Credentials {
	return aws.Credentials{AccessKeyID: r.creds.key, SecretAccessKey: r.creds.secret, SessionToken: r.creds.token}
}

// send signs the request in the Authorization header, declaring its payload hash, and sends it.
func (r *s3Req) send(t *testing.T) httpResponse {
	t.Helper()
	req := r.request(t)
	payload := r.payload
	if payload == "" {
		payload = sha256Hex(r.body)
	}
	req.Header.Set("X-Amz-Content-Sha256", payload)
	require.NoError(t, s3Signer().SignHTTP(context.Background(), r.credentials(), req, payload, r.service, r.region, r.at))
	return r.do(t, req)
}

// presigned signs the request in its query, as the SDK's presign client does, and sends it.
func (r *s3Req) presigned(t *testing.T) httpResponse {
	t.Helper()
	req := r.request(t)
	switch r.expires {
	case "-":
	case "":
		req.URL.RawQuery = joinRawQuery(req.URL.RawQuery, "X-Amz-Expires=100")
	default:
		req.URL.RawQuery = joinRawQuery(req.URL.RawQuery, "X-Amz-Expires="+r.expires)
	}
	payload := r.payload
	if payload == "" {
		payload = "UNSIGNED-PAYLOAD"
	}
	signed, _, err := s3Signer().PresignHTTP(context.Background(), r.credentials(), req, payload, r.service, r.region, r.at)
	require.NoError(t, err)
	u, err := url.Parse(signed)
	require.NoError(t, err)
	require.NotContains(t, u.RawQuery, "X-Amz-Content-Sha256", "presigned URLs carry no payload hash")
	req.URL.RawQuery = u.RawQuery
	return r.do(t, req)
}

// unsigned sends the request as built.
func (r *s3Req) unsigned(t *testing.T) httpResponse {
	t.Helper()
	return r.do(t, r.request(t))
}

func (r *s3Req) do(t *testing.T, req *http.Request) httpResponse {
	t.Helper()
	if r.tamper != nil {
		r.tamper(req)
	}
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return httpResponse{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

func joinRawQuery(q, param string) string {
	if q == "" {
		return param
	}
	return q + "&" + param
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// s3Escape encodes a key as S3 clients put it in a path: every byte but RFC 3986's unreserved
// characters and '/' percent-encoded.
func s3Escape(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	return b.String()
}

// The XML every S3 document starts with (S3.md §3.1).
const (
	s3Decl = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>`
	s3NS   = `http://s3.amazonaws.com/doc/2006-03-01/`
	s3XML  = "application/xml; charset=utf-8"
)

// s3Doc is a whole document: the declaration, then root carrying the namespace around inner
// (self-closing when inner is empty).
func s3Doc(root, inner string) string {
	if inner == "" {
		return s3Decl + `<` + root + ` xmlns="` + s3NS + `"/>`
	}
	return s3Decl + `<` + root + ` xmlns="` + s3NS + `">` + inner + `</` + root + `>`
}

// s3ErrDoc is the error document (S3.md §3.2): Resource, Code, Message, nothing else.
func s3ErrDoc(resource, code, message string) string {
	res := `<Resource/>`
	if resource != "" {
		res = `<Resource>` + resource + `</Resource>`
	}
	return s3Doc("Error", res+`<Code>`+code+`</Code><Message>`+message+`</Message>`)
}

// s3Stamp matches the XML timestamps (ISO 8601 UTC with milliseconds), which requireS3XML
// replaces by TIME before comparing: a timestamp in another form is left as is and fails.
var s3Stamp = regexp.MustCompile(`<(LastModified|CreationDate)>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z</(?:LastModified|CreationDate)>`)

// requireS3XML asserts an XML response: status, Content-Type and the body byte for byte
// (timestamps as TIME).
func requireS3XML(t *testing.T, r httpResponse, status int, want string) {
	t.Helper()
	require.Equal(t, status, r.Status, "body: %s", r.Body)
	require.Equal(t, s3XML, r.Header.Get("Content-Type"), "body: %s", r.Body)
	require.Equal(t, want, s3Stamp.ReplaceAllString(string(r.Body), "<$1>TIME</$1>"))
}

// requireS3Error asserts an error document with its own status line.
func requireS3Error(t *testing.T, r httpResponse, status int, resource, code, message string) {
	t.Helper()
	requireS3XML(t, r, status, s3ErrDoc(resource, code, message))
}

// requireS3Empty asserts a response without a body.
func requireS3Empty(t *testing.T, r httpResponse, status int) {
	t.Helper()
	require.Equal(t, status, r.Status, "body: %s", r.Body)
	require.Empty(t, r.Body)
}

// s3Put stores key in bucket through the door with the server-wide keys and returns the ETag.
func (b *httpBundle) s3Put(t *testing.T, bucket, key, body string, header ...[2]string) string {
	t.Helper()
	r := b.s3("PUT", "/s3/"+bucket+"/"+s3Escape(key)).with(body)
	r.header = header
	resp := r.send(t)
	requireS3Empty(t, resp, http.StatusOK)
	require.Equal(t, `"`+md5Hex(body)+`"`, resp.Header.Get("ETag"))
	return resp.Header.Get("ETag")
}

// s3Bucket creates a bucket through the door.
func (b *httpBundle) s3Bucket(t *testing.T, bucket string) {
	t.Helper()
	requireS3Empty(t, b.s3("PUT", "/s3/"+bucket).send(t), http.StatusOK)
}

// objectRow reports whether storage.objects holds bucket/key (read as the tables' owner).
func (b *httpBundle) objectRow(t *testing.T, bucket, key string) bool {
	t.Helper()
	var n int
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		`select count(*) from storage.objects where bucket_id = $1 and name = $2`, bucket, key).Scan(&n))
	return n == 1
}

// blobCount is how many blobs and upload leftovers the server's store holds.
func (b *httpBundle) blobCount(t *testing.T) int {
	t.Helper()
	n := 0
	require.NoError(t, b.blobs.List(context.Background(), "", func(blob.Info) error { n++; return nil }))
	require.NoError(t, b.blobs.Leftovers(context.Background(), func(blob.Leftover) error { n++; return nil }))
	return n
}

// s3Case is one assertion: a request and the whole answer expected.
type s3Case struct {
	name   string // "<§8 number> <what>"
	send   func(t *testing.T) httpResponse
	status int
	body   string            // exact body; "" = none
	xml    bool              // the body is an XML document (Content-Type checked, timestamps TIME)
	header map[string]string // headers that must have exactly these values ("" = absent)
	check  func(t *testing.T, r httpResponse)
}

func runS3Cases(t *testing.T, cases []s3Case) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := c.send(t)
			if c.xml {
				requireS3XML(t, r, c.status, c.body)
			} else {
				require.Equal(t, c.status, r.Status, "body: %s", r.Body)
				require.Equal(t, c.body, string(r.Body))
			}
			for k, v := range c.header {
				require.Equal(t, v, r.Header.Get(k), "header %s", k)
			}
			if c.check != nil {
				c.check(t, r)
			}
		})
	}
}

// errCase is a case answered with an error document.
func errCase(name string, send func(t *testing.T) httpResponse, status int, resource, code, message string) s3Case {
	return s3Case{name: name, send: send, status: status, body: s3ErrDoc(resource, code, message), xml: true}
}

const (
	msgSigMismatch     = "The request signature we calculated does not match the signature you provided. Check your key and signing method."
	msgSessionMismatch = "The request signature we calculated does not match the signature you provided, Check your credentials. The session token should be a valid JWT token"
)

// TestS3WireAuth: §8 assertions 1–21, authentication in all three places a signature can
// be (none, the Authorization header, the query) and both credential modes.
func TestS3WireAuth(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	b.s3Bucket(t, "b")
	b.s3Put(t, "b", "k", "stored")
	now := time.Now()
	amzDate := now.UTC().Format("20060102T150405Z")
	serviceJWT := mintJWT(t, "service_role")

	runS3Cases(t, []s3Case{
		errCase("01 no signature", func(t *testing.T) httpResponse { return b.s3("GET", "/s3/").unsigned(t) },
			403, "", "AccessDenied", "Missing signature"),
		errCase("02 bearer token only", func(t *testing.T) httpResponse {
			return b.s3("GET", "/s3/b/k").h("Authorization", "Bearer x").unsigned(t)
		}, 403, "b/k", "AccessDenied", "Missing signature"),
		errCase("03 unknown access key", func(t *testing.T) httpResponse {
			return b.s3("GET", "/s3/").as(s3Creds{"wrong", s3TestSecretKey, ""}).send(t)
		}, 403, "", "AccessDenied", "Invalid Access Key"),
		errCase("04 wrong secret", func(t *testing.T) httpResponse {
			return b.s3("GET", "/s3/").as(s3Creds{s3TestAccessKey, "wrong", ""}).send(t)
		}, 403, "", "SignatureDoesNotMatch", msgSigMismatch),
		errCase("05 service sts", func(t *testing.T) httpResponse {
			r := b.s3("GET", "/s3/")
			r.service = "sts"
			return r.send(t)
		}, 403, "", "AccessDenied", "Invalid Service"),
		{name: "06 region auto", send: func(t *testing.T) httpResponse {
			r := b.s3("GET", "/s3/")
			r.region = "auto"
			return r.send(t)
		}, status: 200, xml: true, body: s3Doc("ListAllMyBucketsResult",
			`<Buckets><Bucket><Name>b</Name><CreationDate>TIME</CreationDate></Bucket></Buckets>`)},
		errCase("06 region eu-west-1", func(t *testing.T) httpResponse {
			r := b.s3("GET", "/s3/")
			r.region = "eu-west-1"
			return r.send(t)
		}, 403, "", "SignatureDoesNotMatch", msgSigMismatch),
		errCase("07 no x-amz-date", func(t *testing.T) httpResponse {
			return b.s3("GET", "/s3/").
				h("Authorization", "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=x").unsigned(t)
		}, 400, "", "InvalidSignature", "Invalid signature format"),
		errCase("08 credential of 4 parts", func(t *testing.T) httpResponse {
			return b.s3("GET", "/s3/").h("X-Amz-Date", amzDate).
				h("Authorization", "AWS4-HMAC-SHA256 Credential=a/b/c/d, SignedHeaders=host, Signature=x").unsigned(t)
		}, 400, "", "InvalidSignature", "Invalid credentials"),
		// 9, deliberately not the reference (which accepts any date): AWS's 15-minute window.
		errCase("09 dated 20 years ago", func(t *testing.T) httpResponse {
			r := b.s3("GET", "/s3/")
			r.at = now.AddDate(-20, 0, 0)
			return r.send(t)
		}, 403, "", "RequestTimeTooSkewed", "The difference between the request time and the server's time is too large."),
		errCase("09 dated 20 minutes ahead", func(t *testing.T) httpResponse {
			r := b.s3("GET", "/s3/")
			// From the clock as the case runs: parallel cases may start minutes after now.
			r.at = time.Now().Add(20 * time.Minute)
			return r.send(t)
		}, 403, "", "RequestTimeTooSkewed", "The difference between the request time and the server's time is too large."),
		errCase("10 user-agent signed", func(t *testing.T) httpResponse {
			r := b.s3("GET", "/s3/")
			// The SDK never signs User-Agent; a lower-case map key slips past its rule, and the
			// header is sent once, under its usual name, after signing.
			r.prepare = func(req *http.Request) { req.Header["user-agent"] = []string{"wire-test/1"} }
			r.tamper = func(req *http.Request) {
				delete(req.Header, "user-agent")
				req.Header.Set("User-Agent", "wire-test/1")
				require.Contains(t, req.Header.Get("Authorization"), "user-agent")
			}
			return r.send(t)
		}, 403, "", "SignatureDoesNotMatch", msgSigMismatch),
		{name: "11 presigned GetBucketVersioning", send: func(t *testing.T) httpResponse {
			return b.s3("GET", "/s3/b?versioning").presigned(t)
		}, status: 200, xml: true, body: s3Doc("VersioningConfiguration", `<Status>Suspended</Status><MfaDelete>Disabled</MfaDelete>`)},
		{name: "11 presigned with a bearer token", send: func(t *testing.T) httpResponse {
			r := b.s3("GET", "/s3/b?versioning")
			r.tamper = func(req *http.Request) { req.Header.Set("Authorization", "Bearer x") }
			return r.presigned(t)
		}, status: 200, xml: true, body: s3Doc("VersioningConfiguration", `<Status>Suspended</Status><MfaDelete>Disabled</MfaDelete>`)},
		errCase("12 presigned URL expired", func(t *testing.T) httpResponse {
			// Signed 10 s ago for 1 s: expired without waiting.
			r := b.s3("GET", "/s3/b?versioning")
			r.at, r.expires = now.Add(-10*time.Second), "1"
			return r.presigned(t)
		}, 400, "b", "ExpiredToken", "The provided token has expired."),
		// 12, deliberately not the reference (whose URL without X-Amz-Expires never expires and
		// which has no cap): AWS's bounds.
		errCase("12 presigned without X-Amz-Expires", func(t *testing.T) httpResponse {
			r := b.s3("GET", "/s3/b?versioning")
			r.expires = "-"
			return r.presigned(t)
		}, 400, "b", "AuthorizationQueryParametersError", "X-Amz-Expires must be present"),
		errCase("12 presigned for more than a week", func(t *testing.T) httpResponse {
			r := b.s3("GET", "/s3/b?versioning")
			r.expires = "604801"
			return r.presigned(t)
		}, 400, "b", "AuthorizationQueryParametersError", "X-Amz-Expires must be less than a week (in seconds) that is 604800"),
		{name: "12 presigned for exactly a week", send: func(t *testing.T) httpResponse {
			r := b.s3("GET", "/s3/b?versioning")
			r.expires = "604800"
			return r.presigned(t)
		}, status: 200, xml: true, body: s3Doc("VersioningConfiguration", `<Status>Suspended</Status><MfaDelete>Disabled</MfaDelete>`)},
		errCase("13 negative X-Amz-Expires", func(t *testing.T) httpResponse {
			r := b.s3("GET", "/s3/b?versioning")
			r.expires = "-5"
			return r.presigned(t)
		}, 400, "b", "InvalidSignature", "Invalid expiration"),
		{name: "16 session mode lists what RLS shows", send: func(t *testing.T) httpResponse {
			return b.s3("GET", "/s3/").as(b.s3Session(b.anon)).send(t)
		}, status: 200, xml: true, body: s3Doc("ListAllMyBucketsResult", `<Buckets/>`)},
		errCase("17 session mode with the server key", func(t *testing.T) httpResponse {
			return b.s3("GET", "/s3/").as(s3Creds{s3TestAccessKey, b.anon, b.anon}).send(t)
		}, 403, "", "AccessDenied", "Invalid Access Key"),
		errCase("18 session mode with a wrong secret", func(t *testing.T) httpResponse {
			return b.s3("GET", "/s3/").as(s3Creds{s3.DefaultTenantID, "wrong", b.anon}).send(t)
		}, 403, "", "SignatureDoesNotMatch", msgSessionMismatch),
		errCase("19 session token not a JWT", func(t *testing.T) httpResponse {
			return b.s3("GET", "/s3/").as(b.s3Session("not.a.jwt")).send(t)
		}, 403, "", "AccessDenied", "Invalid Compact JWS"),
		errCase("20 anon PutObject", func(t *testing.T) httpResponse {
			return b.s3("PUT", "/s3/b/new.txt").with("x").as(b.s3Session(b.anon)).send(t)
		}, 403, "b/new.txt", "AccessDenied", "new row violates row-level security policy"),
		errCase("20 anon GetObject of an existing key", func(t *testing.T) httpResponse {
			return b.s3("GET", "/s3/b/k").as(b.s3Session(b.anon)).send(t)
		}, 404, "b/k", "NoSuchKey", "Object not found"),
		errCase("20 anon DeleteObject of an existing key", func(t *testing.T) httpResponse {
			return b.s3("DELETE", "/s3/b/k").as(b.s3Session(b.anon)).send(t)
		}, 403, "b/k", "AccessDenied", "Access denied"),
		{name: "20 anon ListObjectsV2", send: func(t *testing.T) httpResponse {
			return b.s3("GET", "/s3/b?list-type=2").as(b.s3Session(b.anon)).send(t)
		}, status: 200, xml: true, body: s3Doc("ListBucketResult",
			`<Name>b</Name><Prefix/><IsTruncated>false</IsTruncated><MaxKeys>1000</MaxKeys><KeyCount>0</KeyCount>`)},
		errCase("20 anon GetBucketLocation", func(t *testing.T) httpResponse {
			return b.s3("GET", "/s3/b?location").as(b.s3Session(b.anon)).send(t)
		}, 404, "b", "NoSuchBucket", "Bucket not found"),
		{name: "21 session token of the service role", send: func(t *testing.T) httpResponse {
			return b.s3("GET", "/s3/b?location").as(b.s3Session(serviceJWT)).send(t)
		}, status: 200, xml: true, body: s3Doc("LocationConstraint", "us-east-1")},
	})

	// The refusals of 20 stored and removed nothing.
	require.True(t, b.objectRow(t, "b", "k"))
	require.False(t, b.objectRow(t, "b", "new.txt"))
}

// TestS3WirePayload: §8 assertions 14 and 15, what a PUT stores of its body, and refusals of
// requests changed after signing, which store nothing. One step after another: the store's
// blob count tells what each refusal left behind.
func TestS3WirePayload(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	b.s3Bucket(t, "b")

	// 14: a presigned PUT (UNSIGNED-PAYLOAD, no hash in the URL).
	body := strings.Repeat("0123456789abcdef", 128) // 2 KiB
	r := b.s3("PUT", "/s3/b/presigned.bin").with(body).presigned(t)
	requireS3Empty(t, r, 200)
	require.Equal(t, `"`+md5Hex(body)+`"`, r.Header.Get("ETag"))
	got := b.s3("GET", "/s3/b/presigned.bin").send(t)
	require.Equal(t, 200, got.Status)
	require.Equal(t, body, string(got.Body))
	blobs := b.blobCount(t)
	require.Equal(t, 1, blobs)

	// 15, deliberately not the reference (which stores the body whatever hash it declares):
	// a declared SHA-256 that the bytes do not match stores nothing.
	pr := b.s3("PUT", "/s3/b/mismatch.txt").with("abc")
	pr.payload = sha256Hex("xyz")
	requireS3Error(t, pr.send(t), 400, "b/mismatch.txt", "XAmzContentSHA256Mismatch",
		"The provided 'x-amz-content-sha256' header does not match what was computed.")
	requireS3Empty(t, b.s3("HEAD", "/s3/b/mismatch.txt").send(t), 404)
	require.False(t, b.objectRow(t, "b", "mismatch.txt"))
	require.Equal(t, blobs, b.blobCount(t))

	// A signed header changed in transit.
	pr = b.s3("PUT", "/s3/b/changed.txt").with("abc").h("Content-Type", "text/plain")
	pr.tamper = func(req *http.Request) { req.Header.Set("Content-Type", "text/html") }
	requireS3Error(t, pr.send(t), 403, "b/changed.txt", "SignatureDoesNotMatch", msgSigMismatch)
	// A presigned URL whose query was changed.
	pr = b.s3("PUT", "/s3/b/query.txt").with("abc")
	pr.tamper = func(req *http.Request) {
		req.URL.RawQuery = strings.Replace(req.URL.RawQuery, "X-Amz-Expires=100", "X-Amz-Expires=101", 1)
	}
	requireS3Error(t, pr.presigned(t), 403, "b/query.txt", "SignatureDoesNotMatch", msgSigMismatch)
	// A presigned GET used for a PUT.
	pr = b.s3("GET", "/s3/b/method.txt").with("abc")
	pr.tamper = func(req *http.Request) { req.Method = "PUT" }
	requireS3Error(t, pr.presigned(t), 403, "b/method.txt", "SignatureDoesNotMatch", msgSigMismatch)
	// A body other than the one signed (its hash declared in the header).
	pr = b.s3("PUT", "/s3/b/body.txt").with("abc")
	pr.tamper = func(req *http.Request) { req.Body = io.NopCloser(strings.NewReader("abd")) }
	requireS3Error(t, pr.send(t), 400, "b/body.txt", "XAmzContentSHA256Mismatch",
		"The provided 'x-amz-content-sha256' header does not match what was computed.")
	for _, k := range []string{"changed.txt", "query.txt", "method.txt", "body.txt"} {
		require.False(t, b.objectRow(t, "b", k), k)
	}
	require.Equal(t, blobs, b.blobCount(t))
}

// TestS3WireSessionUser: session-token mode as an authenticated user whose policies allow one
// folder (the positive side of §8 assertion 20): the request runs as that user under RLS and
// the rows it writes are the user's.
func TestS3WireSessionUser(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	b.s3Bucket(t, "b")
	admin(t, b.db, `create policy s3user_ins on storage.objects for insert to authenticated
			with check (bucket_id = 'b' and (storage.foldername(name))[1] = (select auth.uid())::text);
		create policy s3user_sel on storage.objects for select to authenticated
			using (bucket_id = 'b' and (storage.foldername(name))[1] = (select auth.uid())::text)`)
	user := b.s3Session(b.userA)
	own := userA.Sub + "/note.txt"

	r := b.s3("PUT", "/s3/b/"+own).with("mine").as(user).send(t)
	requireS3Empty(t, r, 200)
	var owner string
	require.NoError(t, b.db.Pool.QueryRow(context.Background(),
		`select owner_id from storage.objects where bucket_id = 'b' and name = $1`, own).Scan(&owner))
	require.Equal(t, userA.Sub, owner)
	got := b.s3("GET", "/s3/b/"+own).as(user).send(t)
	require.Equal(t, 200, got.Status)
	require.Equal(t, "mine", string(got.Body))
	requireS3XML(t, b.s3("GET", "/s3/b?list-type=2&delimiter=%2F").as(user).send(t), 200, s3Doc("ListBucketResult",
		`<Name>b</Name><Prefix/><IsTruncated>false</IsTruncated><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter>`+
			`<KeyCount>1</KeyCount>`+`<CommonPrefixes><Prefix>`+userA.Sub+`/</Prefix></CommonPrefixes>`))

	// Elsewhere, refused; another user sees nothing of it.
	requireS3Error(t, b.s3("PUT", "/s3/b/elsewhere.txt").with("x").as(user).send(t), 403, "b/elsewhere.txt",
		"AccessDenied", "new row violates row-level security policy")
	require.False(t, b.objectRow(t, "b", "elsewhere.txt"))
	requireS3Error(t, b.s3("GET", "/s3/b/"+own).as(b.s3Session(b.userB)).send(t), 404, "b/"+own, "NoSuchKey", "Object not found")
}

// TestS3WireBuckets: §8 assertions 29–38, one step after another on one server (each step
// sees what the steps before it made). 37 (a pending multipart upload blocks DeleteBucket) is
// in TestS3MultipartWire.
func TestS3WireBuckets(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	ctx := context.Background()

	// 29: x-amz-acl: public-read makes a public bucket; the answer is a Location and no body.
	r := b.s3("PUT", "/s3/b2").h("x-amz-acl", "public-read").send(t)
	requireS3Empty(t, r, 200)
	require.Equal(t, "/b2", r.Header.Get("Location"))
	row, ok := loadStoredBucket(t, b.db, "b2")
	require.True(t, ok)
	require.True(t, row.Public)
	require.Equal(t, "b2", row.Name)
	// Without the header (or with another ACL) the bucket is private.
	requireS3Empty(t, b.s3("PUT", "/s3/b").h("x-amz-acl", "private").send(t), 200)
	row, _ = loadStoredBucket(t, b.db, "b")
	require.False(t, row.Public)

	// 30: the same name again.
	requireS3Error(t, b.s3("PUT", "/s3/b2").send(t), 409, "b2", "BucketAlreadyExists", "The resource already exists")

	// 31: names the bucket rules refuse; the Resource keeps the path as sent.
	requireS3Error(t, b.s3("PUT", "/s3/bad%5Bname").send(t), 400, "bad%5Bname", "InvalidBucketName", "Bucket name invalid")
	long := strings.Repeat("n", 101)
	requireS3Error(t, b.s3("PUT", "/s3/"+long).send(t), 400, long, "InvalidBucketName", "Bucket name invalid")
	var n int
	require.NoError(t, b.db.Pool.QueryRow(ctx, `select count(*) from storage.buckets`).Scan(&n))
	require.Equal(t, 2, n, "only b and b2 exist")

	// 32: every bucket, by name, CreationDate with milliseconds.
	requireS3XML(t, b.s3("GET", "/s3/").send(t), 200, s3Doc("ListAllMyBucketsResult",
		`<Buckets><Bucket><Name>b</Name><CreationDate>TIME</CreationDate></Bucket>`+
			`<Bucket><Name>b2</Name><CreationDate>TIME</CreationDate></Bucket></Buckets>`))
	// The trailing-slash form of the service path is the same route.
	requireS3XML(t, b.s3("GET", "/s3").send(t), 200, s3Doc("ListAllMyBucketsResult",
		`<Buckets><Bucket><Name>b</Name><CreationDate>TIME</CreationDate></Bucket>`+
			`<Bucket><Name>b2</Name><CreationDate>TIME</CreationDate></Bucket></Buckets>`))

	// 33: HeadBucket names the region; a missing bucket is a bare 404.
	r = b.s3("HEAD", "/s3/b").send(t)
	requireS3Empty(t, r, 200)
	require.Equal(t, "us-east-1", r.Header.Get("x-amz-bucket-region"))
	r = b.s3("HEAD", "/s3/missing").send(t)
	requireS3Empty(t, r, 404)
	require.Empty(t, r.Header.Get("x-amz-bucket-region"))

	// 34: the configured region verbatim (the SDK asks with a trailing slash).
	requireS3XML(t, b.s3("GET", "/s3/b/?location").send(t), 200, s3Doc("LocationConstraint", "us-east-1"))
	requireS3Error(t, b.s3("GET", "/s3/missing?location").send(t), 404, "missing", "NoSuchBucket", "Bucket not found")

	// 35: versioning is never enabled.
	requireS3XML(t, b.s3("GET", "/s3/b?versioning").send(t), 200,
		s3Doc("VersioningConfiguration", `<Status>Suspended</Status><MfaDelete>Disabled</MfaDelete>`))

	// 36: a bucket holding an object is not deleted.
	b.s3Put(t, "b", "one.txt", "1")
	requireS3Error(t, b.s3("DELETE", "/s3/b").send(t), 409, "b", "ResourceNotEmpty", "The bucket you tried to delete is not empty")
	_, ok = loadStoredBucket(t, b.db, "b")
	require.True(t, ok)

	// 38: an empty bucket goes (204, no body); then it is missing.
	b.s3Bucket(t, "empty")
	requireS3Empty(t, b.s3("DELETE", "/s3/empty").send(t), 204)
	_, ok = loadStoredBucket(t, b.db, "empty")
	require.False(t, ok)
	requireS3Error(t, b.s3("DELETE", "/s3/empty").send(t), 404, "empty", "NoSuchBucket", "Bucket not found")
}

// requireObjectHeaders asserts the headers GetObject and HeadObject carry for an object
// (§8 assertion 40): each named header exactly, Last-Modified an IMF-fixdate.
func requireObjectHeaders(t *testing.T, r httpResponse, want map[string]string) {
	t.Helper()
	for k, v := range want {
		require.Equal(t, v, r.Header.Get(k), "header %s", k)
	}
	lm := r.Header.Get("Last-Modified")
	parsed, err := time.Parse(http.TimeFormat, lm)
	require.NoError(t, err, "Last-Modified %q", lm)
	require.Equal(t, lm, parsed.Format(http.TimeFormat))
}

// TestS3WireObjects: §8 assertions 39–58, on an object stored as 39 stores it.
func TestS3WireObjects(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	ctx := context.Background()
	b.s3Bucket(t, "o")

	// 39: PutObject with type, cache control and user metadata.
	r := b.s3("PUT", "/s3/o/dir/a.txt").with("hello world").h("Content-Type", "text/plain").
		h("Cache-Control", "max-age=5").h("x-amz-meta-Foo", "Bar").send(t)
	requireS3Empty(t, r, 200)
	const etag = `"5eb63bbbe01eeed093cb22bb8f5acdc3"`
	require.Equal(t, etag, r.Header.Get("ETag"))
	objHeaders := map[string]string{"Content-Type": "text/plain", "Cache-Control": "max-age=5", "ETag": etag,
		"x-amz-meta-foo": "Bar"}
	with := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}

	// 45's object: its Last-Modified an hour back, so that a date after it is in the past.
	b.s3Put(t, "o", "old.txt", "old")
	admin(t, b.db, `update storage.objects set metadata = jsonb_set(metadata, '{lastModified}', to_jsonb($1::text))
		where bucket_id = 'o' and name = 'old.txt'`, time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano))
	old := b.s3("HEAD", "/s3/o/old.txt").send(t)
	require.Equal(t, 200, old.Status)
	oldLM, err := time.Parse(http.TimeFormat, old.Header.Get("Last-Modified"))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(-time.Hour), oldLM, 5*time.Minute)

	get := func(target string, header ...string) func(t *testing.T) httpResponse {
		return func(t *testing.T) httpResponse {
			r := b.s3("GET", target)
			for i := 0; i < len(header); i += 2 {
				r.h(header[i], header[i+1])
			}
			return r.send(t)
		}
	}
	head := func(target string, header ...string) func(t *testing.T) httpResponse {
		return func(t *testing.T) httpResponse {
			r := b.s3("HEAD", target)
			for i := 0; i < len(header); i += 2 {
				r.h(header[i], header[i+1])
			}
			return r.send(t)
		}
	}
	lastModified := func(t *testing.T, r httpResponse) { requireObjectHeaders(t, r, nil) }
	const notSatisfiable = "invalid range provided"

	runS3Cases(t, []s3Case{
		{name: "40 HeadObject", send: head("/s3/o/dir/a.txt"), status: 200,
			header: with(objHeaders, "Content-Length", "11"), check: lastModified},
		{name: "41 GetObject", send: get("/s3/o/dir/a.txt"), status: 200, body: "hello world",
			header: with(objHeaders, "Content-Length", "11"), check: lastModified},
		{name: "42 range bytes=0-3", send: get("/s3/o/dir/a.txt", "Range", "bytes=0-3"), status: 206, body: "hell",
			header: with(objHeaders, "Content-Range", "bytes 0-3/11", "Content-Length", "4")},
		{name: "42 range bytes=-5", send: get("/s3/o/dir/a.txt", "Range", "bytes=-5"), status: 206, body: "world",
			header: with(objHeaders, "Content-Range", "bytes 6-10/11", "Content-Length", "5")},
		{name: "42 range bytes=4-", send: get("/s3/o/dir/a.txt", "Range", "bytes=4-"), status: 206, body: "o world",
			header: with(objHeaders, "Content-Range", "bytes 4-10/11", "Content-Length", "7")},
		{name: "42 range end clamped", send: get("/s3/o/dir/a.txt", "Range", "bytes=6-100"), status: 206, body: "world",
			header: map[string]string{"Content-Range": "bytes 6-10/11"}},
		{name: "43 range from the size", send: get("/s3/o/dir/a.txt", "Range", "bytes=11-"), status: 416, xml: true,
			body: s3ErrDoc("o/dir/a.txt", "InvalidRange", notSatisfiable), header: map[string]string{"Content-Range": "bytes */11"}},
		{name: "43 range past the end", send: get("/s3/o/dir/a.txt", "Range", "bytes=10000-20000"), status: 416, xml: true,
			body: s3ErrDoc("o/dir/a.txt", "InvalidRange", notSatisfiable), header: map[string]string{"Content-Range": "bytes */11"}},
		{name: "44 If-None-Match the ETag", send: get("/s3/o/dir/a.txt", "If-None-Match", etag), status: 304,
			header: map[string]string{"ETag": etag}},
		{name: "44 If-None-Match another", send: get("/s3/o/dir/a.txt", "If-None-Match", `"other"`), status: 200,
			body: "hello world"},
		{name: "45 If-Modified-Since after Last-Modified", send: func(t *testing.T) httpResponse {
			return get("/s3/o/old.txt", "If-Modified-Since", oldLM.Add(time.Second).Format(http.TimeFormat))(t)
		}, status: 304},
		{name: "45 If-Modified-Since Last-Modified", send: func(t *testing.T) httpResponse {
			return get("/s3/o/old.txt", "If-Modified-Since", oldLM.Format(http.TimeFormat))(t)
		}, status: 304},
		{name: "45 If-Modified-Since before Last-Modified", send: func(t *testing.T) httpResponse {
			return get("/s3/o/old.txt", "If-Modified-Since", oldLM.Add(-time.Second).Format(http.TimeFormat))(t)
		}, status: 200, body: "old"},
		{name: "46 response-* overrides", send: get("/s3/o/dir/a.txt?response-content-type=application%2Foctet-stream" +
			"&response-content-disposition=attachment%3B%20filename%3D%22x.txt%22" +
			"&response-cache-control=no-cache%2C%20no-store&response-content-encoding=identity" +
			"&response-content-language=en-US&response-expires=2030-01-01T00%3A00%3A00Z"),
			status: 200, body: "hello world", header: map[string]string{
				"Content-Type": "application/octet-stream", "Content-Disposition": `attachment; filename="x.txt"`,
				"Cache-Control": "no-cache, no-store", "Content-Encoding": "identity", "Content-Language": "en-US",
				"Expires": "Tue, 01 Jan 2030 00:00:00 GMT", "ETag": etag}},
		{name: "47 response-content-type with CR LF", send: get("/s3/o/dir/a.txt?response-content-type=text%2Fhtml%0D%0AX-Injected%3A%201"),
			status: 200, body: "hello world", header: map[string]string{"Content-Type": "text/plain", "X-Injected": ""}},
		errCase("47 response-expires unparseable", get("/s3/o/dir/a.txt?response-expires=garbage"),
			400, "o/dir/a.txt", "InvalidParameter", "Invalid Parameter response-expires"),
		// 47, deliberately not the reference (which ignores If-Match and If-Unmodified-Since on
		// GetObject and every conditional on HeadObject): HTTP's conditionals.
		errCase("47 GetObject If-Match another", get("/s3/o/dir/a.txt", "If-Match", `"other"`),
			412, "o/dir/a.txt", "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"),
		{name: "47 GetObject If-Match the ETag", send: get("/s3/o/dir/a.txt", "If-Match", etag), status: 200, body: "hello world"},
		{name: "47 GetObject If-Unmodified-Since before Last-Modified", send: func(t *testing.T) httpResponse {
			return get("/s3/o/old.txt", "If-Unmodified-Since", oldLM.Add(-time.Second).Format(http.TimeFormat))(t)
		}, status: 412, xml: true, body: s3ErrDoc("o/old.txt", "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")},
		{name: "47 HeadObject If-Match another", send: head("/s3/o/dir/a.txt", "If-Match", `"other"`), status: 412},
		{name: "47 HeadObject If-None-Match the ETag", send: head("/s3/o/dir/a.txt", "If-None-Match", etag), status: 304,
			header: map[string]string{"ETag": etag}},
		errCase("48 GetObject of a missing key", get("/s3/o/zz.txt"), 404, "o/zz.txt", "NoSuchKey", "Object not found"),
		errCase("48 GetObject in a missing bucket", get("/s3/nob/zz.txt"), 404, "nob/zz.txt", "NoSuchKey", "Object not found"),
		{name: "49 HeadObject of a missing key", send: head("/s3/o/zz.txt"), status: 404},
		{name: "49 HeadObject in a missing bucket", send: head("/s3/nob/zz.txt"), status: 404},
		{name: "54 GetObjectTagging", send: get("/s3/o/dir/a.txt?tagging"), status: 200, xml: true,
			body: s3Doc("Tagging", `<TagSet/>`)},
		errCase("54 GetObjectTagging of a missing key", get("/s3/o/zz.txt?tagging"), 404, "o/zz.txt", "NoSuchKey", "Object not found"),
	})

	t.Run("50 keys", func(t *testing.T) {
		t.Parallel()
		requireS3Error(t, b.s3("PUT", "/s3/o/a%5Bb%5D.txt").with("x").send(t), 400, "o/a%5Bb%5D.txt", "InvalidKey", "Invalid key: a[b].txt")
		require.False(t, b.objectRow(t, "o", "a[b].txt"))
		const key = "test!$&'() *+,:;=@ing.bin"
		path := "/s3/o/" + s3Escape(key)
		etag := b.s3Put(t, "o", key, "odd key")
		got := b.s3("GET", path).send(t)
		require.Equal(t, 200, got.Status)
		require.Equal(t, "odd key", string(got.Body))
		requireS3XML(t, b.s3("GET", "/s3/o?list-type=2&prefix=test%21").send(t), 200, s3Doc("ListBucketResult",
			`<Name>o</Name><Prefix>test!</Prefix><Contents><Key>test!$&amp;'() *+,:;=@ing.bin</Key><LastModified>TIME</LastModified>`+
				`<ETag>`+etag+`</ETag><Size>7</Size><StorageClass>STANDARD</StorageClass></Contents>`+
				`<IsTruncated>false</IsTruncated><MaxKeys>1000</MaxKeys><KeyCount>1</KeyCount>`))
		requireS3Empty(t, b.s3("DELETE", path).send(t), 204)
		require.False(t, b.objectRow(t, "o", key))
	})

	t.Run("51 PutObject to a missing bucket", func(t *testing.T) {
		t.Parallel()
		requireS3Error(t, b.s3("PUT", "/s3/nob/k").with("x").send(t), 404, "nob/k", "NoSuchBucket", "Bucket not found")
	})

	t.Run("52 PutObject above the bucket's limit", func(t *testing.T) {
		t.Parallel()
		b.s3Bucket(t, "small")
		admin(t, b.db, `update storage.buckets set file_size_limit = 10 where id = 'small'`)
		requireS3Error(t, b.s3("PUT", "/s3/small/big").with("0123456789x").send(t), 413, "small/big",
			"EntityTooLarge", "The object exceeded the maximum allowed size")
		require.False(t, b.objectRow(t, "small", "big"))
		b.s3Put(t, "small", "fits", "0123456789")
	})

	t.Run("53 folder placeholder", func(t *testing.T) {
		t.Parallel()
		b.s3Bucket(t, "folders")
		requireS3Empty(t, b.s3("PUT", "/s3/folders/folder/").send(t), 200)
		requireS3XML(t, b.s3("GET", "/s3/folders?list-type=2").send(t), 200, s3Doc("ListBucketResult",
			`<Name>folders</Name><Prefix/><Contents><Key>folder/.emptyFolderPlaceholder</Key><LastModified>TIME</LastModified>`+
				`<ETag>"`+md5Hex("")+`"</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass></Contents>`+
				`<IsTruncated>false</IsTruncated><MaxKeys>1000</MaxKeys><KeyCount>1</KeyCount>`))
	})

	t.Run("55 56 57 CopyObject", func(t *testing.T) {
		t.Parallel()
		b.s3Put(t, "o", "src.txt", "source bytes", [2]string{"Content-Type", "text/markdown"},
			[2]string{"Cache-Control", "max-age=7"}, [2]string{"x-amz-meta-origin", "src"})
		srcETag := `"` + md5Hex("source bytes") + `"`

		// 55: COPY keeps size, type, cache control and metadata.
		r := b.s3("PUT", "/s3/o/copy.txt").h("x-amz-copy-source", "o/src.txt").send(t)
		requireS3XML(t, r, 200, s3Doc("CopyObjectResult", `<ETag>`+srcETag+`</ETag><LastModified>TIME</LastModified>`))
		h := b.s3("HEAD", "/s3/o/copy.txt").send(t)
		requireS3Empty(t, h, 200)
		requireObjectHeaders(t, h, map[string]string{"Content-Length": "12", "Content-Type": "text/markdown",
			"Cache-Control": "max-age=7", "ETag": srcETag, "x-amz-meta-origin": "src"})

		// 56: REPLACE takes type, cache control and metadata from the request only.
		r = b.s3("PUT", "/s3/o/replaced.txt").h("x-amz-copy-source", "/o/src.txt").
			h("x-amz-metadata-directive", "REPLACE").h("Content-Type", "application/json").
			h("Cache-Control", "max-age=91").h("x-amz-meta-copied", "yes").send(t)
		requireS3XML(t, r, 200, s3Doc("CopyObjectResult", `<ETag>`+srcETag+`</ETag><LastModified>TIME</LastModified>`))
		h = b.s3("HEAD", "/s3/o/replaced.txt").send(t)
		requireObjectHeaders(t, h, map[string]string{"Content-Length": "12", "Content-Type": "application/json",
			"Cache-Control": "max-age=91", "x-amz-meta-copied": "yes", "x-amz-meta-origin": ""})
		got := b.s3("GET", "/s3/o/replaced.txt").send(t)
		require.Equal(t, "source bytes", string(got.Body))

		// 57, deliberately not the reference (which looks the source up undecoded): the copy
		// source is percent-decoded once, as AWS and the SDKs (which encode it) expect.
		r = b.s3("PUT", "/s3/o/decoded.txt").h("x-amz-copy-source", "o/src%2Etxt").send(t)
		requireS3XML(t, r, 200, s3Doc("CopyObjectResult", `<ETag>`+srcETag+`</ETag><LastModified>TIME</LastModified>`))
		require.True(t, b.objectRow(t, "o", "decoded.txt"))

		// 57: a missing source; a source without a key.
		requireS3Error(t, b.s3("PUT", "/s3/o/none.txt").h("x-amz-copy-source", "o/missing.txt").send(t),
			404, "o/none.txt", "NoSuchKey", "Object not found")
		requireS3Error(t, b.s3("PUT", "/s3/o/none.txt").h("x-amz-copy-source", "o").send(t),
			400, "o/none.txt", "MissingParameter", "Missing Required Parameter CopySource")
		require.False(t, b.objectRow(t, "o", "none.txt"))
	})

	t.Run("58 DeleteObject", func(t *testing.T) {
		t.Parallel()
		b.s3Put(t, "o", "gone.txt", "bye")
		requireS3Empty(t, b.s3("DELETE", "/s3/o/gone.txt").send(t), 204)
		requireS3Error(t, b.s3("GET", "/s3/o/gone.txt").send(t), 404, "o/gone.txt", "NoSuchKey", "Object not found")
		requireS3Empty(t, b.s3("DELETE", "/s3/o/never.txt").send(t), 204)
		requireS3Error(t, b.s3("DELETE", "/s3/nob/never.txt").send(t), 404, "nob/never.txt", "NoSuchBucket", "Bucket not found")
	})

	// The object every read case looked at is as 39 stored it.
	var meta, umeta string
	require.NoError(t, b.db.Pool.QueryRow(ctx, `select metadata->>'mimetype', user_metadata::text from storage.objects
		where bucket_id = 'o' and name = 'dir/a.txt'`).Scan(&meta, &umeta))
	require.Equal(t, "text/plain", meta)
	require.JSONEq(t, `{"foo":"Bar"}`, umeta)
}

// TestS3WireDeleteObjects: §8 assertions 59–62.
func TestS3WireDeleteObjects(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	b.s3Bucket(t, "d")
	deleteDoc := func(quiet bool, keys ...string) string {
		var s strings.Builder
		s.WriteString("<Delete>")
		for _, k := range keys {
			s.WriteString("<Object><Key>" + k + "</Key></Object>")
		}
		if quiet {
			s.WriteString("<Quiet>true</Quiet>")
		}
		s.WriteString("</Delete>")
		return s.String()
	}
	deleted := func(keys ...string) string {
		var s strings.Builder
		for _, k := range keys {
			s.WriteString("<Deleted><Key>" + k + "</Key></Deleted>")
		}
		return s.String()
	}
	post := func(bucket, body string) *s3Req {
		return b.s3("POST", "/s3/"+bucket+"?delete").with(body).h("Content-Type", "application/xml")
	}

	t.Run("59 Deleted lists deleted and missing keys", func(t *testing.T) {
		t.Parallel()
		b.s3Put(t, "d", "src.txt", "x")
		requireS3XML(t, post("d", deleteDoc(false, "src.txt", "missing.txt")).send(t), 200,
			s3Doc("DeleteResult", deleted("src.txt", "missing.txt")))
		require.False(t, b.objectRow(t, "d", "src.txt"))
	})

	// 59, deliberately not the reference (which lists every key whatever Quiet says): quiet
	// mode reports errors only, as AWS does; with none, the result is empty.
	t.Run("59 Quiet", func(t *testing.T) {
		t.Parallel()
		b.s3Put(t, "d", "quiet.txt", "x")
		requireS3XML(t, post("d", deleteDoc(true, "quiet.txt", "missing.txt")).send(t), 200, s3Doc("DeleteResult", ""))
		require.False(t, b.objectRow(t, "d", "quiet.txt"))
	})

	t.Run("60 keys are taken verbatim after XML decoding", func(t *testing.T) {
		t.Parallel()
		b.s3Bucket(t, "verbatim")
		for _, k := range []string{"0", "1", "   ", " file ", "file"} {
			b.s3Put(t, "verbatim", k, "x")
		}
		requireS3XML(t, post("verbatim", deleteDoc(false, "&#48;", "&#x31;", "   ", " file ")).send(t), 200,
			s3Doc("DeleteResult", deleted("0", "1", "   ", " file ")))
		for _, k := range []string{"0", "1", "   ", " file "} {
			require.False(t, b.objectRow(t, "verbatim", k), "%q", k)
		}
		require.True(t, b.objectRow(t, "verbatim", "file"))
	})

	t.Run("61 refusals", func(t *testing.T) {
		t.Parallel()
		b.s3Put(t, "d", "kept.txt", "x")
		requireS3Error(t, post("nob", deleteDoc(false, "kept.txt")).send(t), 404, "nob", "NoSuchBucket", "Bucket not found")
		requireS3Error(t, post("d", "<Delete>").send(t), 400, "d", "MalformedXML",
			"Invalid XML payload: XML syntax error on line 1: unexpected EOF")
		// 61, deliberately not the reference (which parses the body before authenticating):
		// an unsigned request is refused before its body is read.
		requireS3Error(t, post("d", "<Delete>").unsigned(t), 403, "d", "AccessDenied", "Missing signature")
		requireS3Error(t, post("d", `<!DOCTYPE x><Delete><Object><Key>kept.txt</Key></Object></Delete>`).send(t), 400, "d",
			"MalformedXML", "Invalid XML payload: DOCTYPE is not supported")
		require.True(t, b.objectRow(t, "d", "kept.txt"))
	})

	// 62: session mode, with policies that let anon see and delete A only. B exists but is
	// hidden: AccessDenied for it, as the reference answers (20 likewise for DeleteObject).
	t.Run("62 per-key refusals under RLS", func(t *testing.T) {
		t.Parallel()
		b.s3Bucket(t, "p")
		b.s3Put(t, "p", "A", "a")
		b.s3Put(t, "p", "B", "b")
		admin(t, b.db, `create policy s3wire_sel on storage.objects for select to anon using (bucket_id = 'p' and name = 'A')`)
		admin(t, b.db, `create policy s3wire_del on storage.objects for delete to anon using (bucket_id = 'p' and name = 'A')`)
		r := post("p", deleteDoc(false, "A", "missing", "B")).as(b.s3Session(b.anon)).send(t)
		requireS3XML(t, r, 200, s3Doc("DeleteResult", deleted("A", "missing")+
			`<Error><Key>B</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`))
		require.False(t, b.objectRow(t, "p", "A"))
		require.True(t, b.objectRow(t, "p", "B"))
		// The same refusal through DeleteObject.
		requireS3Error(t, b.s3("DELETE", "/s3/p/B").as(b.s3Session(b.anon)).send(t), 403, "p/B", "AccessDenied", "Access denied")
		require.True(t, b.objectRow(t, "p", "B"))
	})
}

// s3Contents is the Contents entries of keys whose bodies are their own names.
func s3Contents(keys ...string) string {
	var s strings.Builder
	for _, k := range keys {
		s.WriteString(`<Contents><Key>` + k + `</Key><LastModified>TIME</LastModified><ETag>"` + md5Hex(k) + `"</ETag><Size>` +
			strconv.Itoa(len(k)) + `</Size><StorageClass>STANDARD</StorageClass></Contents>`)
	}
	return s.String()
}

// s3Prefixes is CommonPrefixes entries.
func s3Prefixes(prefixes ...string) string {
	var s strings.Builder
	for _, p := range prefixes {
		s.WriteString(`<CommonPrefixes><Prefix>` + p + `</Prefix></CommonPrefixes>`)
	}
	return s.String()
}

func s3Token(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestS3WireListing: §8 assertions 63–68, ListObjectsV2 and ListObjects (v1) over fixture F
// and the small buckets the assertions name. Every key's body is its own name.
func TestS3WireListing(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	fill := func(bucket string, keys ...string) {
		b.s3Bucket(t, bucket)
		for _, k := range keys {
			b.s3Put(t, bucket, k, k)
		}
	}
	fill("f", "a.txt", "b.txt", "c/1.txt", "c/2.txt", "d/x/y.txt", "e.txt")
	fill("pages", "test-1.jpg", "prefix-1/test-1.jpg", "prefix-3/test-1.jpg")
	fill("p", "p/a/leaf", "p/b/leaf", "p/c/leaf")
	fill("enc", "e f.txt", "c/1.txt")
	fill("one", "only.txt")
	list := func(target string) func(t *testing.T) httpResponse {
		return func(t *testing.T) httpResponse { return b.s3("GET", target).send(t) }
	}
	v2 := func(inner string) string { return s3Doc("ListBucketResult", inner) }
	tok1 := s3Token("l:b.txt")
	require.Equal(t, "bDpiLnR4dA==", tok1)

	runS3Cases(t, []s3Case{
		{name: "63 max-keys=2, page 1", send: list("/s3/f?list-type=2&max-keys=2"), status: 200, xml: true,
			body: v2(`<Name>f</Name><Prefix/>` + s3Contents("a.txt", "b.txt") +
				`<IsTruncated>true</IsTruncated><MaxKeys>2</MaxKeys><KeyCount>2</KeyCount>` +
				`<NextContinuationToken>bDpiLnR4dA==</NextContinuationToken>`)},
		{name: "63 max-keys=2, page 2", send: list("/s3/f?list-type=2&max-keys=2&continuation-token=bDpiLnR4dA%3D%3D"), status: 200, xml: true,
			body: v2(`<Name>f</Name><Prefix/><ContinuationToken>bDpiLnR4dA==</ContinuationToken>` + s3Contents("c/1.txt", "c/2.txt") +
				`<IsTruncated>true</IsTruncated><MaxKeys>2</MaxKeys><KeyCount>2</KeyCount>` +
				`<NextContinuationToken>` + s3Token("l:c/2.txt\no:asc") + `</NextContinuationToken>`)},
		{name: "63 max-keys=2, page 3", send: list("/s3/f?list-type=2&max-keys=2&continuation-token=" + url.QueryEscape(s3Token("l:c/2.txt\no:asc"))),
			status: 200, xml: true,
			body: v2(`<Name>f</Name><Prefix/><ContinuationToken>` + s3Token("l:c/2.txt\no:asc") + `</ContinuationToken>` +
				s3Contents("d/x/y.txt", "e.txt") + `<IsTruncated>false</IsTruncated><MaxKeys>2</MaxKeys><KeyCount>2</KeyCount>`)},
		{name: "64 delimiter=/", send: list("/s3/f?list-type=2&delimiter=%2F"), status: 200, xml: true,
			body: v2(`<Name>f</Name><Prefix/>` + s3Contents("a.txt", "b.txt", "e.txt") +
				`<IsTruncated>false</IsTruncated><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter><KeyCount>5</KeyCount>` +
				s3Prefixes("c/", "d/"))},
		{name: "64 common prefixes page by page, 1", send: list("/s3/pages?list-type=2&delimiter=%2F&max-keys=1"), status: 200, xml: true,
			body: v2(`<Name>pages</Name><Prefix/><IsTruncated>true</IsTruncated><MaxKeys>1</MaxKeys><Delimiter>/</Delimiter>` +
				`<KeyCount>1</KeyCount>` + s3Prefixes("prefix-1/") + `<NextContinuationToken>` + s3Token("l:prefix-1/") + `</NextContinuationToken>`)},
		{name: "64 common prefixes page by page, 2", send: list("/s3/pages?list-type=2&delimiter=%2F&max-keys=1&continuation-token=" +
			url.QueryEscape(s3Token("l:prefix-1/"))), status: 200, xml: true,
			body: v2(`<Name>pages</Name><Prefix/><ContinuationToken>` + s3Token("l:prefix-1/") + `</ContinuationToken>` +
				`<IsTruncated>true</IsTruncated><MaxKeys>1</MaxKeys><Delimiter>/</Delimiter>` +
				`<KeyCount>1</KeyCount>` + s3Prefixes("prefix-3/") + `<NextContinuationToken>` + s3Token("l:prefix-3/\no:asc") + `</NextContinuationToken>`)},
		{name: "64 common prefixes page by page, 3", send: list("/s3/pages?list-type=2&delimiter=%2F&max-keys=1&continuation-token=" +
			url.QueryEscape(s3Token("l:prefix-3/\no:asc"))), status: 200, xml: true,
			body: v2(`<Name>pages</Name><Prefix/><ContinuationToken>` + s3Token("l:prefix-3/\no:asc") + `</ContinuationToken>` +
				s3Contents("test-1.jpg") + `<IsTruncated>false</IsTruncated><MaxKeys>1</MaxKeys><Delimiter>/</Delimiter><KeyCount>1</KeyCount>`)},
		{name: "65 start-after inside a common prefix", send: list("/s3/p?list-type=2&delimiter=%2F&prefix=p%2F&start-after=p%2Fa%2Fzzzzz"),
			status: 200, xml: true,
			body: v2(`<Name>p</Name><Prefix>p/</Prefix><IsTruncated>false</IsTruncated><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter>` +
				`<KeyCount>2</KeyCount>` + s3Prefixes("p/b/", "p/c/"))},
		{name: "66 encoding-type=url", send: list("/s3/enc?list-type=2&encoding-type=url&delimiter=%2F"), status: 200, xml: true,
			body: v2(`<Name>enc</Name><Prefix/><Contents><Key>e%20f.txt</Key><LastModified>TIME</LastModified><ETag>"` + md5Hex("e f.txt") +
				`"</ETag><Size>7</Size><StorageClass>STANDARD</StorageClass></Contents><IsTruncated>false</IsTruncated><MaxKeys>1000</MaxKeys>` +
				`<Delimiter>/</Delimiter><EncodingType>url</EncodingType><KeyCount>2</KeyCount>` + s3Prefixes("c%2F"))},
		errCase("67 max-keys=-1", list("/s3/f?list-type=2&max-keys=-1"), 400, "f", "InvalidRequest", "Querystring, max-keys must be &gt;= 0"), // ">" escaped (§3.1)
		errCase("67 continuation-token=zzzz", list("/s3/f?list-type=2&continuation-token=zzzz"), 400, "f", "InvalidParameter",
			"Invalid Parameter continuation token"),
		errCase("67 missing bucket", list("/s3/nob?list-type=2"), 404, "nob", "NoSuchBucket", "Bucket not found"),
		errCase("67 missing bucket, v1", list("/s3/nob"), 404, "nob", "NoSuchBucket", "Bucket not found"),
		{name: "67 max-keys=0 is a full page", send: list("/s3/f?list-type=2&max-keys=0"), status: 200, xml: true,
			body: v2(`<Name>f</Name><Prefix/>` + s3Contents("a.txt", "b.txt", "c/1.txt", "c/2.txt", "d/x/y.txt", "e.txt") +
				`<IsTruncated>false</IsTruncated><MaxKeys>1000</MaxKeys><KeyCount>6</KeyCount>`)},
		// 68, deliberately not as the reference: a page that ends on a common prefix names it
		// with its delimiter (AWS's NextMarker), and that marker resumes past the whole prefix.
		// The reference's "c" cannot tell the prefix from a key "c" and lists keys between "c"
		// and "c/" (such as "c.txt") again (TestS3WireListingTerminates).
		{name: "68 v1 delimiter, marker a.txt", send: list("/s3/f?delimiter=%2F&max-keys=2&marker=a.txt"), status: 200, xml: true,
			body: v2(`<Name>f</Name><Prefix/><Marker>c/</Marker><NextMarker>c/</NextMarker><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>` +
				s3Contents("b.txt") + s3Prefixes("c/"))},
		{name: "68 v1 delimiter, marker c/", send: list("/s3/f?delimiter=%2F&max-keys=2&marker=c%2F"), status: 200, xml: true,
			body: v2(`<Name>f</Name><Prefix/><MaxKeys>2</MaxKeys><IsTruncated>false</IsTruncated>` + s3Contents("e.txt") + s3Prefixes("d/"))},
		{name: "68 v1 delimiter, marker c is a key", send: list("/s3/f?delimiter=%2F&max-keys=2&marker=c"), status: 200, xml: true,
			body: v2(`<Name>f</Name><Prefix/><Marker>d/</Marker><NextMarker>d/</NextMarker><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>` + s3Prefixes("c/", "d/"))},
		{name: "68 v1 max-keys=1", send: list("/s3/f?max-keys=1"), status: 200, xml: true,
			body: v2(`<Name>f</Name><Prefix/><Marker>a.txt</Marker><MaxKeys>1</MaxKeys><IsTruncated>true</IsTruncated>` + s3Contents("a.txt"))},
		{name: "68 v1 of one key", send: list("/s3/one"), status: 200, xml: true,
			body: v2(`<Name>one</Name><Prefix/><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>` + s3Contents("only.txt"))},
	})
}

// TestS3WireListingTerminates: paging one entry at a time through keys that sort between a
// common prefix's name and the prefix ("c.txt" between "c" and "c/") visits every entry once
// and ends, with v2 tokens and with v1 markers (the reference's markers, "c", cycle here).
func TestS3WireListingTerminates(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	b.s3Bucket(t, "cyc")
	for _, k := range []string{"c", "c.txt", "c/1.txt", "c/2.txt", "c0"} {
		b.s3Put(t, "cyc", k, k)
	}
	want := []string{"k:c", "k:c.txt", "p:c/", "k:c0"}
	entries := regexp.MustCompile(`<Key>([^<]*)</Key>|<Prefix>([^<]+/)</Prefix>`)
	next := regexp.MustCompile(`<(?:NextContinuationToken|NextMarker)>([^<]*)</`)
	for _, v2 := range []bool{true, false} {
		var got []string
		cursor := ""
		for page := 0; page < 10; page++ {
			target := "/s3/cyc?delimiter=%2F&max-keys=1"
			switch {
			case v2 && cursor != "":
				target += "&list-type=2&continuation-token=" + url.QueryEscape(cursor)
			case v2:
				target += "&list-type=2"
			case cursor != "":
				target += "&marker=" + url.QueryEscape(cursor)
			}
			r := b.s3("GET", target).send(t)
			require.Equal(t, 200, r.Status, "%s", r.Body)
			for _, m := range entries.FindAllStringSubmatch(string(r.Body), -1) {
				if m[1] != "" {
					got = append(got, "k:"+m[1])
				} else {
					got = append(got, "p:"+m[2])
				}
			}
			n := next.FindStringSubmatch(string(r.Body))
			if n == nil {
				break
			}
			cursor = n[1]
		}
		require.Equal(t, want, got, "v2 %v", v2)
	}
}

// TestS3WireNotImplemented: what this door does not serve answers 501 NotImplemented and
// stores nothing, where the reference, by S3's definition, does the wrong thing (§1.3: PUT
// ?tagging and ?acl overwrite the object, GET ?acl lists the bucket). Multipart uploads,
// aws-chunked bodies (s3_multipart_test.go) and browser POST uploads (s3_post_test.go) are
// served; a form without a policy is refused before anything is stored.
func TestS3WireNotImplemented(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	b.s3Bucket(t, "b")
	etag := b.s3Put(t, "b", "k", "original")
	blobs := b.blobCount(t)
	const msg = "A header or query you provided implies functionality that is not implemented"
	form := "--XyZ\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nform.txt\r\n" +
		"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.txt\"\r\nContent-Type: text/plain\r\n\r\nform body\r\n--XyZ--\r\n"

	cases := []s3Case{
		// Browser POST uploads (§2.5, §4.8) sign themselves in their policy fields: a form
		// without them is refused whether or not the request carries another signature.
		errCase("POST form upload without a policy", func(t *testing.T) httpResponse {
			return b.s3("POST", "/s3/b").h("Content-Type", "multipart/form-data; boundary=XyZ").with(form).unsigned(t)
		}, 400, "b", "InvalidSignature", "Invalid signature format"),
		errCase("POST form upload without a policy, header-signed", func(t *testing.T) httpResponse {
			return b.s3("POST", "/s3/b").h("Content-Type", "multipart/form-data; boundary=XyZ").with(form).send(t)
		}, 400, "b", "InvalidSignature", "Invalid signature format"),
		// By S3's definition the reference is wrong here: tagging and ACLs are not stored.
		errCase("PUT ?tagging", func(t *testing.T) httpResponse {
			return b.s3("PUT", "/s3/b/k?tagging").h("Content-Type", "application/xml").
				with(`<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>`).send(t)
		}, 501, "b/k", "NotImplemented", msg),
		errCase("PUT ?acl", func(t *testing.T) httpResponse {
			return b.s3("PUT", "/s3/b/k?acl").h("x-amz-acl", "public-read").send(t)
		}, 501, "b/k", "NotImplemented", msg),
		errCase("GET bucket ?acl", func(t *testing.T) httpResponse {
			return b.s3("GET", "/s3/b?acl").send(t)
		}, 501, "b", "NotImplemented", msg),
	}
	// One after another: the store's blob count before and after is what they all stored.
	for _, c := range cases {
		r := c.send(t)
		requireS3XML(t, r, c.status, c.body)
	}
	require.Equal(t, blobs, b.blobCount(t), "blobs stored by the refused requests")
	require.False(t, b.objectRow(t, "b", "form.txt"))
	got := b.s3("GET", "/s3/b/k").send(t)
	require.Equal(t, 200, got.Status)
	require.Equal(t, "original", string(got.Body))
	require.Equal(t, etag, got.Header.Get("ETag"))
	bucket, _ := loadStoredBucket(t, b.db, "b")
	require.False(t, bucket.Public)
}

// TestS3WireRouting: §8 assertion 80, requests whose shape names no operation.
func TestS3WireRouting(t *testing.T) {
	t.Parallel()
	b := setupHTTP(t)
	b.s3Bucket(t, "b")
	b.s3Put(t, "b", "k", "original")

	runS3Cases(t, []s3Case{
		{name: "80 POST an object without a query", send: func(t *testing.T) httpResponse {
			return b.s3("POST", "/s3/b/k").send(t)
		}, status: 404},
		{name: "80 POST a bucket without ?delete", send: func(t *testing.T) httpResponse {
			return b.s3("POST", "/s3/b").send(t)
		}, status: 404},
		{name: "80 PATCH a bucket", send: func(t *testing.T) httpResponse {
			return b.s3("PATCH", "/s3/b").send(t)
		}, status: 404, body: `{"statusCode":"404","code":"InvalidRequest","error":"Not Found","message":"Route PATCH:/s3/b not found"}`,
			header: map[string]string{"Content-Type": "application/json; charset=utf-8"}},
		// 80: the reference answers with a non-S3 <message> document; this door with its own
		// error document.
		errCase("80 multipart/form-data PUT", func(t *testing.T) httpResponse {
			return b.s3("PUT", "/s3/b/k").h("Content-Type", "multipart/form-data; boundary=XyZ").
				with("--XyZ\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\ny\r\n--XyZ--\r\n").send(t)
		}, 400, "b/k", "InvalidRequest", "Multipart form data not supported"),
	})
}
