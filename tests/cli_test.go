package tests

// End-to-end tests of the storage binary (cmd/storage): it is built once, then run as a child
// process the way an operator runs it, configured through the environment only.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	osexec "os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	storage "github.com/pgstorage/storage"
	"github.com/pgstorage/storage/tests/testdb"
)

const (
	cliReadyTimeout = 60 * time.Second // serve: start (initdb on first run) until "listening"
	cliStopTimeout  = 30 * time.Second // serve: signal until exit
	cliRunTimeout   = 60 * time.Second // one-shot commands (migrate, keys, failing serve)
	cliBuildTimeout = 5 * time.Minute
)

// cliEnvVarNames is the envVars table of cmd/storage/config.go, in order.
var cliEnvVarNames = []string{
	"DATABASE_URL", "DATABASE_MAX_CONNECTIONS", "STORAGE_DATA_DIR", "STORAGE_PG_BINDIR",
	"SERVER_HOST", "SERVER_PORT", "AUTH_JWT_SECRET", "AUTH_JWT_ALGORITHM", "JWT_JWKS", "AUTH_ALLOWED_ROLES",
	"UPLOAD_FILE_SIZE_LIMIT", "VERSION", "SERVER_READ_TIMEOUT", "SERVER_WRITE_TIMEOUT",
	"SERVER_IDLE_TIMEOUT", "LOG_LEVEL", "STORAGE_BLOB_RETENTION", "STORAGE_GC_INTERVAL",
	"SERVER_HEADER_TIMEOUT", "SERVER_MAX_CONNECTIONS", "SERVER_MAX_CONNECTIONS_PER_IP",
	"SERVER_MAX_UPLOADS", "SERVER_MAX_DOWNLOADS", "DATABASE_STATEMENT_TIMEOUT",
	"DATABASE_LOCK_TIMEOUT", "DATABASE_POOL_ACQUIRE_TIMEOUT",
	"STORAGE_LEFTOVER_GRACE", "STORAGE_UPLOAD_EXPIRY",
}

// cliBin is the storage binary shared by the tests of this file. It is built once (a
// sync.Once in effect, under the mutex) for all the tests that use it, and removed when the
// last of them finishes: each test takes a reference before t.Parallel, so the count cannot
// drop to zero while a paused parallel test still needs the binary. (With -count=N the next
// round builds it again, from the build cache.)
var cliBin struct {
	sync.Mutex
	dir   string // temporary directory holding the binary; "" when not built
	path  string
	err   error
	users int
}

// cliBinary returns the path of the storage binary. Call it before t.Parallel.
func cliBinary(t *testing.T) string {
	t.Helper()
	cliBin.Lock()
	defer cliBin.Unlock()
	if cliBin.err != nil {
		t.Fatal(cliBin.err)
	}
	if cliBin.path == "" {
		cliBin.path, cliBin.dir, cliBin.err = cliBuild()
		if cliBin.err != nil {
			t.Fatal(cliBin.err)
		}
	}
	cliBin.users++
	t.Cleanup(func() {
		cliBin.Lock()
		defer cliBin.Unlock()
		if cliBin.users--; cliBin.users == 0 {
			os.RemoveAll(cliBin.dir)
			cliBin.dir, cliBin.path = "", ""
		}
	})
	return cliBin.path
}

func cliBuild() (path, dir string, err error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", "", errors.New("cannot locate cli_test.go to find the module root")
	}
	root := filepath.Join(filepath.Dir(file), "..")
	dir, err = os.MkdirTemp("", "storage-cli-bin-")
	if err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, "storage")
	ctx, cancel := context.WithTimeout(context.Background(), cliBuildTimeout)
	defer cancel()
	cmd := osexec.CommandContext(ctx, "go", "build", "-o", path, "./cmd/storage")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("go build ./cmd/storage: %v\n%s", err, out)
	}
	return path, dir, nil
}

// cliTempDir returns a fresh directory, removed after the test, that the postgres OS user can
// traverse (the embedded cluster runs as postgres when we are root). os.MkdirTemp makes 0700
// directories, hence the chmod; as root, TMPDIR might sit under a directory postgres cannot
// traverse, so /tmp (mode 1777) is used instead.
func cliTempDir(t *testing.T) string {
	t.Helper()
	base := os.TempDir()
	if os.Geteuid() == 0 {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "storage-cli-")
	require.NoError(t, err)
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("removing %s: %v", dir, err)
		}
	})
	require.NoError(t, os.Chmod(dir, 0o755))
	return dir
}

// cliFreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func cliFreePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return strconv.Itoa(port)
}

// cliEnv is the environment of the test process without any storage configuration (nor
// libpq's PG* variables), plus kv ("NAME=value"; later entries win).
func cliEnv(kv ...string) []string {
	drop := map[string]bool{}
	for _, n := range cliEnvVarNames {
		drop[n] = true
	}
	var env []string
	for _, e := range os.Environ() {
		name, _, _ := strings.Cut(e, "=")
		if drop[name] || strings.HasPrefix(name, "PG") {
			continue
		}
		env = append(env, e)
	}
	return append(env, kv...)
}

