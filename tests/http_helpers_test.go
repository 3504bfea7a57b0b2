package tests

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
	"github.com/pgstorage/storage/blob/file"
	"github.com/pgstorage/storage/lifecycle"
	"github.com/pgstorage/storage/proxy"
	"github.com/pgstorage/storage/render"
	"github.com/pgstorage/storage/render/vips"
	"github.com/pgstorage/storage/s3"
	"github.com/pgstorage/storage/tests/testdb"
	"github.com/pgstorage/storage/tus"
)

// The configuration every HTTP test server runs with.
const (
	httpJWTSecret   = "test-jwt-secret-at-least-32-bytes-long!!"
	httpVersion     = "1.2.3-test"
	httpUploadLimit = 50 << 20 // 50 MiB, the global upload limit bucket limits are checked against
)

// httpBundle is what every HTTP test starts from: the real proxy on a loopback port, serving a
// fresh migrated database of the test's own, plus tokens for the usual callers.
type httpBundle struct {
	db      *testdb.DB
	baseURL string     // http://127.0.0.1:<port>
	service string     // JWT with role service_role and no sub (a service key)
	anon    string     // JWT with role anon (an anon key)
	userA   string     // authenticated JWT with sub userA.Sub
	userB   string     // authenticated JWT with sub userB.Sub
	blobs   blob.Store // where the server keeps object bytes
}

// serverConfig is what setupHTTP starts: the proxy and the TUS door mounted on it.
type serverConfig struct {
	proxy.Config
	TUS tus.Config
	S3  s3.Config
}

// The S3 door's key pair and region in tests; its session-token secret is the bundle's anon
// key and its access key id s3.DefaultTenantID.
const (
	s3TestAccessKey = "test-access-key"
	s3TestSecretKey = "test-secret-key"
	s3TestRegion    = "us-east-1"
)

// withS3 adjusts the S3 door's configuration.
func withS3(f func(*s3.Config)) httpOpt { return func(c *serverConfig) { f(&c.S3) } }

// withRender adjusts image transformation (Engine nil: off).
func withRender(f func(*proxy.RenderConfig)) httpOpt { return func(c *serverConfig) { f(&c.Render) } }

// renderEngine is the libvips renderer every test server shares (libvips starts once per
// process).
var renderEngine = sync.OnceValue(func() render.Engine { return vips.New(vips.Config{}) })

// httpOpt adjusts the configuration setupHTTP starts the proxy with.
type httpOpt func(*serverConfig)

// withBlobStore makes the server keep object bytes in s instead of a fresh file store.
func withBlobStore(s blob.Store) httpOpt { return func(c *serverConfig) { c.Blobs = s } }

// withUploadLimit replaces the global upload limit (UPLOAD_FILE_SIZE_LIMIT, httpUploadLimit).
func withUploadLimit(n int64) httpOpt { return func(c *serverConfig) { c.UploadFileSizeLimit = n } }

// setupHTTP starts the proxy for t; everything stops when t ends. Object bytes go to a file
// store under t.TempDir() unless withBlobStore says otherwise.
func setupHTTP(t *testing.T, opts ...httpOpt) *httpBundle {
	t.Helper()
	return setupHTTPOn(t, testdb.New(t), opts...)
}

