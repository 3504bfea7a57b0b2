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
type cpuSnap struct {
	busy, total float64 // machine-wide CPU ticks from /proc/stat: busy (incl. steal) and all
	ours        float64 // ticks used by our process tree, reaped children included
	ok          bool
}

func takeCPUSnap() cpuSnap {
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
	s.ours, s.ok = treeTicks(os.Getpid())
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

// treeTicks sums utime+stime+cutime+cstime over root and its descendants. The c-fields hold
// the times of reaped children, so a process that exits between two snapshots (a wrk run, a
// PostgreSQL backend) still counts, once, through its parent. Like /proc/stat, /proc/<pid>/stat
// counts in USER_HZ ticks.
func treeTicks(root int) (float64, bool) {
	dirs, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil || len(dirs) == 0 {
		return 0, false
	}
	type proc struct {
		ppid  int
		ticks float64
	}
	procs := map[int]proc{}
	children := map[int][]int{}
	for _, path := range dirs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // exited meanwhile
		}
		// "pid (comm) state ppid … utime(14) stime(15) cutime(16) cstime(17) …"; comm may hold
		// spaces and parentheses, so fields are counted after the last ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(s[:strings.IndexByte(s, '(')]))
		if err != nil {
			continue
		}
		f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		var t float64
		for _, v := range f[11:15] {
			n, _ := strconv.ParseFloat(v, 64)
			t += n
		}
		procs[pid] = proc{ppid, t}
		children[ppid] = append(children[ppid], pid)
	}
	if _, ok := procs[root]; !ok {
		return 0, false
	}
	var sum float64
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		sum += procs[pid].ticks
		queue = append(queue, children[pid]...)
	}
	return sum, true
}
