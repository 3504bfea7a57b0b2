package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The machine is shared: other programs running during a measurement take CPU from the server,
// wrk and PostgreSQL and show up as lower rates and long p99s. cpuSnap lets each measurement
// report how much of the machine's CPU went to processes outside this harness's process tree
// (the harness, the server and its PostgreSQL, wrk, pgbench), so a disturbed run is visible
// in the report instead of being mistaken for a regression.
//
// The same snapshots split our own CPU three ways (cpuSplit): the storage server, its
// PostgreSQL and the load generator. On a 2-core machine that all share, the split says
// which of them a workload's rate is bounded by.
type cpuSnap struct {
	busy, total float64 // machine-wide CPU ticks from /proc/stat: busy (incl. steal) and all
	ours        float64 // ticks used by our process tree, reaped children included
	ok          bool
	// The server's own ticks and its whole tree's (the server, its PostgreSQL and every
	// reaped PostgreSQL backend); valid when serverOK.
	server, serverTree float64
	serverOK           bool
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times. Go cannot ask sysconf without
// cgo; Linux has fixed it at 100 on every architecture Go supports.
const clockTicks = 100

// takeCPUSnap reads the machine's and our processes' CPU times. server is the storage
// server's pid, or 0 when the measurement has no server to split out.
func takeCPUSnap(server int) cpuSnap {
	var s cpuSnap
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal guest guest_nice
	if len(f) < 9 || f[0] != "cpu" {
		return s
	}
	for i, v := range f[1:9] {
		n, _ := strconv.ParseFloat(v, 64)
		s.total += n
		if i != 3 && i != 4 { // idle, iowait
			s.busy += n
		}
	}
	t := readProcTree()
	s.ours, s.ok = t.ticks(os.Getpid())
	if server > 0 {
		var ok bool
		s.serverTree, ok = t.ticks(server)
		s.server = t[server].self
		s.serverOK = s.ok && ok
	}
	return s
}

// othersShare returns the fraction of the machine's CPU that processes outside our tree used
// between a and b, or -1 when it cannot be told.
func othersShare(a, b cpuSnap) float64 {
	if !a.ok || !b.ok || b.total <= a.total {
		return -1
	}
	others := (b.busy - a.busy) - (b.ours - a.ours)
	return max(others, 0) / (b.total - a.total)
}

// cpuUse is the CPU time, in seconds, each part of the run used during one measurement.
type cpuUse struct {
	server   float64 // the storage server process alone (all its threads)
	postgres float64 // the server's descendants: its embedded PostgreSQL and reaped backends
	loadgen  float64 // the rest of our tree: the harness itself and wrk
	ok       bool
}

// cpuSplit attributes our tree's CPU between a and b to the server, its PostgreSQL and the
// load generator. The server's reaped children (its cutime) count as PostgreSQL: everything
// the server starts is PostgreSQL (initdb, the postmaster and, through it, the backends).
func cpuSplit(a, b cpuSnap) cpuUse {
	if !a.serverOK || !b.serverOK {
		return cpuUse{}
	}
	server := b.server - a.server
	tree := b.serverTree - a.serverTree
	return cpuUse{
		server:   server / clockTicks,
		postgres: max(tree-server, 0) / clockTicks,
		loadgen:  max((b.ours-a.ours)-tree, 0) / clockTicks,
		ok:       true,
	}
}

// procStat is what one /proc/<pid>/stat line says about CPU, in USER_HZ ticks.
type procStat struct {
	ppid   int
	self   float64 // utime + stime: the process's own threads
	reaped float64 // cutime + cstime: the children it has waited for, their descendants included
}

// parseProcStat reads one /proc/<pid>/stat line:
// "pid (comm) state ppid … utime(14) stime(15) cutime(16) cstime(17) …". comm may hold spaces
// and parentheses, so fields are counted after the last ')'.
func parseProcStat(s string) (pid int, p procStat, ok bool) {
	i := strings.LastIndexByte(s, ')')
	j := strings.IndexByte(s, '(')
	if i < 0 || j < 0 {
		return 0, p, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:j]))
	if err != nil {
		return 0, p, false
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return 0, p, false
	}
	p.ppid, _ = strconv.Atoi(f[1])
	var t [4]float64
	for k, v := range f[11:15] {
		t[k], _ = strconv.ParseFloat(v, 64)
	}
	p.self, p.reaped = t[0]+t[1], t[2]+t[3]
	return pid, p, true
}

// procTree is every process's CPU times, read at one moment, by pid.
type procTree map[int]procStat

func readProcTree() procTree {
	t := procTree{}
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // exited meanwhile
		}
		if pid, p, ok := parseProcStat(string(b)); ok {
			t[pid] = p
		}
	}
	return t
}

// ticks sums self and reaped times over root and its live descendants. The reaped times hold
// the children that have exited and been waited for, so a process that exits between two
// snapshots (a wrk run, a PostgreSQL backend) still counts, once, through its parent. false:
// root is not running.
func (t procTree) ticks(root int) (float64, bool) {
	if _, ok := t[root]; !ok {
		return 0, false
	}
	children := map[int][]int{}
	for pid, p := range t {
		children[p.ppid] = append(children[p.ppid], pid)
	}
	var sum float64
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		sum += t[pid].self + t[pid].reaped
		queue = append(queue, children[pid]...)
	}
	return sum, true
}
