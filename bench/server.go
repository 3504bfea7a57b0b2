package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// serverStartTimeout bounds initdb + PostgreSQL start + migrations on a cold machine.
	serverStartTimeout = 2 * time.Minute
	// serverStopGrace covers the server's own drain plus its PostgreSQL fast shutdown.
	serverStopGrace = 40 * time.Second
	// requestTimeout bounds every fixture and probe request.
	requestTimeout = 30 * time.Second
)

// server is the running `storage serve` under test.
type server struct {
	proc    *proc
	base    string // http://127.0.0.1:<port>
	anon    string // ANON_KEY
	service string // SERVICE_ROLE_KEY
	dbConn  string // the `database:` line: keyword/value connection string of the embedded cluster
	logPath string // the server's stderr
	client  *http.Client
}

// serverEnv is the environment the server runs with: ours minus every variable that could
// point it elsewhere (a DATABASE_URL in the caller's shell must not send the benchmark to a
// real database), plus the benchmark's settings. Tuning variables such as
// DATABASE_MAX_CONNECTIONS pass through, so they can be experimented with.
func serverEnv(dataDir string, uploadLimit int64, pprofAddr string, extra []string) []string {
	drop := map[string]bool{
		"DATABASE_URL": true, "STORAGE_DATA_DIR": true, "STORAGE_BACKEND": true,
		"STORAGE_FILE_BACKEND_PATH": true, "AUTH_JWT_SECRET": true, "PGRST_JWT_SECRET": true,
		"SERVER_HOST": true, "SERVER_PORT": true, "LOG_LEVEL": true, "UPLOAD_FILE_SIZE_LIMIT": true,
		"STORAGE_PPROF_ADDR": true, "IMAGE_TRANSFORMATION_ENABLED": true, "ENABLE_IMAGE_TRANSFORMATION": true,
		"IMAGE_TRANSFORMATION_CACHE": true,
	}
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !drop[name] {
			env = append(env, kv)
		}
	}
	if pprofAddr != "" {
		env = append(env, "STORAGE_PPROF_ADDR="+pprofAddr)
	}
	env = append(env,
		"STORAGE_DATA_DIR="+dataDir,
		"STORAGE_BACKEND=file",
		"SERVER_HOST=127.0.0.1",
		"SERVER_PORT=0", // the server binds a free port and prints it
		"LOG_LEVEL="+logLevel(),
		"UPLOAD_FILE_SIZE_LIMIT="+strconv.FormatInt(uploadLimit, 10),
		// The image benchmark compares a server with the variant cache and one without: the
		// caller's shell must not decide either.
		"IMAGE_TRANSFORMATION_ENABLED=true",
		"IMAGE_TRANSFORMATION_CACHE=true",
	)
	// Later entries win (exec.Cmd keeps the last value of a duplicated name).
	return append(env, extra...)
}

// logLevel is the server's LOG_LEVEL: warn (no line per request), unless BENCH_LOG_LEVEL
// says otherwise (info measures what the request log costs).
func logLevel() string {
	if v := os.Getenv("BENCH_LOG_LEVEL"); v != "" {
		return v
	}
	return "warn"
}

