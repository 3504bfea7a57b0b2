package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// port only names the socket file (.s.PGSQL.5432): the server listens
	// on no TCP port, and the socket directory is private to the cluster,
	// so the default port cannot clash with another server.
	port = 5432

	// maxSocketPath is the longest unix socket path the kernel accepts
	// (sun_path is 108 bytes including the terminating NUL).
	maxSocketPath = 107

	// superuser is the role initdb creates (-U) and ConnString connects as.
	superuser = "postgres"

	readyTimeout  = 30 * time.Second
	readyInterval = 50 * time.Millisecond
	stopTimeout   = 30 * time.Second
	quitTimeout   = 10 * time.Second

	// stalePidWait is how long Start waits for a previous run's postmaster
	// to go away. After an unclean exit of our process it is shutting down
	// because of Pdeathsig, which normally takes well under a second.
	stalePidWait = 5 * time.Second

	logFileName   = "postgres.log"
	socketDirName = "socket"
)

// Options configure Start.
type Options struct {
	// Dir is the cluster directory (PGDATA). It is created if missing and
	// initialized with initdb when it holds no cluster yet (no PG_VERSION).
	// Required.
	Dir string

	// BinDir is the directory holding initdb and postgres. Empty means
	// discover: for an existing cluster the matching
	// /usr/lib/postgresql/<PG_VERSION>/bin if present, else FindBinDir.
	BinDir string

	// Ephemeral is for test clusters, whose data need not survive a crash:
	// initdb --no-sync, and fsync, synchronous_commit and full_page_writes
	// off, which makes them much faster. The caller removes Dir after Stop.
	Ephemeral bool

	// Log receives the output of initdb and postgres. Nil means append to
	// <Dir>/postgres.log, written by postgres directly, so that its last
	// messages are kept even when our process dies first. A non-nil Log is
	// fed through a pipe by this process instead. Either way, errors from
	// Start include the last lines of the log.
	Log io.Writer
}

// Cluster is a running PostgreSQL server started by Start.
type Cluster struct {
	dir       string
	socketDir string
	tmpSocket bool // socketDir came from os.MkdirTemp; removed by Stop
	cmd       *exec.Cmd
	done      chan struct{} // closed when the postmaster has exited
	waitErr   error         // cmd.Wait's result, valid after done
	log       *logSink
	stopOnce  sync.Once
	stopErr   error
}

// Start starts the cluster in o.Dir, running initdb first if the directory
// holds no cluster yet, and returns once the server accepts connections.
// The server runs until Stop is called or the calling process dies.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if o.Dir == "" {
		return nil, errors.New("cluster: Options.Dir is required")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	u, err := serverUser()
	if err != nil {
		return nil, err
	}
	if u != nil {
		// Before creating anything: the most common mistake when root is
		// a data directory under /root.
		if err := checkReachable(u, dir); err != nil {
			return nil, err
		}
	}
	initialized := fileExists(filepath.Join(dir, "PG_VERSION"))
	binDir, err := chooseBinDir(o.BinDir, dir, initialized)
	if err != nil {
		return nil, err
	}
	if err := prepareDataDir(u, dir); err != nil {
		return nil, err
	}
	if err := waitStalePostmaster(ctx, dir); err != nil {
		return nil, err
	}

	var initdbOut []byte
	if !initialized {
		if initdbOut, err = initdb(ctx, u, binDir, dir, o.Ephemeral); err != nil {
			if o.Log != nil {
				// (A failed initdb empties Dir, so there is no log file.)
				o.Log.Write(initdbOut)
			}
			return nil, err
		}
	}

	c := &Cluster{dir: dir, done: make(chan struct{})}
	if c.log, err = openLog(u, dir, o.Log); err != nil {
		return nil, err
	}
	if len(initdbOut) > 0 {
		c.log.Write(initdbOut)
	}
	if err := c.makeSocketDir(u); err != nil {
		c.log.close()
		return nil, err
	}
	if err := c.startPostgres(u, binDir, o.Ephemeral); err != nil {
		c.cleanup()
		return nil, err
	}
	if err := c.waitReady(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// ConnString returns a keyword/value connection string, which pgx and
// libpq parse, for the given database ("" means "postgres") as the
// superuser postgres over the unix socket. Local connections are trusted,
// so it carries no password.
func (c *Cluster) ConnString(database string) string {
	if database == "" {
		database = "postgres"
	}
	return "host=" + quoteConnValue(c.socketDir) +
		" port=" + strconv.Itoa(port) +
		" user=" + superuser +
		" dbname=" + quoteConnValue(database) +
		" sslmode=disable"
}

// SocketDir returns the directory holding the server's unix socket
// (.s.PGSQL.5432): <Dir>/socket, or a temporary directory when that path
// would be too long for a unix socket.
func (c *Cluster) SocketDir() string { return c.socketDir }

// Stop shuts the server down with a fast shutdown (SIGINT: open sessions
// are disconnected, committed data is safe) and waits for it to exit. If it
// has not exited after 30s it gets SIGQUIT (immediate shutdown; crash
// recovery on the next start), and finally SIGKILL. Stop is idempotent
// and safe for concurrent use; every call returns the same result, which
// is non-nil if the server exited abnormally or had to be forced.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		c.stopErr = c.stop()
		c.cleanup()
	})
	return c.stopErr
}

