package cluster

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// helperEnv makes the test binary act as a program that starts a cluster
// in the given directory, prints "READY <postmaster pid>" and then waits
// to be killed. TestParentDeath uses it to kill the cluster's parent.
const helperEnv = "CLUSTER_TEST_HELPER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		c, err := Start(context.Background(), Options{Dir: dir, Ephemeral: true})
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		// Like a program that handles Ctrl-C itself: TestParentDeath checks
		// that a SIGINT to our process group does not reach postgres.
		signal.Ignore(os.Interrupt)
		fmt.Println("READY", c.cmd.Process.Pid)
		select {}
	}
	os.Exit(m.Run())
}

// clusterDir returns a path for a cluster directory that the postgres
// user can reach: t.TempDir() is mode 0700 and owned by root, so it is
// not usable as a parent when the tests run as root.
func clusterDir(t *testing.T) string {
	t.Helper()
	parent, err := os.MkdirTemp("", "clustertest")
	noErr(t, err)
	noErr(t, os.Chmod(parent, 0o755))
	t.Cleanup(func() { os.RemoveAll(parent) })
	return filepath.Join(parent, "pg")
}

func start(t *testing.T, o Options) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Start(ctx, o)
	noErr(t, err)
	t.Cleanup(func() { c.Stop() })
	return c
}

func connect(t *testing.T, c *Cluster) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.ConnString(""))
	noErr(t, err)
	t.Cleanup(func() { conn.Close(ctx) })
	return conn
}

func queryString(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var s string
	noErr(t, conn.QueryRow(context.Background(), sql).Scan(&s))
	return s
}

func TestFindBinDir(t *testing.T) {
	dir, err := FindBinDir()
	noErr(t, err)
	check(t, hasServerBinaries(dir), dir)
	real, err := filepath.EvalSymlinks(dir)
	noErr(t, err)
	equal(t, real, dir, "symlinks are resolved")
	v, err := serverMajorVersion(dir)
	noErr(t, err)
	t.Logf("bin dir %s, PostgreSQL %s", dir, v)
}

func TestNoBinariesMessage(t *testing.T) {
	msg := errNoBinaries.Error()
	notContains(t, msg, "\n")
	contains(t, msg, "apt-get install -y postgresql")
}

func TestStartQueryStopRestart(t *testing.T) {
	dir := clusterDir(t)
	ctx := context.Background()

	c := start(t, Options{Dir: dir})
	equal(t, filepath.Join(dir, "socket"), c.SocketDir())
	conn := connect(t, c)
	var one int
	noErr(t, conn.QueryRow(ctx, "select 1").Scan(&one))
	equal(t, 1, one)
	equal(t, "", queryString(t, conn, "show listen_addresses"), "no TCP")
	equal(t, "on", queryString(t, conn, "show fsync"))
	equal(t, "100", queryString(t, conn, "show max_connections"))
	equal(t, "UTF8", queryString(t, conn, "show server_encoding"))
	equal(t, "postgres", queryString(t, conn, "select current_user"))
	_, err := conn.Exec(ctx, "create table survivor (v text); insert into survivor values ('still here')")
	noErr(t, err)
	conn.Close(ctx)

	if os.Geteuid() == 0 {
		u, err := serverUser()
		noErr(t, err)
		for _, p := range []string{dir, c.SocketDir(), filepath.Join(dir, "PG_VERSION"), filepath.Join(dir, logFileName)} {
			fi, err := os.Stat(p)
			noErr(t, err)
			equal(t, u.uid, fi.Sys().(*syscall.Stat_t).Uid, "%s owned by postgres", p)
		}
	}

	noErr(t, c.Stop())
	noErr(t, c.Stop(), "Stop is idempotent")
	notExists(t, filepath.Join(dir, "postmaster.pid"))
	select {
	case <-c.done:
	default:
		t.Fatal("postmaster still running after Stop")
	}

	// Second start: no initdb, the data is still there. Ephemeral only
	// changes settings.
	c2 := start(t, Options{Dir: dir, Ephemeral: true})
	conn2 := connect(t, c2)
	equal(t, "still here", queryString(t, conn2, "select v from survivor"))
	equal(t, "off", queryString(t, conn2, "show fsync"))
	equal(t, "off", queryString(t, conn2, "show synchronous_commit"))
	equal(t, "off", queryString(t, conn2, "show full_page_writes"))
	conn2.Close(ctx)
	noErr(t, c2.Stop())

	log, err := os.ReadFile(filepath.Join(dir, logFileName))
	noErr(t, err)
	contains(t, string(log), "performing post-bootstrap initialization", "initdb output is logged")
	equal(t, 2, strings.Count(string(log), "database system is ready to accept connections"), "both runs append")
}