// cliSyncBuffer collects a child's output while the test reads it.
type cliSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *cliSyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *cliSyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// cliTail is the end of s, for failure messages (serve's stderr carries postgres' log).
func cliTail(s string) string {
	const n = 6000
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func cliExitCode(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var ee *osexec.ExitError
	require.ErrorAs(t, err, &ee)
	return ee.ExitCode() // -1 when killed by a signal
}

type cliResult struct {
	code           int
	stdout, stderr string
}

// cliRun runs the binary to completion (bounded by cliRunTimeout).
func cliRun(t *testing.T, bin string, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliRunTimeout)
	defer cancel()
	cmd := osexec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "storage %v did not finish within %v\nstdout:\n%s\nstderr:\n%s", args, cliRunTimeout, &stdout, cliTail(stderr.String()))
	return cliResult{code: cliExitCode(t, err), stdout: stdout.String(), stderr: stderr.String()}
}

// cliOneLine requires stderr to be exactly one non-empty line and returns it.
func cliOneLine(t *testing.T, stderr string) string {
	t.Helper()
	msg := strings.TrimSuffix(stderr, "\n")
	require.NotEmpty(t, strings.TrimSpace(msg), "want a one-line error on stderr, got nothing")
	require.NotContains(t, msg, "\n", "want a one-line error on stderr, got:\n%s", stderr)
	return msg
}

// cliServer is a running `storage serve`.
type cliServer struct {
	t       *testing.T
	cmd     *osexec.Cmd
	stdout  cliSyncBuffer
	stderr  cliSyncBuffer
	exited  chan struct{} // closed once Wait returned
	waitErr error

	bin string   // the binary, for `storage keys`
	env []string // serve's environment

	// Set by waitReady.
	url           string // as printed: "http://host:port"
	schema        int
	anon, service string
	printedKeys   bool // the banner showed the keys (a secret generated at this start)

	keyless bool // no keys exist (JWT_JWKS without AUTH_JWT_SECRET): waitReady fetches none
}

// cliServe starts `storage serve` and arranges for it (and, with the embedded default in
// dataDir, its postgres) to be gone after the test. Call waitReady next.
func cliServe(t *testing.T, bin, dataDir string, env []string) *cliServer {
	t.Helper()
	s := &cliServer{t: t, exited: make(chan struct{}), bin: bin, env: env}
	s.cmd = osexec.Command(bin, "serve")
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.cmd.WaitDelay = 10 * time.Second
	require.NoError(t, s.cmd.Start())
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			select {
			case <-s.exited:
			case <-time.After(cliStopTimeout):
				t.Errorf("storage serve (PID %d) did not exit after SIGKILL", s.cmd.Process.Pid)
			}
		}
		if dataDir != "" {
			cliReapCluster(t, filepath.Join(dataDir, "pg"))
		}
	})
	return s
}

var (
	cliListeningRE = regexp.MustCompile(`(?m)^storage listening on (http://\S+) \(schema version (\d+)\)\n`)
	cliAnonRE      = regexp.MustCompile(`(?m)^ANON_KEY=(\S+)\n`)
	cliServiceRE   = regexp.MustCompile(`(?m)^SERVICE_ROLE_KEY=(\S+)\n`)
	cliKeysLineRE  = regexp.MustCompile(`(?m)^keys: .*\n`) // the banner's last line
)

// waitReady waits until serve has printed its banner and takes the keys from it or, when it
// does not show them (the secret was not generated at this start), from `storage keys` run
// with the same environment.
func (s *cliServer) waitReady() {
	t := s.t
	t.Helper()
	deadline := time.Now().Add(cliReadyTimeout)
	for {
		out := s.stdout.String()
		l := cliListeningRE.FindStringSubmatch(out)
		if l != nil && cliKeysLineRE.MatchString(out) {
			s.url = l[1]
			var err error
			s.schema, err = strconv.Atoi(l[2])
			require.NoError(t, err)
			a, k := cliAnonRE.FindStringSubmatch(out), cliServiceRE.FindStringSubmatch(out)
			require.Equal(t, a == nil, k == nil, "serve printed one key without the other:\n%s", out)
			if s.printedKeys = a != nil; s.printedKeys {
				s.anon, s.service = a[1], k[1]
				return
			}
			if s.keyless {
				return
			}
			res := cliRun(t, s.bin, s.env, "keys")
			require.Equal(t, 0, res.code, res.stderr)
			s.anon, s.service = cliKeysOutput(t, res.stdout)
			return
		}
		select {
		case <-s.exited:
			t.Fatalf("storage serve exited before it was ready (%v)\nstdout:\n%s\nstderr:\n%s", s.waitErr, out, cliTail(s.stderr.String()))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("storage serve did not print its banner (`storage listening on` … `keys:`) within %v\nstdout:\n%s\nstderr:\n%s", cliReadyTimeout, out, cliTail(s.stderr.String()))
		}
	}
}