func (c *Cluster) stop() error {
	select {
	case <-c.done:
		if c.waitErr != nil {
			return fmt.Errorf("cluster: postgres had exited before Stop (%v)%s", c.waitErr, c.log.tailText())
		}
		return nil
	default:
	}
	pid := c.cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGINT)
	select {
	case <-c.done:
		if c.waitErr != nil {
			return fmt.Errorf("cluster: postgres shutdown: %v%s", c.waitErr, c.log.tailText())
		}
		return nil
	case <-time.After(stopTimeout):
	}
	_ = syscall.Kill(pid, syscall.SIGQUIT)
	select {
	case <-c.done:
		return fmt.Errorf("cluster: postgres did not shut down within %v of SIGINT; sent SIGQUIT (immediate shutdown)", stopTimeout)
	case <-time.After(quitTimeout):
	}
	// Whole process group: the postmaster and any backends it left.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-c.done
	return fmt.Errorf("cluster: postgres did not exit after SIGINT and SIGQUIT; killed it")
}

// cleanup releases what Start set up besides the process.
func (c *Cluster) cleanup() {
	if c.tmpSocket {
		os.RemoveAll(c.socketDir)
	}
	c.log.close()
}

// chooseBinDir picks the binaries. For an existing cluster without an
// explicit BinDir it prefers the Debian directory of the cluster's own
// major version, so that installing a newer PostgreSQL next to the old one
// does not break it; a version mismatch is reported plainly rather than
// through postgres' "database files are incompatible with server".
func chooseBinDir(binDir, dir string, initialized bool) (string, error) {
	var clusterVersion string
	if initialized {
		b, err := os.ReadFile(filepath.Join(dir, "PG_VERSION"))
		if err != nil {
			return "", fmt.Errorf("cluster: %w", err)
		}
		clusterVersion = strings.TrimSpace(string(b))
	}
	if binDir == "" {
		if d := debianBinDir(clusterVersion); clusterVersion != "" && hasServerBinaries(d) {
			binDir = d
		} else {
			d, err := FindBinDir()
			if err != nil {
				return "", err
			}
			binDir = d
		}
	} else if !hasServerBinaries(binDir) {
		return "", fmt.Errorf("cluster: %s does not hold the PostgreSQL server binaries initdb and postgres", binDir)
	}
	if clusterVersion != "" {
		v, err := serverMajorVersion(binDir)
		if err != nil {
			return "", err
		}
		if v != clusterVersion {
			return "", fmt.Errorf("cluster: the cluster in %s was created by PostgreSQL %s but the binaries in %s are PostgreSQL %s; install PostgreSQL %s (apt-get install -y postgresql-%s) or upgrade the cluster with pg_upgrade",
				dir, clusterVersion, binDir, v, clusterVersion, clusterVersion)
		}
	}
	return binDir, nil
}

