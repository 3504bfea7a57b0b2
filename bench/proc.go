package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a long-lived child (the storage server, the hello-world server). It runs in its own
// process group: the terminal's Ctrl-C then reaches only this harness, which stops the
// children in its own order (the storage server must get SIGTERM and time to stop its
// PostgreSQL, not a SIGINT racing ours), and a stop reaches whatever the child started in its
// group.
type proc struct {
	name    string
	cmd     *exec.Cmd
	stopSig syscall.Signal // the polite signal; SIGKILL follows after grace
	grace   time.Duration
	done    chan struct{} // closed when the child has exited
	waitErr error         // valid after done
}

// procSet remembers every long-lived child so that stopAll can stop each one whatever path
// the harness leaves by.
type procSet struct {
	mu    sync.Mutex
	procs []*proc
}

// start starts cmd as a named child. If this harness dies without stopping it (SIGKILL, a
// crash), the kernel sends stopSig to the child (Pdeathsig), so no server outlives a run.
func (ps *procSet) start(name string, cmd *exec.Cmd, stopSig syscall.Signal, grace time.Duration) (*proc, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: stopSig}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, stopSig: stopSig, grace: grace, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.procs = append(ps.procs, p)
	ps.mu.Unlock()
	return p, nil
}

// pid is the child's process id (and its process group id).
func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the child has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends stopSig to the child's process group, waits up to grace, then kills the group.
// It is safe to call more than once and on a child that has exited.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.pid(), p.stopSig)
	select {
	case <-p.done:
		return
	case <-time.After(p.grace):
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// stopAll stops every child, the most recently started first (nothing started later depends
// on something started earlier still running, but the reverse may be true).
func (ps *procSet) stopAll() {
	ps.mu.Lock()
	procs := append([]*proc(nil), ps.procs...)
	ps.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop()
	}
}

// runTool runs a short-lived tool (wrk, pgbench, psql) to completion and returns its stdout.
// The timeout bounds it even if the tool hangs; cancelling ctx (Ctrl-C) kills its whole
// process group at once. Errors carry the tool's stderr, which is where it explains itself.
func runTool(ctx context.Context, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %v", timeout)
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.String(), fmt.Errorf("%s: %v: %s", name, err, lastLines(msg, 5))
	}
	return stdout.String(), nil
}

// lastLines returns the last n lines of s, joined by " | ", for one-line error messages.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
