package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// transferTimeout bounds one 1 GiB transfer: generous even for the reference's 126 MB/s.
const transferTimeout = 10 * time.Minute

// bigKey is where the large object lives in the private bucket.
const bigKey = "big/1g"

// transferResult is one large upload or download.
type transferResult struct {
	bytes   int64
	elapsed time.Duration
	rss     rssPeak
	err     error
	others  float64 // share of the machine's CPU other programs used meanwhile (-1: unknown)
	cpu     cpuUse  // CPU used by the server, its PostgreSQL and the client during the transfer
	// A resumable upload's PATCHes answered, and the connections its client opened for them.
	requests, conns int
}

// mbps is the throughput in decimal MB/s, the unit the reference numbers use.
func (t transferResult) mbps() float64 { return float64(t.bytes) / 1e6 / t.elapsed.Seconds() }

// rssPeak is the server's peak resident set during one phase.
type rssPeak struct {
	bytes int64
	start int64 // VmRSS when the phase began
	// exact: VmHWM was reset at the start of the phase, so bytes is this phase's peak. Without
	// the reset it is the highest VmRSS sampled every 10 ms during the phase (VmHWM would be the
	// process's peak since start, including earlier phases).
	exact bool
}

// rssWatch measures a process's peak RSS over one phase. Writing 5 to /proc/<pid>/clear_refs
// resets VmHWM to the current RSS (Linux 4.0+; allowed for our own child), which makes the
// peak exact; the 10 ms sampler is the fallback where that is refused.
type rssWatch struct {
	pid   int
	exact bool
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	max   int64
	start int64
}

func watchRSS(pid int) *rssWatch {
	w := &rssWatch{pid: pid, stop: make(chan struct{})}
	_, w.start = procMem(pid)
	w.exact = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if _, rss := procMem(w.pid); rss > 0 {
				w.mu.Lock()
				w.max = max(w.max, rss)
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// done ends the phase and returns its peak.
func (w *rssWatch) done() rssPeak {
	close(w.stop)
	w.wg.Wait()
	hwm, _ := procMem(w.pid)
	if w.exact && hwm > 0 {
		return rssPeak{bytes: hwm, start: w.start, exact: true}
	}
	return rssPeak{bytes: w.max, start: w.start}
}

// procMem returns VmHWM and VmRSS of pid in bytes (0 when unreadable).
func procMem(pid int) (hwm, rss int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmHWM" && name != "VmRSS") {
			continue
		}
		fields := strings.Fields(val) // "  12345 kB"
		if len(fields) == 0 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[0], 10, 64)
		if name == "VmHWM" {
			hwm = kb << 10
		} else {
			rss = kb << 10
		}
	}
	return hwm, rss
}

// patternReader yields n bytes from a fixed 64 KiB pattern: an upload body of any size with
// neither a file on disk nor the body in memory, and cheap enough that the client is never
// what limits the measured rate.
type patternReader struct {
	remaining int64
	off       int
}

var pattern = func() []byte {
	b := make([]byte, 64<<10)
	x := uint32(2463534242) // xorshift: bytes that look random, so nothing on the way compresses them
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}()

func (r *patternReader) Read(p []byte) (int, error) {
	if r.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n := 0
	for n < len(p) {
		c := copy(p[n:], pattern[r.off:])
		n += c
		r.off = (r.off + c) % len(pattern)
	}
	r.remaining -= int64(n)
	return n, nil
}

// bigClient has no overall timeout (http.Client.Timeout would include reading the body); each
// transfer is bounded by its context instead.
var bigClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

// uploadBig streams size bytes to b/big/1g with a declared Content-Length, as storage-js does.
func uploadBig(ctx context.Context, s *server, size int64) transferResult {
	ctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	w := watchRSS(s.proc.pid())
	res := transferResult{}
	req, err := http.NewRequestWithContext(ctx, "POST", s.base+"/object/"+privateBucket+"/"+bigKey, &patternReader{remaining: size})
	if err != nil {
		res.err = err
		res.rss = w.done()
		return res
	}
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+s.service)
	req.Header.Set("Content-Type", "application/octet-stream")
	start := time.Now()
	resp, err := bigClient.Do(req)
	if err == nil {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("upload answered %d: %s", resp.StatusCode, short(body))
		}
	}
	res.elapsed = time.Since(start)
	res.rss = w.done()
	res.bytes, res.err = size, err
	return res
}

// downloadBig reads b/big/1g back and discards it, checking the length.
func downloadBig(ctx context.Context, s *server, size int64) transferResult {
	ctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	w := watchRSS(s.proc.pid())
	res := transferResult{}
	req, err := http.NewRequestWithContext(ctx, "GET", s.base+"/object/authenticated/"+privateBucket+"/"+bigKey, nil)
	if err != nil {
		res.err = err
		res.rss = w.done()
		return res
	}
	req.Header.Set("Authorization", "Bearer "+s.service)
	start := time.Now()
	resp, err := bigClient.Do(req)
	if err == nil {
		// A 1 MiB buffer: large reads go straight from the socket (io.Discard's ReadFrom would
		// read 8 KiB at a time and could make the client the bottleneck).
		buf := make([]byte, 1<<20)
		for {
			n, rerr := resp.Body.Read(buf)
			res.bytes += int64(n)
			if rerr != nil {
				if rerr != io.EOF {
					err = rerr
				}
				break
			}
		}
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("download answered %d", resp.StatusCode)
		} else if err == nil && res.bytes != size {
			err = fmt.Errorf("download returned %d bytes, want %d", res.bytes, size)
		}
	}
	res.elapsed = time.Since(start)
	res.rss = w.done()
	res.err = err
	return res
}

// diskCeiling is the upload's ceiling: it writes size bytes into a file in dir the way the file
// backend does (256 KiB writes, then fsync) and returns the rate in MB/s. No server, no
// hashing, no network: what the data dir's disk allows at best.
func diskCeiling(ctx context.Context, dir string, size int64) (float64, error) {
	f, err := os.CreateTemp(dir, "disk-ceiling-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 256<<10)
	src := &patternReader{remaining: size}
	start := time.Now()
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, err := f.Write(buf[:n]); err != nil {
				return 0, err
			}
		}
		if rerr == io.EOF {
			break
		}
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return float64(size) / 1e6 / time.Since(start).Seconds(), nil
}