// stop sends sig and returns the exit code, failing if serve takes longer than cliStopTimeout.
func (s *cliServer) stop(sig syscall.Signal) int {
	t := s.t
	t.Helper()
	require.NoError(t, s.cmd.Process.Signal(sig))
	select {
	case <-s.exited:
	case <-time.After(cliStopTimeout):
		t.Fatalf("storage serve did not exit within %v of %v\nstderr:\n%s", cliStopTimeout, sig, cliTail(s.stderr.String()))
	}
	code := cliExitCode(t, s.waitErr)
	if code != 0 {
		t.Logf("storage serve exited with %v\nstderr:\n%s", s.waitErr, cliTail(s.stderr.String()))
	}
	return code
}

// cliPostgresOf lists the PIDs of postgres processes working in pgDir (the postmaster and
// its children chdir to the data directory).
func cliPostgresOf(pgDir string) []int {
	if real, err := filepath.EvalSymlinks(pgDir); err == nil {
		pgDir = real
	}
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink("/proc/" + e.Name() + "/exe")
		if err != nil || filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != "postgres" {
			continue
		}
		if cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd"); err == nil && cwd == pgDir {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cliRequireClusterStopped asserts that the embedded cluster in dataDir is fully down.
func cliRequireClusterStopped(t *testing.T, dataDir string) {
	t.Helper()
	pgDir := filepath.Join(dataDir, "pg")
	fi, err := os.Stat(pgDir) // (pg may be a symlink to the relocated cluster)
	require.NoError(t, err)
	require.True(t, fi.IsDir(), "%s is not a directory", pgDir)
	require.NoFileExists(t, filepath.Join(pgDir, "postmaster.pid"), "the embedded postgres did not shut down cleanly")
	require.Empty(t, cliPostgresOf(pgDir), "postgres processes of %s are still running", pgDir)
}

// cliReapCluster is the cleanup after a serve that may have been killed: its postmaster gets
// SIGINT from the kernel (Pdeathsig) and shuts down by itself; wait for that, and kill what is
// left of it after 15s so that the data directory can be removed.
func cliReapCluster(t *testing.T, pgDir string) {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && len(cliPostgresOf(pgDir)) > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	if pids := cliPostgresOf(pgDir); len(pids) > 0 {
		t.Logf("killing postgres processes left in %s: %v", pgDir, pids)
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && len(cliPostgresOf(pgDir)) > 0; {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// cliHTTP makes one request with token as bearer and returns the status and body.
func cliHTTP(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err, "%s %s", method, url)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// cliBucketNames lists the names GET /bucket returns.
func cliBucketNames(t *testing.T, baseURL, token string) []string {
	t.Helper()
	code, body := cliHTTP(t, http.MethodGet, baseURL+"/bucket", token, "")
	require.Equal(t, http.StatusOK, code, body)
	var buckets []struct {
		Name string `json:"name"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &buckets), body)
	names := []string{}
	for _, b := range buckets {
		names = append(names, b.Name)
	}
	return names
}

// cliJWTPayload decodes a JWT's payload without verifying it.
func cliJWTPayload(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3, "not a JWT: %q", token)
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err, "JWT payload of %q", token)
	var claims map[string]any
	require.NoError(t, json.Unmarshal(raw, &claims), "JWT payload %s", raw)
	return claims
}

// cliRequireKey checks that token is signed with secret by alg and carries role.
func cliRequireKey(t *testing.T, token, secret, alg, role string) {
	t.Helper()
	require.Equal(t, role, cliJWTPayload(t, token)["role"])
	parsed, err := jwt.Parse(token, func(*jwt.Token) (any, error) { return []byte(secret), nil }, jwt.WithValidMethods([]string{alg}))
	require.NoError(t, err, "key %q does not verify with %s and the expected secret", token, alg)
	require.Equal(t, role, parsed.Claims.(jwt.MapClaims)["role"])
}

// cliKeysOutput parses `storage keys` output, which must be exactly the two assignments.
func cliKeysOutput(t *testing.T, stdout string) (anon, service string) {
	t.Helper()
	m := regexp.MustCompile(`\AANON_KEY=(\S+)\nSERVICE_ROLE_KEY=(\S+)\n\z`).FindStringSubmatch(stdout)
	require.NotNil(t, m, "storage keys printed %q", stdout)
	return m[1], m[2]
}

// TestCLIEmbeddedEndToEnd runs the embedded default through two lives: serve, create a bucket,
// SIGTERM, serve again (the bucket and the keys survive), then `storage keys`.
func TestCLIEmbeddedEndToEnd(t *testing.T) {
	bin := cliBinary(t)
	t.Parallel()
	dataDir := filepath.Join(cliTempDir(t), "data")
	port := cliFreePort(t)
	env := cliEnv("STORAGE_DATA_DIR="+dataDir, "SERVER_HOST=127.0.0.1", "SERVER_PORT="+port)
	wantURL := "http://127.0.0.1:" + port

	s := cliServe(t, bin, dataDir, env)
	s.waitReady()
	require.Equal(t, wantURL, s.url)
	require.Equal(t, int(storage.LatestVersion()), s.schema)
	// The first start generates the secret and shows the keys, this once.
	require.True(t, s.printedKeys, "the first start must print the keys of the secret it generated:\n%s", s.stdout.String())
	require.Contains(t, s.stdout.String(), "keys: shown this once, for the JWT secret just generated in "+filepath.Join(dataDir, "jwt_secret"))

	code, body := cliHTTP(t, http.MethodGet, s.url+"/bucket", s.service, "")
	require.Equal(t, http.StatusOK, code, body)
	require.JSONEq(t, `[]`, body)
	code, body = cliHTTP(t, http.MethodPost, s.url+"/bucket", s.service, `{"name":"keep"}`)
	require.Equal(t, http.StatusOK, code, body)
	require.JSONEq(t, `{"name":"keep"}`, body)
	cliRequireServerRole(t, s.stdout.String())
	// The server checks signatures: a key signed with another secret is refused.
	forged, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"role": "service_role"}).SignedString([]byte("not-the-secret"))
	require.NoError(t, err)
	code, body = cliHTTP(t, http.MethodGet, s.url+"/bucket", forged, "")
	require.Equal(t, http.StatusBadRequest, code, body)
	require.Contains(t, body, "signature verification failed")

	secretPath := filepath.Join(dataDir, "jwt_secret")
	fi, err := os.Stat(secretPath)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "jwt_secret mode")
	secretBytes, err := os.ReadFile(secretPath)
	require.NoError(t, err)
	secret := strings.TrimSpace(string(secretBytes))
	require.NotEmpty(t, secret)
	cliRequireKey(t, s.anon, secret, "HS256", "anon")
	cliRequireKey(t, s.service, secret, "HS256", "service_role")

	require.Equal(t, 0, s.stop(syscall.SIGTERM), "exit code after SIGTERM")
	cliRequireClusterStopped(t, dataDir)

	// Second life: same data dir, same secret. The keys are not printed again (serve's output
	// ends up in logs): the banner says how to get them, and waitReady got them that way.
	s2 := cliServe(t, bin, dataDir, env)
	s2.waitReady()
	require.False(t, s2.printedKeys, "a start with a kept secret printed the keys:\n%s", s2.stdout.String())
	require.NotContains(t, s2.stdout.String(), s.service)
	require.NotContains(t, s2.stdout.String(), s.anon)
	require.Contains(t, s2.stdout.String(), "keys: `storage keys` prints ANON_KEY and SERVICE_ROLE_KEY (run it with this environment)\n")
	require.Equal(t, wantURL, s2.url)
	require.Equal(t, []string{"keep"}, cliBucketNames(t, s2.url, s2.service), "bucket created before the restart")
	require.Equal(t, s.anon, s2.anon, "ANON_KEY changed across restarts")
	require.Equal(t, s.service, s2.service, "SERVICE_ROLE_KEY changed across restarts")
	require.Equal(t, 0, s2.stop(syscall.SIGTERM), "exit code after SIGTERM")
	cliRequireClusterStopped(t, dataDir)

	res := cliRun(t, bin, cliEnv("STORAGE_DATA_DIR="+dataDir), "keys")
	require.Equal(t, 0, res.code, res.stderr)
	require.Equal(t, "ANON_KEY="+s.anon+"\nSERVICE_ROLE_KEY="+s.service+"\n", res.stdout)
	anon, service := cliKeysOutput(t, res.stdout)
	require.Equal(t, "anon", cliJWTPayload(t, anon)["role"])
	require.Equal(t, "service_role", cliJWTPayload(t, service)["role"])
}

// cliRequireServerRole checks, through the superuser connection serve printed, that the
// embedded default's requests run through storage_app, a login role that is not a superuser
// and does not bypass RLS (hardening finding 7: a token resetting the role ran as the
// superuser), and that the server keeps no superuser connection open.
func cliRequireServerRole(t *testing.T, stdout string) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^database: (.+)\n`).FindStringSubmatch(stdout)
	require.NotNil(t, m, stdout)
	require.Contains(t, stdout, "\nrequests connect as storage_app (no superuser)\n")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, m[1])
	require.NoError(t, err)
	defer conn.Close(ctx)
	var super, bypass bool
	require.NoError(t, conn.QueryRow(ctx, `select rolsuper, rolbypassrls from pg_roles where rolname = 'storage_app'`).Scan(&super, &bypass))
	require.False(t, super, "storage_app is a superuser")
	require.False(t, bypass, "storage_app bypasses RLS")
	var users []string
	rows, err := conn.Query(ctx, `select distinct usename::text from pg_stat_activity
		where backend_type = 'client backend' and pid <> pg_backend_pid() order by 1`)
	require.NoError(t, err)
	users, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"storage_app"}, users, "the server's connections")
}

// TestCLIEmbeddedSIGINT: Ctrl-C stops serve and its cluster cleanly too.
func TestCLIEmbeddedSIGINT(t *testing.T) {
	bin := cliBinary(t)
	t.Parallel()
	dataDir := filepath.Join(cliTempDir(t), "data")
	env := cliEnv("STORAGE_DATA_DIR="+dataDir, "SERVER_HOST=127.0.0.1", "SERVER_PORT="+cliFreePort(t))
	s := cliServe(t, bin, dataDir, env)
	s.waitReady()
	code, body := cliHTTP(t, http.MethodGet, s.url+"/bucket", s.service, "")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, 0, s.stop(syscall.SIGINT), "exit code after SIGINT")
	cliRequireClusterStopped(t, dataDir)
}