func TestStopConcurrent(t *testing.T) {
	c := start(t, Options{Dir: clusterDir(t), Ephemeral: true})
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.Stop() }()
	}
	wg.Wait()
	for _, err := range errs {
		noErr(t, err)
	}
}

func TestLogWriter(t *testing.T) {
	var buf syncBuffer
	dir := clusterDir(t)
	c := start(t, Options{Dir: dir, Ephemeral: true, Log: &buf})
	noErr(t, c.Stop())
	out := buf.String()
	contains(t, out, "performing post-bootstrap initialization", "initdb output")
	contains(t, out, "database system is ready to accept connections")
	contains(t, out, "database system is shut down")
	notExists(t, filepath.Join(dir, logFileName))
}

func TestLongSocketPath(t *testing.T) {
	dir := filepath.Join(clusterDir(t), strings.Repeat("d", 60), strings.Repeat("e", 60))
	c := start(t, Options{Dir: dir, Ephemeral: true})
	notEqual(t, filepath.Join(dir, "socket"), c.SocketDir())
	check(t, len(socketPath(c.SocketDir())) <= maxSocketPath, "socket path %s too long", socketPath(c.SocketDir()))
	conn := connect(t, c)
	equal(t, "1", queryString(t, conn, "select '1'"))
	conn.Close(context.Background())
	noErr(t, c.Stop())
	notExists(t, c.SocketDir(), "temporary socket directory removed by Stop")
}

func TestStartupFailureQuotesLog(t *testing.T) {
	dir := clusterDir(t)
	c := start(t, Options{Dir: dir, Ephemeral: true})
	noErr(t, c.Stop())

	f, err := os.OpenFile(filepath.Join(dir, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	noErr(t, err)
	_, err = f.WriteString("shared_buffers = 'plenty'\n")
	noErr(t, err)
	noErr(t, f.Close())

	began := time.Now()
	_, err = Start(context.Background(), Options{Dir: dir, Ephemeral: true})
	check(t, err != nil, "Start succeeded with a broken setting")
	check(t, time.Since(began) < 10*time.Second, "fails early, not after the readiness timeout")
	contains(t, err.Error(), "exited during startup")
	contains(t, err.Error(), `"shared_buffers"`, "the log tail explains why")
	t.Log(err)
}

func TestVersionMismatch(t *testing.T) {
	dir := clusterDir(t)
	noErr(t, os.MkdirAll(dir, 0o700))
	noErr(t, os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("8.4\n"), 0o600))
	if os.Geteuid() == 0 {
		u, err := serverUser()
		noErr(t, err)
		noErr(t, os.Chown(dir, int(u.uid), int(u.gid)))
	}
	_, err := Start(context.Background(), Options{Dir: dir})
	errContains(t, err, "was created by PostgreSQL 8.4")
}

func TestUnreachableParent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root runs postgres as another user")
	}
	blocked, err := os.MkdirTemp("", "private") // mode 0700, owned by root
	noErr(t, err)
	t.Cleanup(func() { os.RemoveAll(blocked) })
	dir := filepath.Join(blocked, "data", "pg")

	_, err = Start(context.Background(), Options{Dir: dir})
	check(t, err != nil, "Start succeeded under an unreachable parent")
	msg := err.Error()
	t.Log(msg)
	notContains(t, msg, "\n")
	contains(t, msg, "the directory "+blocked+" (mode 0700, owner root)")
	contains(t, msg, "/var/lib/storage")
	contains(t, msg, "chmod o+x "+blocked)
	notExists(t, filepath.Join(blocked, "data"), "nothing created before the check")

	// The fix the message suggests works.
	noErr(t, os.Chmod(blocked, 0o701))
	c := start(t, Options{Dir: dir, Ephemeral: true})
	noErr(t, c.Stop())
}

