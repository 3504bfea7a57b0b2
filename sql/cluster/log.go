package cluster

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// tailLines is how many log lines error messages quote.
const tailLines = 15

// logSink is where initdb's and postgres' output goes, and what error
// messages quote the end of.
type logSink struct {
	// file is <Dir>/postgres.log when Options.Log is nil. postgres gets it
	// as its stdout/stderr directly, without a pipe through us.
	file     *os.File
	path     string
	startOff int64 // size of file when we opened it: tails start here

	// w is Options.Log, fed through a pipe, with ring keeping its end.
	w    io.Writer
	ring *ringBuffer
}

func openLog(u *osUser, dir string, w io.Writer) (*logSink, error) {
	if w != nil {
		r := &ringBuffer{max: 16 << 10}
		return &logSink{w: io.MultiWriter(w, r), ring: r}, nil
	}
	path := filepath.Join(dir, logFileName)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cluster: log: %w", err)
	}
	// Keep the data directory uniformly owned by the server user.
	if err := chownTo(u, path); err != nil {
		f.Close()
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cluster: log: %w", err)
	}
	return &logSink{file: f, path: path, startOff: fi.Size()}, nil
}

// Write adds our own output (initdb's) to the log.
func (l *logSink) Write(p []byte) (int, error) {
	if l.file != nil {
		return l.file.Write(p)
	}
	return l.w.Write(p)
}

// attach makes the log the command's stdout and stderr.
func (l *logSink) attach(cmd *exec.Cmd) {
	if l.file != nil {
		cmd.Stdout, cmd.Stderr = l.file, l.file
		return
	}
	// The same value for both: exec.Cmd then uses a single pipe.
	cmd.Stdout, cmd.Stderr = l.w, l.w
}

// tailText returns the last lines of this run's log, formatted to be
// appended to an error message, or "" if there is nothing.
func (l *logSink) tailText() string {
	if l.file == nil {
		return indentTail("its output", l.ring.bytes(), tailLines)
	}
	f, err := os.Open(l.path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(l.startOff, fi.Size()-16<<10)
	b, _ := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	return indentTail(l.path, b, tailLines)
}

func (l *logSink) close() {
	if l != nil && l.file != nil {
		l.file.Close()
	}
}

// indentTail formats the last n non-empty lines of out for the end of an
// error message: "; last lines of <what>:" and indented lines, or "".
func indentTail(what string, out []byte, n int) string {
	var lines []string
	for _, line := range strings.Split(string(out), "\n") {
		if line = strings.TrimRight(line, "\r \t"); line != "" {
			lines = append(lines, line)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "; last lines of " + what + ":\n    " + strings.Join(lines, "\n    ")
}

// ringBuffer keeps the last max bytes written to it.
type ringBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (r *ringBuffer) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, p...)
	if over := len(r.buf) - r.max; over > 0 {
		r.buf = bytes.Clone(r.buf[over:])
	}
	return len(p), nil
}

func (r *ringBuffer) bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.buf)
}