// TestCLIExternalDatabase runs migrate and serve against DATABASE_URL (a migrated test
// database), where no embedded cluster is involved.
func TestCLIExternalDatabase(t *testing.T) {
	bin := cliBinary(t)
	t.Parallel()
	db := testdb.New(t)
	dataDir := filepath.Join(cliTempDir(t), "data")
	latest := storage.LatestVersion()
	u, err := url.Parse(db.URL)
	require.NoError(t, err)
	password, _ := u.User.Password()
	require.NotEmpty(t, password)
	base := []string{"DATABASE_URL=" + db.URL, "STORAGE_DATA_DIR=" + dataDir, "SERVER_HOST=127.0.0.1"}

	requireMigrateOutput := func(t *testing.T, res cliResult) {
		t.Helper()
		require.Equal(t, 0, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
		want := fmt.Sprintf("schema version %d (latest %d)", latest, latest)
		require.True(t, strings.HasPrefix(res.stdout, want), "want %q, got %q", want, res.stdout)
		require.Equal(t, 1, strings.Count(res.stdout, "\n"), "one line: %q", res.stdout)
		require.NotContains(t, res.stdout, password, "migrate printed the database password")
	}

	t.Run("migrate", func(t *testing.T) {
		requireMigrateOutput(t, cliRun(t, bin, cliEnv(append(base, "AUTH_JWT_SECRET=s")...), "migrate"))
	})

	// migrate never uses the JWT secret, so it must not demand one (a migration job should
	// not need the API secret).
	t.Run("migrate without AUTH_JWT_SECRET", func(t *testing.T) {
		requireMigrateOutput(t, cliRun(t, bin, cliEnv(base...), "migrate"))
	})

	t.Run("serve without AUTH_JWT_SECRET", func(t *testing.T) {
		res := cliRun(t, bin, cliEnv(append(base, "SERVER_PORT="+cliFreePort(t))...), "serve")
		require.Equal(t, 1, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
		require.Contains(t, cliOneLine(t, res.stderr), "AUTH_JWT_SECRET")
		require.Empty(t, res.stdout)
	})

	t.Run("serve", func(t *testing.T) {
		const secret = "external-secret"
		port := cliFreePort(t)
		blobDir := filepath.Join(t.TempDir(), "blobs")
		s := cliServe(t, bin, "", cliEnv(append(base, "AUTH_JWT_SECRET="+secret, "SERVER_PORT="+port,
			"STORAGE_FILE_BACKEND_PATH="+blobDir)...))
		s.waitReady()
		require.Equal(t, "http://127.0.0.1:"+port, s.url)
		require.Equal(t, int(latest), s.schema)
		require.NotContains(t, s.stdout.String(), password, "serve printed the database password")
		require.False(t, s.printedKeys, "serve printed the keys of a configured secret:\n%s", s.stdout.String())
		cliRequireKey(t, s.anon, secret, "HS256", "anon")
		cliRequireKey(t, s.service, secret, "HS256", "service_role")
		code, body := cliHTTP(t, http.MethodPost, s.url+"/bucket", s.service, `{"name":"ext"}`)
		require.Equal(t, http.StatusOK, code, body)
		require.Equal(t, []string{"ext"}, cliBucketNames(t, s.url, s.service))
		require.Equal(t, 0, s.stop(syscall.SIGTERM))
		require.NoDirExists(t, dataDir, "serve with DATABASE_URL and its own blob path touched STORAGE_DATA_DIR")
		require.DirExists(t, blobDir)
	})

	// SERVER_PORT=0 is accepted (0 to 65535) and means "any free port": the listening line
	// must then say which port was chosen, or nobody can reach the server.
	t.Run("serve on SERVER_PORT=0 prints the port chosen", func(t *testing.T) {
		s := cliServe(t, bin, "", cliEnv(append(base, "AUTH_JWT_SECRET=s", "SERVER_PORT=0")...))
		s.waitReady()
		defer func() { require.Equal(t, 0, s.stop(syscall.SIGTERM)) }()
		hu, err := url.Parse(s.url)
		require.NoError(t, err)
		require.NotEqual(t, "0", hu.Port(), "serve printed %q instead of the port it listens on", s.url)
		code, body := cliHTTP(t, http.MethodGet, s.url+"/bucket", s.service, "")
		require.Equal(t, http.StatusOK, code, body)
	})
}

// TestCLIBadConfiguration: every mistake is exit 1 and one line on stderr naming the culprit.
func TestCLIBadConfiguration(t *testing.T) {
	bin := cliBinary(t)
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { busy.Close() })
	busyPort := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)

	for _, tc := range []struct {
		name   string
		env    []string
		want   []string // substrings of the message
		config bool     // rejected while reading the configuration, before doing anything
	}{
		{"SERVER_PORT not a number", []string{"SERVER_PORT=abc"}, []string{"SERVER_PORT"}, true},
		{"SERVER_PORT out of range", []string{"SERVER_PORT=70000"}, []string{"SERVER_PORT"}, true},
		{"AUTH_JWT_ALGORITHM RS256", []string{"AUTH_JWT_ALGORITHM=RS256"}, []string{"AUTH_JWT_ALGORITHM"}, true},
		{"UPLOAD_FILE_SIZE_LIMIT negative", []string{"UPLOAD_FILE_SIZE_LIMIT=-5"}, []string{"UPLOAD_FILE_SIZE_LIMIT"}, true},
		{"SERVER_READ_TIMEOUT not a duration", []string{"SERVER_READ_TIMEOUT=forever"}, []string{"SERVER_READ_TIMEOUT"}, true},
		{"STORAGE_LEFTOVER_GRACE zero", []string{"STORAGE_LEFTOVER_GRACE=0"}, []string{"STORAGE_LEFTOVER_GRACE", "positive"}, true},
		{"STORAGE_UPLOAD_EXPIRY zero", []string{"STORAGE_UPLOAD_EXPIRY=0"}, []string{"STORAGE_UPLOAD_EXPIRY", "positive"}, true},
		{"WEBHOOK_URL not an http URL", []string{"WEBHOOK_URL=hooks.example.com/storage"}, []string{"WEBHOOK_URL", "http(s) URL"}, true},
		{"WEBHOOK_TIMEOUT zero", []string{"WEBHOOK_TIMEOUT=0"}, []string{"WEBHOOK_TIMEOUT", "positive"}, true},
		{"RATE_LIMITER_DRIVER redis", []string{"RATE_LIMITER_DRIVER=redis"}, []string{"RATE_LIMITER_DRIVER", "only memory"}, true},
		{"IMAGE_TRANSFORMATION_QUALITY out of range", []string{"IMAGE_TRANSFORMATION_QUALITY=101"}, []string{"IMAGE_TRANSFORMATION_QUALITY", "20 to 100"}, true},
		{"database unreachable", []string{"DATABASE_URL=postgres://nobody@127.0.0.1:1/x", "AUTH_JWT_SECRET=s"}, []string{"cannot reach the database"}, false},
		{"LOG_FORMAT xml", []string{"LOG_FORMAT=xml"}, []string{"LOG_FORMAT", "json or text"}, true},
		{"METRICS_ENABLED maybe", []string{"METRICS_ENABLED=maybe"}, []string{"METRICS_ENABLED"}, true},
		{"port in use", []string{"SERVER_PORT=" + busyPort}, []string{"SERVER_PORT"}, false},
		{"METRICS_ADDR in use", []string{"METRICS_ADDR=127.0.0.1:" + busyPort}, []string{"METRICS_ADDR"}, false},
		{"STORAGE_PG_BINDIR missing", []string{"STORAGE_PG_BINDIR=/nonexistent"}, []string{"/nonexistent", "PostgreSQL"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dataDir := filepath.Join(cliTempDir(t), "data")
			// Safe defaults first, so that a wrongly accepted configuration cannot listen on
			// 0.0.0.0:5000 or start a cluster in ./data; tc.env comes last and wins.
			env := cliEnv(append([]string{"STORAGE_DATA_DIR=" + dataDir, "SERVER_HOST=127.0.0.1", "SERVER_PORT=" + cliFreePort(t)}, tc.env...)...)
			res := cliRun(t, bin, env, "serve")
			require.Equal(t, 1, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, cliTail(res.stderr))
			msg := cliOneLine(t, res.stderr)
			for _, w := range tc.want {
				require.Contains(t, msg, w)
			}
			require.Empty(t, res.stdout)
			if tc.config {
				require.NoDirExists(t, dataDir, "a configuration error must be reported before anything is created")
			}
		})
	}
}