// TestParentDeath kills the process that started a cluster with SIGKILL
// and checks that the postmaster shuts down by itself (Pdeathsig), and
// that a Start on the same directory meanwhile first reports the running
// server clearly and, right after the kill, waits for it and succeeds.
func TestParentDeath(t *testing.T) {
	dir := clusterDir(t)
	helper, postmaster := startHelper(t, os.Args[0], dir, nil)
	equal(t, yes, isPostmasterOf(postmaster, dir))

	// A Ctrl-C on a terminal signals the foreground process group; the
	// postmaster is in a group of its own and must not get it.
	noErr(t, syscall.Kill(-helper.Process.Pid, syscall.SIGINT))
	time.Sleep(300 * time.Millisecond)
	check(t, processAlive(postmaster), "postmaster survived SIGINT to the parent's process group")

	// While the helper's server runs, a second Start must not succeed.
	began := time.Now()
	_, err := Start(context.Background(), Options{Dir: dir, Ephemeral: true})
	errContains(t, err, fmt.Sprintf("a PostgreSQL server (PID %d) is running on %s: another storage command", postmaster, dir))
	check(t, time.Since(began) >= stalePidWait, "waited only %v", time.Since(began))
	check(t, processAlive(postmaster))

	// Kill the parent hard and start again at once: Start waits for the
	// old postmaster, which got SIGINT from the kernel, to finish.
	noErr(t, helper.Process.Signal(syscall.SIGKILL))
	helper.Wait()
	c := start(t, Options{Dir: dir, Ephemeral: true})
	// Start may return between the old postmaster removing its pid file
	// and the process being gone.
	for deadline := time.Now().Add(5 * time.Second); processAlive(postmaster) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	checkNot(t, processAlive(postmaster), "old postmaster gone")
	notEqual(t, postmaster, c.cmd.Process.Pid)
	noErr(t, c.Stop())

	log, err := os.ReadFile(filepath.Join(dir, logFileName))
	noErr(t, err)
	contains(t, string(log), "received fast shutdown request", "the orphaned postmaster shut down cleanly")
}

// startHelper runs the test binary exe as a helper (see TestMain) that
// starts a cluster in dir, as cred if not nil, and returns it with the
// postmaster's PID.
func startHelper(t *testing.T, exe, dir string, cred *syscall.Credential) (*exec.Cmd, int) {
	t.Helper()
	helper := exec.Command(exe, "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"="+dir)
	helper.Stderr = os.Stderr
	helper.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	stdout, err := helper.StdoutPipe()
	noErr(t, err)
	noErr(t, helper.Start())
	t.Cleanup(func() { helper.Process.Kill(); helper.Wait() })

	line, err := bufio.NewReader(stdout).ReadString('\n')
	noErr(t, err, "helper output")
	pidStr, ok := strings.CutPrefix(strings.TrimSpace(line), "READY ")
	check(t, ok, "helper said %q", line)
	postmaster, err := strconv.Atoi(pidStr)
	noErr(t, err)
	check(t, processAlive(postmaster))
	return helper, postmaster
}

// TestNonRoot exercises the path without Credential: a non-root process
// (the test binary run as the postgres user) starts a cluster itself.
func TestNonRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("already not root: the other tests cover it")
	}
	u, err := serverUser()
	noErr(t, err)
	// The test binary lives in a root-only build directory; copy it.
	exeDir, err := os.MkdirTemp("", "clusterexe")
	noErr(t, err)
	t.Cleanup(func() { os.RemoveAll(exeDir) })
	noErr(t, os.Chmod(exeDir, 0o755))
	exe := filepath.Join(exeDir, "cluster.test")
	b, err := os.ReadFile(os.Args[0])
	noErr(t, err)
	noErr(t, os.WriteFile(exe, b, 0o755))

	dir := clusterDir(t)
	noErr(t, os.Chown(filepath.Dir(dir), int(u.uid), int(u.gid)))
	helper, postmaster := startHelper(t, exe, dir, u.credential())

	conn, err := pgx.Connect(context.Background(), (&Cluster{socketDir: filepath.Join(dir, "socket")}).ConnString(""))
	noErr(t, err)
	var owner string
	noErr(t, conn.QueryRow(context.Background(), "select pg_catalog.pg_get_userbyid(datdba) from pg_database where datname = 'postgres'").Scan(&owner))
	equal(t, "postgres", owner)
	conn.Close(context.Background())
	pu, err := user.LookupId(strconv.Itoa(int(u.uid)))
	noErr(t, err)
	equal(t, "postgres", pu.Username)

	noErr(t, helper.Process.Signal(syscall.SIGKILL))
	helper.Wait()
	for deadline := time.Now().Add(10 * time.Second); processAlive(postmaster) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	checkNot(t, processAlive(postmaster), "postmaster exits when its non-root parent is killed")
}