// startServer starts bin/storage serve with its data in dir/data and waits for the four lines
// it prints once it accepts requests. pprofAddr, when not "", is where it serves its profiles;
// extra ("NAME=value") overrides the environment serverEnv gives it.
func startServer(ctx context.Context, procs *procSet, bin, dir string, uploadLimit int64, pprofAddr string, extra ...string) (*server, error) {
	s := &server{logPath: filepath.Join(dir, "server.log")}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = serverEnv(filepath.Join(dir, "data"), uploadLimit, pprofAddr, extra)
	cmd.Stderr = logFile
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	// SIGTERM, also as the parent-death signal: the server then stops its PostgreSQL cleanly.
	s.proc, err = procs.start("storage serve", cmd, syscall.SIGTERM, serverStopGrace)
	logFile.Close() // the child holds its own descriptor
	if err != nil {
		return nil, err
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		// Keep the pipe drained: a server blocked writing to stdout would stall the benchmark.
		_, _ = io.Copy(io.Discard, stdout)
	}()
	timeout := time.After(serverStartTimeout)
	for s.base == "" || s.dbConn == "" || s.anon == "" || s.service == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				<-s.proc.done
				return nil, fmt.Errorf("storage serve exited during start-up (%v): %s", s.proc.waitErr, s.logTail(10))
			}
			s.parseStartLine(line)
		case <-timeout:
			return nil, fmt.Errorf("storage serve did not start within %v: %s", serverStartTimeout, s.logTail(10))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	go func() {
		for range lines {
		}
	}()
	s.client = &http.Client{
		Timeout:   requestTimeout,
		Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64},
	}
	return s, nil
}

// parseStartLine picks the URL, the database and the keys out of the server's start-up lines:
//
//	storage listening on http://127.0.0.1:41234 (schema version 6)
//	database: host=/tmp/…/socket port=5432 user=postgres dbname=postgres sslmode=disable
//	ANON_KEY=eyJ…
//	SERVICE_ROLE_KEY=eyJ…
func (s *server) parseStartLine(line string) {
	switch {
	case strings.HasPrefix(line, "storage listening on "):
		if f := strings.Fields(strings.TrimPrefix(line, "storage listening on ")); len(f) > 0 {
			s.base = f[0]
		}
	case strings.HasPrefix(line, "database: "):
		s.dbConn = strings.TrimPrefix(line, "database: ")
	case strings.HasPrefix(line, "ANON_KEY="):
		s.anon = strings.TrimPrefix(line, "ANON_KEY=")
	case strings.HasPrefix(line, "SERVICE_ROLE_KEY="):
		s.service = strings.TrimPrefix(line, "SERVICE_ROLE_KEY=")
	}
}

// logTail returns the last lines of the server's stderr, for error messages.
func (s *server) logTail(n int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return "(server log empty)"
	}
	return lastLines(string(b), n)
}

// do sends one request and returns the status and body. token "" sends no Authorization.
func (s *server) do(ctx context.Context, method, path, token string, header map[string]string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// mustOK sends one request and fails unless the answer is 200.
func (s *server) mustOK(ctx context.Context, what, method, path, token string, header map[string]string, body []byte) error {
	status, b, err := s.do(ctx, method, path, token, header, body)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("%s: %s %s answered %d: %s", what, method, path, status, short(b))
	}
	return nil
}

// The fixtures every small-request workload reads.
const (
	privateBucket = "b"
	publicBucket  = "pb"
	objectKey     = "k"
	smallSize     = 1024
)

var (
	jsonHeader   = map[string]string{"Content-Type": "application/json"}
	binaryHeader = map[string]string{"Content-Type": "application/octet-stream"}
	smallObject  = bytes.Repeat([]byte("0123456789abcdef"), smallSize/16)
)

// createFixtures makes private bucket b and public bucket pb, each holding a 1 KiB object k.
func (s *server) createFixtures(ctx context.Context) error {
	for _, b := range []struct {
		name   string
		public bool
	}{{privateBucket, false}, {publicBucket, true}} {
		body := fmt.Sprintf(`{"name":%q,"public":%t}`, b.name, b.public)
		if err := s.mustOK(ctx, "create bucket "+b.name, "POST", "/bucket", s.service, jsonHeader, []byte(body)); err != nil {
			return err
		}
		if err := s.mustOK(ctx, "upload "+b.name+"/"+objectKey, "POST", "/object/"+b.name+"/"+objectKey, s.service, binaryHeader, smallObject); err != nil {
			return err
		}
	}
	return nil
}

// short renders a response body for a one-line message: the message of a storage error body,
// else the body itself, cut.
func short(b []byte) string {
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		return e.Message
	}
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}