// TestCLIHelpAndUsage covers help, usage errors and `storage keys` without a server.
func TestCLIHelpAndUsage(t *testing.T) {
	bin := cliBinary(t)
	t.Parallel()
	dataDir := filepath.Join(cliTempDir(t), "data")
	safe := cliEnv("STORAGE_DATA_DIR="+dataDir, "SERVER_HOST=127.0.0.1", "SERVER_PORT="+cliFreePort(t))

	defaults := map[string]string{
		"DATABASE_URL":             "(empty)",
		"DATABASE_MAX_CONNECTIONS": strconv.Itoa(4 * runtime.NumCPU()),
		"STORAGE_DATA_DIR":         "./data",
		"STORAGE_PG_BINDIR":        "(empty)",
		"SERVER_HOST":              "0.0.0.0",
		"SERVER_PORT":              "5000",
		"AUTH_JWT_SECRET":          "(empty)",
		"AUTH_JWT_ALGORITHM":       "HS256",
		"JWT_JWKS":                 "(empty)",
		"AUTH_ALLOWED_ROLES":       "anon,authenticated,service_role",
		"UPLOAD_FILE_SIZE_LIMIT":   "524288000",
		"VERSION":                  "0.0.0",
		"SERVER_READ_TIMEOUT":      "60s",
		"SERVER_WRITE_TIMEOUT":     "60s",
		"SERVER_IDLE_TIMEOUT":      "120s",
		"LOG_LEVEL":                "info",
		"STORAGE_BLOB_RETENTION":   "168h",
		"STORAGE_GC_INTERVAL":      "30s",
		"STORAGE_LEFTOVER_GRACE":   "1h",
		"STORAGE_UPLOAD_EXPIRY":    "24h",
		// The limits: SERVER_READ_TIMEOUT and SERVER_WRITE_TIMEOUT are idle timeouts.
		"SERVER_HEADER_TIMEOUT":         "30s",
		"SERVER_MAX_CONNECTIONS":        "auto",
		"SERVER_MAX_CONNECTIONS_PER_IP": "1000",
		"SERVER_MAX_UPLOADS":            "256",
		"SERVER_MAX_DOWNLOADS":          "4096",
		"DATABASE_STATEMENT_TIMEOUT":    "30s",
		"DATABASE_LOCK_TIMEOUT":         "5s",
		"DATABASE_POOL_ACQUIRE_TIMEOUT": "5s",
	}
	require.Len(t, defaults, len(cliEnvVarNames))
	for _, args := range [][]string{{"serve", "--help"}, {"reconcile", "--help"}, {"help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			res := cliRun(t, bin, safe, args...)
			require.Equal(t, 0, res.code, res.stderr)
			shown := map[string]string{}
			for _, line := range strings.Split(res.stdout, "\n") {
				if f := strings.Fields(line); len(f) >= 2 {
					shown[f[0]] = f[1]
				}
			}
			for _, name := range cliEnvVarNames {
				def, ok := shown[name]
				require.True(t, ok, "%s missing from `storage %s`:\n%s", name, strings.Join(args, " "), res.stdout)
				require.Equal(t, defaults[name], def, "default of %s", name)
			}
		})
	}

	t.Run("help mentions reconcile", func(t *testing.T) {
		res := cliRun(t, bin, safe, "help")
		require.Equal(t, 0, res.code, res.stderr)
		require.Contains(t, res.stdout, "storage reconcile [--apply] [--grace 1h]")
		require.Contains(t, res.stdout, "storage check [--grace 1h]")
	})
	t.Run("reconcile --help shows the flags", func(t *testing.T) {
		res := cliRun(t, bin, safe, "reconcile", "--help")
		require.Equal(t, 0, res.code, res.stderr)
		require.Empty(t, res.stderr)
		require.True(t, strings.HasPrefix(res.stdout, "Usage: storage reconcile [--apply] [--grace duration]\n"), "got:\n%s", res.stdout)
		require.Contains(t, res.stdout, "--apply")
		require.Contains(t, res.stdout, "--grace")
		require.Contains(t, res.stdout, "(default 1h0m0s)", "the default grace period")
		require.Contains(t, res.stdout, "\nEnvironment:\n")
		require.NoDirExists(t, dataDir)
	})
	t.Run("check --help shows the flags", func(t *testing.T) {
		res := cliRun(t, bin, safe, "check", "--help")
		require.Equal(t, 0, res.code, res.stderr)
		require.True(t, strings.HasPrefix(res.stdout, "Usage: storage check [--grace duration]\n"), "got:\n%s", res.stdout)
		require.NotContains(t, res.stdout, "--apply", "check never repairs")
		require.Contains(t, res.stdout, "(default 1h0m0s)", "the default grace period")
		require.NoDirExists(t, dataDir)
	})
	t.Run("reconcile unknown flag", func(t *testing.T) {
		res := cliRun(t, bin, safe, "reconcile", "--bogus")
		require.Equal(t, 2, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
		msg := cliOneLine(t, res.stderr)
		require.Contains(t, msg, "storage reconcile")
		require.Contains(t, msg, "-bogus")
		require.Contains(t, msg, "storage reconcile --help")
		require.Empty(t, res.stdout)
		require.NoDirExists(t, dataDir)
	})
	t.Run("reconcile --grace not a duration", func(t *testing.T) {
		res := cliRun(t, bin, safe, "reconcile", "--grace", "soon")
		require.Equal(t, 2, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
		msg := cliOneLine(t, res.stderr)
		require.Contains(t, msg, "-grace")
		require.Contains(t, msg, "soon")
		require.Empty(t, res.stdout)
		require.NoDirExists(t, dataDir)
	})
	// A negative grace parses as a duration, so the flag package accepts it; reconcile itself
	// refuses it, as a failure (exit 1), before opening the blob store or the database.
	t.Run("reconcile --grace negative", func(t *testing.T) {
		res := cliRun(t, bin, safe, "reconcile", "--grace", "-1s")
		require.Equal(t, 2, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
		require.Equal(t, "storage reconcile: invalid value \"-1s\" for flag -grace: must be a duration of 0 or more, such as 30m or 1h (see storage reconcile --help)\n", res.stderr)
		require.Empty(t, res.stdout)
		require.NoDirExists(t, dataDir, "a refused --grace must not create anything")
	})

	t.Run("unknown command", func(t *testing.T) {
		res := cliRun(t, bin, safe, "frobnicate")
		require.Equal(t, 2, res.code, res.stderr)
		require.Contains(t, res.stderr, "frobnicate")
		require.Empty(t, res.stdout)
	})
	t.Run("no command", func(t *testing.T) {
		res := cliRun(t, bin, safe)
		require.Equal(t, 2, res.code, res.stderr)
		require.Contains(t, res.stderr, "Usage")
	})
	t.Run("unexpected argument", func(t *testing.T) {
		res := cliRun(t, bin, safe, "serve", "extra")
		require.Equal(t, 2, res.code, res.stderr)
		require.Contains(t, cliOneLine(t, res.stderr), "extra")
	})

	t.Run("keys without a secret", func(t *testing.T) {
		empty := filepath.Join(cliTempDir(t), "data")
		require.NoError(t, os.Mkdir(empty, 0o755))
		res := cliRun(t, bin, cliEnv("STORAGE_DATA_DIR="+empty), "keys")
		require.Equal(t, 1, res.code, "stdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
		msg := cliOneLine(t, res.stderr)
		require.Contains(t, msg, "AUTH_JWT_SECRET")
		require.Empty(t, res.stdout)
		require.NoFileExists(t, filepath.Join(empty, "jwt_secret"), "keys must not create a secret")
	})
	t.Run("keys with AUTH_JWT_SECRET", func(t *testing.T) {
		res := cliRun(t, bin, cliEnv("STORAGE_DATA_DIR="+dataDir, "AUTH_JWT_SECRET=abc"), "keys")
		require.Equal(t, 0, res.code, res.stderr)
		anon, service := cliKeysOutput(t, res.stdout)
		cliRequireKey(t, anon, "abc", "HS256", "anon")
		cliRequireKey(t, service, "abc", "HS256", "service_role")
		require.NoDirExists(t, dataDir)
	})
	t.Run("keys with AUTH_JWT_ALGORITHM=HS512", func(t *testing.T) {
		res := cliRun(t, bin, cliEnv("STORAGE_DATA_DIR="+dataDir, "AUTH_JWT_SECRET=abc", "AUTH_JWT_ALGORITHM=HS512"), "keys")
		require.Equal(t, 0, res.code, res.stderr)
		anon, service := cliKeysOutput(t, res.stdout)
		cliRequireKey(t, anon, "abc", "HS512", "anon")
		cliRequireKey(t, service, "abc", "HS512", "service_role")
	})
}

// TestCLIDataDirUnreachable: as root, postgres runs as the postgres OS user, which cannot
// enter a 0700 root-owned directory. As the README says, the cluster then goes to
// /var/lib/storage/<hash>, <data>/pg becomes a symlink to it, and serve says so; the next
// start follows the link to the same data.
func TestCLIDataDirUnreachable(t *testing.T) {
	bin := cliBinary(t)
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("only root runs the embedded cluster as another user")
	}
	if _, err := user.Lookup("postgres"); err != nil {
		t.Skip("no postgres OS user")
	}
	const altRoot = "/var/lib/storage"
	private, err := os.MkdirTemp("/tmp", "storage-cli-private-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(private) })
	fi, err := os.Stat(private)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	dataDir := filepath.Join(private, "data")
	pgLink := filepath.Join(dataDir, "pg")
	// Registered before the servers, so it runs after their cleanups have stopped postgres:
	// the relocated cluster is outside the temporary directory and must go too.
	t.Cleanup(func() {
		target, err := os.Readlink(pgLink)
		if err != nil || filepath.Dir(target) != altRoot {
			return
		}
		cliReapCluster(t, target)
		if err := os.RemoveAll(target); err != nil {
			t.Logf("removing %s: %v", target, err)
		}
	})
	env := cliEnv("STORAGE_DATA_DIR="+dataDir, "SERVER_HOST=127.0.0.1", "SERVER_PORT="+cliFreePort(t))

	s := cliServe(t, bin, dataDir, env)
	s.waitReady()
	lfi, err := os.Lstat(pgLink)
	require.NoError(t, err)
	require.Equal(t, os.ModeSymlink, lfi.Mode().Type(), "%s should be a symlink to the relocated cluster", pgLink)
	target, err := os.Readlink(pgLink)
	require.NoError(t, err)
	require.Equal(t, altRoot, filepath.Dir(target), "relocated cluster")
	require.FileExists(t, filepath.Join(target, "PG_VERSION"))
	require.NotEmpty(t, cliPostgresOf(target), "no postgres running in %s", target)
	var notice string
	for _, line := range strings.Split(s.stderr.String(), "\n") {
		if strings.Contains(line, target) {
			notice = line
			break
		}
	}
	require.NotEmpty(t, notice, "serve did not say where the cluster went\nstderr:\n%s", cliTail(s.stderr.String()))
	require.Contains(t, notice, pgLink)
	require.Contains(t, s.stdout.String(), target, "the database line shows the real socket directory")

	code, body := cliHTTP(t, http.MethodPost, s.url+"/bucket", s.service, `{"name":"relocated"}`)
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, 0, s.stop(syscall.SIGTERM))
	cliRequireClusterStopped(t, dataDir)

	s2 := cliServe(t, bin, dataDir, env)
	s2.waitReady()
	require.Equal(t, []string{"relocated"}, cliBucketNames(t, s2.url, s2.service))
	require.Equal(t, s.service, s2.service)
	again, err := os.Readlink(pgLink)
	require.NoError(t, err)
	require.Equal(t, target, again)
	require.Equal(t, 0, s2.stop(syscall.SIGTERM))
	cliRequireClusterStopped(t, dataDir)
}
