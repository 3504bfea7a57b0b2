package s3test

import "syscall"

// setDeathSignal has the kernel kill the server when the test binary dies without cleaning
// up (a panic, a -timeout), so no server outlives its tests.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