func TestStalePidFileOfOtherProgram(t *testing.T) {
	dir := clusterDir(t)
	c := start(t, Options{Dir: dir, Ephemeral: true})
	noErr(t, c.Stop())

	// A postmaster.pid naming a live process that is not a postgres of
	// this directory (here: ourselves' parent, e.g. `go test`).
	ppid := os.Getppid()
	noErr(t, os.WriteFile(filepath.Join(dir, "postmaster.pid"),
		[]byte(fmt.Sprintf("%d\n%s\n", ppid, dir)), 0o600))
	c = start(t, Options{Dir: dir, Ephemeral: true})
	noErr(t, c.Stop())
}

func TestStartCanceled(t *testing.T) {
	dir := clusterDir(t)
	c := start(t, Options{Dir: dir, Ephemeral: true})
	noErr(t, c.Stop())

	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_, err := Start(ctx, Options{Dir: dir, Ephemeral: true})
	errContains(t, err, "context deadline exceeded")
	notExists(t, filepath.Join(dir, "postmaster.pid"), "the server started before the deadline was noticed has been stopped")
}

func TestMissingDir(t *testing.T) {
	_, err := Start(context.Background(), Options{})
	errContains(t, err, "Dir is required")
}

func TestQuoting(t *testing.T) {
	equal(t, "/a/b", quoteConnValue("/a/b"))
	equal(t, `'/a b/c\'d'`, quoteConnValue("/a b/c'd"))
	equal(t, "''", quoteConnValue(""))
	cfg, err := pgx.ParseConfig((&Cluster{socketDir: "/tmp/x y"}).ConnString("my db"))
	noErr(t, err)
	equal(t, "/tmp/x y", cfg.Host)
	equal(t, "my db", cfg.Database)
	equal(t, "postgres", cfg.User)
	equal(t, `"/a,b"`, quoteGUCListItem("/a,b"))
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Small assertion helpers: the module's go.sum lacks testify's
// dependencies, so the tests stick to the standard library.

func noErr(t *testing.T, err error, msgAndArgs ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%sunexpected error: %v", describe(msgAndArgs), err)
	}
}

func check(t *testing.T, cond bool, msgAndArgs ...any) {
	t.Helper()
	if !cond {
		t.Fatalf("%scondition failed", describe(msgAndArgs))
	}
}

func checkNot(t *testing.T, cond bool, msgAndArgs ...any) {
	t.Helper()
	check(t, !cond, msgAndArgs...)
}

func equal[T comparable](t *testing.T, want, got T, msgAndArgs ...any) {
	t.Helper()
	if want != got {
		t.Fatalf("%swant %#v, got %#v", describe(msgAndArgs), want, got)
	}
}

func notEqual[T comparable](t *testing.T, a, b T, msgAndArgs ...any) {
	t.Helper()
	if a == b {
		t.Fatalf("%sboth are %#v", describe(msgAndArgs), a)
	}
}

func contains(t *testing.T, s, sub string, msgAndArgs ...any) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%s%q does not contain %q", describe(msgAndArgs), s, sub)
	}
}

func notContains(t *testing.T, s, sub string, msgAndArgs ...any) {
	t.Helper()
	if strings.Contains(s, sub) {
		t.Fatalf("%s%q contains %q", describe(msgAndArgs), s, sub)
	}
}

func errContains(t *testing.T, err error, sub string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want an error containing %q, got nil", sub)
	}
	contains(t, err.Error(), sub)
}

func notExists(t *testing.T, path string, msgAndArgs ...any) {
	t.Helper()
	if _, err := os.Lstat(path); err == nil {
		t.Fatalf("%s%s exists", describe(msgAndArgs), path)
	}
}

func describe(msgAndArgs []any) string {
	if len(msgAndArgs) == 0 {
		return ""
	}
	if f, ok := msgAndArgs[0].(string); ok {
		return fmt.Sprintf(f, msgAndArgs[1:]...) + ": "
	}
	return fmt.Sprint(msgAndArgs...) + ": "
}