// waitStalePostmaster deals with a postmaster.pid left in dir. If its PID
// is dead, postgres removes the file itself. If it belongs to a live
// postmaster of this directory (a previous run's server, possibly shutting
// down because its parent died), wait a little for it to exit and then
// fail with a clear sentence instead of postgres' "lock file already
// exists". If the PID is alive but verifiably some other program (PID
// reuse, e.g. after a container restart), the file is stale: remove it.
func waitStalePostmaster(ctx context.Context, dir string) error {
	pidFile := filepath.Join(dir, "postmaster.pid")
	pid := readPostmasterPid(pidFile)
	if pid <= 0 || pid == os.Getpid() {
		return nil
	}
	if !processAlive(pid) {
		return nil
	}
	if isPostmasterOf(pid, dir) == no {
		if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cluster: removing stale %s: %w", pidFile, err)
		}
		return nil
	}
	deadline := time.Now().Add(stalePidWait)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if readPostmasterPid(pidFile) != pid || !processAlive(pid) {
			return nil
		}
	}
	return fmt.Errorf("cluster: a PostgreSQL server (PID %d) is running on %s: another storage command (serve, migrate, reconcile) is probably using this data dir, and only one can at a time; stop that command first (if none is running, the server is left over from a crash: kill -INT %d)", pid, dir, pid)
}

func readPostmasterPid(pidFile string) int {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0
	}
	// A standalone backend writes -PID.
	if pid < 0 {
		pid = -pid
	}
	return pid
}

// processAlive reports whether pid exists and is not a zombie (an orphaned
// postmaster that has exited but not yet been reaped by init).
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// "pid (comm) state ...": comm may contain spaces and parentheses.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z' && stat[i+2] != 'X'
	}
	return true
}

type tristate int

const (
	unknown tristate = iota
	yes
	no
)

// isPostmasterOf tells whether pid is a postgres process whose working
// directory is dir (the postmaster chdirs to its data directory), as far
// as /proc lets us see.
func isPostmasterOf(pid int, dir string) tristate {
	proc := "/proc/" + strconv.Itoa(pid)
	exe, err := os.Readlink(proc + "/exe")
	if err != nil {
		return unknown
	}
	if filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != "postgres" {
		return no
	}
	cwd, err := os.Readlink(proc + "/cwd")
	if err != nil {
		return unknown
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	if cwd != dir {
		return no
	}
	return yes
}

// initdb creates the cluster. It returns initdb's output for the log.
func initdb(ctx context.Context, u *osUser, binDir, dir string, ephemeral bool) ([]byte, error) {
	run := func(locale string) ([]byte, error) {
		args := []string{
			"-D", dir,
			"-U", superuser,
			"--auth-local=trust",
			"--auth-host=scram-sha-256",
			"-E", "UTF8",
			"--locale=" + locale,
			"--no-instructions",
		}
		if ephemeral {
			args = append(args, "--no-sync")
		}
		cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"), args...)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if u != nil {
			cmd.SysProcAttr.Credential = u.credential()
		}
		// On cancellation, SIGINT lets initdb remove what it created, so
		// that a half-made cluster (PG_VERSION is written early) is not
		// mistaken for a finished one on the next start.
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 10 * time.Second
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = &out
		err := cmd.Run()
		return out.Bytes(), err
	}
	out, err := run("C.UTF-8")
	if err != nil && ctx.Err() == nil && bytes.Contains(out, []byte("locale")) {
		// No C.UTF-8 (glibc before 2.35 without the Debian patch, musl
		// setups...): plain C still gives UTF8 storage, only with byte
		// order collation and ASCII-only character classes.
		// initdb removed what it created in dir; it may have removed dir.
		if err2 := prepareDataDir(u, dir); err2 != nil {
			return out, err2
		}
		var out2 []byte
		out2, err = run("C")
		out = append(append(out, "\nretrying with --locale=C\n"...), out2...)
	}
	if err != nil {
		if ctx.Err() != nil {
			return out, fmt.Errorf("cluster: initdb: %w", ctx.Err())
		}
		return out, fmt.Errorf("cluster: initdb: %w%s", err, indentTail("its output", out, tailLines))
	}
	return out, nil
}

