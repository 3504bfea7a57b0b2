package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pgstorage/storage/blob/s3"
)

// Version is the versitygw release the tests are written against.
const Version = "v1.8.0"

// InstallCommand installs the server binary (what `make versitygw` runs).
const InstallCommand = "go install github.com/versity/versitygw/cmd/versitygw@" + Version

// Region is the region the server is started with and clients sign for.
const Region = "us-east-1"

// Bounds on waiting for the server: it listens within a second or two, and stops at once on
// SIGTERM; the bounds only keep a wedged server from hanging the tests.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// Binary finds versitygw: $VERSITYGW, else versitygw on PATH, else where `go install` puts
// it (GOBIN, or the first GOPATH entry's bin). The error names the install command.
func Binary() (string, error) {
	if p := os.Getenv("VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("VERSITYGW=%s: %w; install versitygw %s with `make versitygw` or\n\t%s",
				p, err, Version, InstallCommand)
		}
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var tried []string
	for _, dir := range goInstallDirs() {
		p := filepath.Join(dir, "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("versitygw %s (the S3 server the tests run against) not found via $VERSITYGW, PATH or %s; install it with `make versitygw` or\n\t%s",
		Version, strings.Join(tried, ", "), InstallCommand)
}

// goInstallDirs lists where `go install` may have put binaries.
func goInstallDirs() []string {
	var dirs []string
	out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		return nil
	}
	// One line per variable, in order; GOBIN's is empty unless set.
	lines := strings.Split(string(out), "\n")
	if len(lines) < 2 {
		return nil
	}
	if gobin := strings.TrimSpace(lines[0]); gobin != "" {
		dirs = append(dirs, gobin)
	}
	if gopath := filepath.SplitList(strings.TrimSpace(lines[1])); len(gopath) > 0 && gopath[0] != "" {
		dirs = append(dirs, filepath.Join(gopath[0], "bin"))
	}
	return dirs
}

// Server is a running versitygw. Its fields are what a client needs.
type Server struct {
	Endpoint        string // http://127.0.0.1:port
	AccessKeyID     string
	SecretAccessKey string

	bin     string
	dir     string // temporary directory: the posix root under it
	cmd     *exec.Cmd
	out     *tailBuffer
	exited  chan struct{} // closed when the process has exited
	waitErr error         // the process's exit status, once exited is closed
	stop    sync.Once
	nbkt    atomic.Int64
}

// StartServer starts versitygw on a free loopback port with an empty POSIX root in a new
// temporary directory and waits until it accepts connections. The caller must Stop it.
func StartServer() (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	// The port is picked by binding :0 and released before versitygw binds it, so another
	// process can take it in between; then the server exits at once and we try another.
	for attempt := 1; ; attempt++ {
		s, err := start(bin)
		if err == nil || attempt == 3 {
			return s, err
		}
	}
}

func start(bin string) (*Server, error) {
	dir, err := os.MkdirTemp("", "versitygw-*")
	if err != nil {
		return nil, err
	}
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{
		Endpoint:        "http://" + addr,
		AccessKeyID:     "blobtest",
		SecretAccessKey: randomHex(20),
		bin:             bin,
		dir:             dir,
		out:             &tailBuffer{max: 64 << 10},
	}
	if err := s.launch(); err != nil {
		if s.cmd != nil {
			s.Stop()
		}
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// launch starts the process on the server's address and root and waits until it listens.
func (s *Server) launch() error {
	addr := strings.TrimPrefix(s.Endpoint, "http://")
	s.exited = make(chan struct{})
	cmd := exec.Command(s.bin, "--port", addr, "--region", Region, "--quiet", "posix", filepath.Join(s.dir, "root"))
	cmd.Dir = s.dir
	cmd.Env = append(cleanEnv(),
		"ROOT_ACCESS_KEY="+s.AccessKeyID,
		"ROOT_SECRET_KEY="+s.SecretAccessKey,
	)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	s.cmd = cmd
	exited := s.exited
	go func() {
		s.waitErr = cmd.Wait()
		close(exited)
	}()
	return s.waitListening(addr)
}

// Restart kills the server's process (SIGKILL: the S3 service gone at once, connections cut
// mid-request), calls down while it is gone, and starts it again on the same address with the
// same root, so its buckets and objects are back.
func (s *Server) Restart(down func()) error {
	kill(s.cmd)
	<-s.exited
	if down != nil {
		down()
	}
	return s.launch()
}

// waitListening polls until addr accepts a connection, the server exits, or startTimeout.
func (s *Server) waitListening(addr string) error {
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("versitygw exited before listening on %s (%v):\n%s", addr, s.waitErr, s.out)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("versitygw not listening on %s after %s:\n%s", addr, startTimeout, s.out)
		}
	}
}

// Stop terminates the server's process group (SIGTERM, then SIGKILL after stopTimeout) and
// removes its directory. It is safe to call more than once.
func (s *Server) Stop() {
	s.stop.Do(func() {
		terminate(s.cmd)
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			kill(s.cmd)
			<-s.exited
		}
		os.RemoveAll(s.dir)
	})
}

// Output returns the last 64 KiB the server printed, for failure messages.
func (s *Server) Output() string { return s.out.String() }

// Client returns an S3 client for the server, signed as its root user.
func (s *Server) Client() *awss3.Client {
	return awss3.New(awss3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKeyID, s.SecretAccessKey, ""),
	})
}

// Config returns a store configuration for bucket on this server (the bucket must exist).
func (s *Server) Config(bucket string) s3.Config {
	return s3.Config{
		Bucket:          bucket,
		Endpoint:        s.Endpoint,
		Region:          Region,
		ForcePathStyle:  true,
		AccessKeyID:     s.AccessKeyID,
		SecretAccessKey: s.SecretAccessKey,
	}
}

// NewBucket creates a bucket with a fresh name and returns the configuration for it.
func (s *Server) NewBucket(ctx context.Context) (s3.Config, error) {
	name := fmt.Sprintf("blobs-%d", s.nbkt.Add(1))
	if _, err := s.Client().CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return s3.Config{}, fmt.Errorf("create bucket %s: %w\n%s", name, err, s.out)
	}
	return s.Config(name), nil
}

// Start starts a server for t, stopped when t ends, and returns the configuration for a new
// bucket on it. It fails t (never skips) when the server cannot run, so a missing binary
// cannot pass unnoticed.
func Start(t testing.TB) s3.Config {
	t.Helper()
	s, err := StartServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	cfg, err := s.NewBucket(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// cleanEnv is the environment without settings of versitygw's own (VGW_*, ROOT_*) that a
// developer's shell may carry and that would change how the test server behaves.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VGW_") && !strings.HasPrefix(kv, "ROOT_") {
			env = append(env, kv)
		}
	}
	return env
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tailBuffer keeps the last max bytes written to it: enough to explain a failure, bounded
// however chatty the server gets.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b))
}
