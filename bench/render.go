package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/image/webp"
)

// The image transformation benchmark: a 2 MP photo-like JPEG in a public bucket, rendered to a
// 200×200 WebP through /render/image/public, at 8 and 32 connections, cold and warm.
//
//   - cold: a second server started with IMAGE_TRANSFORMATION_CACHE=false, so every request
//     reads the source, decodes, scales, crops and encodes (what a first request for a variant
//     costs);
//   - warm: the main server, variants cached in the blob store, after one request that fills
//     the cache: one SQL call, the variant's Size and Get, and sendfile.
//
// Each row reports the rate, latency, the server's peak RSS over the run (VmHWM reset before
// it) and its CPU split; the targets are cold ≥ 100 req/s, warm ≥ 10,000 req/s and
// RSS ≤ 256 MiB under load.

const (
	// The source: about 2 MP (1732 × 1155 = 2,000,460 pixels), the shape of a 3:2 camera photo.
	renderSourceW, renderSourceH = 1732, 1155
	renderKey                    = "photo.jpg"
	renderSize                   = 200
	renderPath                   = "/render/image/public/" + publicBucket + "/" + renderKey + "?width=200&height=200&format=webp"
	// The targets.
	targetRenderCold = 100.0
	targetRenderWarm = 10000.0
	targetRenderRSS  = 256 << 20
)

// renderConns are the connection counts each of cold and warm is measured at.
var renderConns = []int{8, 32}

// renderRow is one measured run.
type renderRow struct {
	name    string
	cold    bool
	conns   int
	res     wrkResult
	skipped string // non-empty: not measured, and why
	rss     rssPeak
	others  float64
	cpu     cpuUse
	prof    profResult
}

// renderResult is the whole image benchmark.
type renderResult struct {
	sourceBytes int
	rows        []renderRow
	err         error // nothing measured, and why
}

func renderRowName(cold bool, conns int) string {
	kind := "warm (variant cached)"
	if cold {
		kind = "cold (cache off)"
	}
	return fmt.Sprintf("render 2 MP JPEG → 200×200 WebP, %s, %d connections", kind, conns)
}

// runRender measures the warm rows on the main server s, then starts a server without the
// variant cache under dir for the cold rows and stops it before returning. Only the rows
// BENCH_ONLY picks run ("render" picks them all); nil when it picks none.
func runRender(ctx context.Context, o options, procs *procSet, s *server, storageBin, dir string, st wrkSettings, prof *profiler) *renderResult {
	picked := func(cold bool) []int {
		var conns []int
		for _, c := range renderConns {
			if o.runs(renderRowName(cold, c)) {
				conns = append(conns, c)
			}
		}
		return conns
	}
	if len(picked(false))+len(picked(true)) == 0 {
		return nil
	}
	res := &renderResult{}
	src, err := photoJPEG(renderSourceW, renderSourceH)
	if err != nil {
		res.err = err
		return res
	}
	res.sourceBytes = len(src)
	if conns := picked(false); len(conns) > 0 {
		progress("render: warm, on the main server")
		res.rows = append(res.rows, renderRuns(ctx, s, src, false, conns, st, o.warmup, prof)...)
	}
	if conns := picked(true); len(conns) > 0 {
		progress("render: starting a server with IMAGE_TRANSFORMATION_CACHE=false")
		var coldProf *profiler
		pprofAddr := ""
		if prof != nil {
			coldProf, pprofAddr = prof.another()
		}
		coldDir := filepath.Join(dir, "render-cold")
		var cold *server
		err := os.MkdirAll(coldDir, 0o755)
		if err == nil {
			cold, err = startServer(ctx, procs, storageBin, coldDir, 1<<30, pprofAddr, "IMAGE_TRANSFORMATION_CACHE=false")
		}
		if err == nil {
			err = cold.createFixtures(ctx)
		}
		if err != nil {
			for _, c := range conns {
				res.rows = append(res.rows, renderRow{name: renderRowName(true, c), cold: true, conns: c,
					skipped: "cold server: " + err.Error()})
			}
			return res
		}
		defer cold.proc.stop()
		if coldProf != nil {
			coldProf.check(ctx)
		}
		res.rows = append(res.rows, renderRuns(ctx, cold, src, true, conns, st, o.warmup, coldProf)...)
	}
	return res
}

// renderRuns uploads the source to s, renders it once (filling the cache when s has one) and
// checks the answer, then measures one run per connection count.
func renderRuns(ctx context.Context, s *server, src []byte, cold bool, conns []int, st wrkSettings, warmup time.Duration, prof *profiler) []renderRow {
	rows := make([]renderRow, len(conns))
	for i, c := range conns {
		rows[i] = renderRow{name: renderRowName(cold, c), cold: cold, conns: c}
	}
	skipAll := func(why string) []renderRow {
		for i := range rows {
			rows[i].skipped = why
		}
		return rows
	}
	if err := s.mustOK(ctx, "upload the render source", "POST", "/object/"+publicBucket+"/"+renderKey, s.service,
		map[string]string{"Content-Type": "image/jpeg"}, src); err != nil {
		return skipAll("fixture failed: " + err.Error())
	}
	if err := probeRender(ctx, s); err != nil {
		return skipAll("probe failed: " + err.Error())
	}
	for i := range rows {
		r := &rows[i]
		rs := st
		rs.conns = r.conns
		run := func(d time.Duration) (wrkResult, error) {
			return runWrk(ctx, rs, d, wrkRun{url: s.base + renderPath})
		}
		progress("workload: %s", r.name)
		if warmup > 0 {
			if _, err := run(warmup); err != nil {
				r.skipped = "warm-up failed: " + err.Error()
				continue
			}
		}
		var pr *profRun
		if prof != nil {
			pr = prof.begin(ctx, slug(r.name), st.duration)
		}
		w := watchRSS(s.proc.pid())
		before := takeCPUSnap(s.proc.pid())
		var err error
		r.res, err = run(st.duration)
		after := takeCPUSnap(s.proc.pid())
		r.rss = w.done()
		r.others, r.cpu = othersShare(before, after), cpuSplit(before, after)
		if err != nil {
			r.skipped = "wrk failed: " + err.Error()
		}
		if pr != nil {
			r.prof = pr.end(ctx, r.res.requests)
		} else {
			r.prof = profResult{allocErr: errProfilingOff, cpuErr: errProfilingOff}
		}
		if s.proc.exited() {
			// The rows after it have nothing to measure: they say why too.
			why := "the server exited: " + s.exitReason()
			for j := i; j < len(rows); j++ {
				rows[j].skipped = why
			}
			break
		}
	}
	return rows
}