// makeSocketDir picks and creates the socket directory: <Dir>/socket,
// inside the data directory so that it is private to the cluster and goes
// away with it, or a fresh temporary directory when that path would be too
// long for a unix socket.
func (c *Cluster) makeSocketDir(u *osUser) error {
	c.socketDir = filepath.Join(c.dir, socketDirName)
	if len(socketPath(c.socketDir)) > maxSocketPath {
		d, err := os.MkdirTemp("", "pgsock")
		if err != nil {
			return fmt.Errorf("cluster: socket directory: %w", err)
		}
		c.socketDir, c.tmpSocket = d, true
		if len(socketPath(d)) > maxSocketPath {
			os.RemoveAll(d)
			return fmt.Errorf("cluster: the unix socket paths %s and %s are both longer than %d bytes; use a shorter Dir or TMPDIR",
				socketPath(filepath.Join(c.dir, socketDirName)), socketPath(d), maxSocketPath)
		}
	}
	if err := makeOwnedDir(u, c.socketDir); err != nil {
		if c.tmpSocket {
			os.RemoveAll(c.socketDir)
		}
		return err
	}
	return nil
}

func socketPath(dir string) string {
	return filepath.Join(dir, ".s.PGSQL."+strconv.Itoa(port))
}

// startPostgres starts the postmaster as our child.
func (c *Cluster) startPostgres(u *osUser, binDir string, ephemeral bool) error {
	args := []string{
		"-D", c.dir,
		"-c", "listen_addresses=", // no TCP at all
		"-c", "unix_socket_directories=" + quoteGUCListItem(c.socketDir),
		"-c", "port=" + strconv.Itoa(port),
		"-c", "max_connections=100",
	}
	if ephemeral {
		args = append(args,
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off")
	}
	cmd := exec.Command(filepath.Join(binDir, "postgres"), args...)
	cmd.Dir = c.dir
	c.log.attach(cmd)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: a Ctrl-C on the terminal reaches only our
		// process, which then shuts postgres down in order (Stop).
		Setpgid: true,
		// If our process dies (even by SIGKILL), the kernel sends the
		// postmaster SIGINT, a fast shutdown. Go applies Pdeathsig in the
		// child after switching to Credential, so the setting survives
		// the uid change (the kernel clears it on credential changes), and
		// the kernel delivers it without a permission check even though
		// the child no longer runs as our user. The signal fires when the
		// *thread* that forked the child exits, so the child is started
		// from a goroutine locked to its thread for the child's lifetime.
		Pdeathsig: syscall.SIGINT,
	}
	if u != nil {
		cmd.SysProcAttr.Credential = u.credential()
	}
	c.cmd = cmd

	started := make(chan error, 1)
	go func() {
		// Never unlocked: when this goroutine returns, the thread exits
		// with it, which is fine because the postmaster has exited then.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.waitErr = cmd.Wait()
		close(c.done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("cluster: starting postgres: %w", err)
	}
	return nil
}

// waitReady connects until the server accepts connections, the child
// exits, ctx ends or readyTimeout passes.
func (c *Cluster) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(attemptCtx, c.ConnString("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		lastErr = err
		select {
		case <-c.done:
			status := "exited"
			if c.waitErr != nil {
				status = c.waitErr.Error()
			}
			return fmt.Errorf("cluster: postgres exited during startup (%s)%s", status, c.log.tailText())
		case <-ctx.Done():
			return fmt.Errorf("cluster: waiting for postgres: %w", ctx.Err())
		case <-time.After(readyInterval):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: postgres did not accept connections within %v (last error: %v)%s", readyTimeout, lastErr, c.log.tailText())
		}
	}
}

// quoteConnValue quotes a value for a keyword/value connection string.
func quoteConnValue(s string) string {
	if s != "" && !strings.ContainsAny(s, " '\\\t\n") {
		return s
	}
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `'`, `\'`)
	return "'" + s + "'"
}

// quoteGUCListItem quotes one element of a list setting such as
// unix_socket_directories, whose elements are separated by commas and
// may be double-quoted.
func quoteGUCListItem(s string) string {
	if !strings.ContainsAny(s, `, "`) {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
