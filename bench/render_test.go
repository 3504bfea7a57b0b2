package main

import (
	"bytes"
	"image/jpeg"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPhotoJPEG: the render benchmark's source is the 2 MP JPEG it claims to be, the same
// bytes every run.
func TestPhotoJPEG(t *testing.T) {
	t.Parallel()
	a, err := photoJPEG(renderSourceW, renderSourceH)
	require.NoError(t, err)
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(a))
	require.NoError(t, err)
	require.Equal(t, [2]int{1732, 1155}, [2]int{cfg.Width, cfg.Height})
	require.InDelta(t, 2e6, float64(cfg.Width*cfg.Height), 1e3)
	b, err := photoJPEG(renderSourceW, renderSourceH)
	require.NoError(t, err)
	require.Equal(t, a, b)
}

// TestRenderRows: BENCH_ONLY picks render runs by their names, and each row is judged against
// its own target.
func TestRenderRows(t *testing.T) {
	t.Parallel()
	picked := func(re string) []string {
		o := options{only: regexp.MustCompile(re)}
		var names []string
		for _, cold := range []bool{false, true} {
			for _, c := range renderConns {
				if name := renderRowName(cold, c); o.runs(name) {
					names = append(names, name)
				}
			}
		}
		return names
	}
	require.Len(t, picked("render"), 4)
	require.Equal(t, []string{
		"render 2 MP JPEG → 200×200 WebP, cold (cache off), 8 connections",
		"render 2 MP JPEG → 200×200 WebP, cold (cache off), 32 connections",
	}, picked("render.*cold"))
	require.Empty(t, picked("public GET"))

	rss := rssPeak{bytes: 100 << 20}
	cold := renderRow{cold: true, res: wrkResult{rps: 120}, rss: rss}
	require.Equal(t, "≥ 100 req/s, ≤ 256 MiB: met", cold.target())
	warm := renderRow{res: wrkResult{rps: 9000, non2xx: 3}, rss: rssPeak{bytes: 300 << 20}}
	require.Equal(t, "≥ 10,000 req/s, ≤ 256 MiB: missed: rate < 10,000, RSS > 256 MiB, errors", warm.target())

	var b strings.Builder
	(&renderResult{sourceBytes: 1, rows: []renderRow{{name: "r", skipped: "probe failed: x|y"}}}).markdown(&b)
	require.Contains(t, b.String(), "| r | probe failed: x\\|y |")
	b.Reset()
	(*renderResult)(nil).markdown(&b)
	require.Empty(t, b.String(), "not run: no section")
}

func TestExitReason(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := &server{logPath: dir + "/server.log"}
	require.NoError(t, os.WriteFile(s.logPath, []byte("level=WARN x\nSIGSEGV: segmentation violation\nPC=0x7f m=9 sigcode=1\nsignal arrived during cgo execution\n\ngoroutine 5 [syscall]:\nruntime.cgocall(0x1, 0x2)\n\t/usr/local/go/src/runtime/cgocall.go:167 +0x4b\nmain.f()\n"), 0o644))
	require.Equal(t, "SIGSEGV: segmentation violation | PC=0x7f m=9 sigcode=1 | signal arrived during cgo execution | goroutine 5 [syscall]: | runtime.cgocall(0x1, 0x2) | main.f()", s.exitReason())
	require.NoError(t, os.WriteFile(s.logPath, []byte("a\nb\n"), 0o644))
	require.Equal(t, "a | b", s.exitReason())
}
