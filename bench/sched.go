package main

import (
	"fmt"
	"os"
	"strings"
)

// autogroupPath is Linux's switch for autogroup scheduling, which shares the CPU between
// sessions first and between a session's processes second.
const autogroupPath = "/proc/sys/kernel/sched_autogroup_enabled"

// autogroupWhy is what autogroup does to this benchmark, for the report.
const autogroupWhy = "each PostgreSQL backend is a session of its own, and weighs as much as the whole server"

// schedulerSetup makes the run's scheduling what a database host is tuned to, and says what
// it did. Every PostgreSQL backend makes itself a session (setsid), so with autogroup on each
// busy backend weighs as much as the whole server: eight busy backends left the server a ninth
// of the CPU, its replies queued, and list v1's p99 went from 9.5 ms to 24–100 ms at the
// same rate. As root the harness turns autogroup off for the run and restore puts it back;
// BENCH_AUTOGROUP=keep measures the machine as it is.
func schedulerSetup(keep bool) (note string, restore func()) {
	restore = func() {}
	b, err := os.ReadFile(autogroupPath)
	if err != nil {
		return "scheduler: no autogroup (" + autogroupPath + " unreadable)", restore
	}
	if strings.TrimSpace(string(b)) != "1" {
		return "scheduler: autogroup off (as the machine is set)", restore
	}
	if keep {
		return "scheduler: autogroup on (BENCH_AUTOGROUP=keep): " + autogroupWhy, restore
	}
	if err := os.WriteFile(autogroupPath, []byte("0"), 0); err != nil {
		return fmt.Sprintf("scheduler: autogroup on, could not turn it off (%v; run as root): %s", err, autogroupWhy), restore
	}
	restore = func() {
		if err := os.WriteFile(autogroupPath, []byte("1"), 0); err != nil {
			progress("could not turn autogroup back on: %v (echo 1 > %s)", err, autogroupPath)
		}
	}
	return "scheduler: autogroup turned off for the run and back on after (" + autogroupPath + "): with it on, " + autogroupWhy, restore
}
