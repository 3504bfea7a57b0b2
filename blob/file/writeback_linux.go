//go:build linux && (amd64 || arm64)

package file

import (
	"os"
	"syscall"
)

// startWriteback asks the kernel to start writing [off, off+n) of f to disk now, without
// waiting (sync_file_range with SYNC_FILE_RANGE_WRITE): the fsync that ends an Append then
// finds most of the bytes on their way, instead of the whole body still in the page cache.
func startWriteback(f *os.File, off, n int64) {
	const syncFileRangeWrite = 2
	_, _, _ = syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, f.Fd(), uintptr(off), uintptr(n), syncFileRangeWrite, 0, 0)
}