// setupHTTPOn is setupHTTP on the migrated database db.
func setupHTTPOn(t *testing.T, db *testdb.DB, opts ...httpOpt) *httpBundle {
	t.Helper()
	anon := mintJWT(t, "anon")
	sc := serverConfig{Config: proxy.Config{
		JWTSecret:           httpJWTSecret,
		Version:             httpVersion,
		UploadFileSizeLimit: httpUploadLimit,
		Logger:              slog.New(slog.NewTextHandler(io.Discard, nil)),
		// Image transformation is on by default, as with `storage serve`.
		Render: proxy.RenderConfig{Engine: renderEngine()},
	}, S3: s3.Config{AccessKeyID: s3TestAccessKey, SecretKey: s3TestSecretKey, Region: s3TestRegion, AnonKey: anon}}
	for _, o := range opts {
		o(&sc)
	}
	cfg := sc.Config
	// As `storage serve` does at start: signed URLs are minted in SQL with the secret the
	// proxy verifies them with (db.Pool connects as the owner, who alone may set it).
	_, err := db.Pool.Exec(context.Background(), "select storage.signing_secret_set($1)", cfg.JWTSecret)
	require.NoError(t, err)
	if cfg.Blobs == nil {
		fs, err := file.New(t.TempDir())
		require.NoError(t, err)
		cfg.Blobs = fs
	}
	// As `storage serve` does: a collector works bucket-empty jobs as soon as one is queued.
	// Its retention is long, so blobs freed by a test stay in the store unless the test runs a
	// collector of its own.
	collector := &lifecycle.Collector{DB: db.Pool, Blobs: cfg.Blobs, Retention: time.Hour, Interval: time.Hour,
		Logger: cfg.Logger}
	if cfg.EmptyQueued == nil {
		cfg.EmptyQueued = collector.Kick
	}
	gcCtx, stopGC := context.WithCancel(context.Background())
	gcDone := make(chan struct{})
	go func() { defer close(gcDone); collector.Run(gcCtx) }()
	t.Cleanup(func() { stopGC(); <-gcDone })
	sc.Config = cfg // with the defaults filled in above
	base := serveHTTP(t, db.Pool, sc)
	return &httpBundle{
		db:      db,
		baseURL: base,
		service: mintJWT(t, "service_role"),
		anon:    anon,
		userA:   mintJWT(t, "authenticated", withSub(userA.Sub)),
		userB:   mintJWT(t, "authenticated", withSub(userB.Sub)),
		blobs:   cfg.Blobs,
	}
}

// serveHTTP starts the proxy of sc with the TUS door mounted on pool, on a loopback port, until
// t ends, and returns its base URL.
func serveHTTP(t *testing.T, pool *pgxpool.Pool, sc serverConfig) string {
	t.Helper()
	rest := proxy.New(sc.Config, pool)
	if sc.TUS.Logger == nil {
		sc.TUS.Logger = sc.Logger
	}
	door, err := tus.New(rest, sc.Blobs, sc.TUS)
	require.NoError(t, err)
	rest.Mount(door)
	t.Cleanup(door.Close) // after the server's shutdown, registered below
	runDoor(t, door)
	if sc.S3.Logger == nil {
		sc.S3.Logger = sc.Logger
	}
	s3door, err := s3.New(rest, sc.Blobs, sc.S3)
	require.NoError(t, err)
	rest.Mount(s3door)
	srv := rest.HTTPServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go srv.Serve(ln) //nolint:errcheck // returns when Shutdown closes the listener
	t.Cleanup(func() { _ = srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

// runDoor runs the TUS door's listener (release requests) until t ends.
func runDoor(t *testing.T, door *tus.Server) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); door.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-door.Listening():
	case <-time.After(30 * time.Second):
		t.Fatal("the TUS door did not listen for release requests within 30 s")
	}
}

// claimOpt adjusts the claims of a minted JWT.
type claimOpt func(jwt.MapClaims)

func withSub(sub string) claimOpt        { return func(c jwt.MapClaims) { c["sub"] = sub } }
func withExp(exp time.Time) claimOpt     { return func(c jwt.MapClaims) { c["exp"] = exp.Unix() } }
func withClaim(k string, v any) claimOpt { return func(c jwt.MapClaims) { c[k] = v } }

// mintJWT signs an HS256 token with the server's secret. role "" leaves the role claim out.
// Tokens expire in an hour unless withExp says otherwise.
func mintJWT(t *testing.T, role string, opts ...claimOpt) string {
	t.Helper()
	c := jwt.MapClaims{"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	if role != "" {
		c["role"] = role
	}
	for _, o := range opts {
		o(c)
	}
	return signJWT(t, jwt.SigningMethodHS256, []byte(httpJWTSecret), c)
}

// signJWT signs claims with any method and key (for tokens the server must refuse).
func signJWT(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	require.NoError(t, err)
	return s
}

// httpResponse is what a request got back.
type httpResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r httpResponse) String() string {
	return strconv.Itoa(r.Status) + " " + string(r.Body)
}