// exitReason is what the server's log says about its end: a Go crash's first lines (the
// signal or panic, then the goroutine that took it), else the log's last lines.
func (s *server) exitReason() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return s.logTail(10)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") || strings.HasPrefix(l, "SIG") {
			var keep []string
			for _, k := range lines[i:min(i+20, len(lines))] {
				if k = strings.TrimSpace(k); k != "" && !strings.HasPrefix(k, "/") {
					keep = append(keep, k)
				}
			}
			return strings.Join(keep[:min(len(keep), 8)], " | ")
		}
	}
	return s.logTail(10)
}

// probeRender renders the benchmark's request once and checks the answer: 200, a WebP of
// 200×200.
func probeRender(ctx context.Context, s *server) error {
	status, body, err := s.do(ctx, "GET", renderPath, "", nil, nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET %s answered %d: %s", renderPath, status, short(body))
	}
	cfg, err := webp.DecodeConfig(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("GET %s: not a WebP: %v", renderPath, err)
	}
	if cfg.Width != renderSize || cfg.Height != renderSize {
		return fmt.Errorf("GET %s: a %d×%d WebP, want %d×%d", renderPath, cfg.Width, cfg.Height, renderSize, renderSize)
	}
	return nil
}

// photoJPEG is a w×h JPEG that compresses like a photo: smooth light and colour gradients,
// some larger shapes, and sensor-like noise, at quality 90. The same bytes every run.
func photoJPEG(w, h int) ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(20, 26))
	for y := range h {
		fy := float64(y) / float64(h)
		for x := range w {
			fx := float64(x) / float64(w)
			light := 0.55 + 0.35*math.Sin(3.1*fx+1.7*fy) + 0.1*math.Cos(19*fx*fy)
			n := rng.NormFloat64() * 6
			c := func(base, amp float64) uint8 {
				return uint8(max(0, min(255, base+amp*light+n)))
			}
			img.SetRGBA(x, y, color.RGBA{
				R: c(40+60*fx, 150),
				G: c(50+40*math.Sin(7*fy), 130),
				B: c(90-50*fx*fy, 110),
				A: 255,
			})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// markdown renders the image benchmark's section.
func (r *renderResult) markdown(b *strings.Builder) {
	if r == nil {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("\n## Image transformation\n\n")
	if r.err != nil {
		p("Not measured: %s\n", cell(r.err))
		return
	}
	p("`GET %s` (no key), the source a %d×%d JPEG of %s (%d bytes). Cold: a server started with "+
		"IMAGE_TRANSFORMATION_CACHE=false renders every request. Warm: the main server, its variant cached by "+
		"one request before the run.\n\n", renderPath, renderSourceW, renderSourceH, mib(int64(r.sourceBytes)), r.sourceBytes)
	p("| run | req/s | p50 | p99 | errors | server peak RSS | target | others' CPU | CPU µs/req: server / PostgreSQL / load generator | top functions (flat CPU, Go code only) |\n")
	p("|---|---:|---:|---:|---:|---:|---|---:|---:|---|\n")
	for _, row := range r.rows {
		if row.skipped != "" {
			p("| %s | %s | | | | | | | | |\n", row.name, cell(row.skipped))
			continue
		}
		res := row.res
		cpu := "?"
		if row.cpu.ok && res.requests > 0 {
			us := func(sec float64) string { return micros(sec * 1e6 / float64(res.requests)) }
			cpu = us(row.cpu.server) + " / " + us(row.cpu.postgres) + " / " + us(row.cpu.loadgen)
		}
		top := profCell(row.prof.cpuErr)
		if row.prof.cpuErr == nil {
			top = shares(row.prof.top, true)
		}
		p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", row.name, thousands(res.rps), latency(res.p50),
			latency(res.p99), errorsCell(res), rssCell(row.rss), row.target(), share(row.others), cpu, top)
	}
	p("\nThe profiles see Go code only: libvips' own threads are not sampled by Go's profiler, so a cold run's " +
		"decode and encode show as little more than cgo calls there (`perf record -g -p <pid>` sees them).\n")
}

// target is the row's target cell: the rate for its kind, and the RSS bound.
func (row renderRow) target() string {
	want := targetRenderWarm
	if row.cold {
		want = targetRenderCold
	}
	var missed []string
	if row.res.rps < want {
		missed = append(missed, fmt.Sprintf("rate < %s", thousands(want)))
	}
	if row.rss.bytes > targetRenderRSS {
		missed = append(missed, "RSS > 256 MiB")
	}
	if row.res.errors() > 0 {
		missed = append(missed, "errors")
	}
	verdict := "met"
	if len(missed) > 0 {
		verdict = "missed: " + strings.Join(missed, ", ")
	}
	return fmt.Sprintf("≥ %s req/s, ≤ 256 MiB: %s", thousands(want), verdict)
}
