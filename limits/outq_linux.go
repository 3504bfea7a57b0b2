package limits

import (
	"net"
	"syscall"
	"unsafe"
)

// unacknowledged returns how many bytes written to c the peer has not acknowledged yet (the
// socket's send queue, SIOCOUTQ), when c is a socket that can tell.
func unacknowledged(c net.Conn) (int64, bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var n int32
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&n)))
	}); err != nil || errno != 0 {
		return 0, false
	}
	return int64(n), true
}