// reqOpt adjusts a request before it is sent.
type reqOpt func(*http.Request)

// withHeader sets a request header (Authorization included: it overrides the token).
func withHeader(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }

// httpClient is shared; every test server has its own address, so connections never mix.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// do sends method path (with query) to the test server. token, when not empty, is sent as
// "Authorization: Bearer <token>"; a non-empty body is sent as application/json unless an
// option sets another Content-Type.
func (b *httpBundle) do(t *testing.T, method, path, token, body string, opts ...reqOpt) httpResponse {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, b.baseURL+path, rd)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := httpClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return httpResponse{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// requireOKJSON asserts a 200 JSON response and returns its body decoded.
func requireOKJSON(t *testing.T, r httpResponse) any {
	t.Helper()
	require.Equal(t, http.StatusOK, r.Status, "body: %s", r.Body)
	require.True(t, strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"), "Content-Type %q", r.Header.Get("Content-Type"))
	var v any
	require.NoError(t, json.Unmarshal(r.Body, &v), "body: %s", r.Body)
	return v
}

// apiError is the four-field body of every REST error.
type apiError struct {
	StatusCode string `json:"statusCode"`
	Code       string `json:"code"`
	Error      string `json:"error"`
	Message    string `json:"message"`
}

func (e apiError) json() string {
	b, _ := json.Marshal(e)
	return string(b)
}

// requireErrorShape asserts spec §11 item 7 for an error response: a JSON body with exactly
// the keys statusCode (a string of digits), code, error and message, all strings.
func requireErrorShape(t *testing.T, r httpResponse) apiError {
	t.Helper()
	require.True(t, strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"), "Content-Type %q of %s", r.Header.Get("Content-Type"), r)
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &m), "error body: %s", r.Body)
	require.Equal(t, []string{"code", "error", "message", "statusCode"}, sortedKeys(m), "error body: %s", r.Body)
	for k, v := range m {
		require.IsType(t, "", v, "error body field %s: %s", k, r.Body)
	}
	require.Regexp(t, `^[1-5][0-9][0-9]$`, m["statusCode"], "error body: %s", r.Body)
	var e apiError
	require.NoError(t, json.Unmarshal(r.Body, &e))
	return e
}

// requireAPIError asserts an error response exactly: status line and whole body.
func requireAPIError(t *testing.T, r httpResponse, httpStatus int, want apiError) {
	t.Helper()
	requireErrorShape(t, r)
	require.Equal(t, httpStatus, r.Status, "body: %s", r.Body)
	require.JSONEq(t, want.json(), string(r.Body))
}

// requireAPIErrorCode asserts an error response's status line, statusCode and code, for the
// errors whose label or message the contract does not pin; it returns the body.
func requireAPIErrorCode(t *testing.T, r httpResponse, httpStatus int, statusCode, code string) apiError {
	t.Helper()
	e := requireErrorShape(t, r)
	require.Equal(t, httpStatus, r.Status, "body: %s", r.Body)
	require.Equal(t, statusCode, e.StatusCode, "body: %s", r.Body)
	require.Equal(t, code, e.Code, "body: %s", r.Body)
	require.NotEmpty(t, e.Message, "body: %s", r.Body)
	return e
}

// The errors many tests expect.
var (
	errNoSuchBucket = apiError{"404", "NoSuchBucket", "Bucket not found", "Bucket not found"}
	errNoAuthHeader = apiError{"400", "InvalidRequest", "Error", "headers must have required property 'authorization'"}
	errRLSInsert    = apiError{"403", "AccessDenied", "Unauthorized", "new row violates row-level security policy"}
	errBadName      = apiError{"400", "InvalidBucketName", "Invalid Input", "Bucket name invalid"}
	errTooLarge     = apiError{"413", "EntityTooLarge", "Payload too large", "The object exceeded the maximum allowed size"}
)

// jsTimestamp is a JavaScript Date#toISOString rendering (spec §1.3).
var jsTimestamp = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// percentEncodeAll escapes every byte that is not a letter or digit, so the path carries the
// name only in encoded form.
func percentEncodeAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(strconv.FormatInt(int64(c)|0x100, 16)[1:]))
	}
	return b.String()
}
