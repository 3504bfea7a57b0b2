// Package vips renders image variants in process with libvips (through govips), the library
// imgproxy itself is built on: shrink-on-load decoding, EXIF auto-rotation, conversion to sRGB,
// metadata stripped on save. Only the formats below are decoded; anything else is refused
// before libvips sees it, and libvips' untrusted loaders (ImageMagick, PDF, SVG…) are blocked.
package vips

/*
#cgo pkg-config: vips
#include <malloc.h>
#include <stdatomic.h>
#include <vips/vips.h>

// keepFreedMemory raises glibc's trim threshold: memory a render frees stays in the allocator
// for the next render instead of going back to the kernel (brk, madvise) only to be faulted in
// again. Other C libraries have their own policy, and no such knob.
static void keepFreedMemory(int bytes) {
#ifdef M_TRIM_THRESHOLD
	mallopt(M_TRIM_THRESHOLD, bytes);
#endif
}

// startedAs applies the settings govips.Startup applies, and blocks the untrusted loaders:
// whoever started libvips (govips starts it with its defaults when called first), it runs
// with ours.
static void startedAs(int concurrency) {
	vips_block_untrusted_set(TRUE);
	vips_concurrency_set(concurrency);
	vips_cache_set_max(0);
	vips_cache_set_max_mem(0);
	vips_cache_set_max_files(0);
}

// started reports whether libvips has been started (vips_init registers its types).
static int started(void) { return g_type_from_name("VipsImage") != 0; }

static int cacheOff(void) {
	return vips_cache_get_max() == 0 && vips_cache_get_max_mem() == 0 && vips_cache_get_max_files() == 0;
}

#if VIPS_MAJOR_VERSION == 8 && VIPS_MINOR_VERSION == 14
// A workaround for a race in libvips 8.14's thread recycler (threadset.c, new in 8.14; read
// in the disassembly of Debian 12's 8.14.1). An idle worker leaves once it has had no work
// for 15 s: its wait times out, then it takes the set's lock, unlinks itself and frees its
// record. vips_threadset_run, between the two, can take that worker off the free list and
// write a task into it: the task lands in freed memory (glibc later aborts on the corrupted
// heap, the SIGABRT in g_object_unref of a busy server) and never runs. That wait is the
// recycler's only call of vips_semaphore_down_timeout, made through libvips' PLT, so this
// definition in the executable takes its place: an idle worker waits for work as long as it
// takes and is reused, and leaves only when vips_shutdown wakes it with its kill flag set.
// libvips keeps as many threads as it ever needed at once: a few per render in progress,
// which render.Queue bounds.
static atomic_long untimedWaits; // how often libvips' workers waited here: the tests check it

int vips_semaphore_down_timeout(VipsSemaphore *s, gint64 timeout) {
	(void) timeout;
	atomic_fetch_add(&untimedWaits, 1);
	return vips_semaphore_down(s);
}

static long idleWaits(void) { return atomic_load(&untimedWaits); }
static int idleWaitsUntimed(void) { return 1; }
#else
static long idleWaits(void) { return 0; }
static int idleWaitsUntimed(void) { return 0; }
#endif
*/
import "C"

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"sync"

	govips "github.com/davidbyttow/govips/v2/vips"

	"github.com/pgstorage/storage/render"
)

// Config is the renderer's limits and defaults.
type Config struct {
	// MaxPixels is the largest source resolution decoded (width × height of its first frame,
	// IMAGE_TRANSFORMATION_MAX_SOURCE_RESOLUTION); larger sources are refused from their header,
	// before any pixel is decoded (decompression bombs).
	MaxPixels int64
	// Quality is the encoders' quality when the request sets none (imgproxy's default, 80).
	Quality int
	Logger  *slog.Logger
}

// Defaults: the limits Supabase documents for its hosted service (50 MP), imgproxy's quality.
const (
	DefaultMaxPixels = 50_000_000
	DefaultQuality   = 80
)

// Engine is the libvips renderer. It is safe for concurrent use; callers bound the renders
// in progress (render.Queue).
type Engine struct{ cfg Config }

// New returns a renderer. libvips itself starts on the first render (start), not here: a
// server that renders nothing, or not yet, does not pay for it. Starting it (vips_init) loads
// its modules (HEIF, JPEG XL, ImageMagick, PDF, OpenSlide and the libraries under them) and
// registers its types: about 10 MiB of the server's resident memory, a sixth of an idle
// server's (14 MiB with a first render's buffers).
func New(cfg Config) *Engine {
	if cfg.MaxPixels <= 0 {
		cfg.MaxPixels = DefaultMaxPixels
	}
	if cfg.Quality <= 0 {
		cfg.Quality = DefaultQuality
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Engine{cfg: cfg}
}

var startOnce sync.Once

// concurrency is libvips' threads per render: one, as the queue runs as many renders as there
// are cores.
const concurrency = 1

// start starts libvips once per process (it cannot be restarted), logging to the first
// caller's logger, without its operation cache: every render decodes a different source, and
// a cache would only hold memory. Code that calls govips directly starts libvips with govips'
// defaults when nothing has yet: the settings are applied whoever started it.
func start(log *slog.Logger) {
	startOnce.Do(func() {
		// Loaders libvips marks untrusted (ImageMagick, PDF, SVG, …) parse hostile input
		// badly; none of them is needed for the formats we accept. vips_init reads the
		// variable; the call below covers a libvips started before.
		os.Setenv("VIPS_BLOCK_UNTRUSTED", "1")
		govips.LoggingSettings(func(domain string, level govips.LogLevel, msg string) {
			log.Debug("libvips", "domain", domain, "message", msg)
		}, govips.LogLevelWarning)
		// libvips allocates and frees its buffers anew for every render. With glibc's
		// default (trim a heap once 128 KiB are free at its top), a 2 MP JPEG → 200×200 WebP
		// render gave its pages back and faulted them in again every time: 80-150 page
		// faults per render, 22-25 ms of server CPU on the 2-core machine. With 64 MiB kept:
		// under 10 faults and 10-15% less CPU per render. RSS under that load stays ~100 MiB.
		C.keepFreedMemory(64 << 20)
		govips.Startup(&govips.Config{ConcurrencyLevel: concurrency, MaxCacheFiles: 0, MaxCacheMem: 0, MaxCacheSize: 0})
		C.startedAs(concurrency)
	})
}

// decodable are the source formats rendered; the sniffed type decides, not the object's
// declared content type.
var decodable = map[govips.ImageType]bool{
	govips.ImageTypeJPEG: true, govips.ImageTypePNG: true, govips.ImageTypeWEBP: true,
	govips.ImageTypeGIF: true, govips.ImageTypeAVIF: true, govips.ImageTypeHEIF: true,
	govips.ImageTypeTIFF: true,
}

// maxCoord stands for "no bound" on one side of a thumbnail box (libvips' largest coordinate).
const maxCoord = 10_000_000

// Render implements render.Engine.
func (e *Engine) Render(src []byte, o render.Options, f render.Format) ([]byte, error) {
	if len(src) == 0 || !decodable[govips.DetermineImageType(src)] {
		return nil, render.ErrUnsupported
	}
	start(e.cfg.Logger)
	// libvips reads the source from its images for as long as they live, past the cgo calls
	// that passed it: the buffer stays pinned until every image made from it is closed (the
	// defers below run first), so no C code ever reads Go memory the collector may reclaim.
	var pin runtime.Pinner
	pin.Pin(&src[0])
	defer pin.Unpin()
	w, h, err := e.header(src)
	if err != nil {
		return nil, err
	}
	img, err := thumbnail(src, w, h, o)
	if err != nil {
		return nil, render.ErrUnsupported
	}
	defer img.Close()
	if err := crop(img, o); err != nil {
		return nil, fmt.Errorf("render: crop: %w", err)
	}
	out, err := e.encode(img, o, f)
	if err != nil {
		return nil, fmt.Errorf("render: encode %s: %w", f, err)
	}
	return out, nil
}

// header reads the source's size (as displayed, after EXIF rotation) from its header alone,
// and refuses sources over the resolution limit before anything is decoded.
func (e *Engine) header(src []byte) (int, int, error) {
	p := govips.NewImportParams()
	p.FailOnError.Set(false)
	img, err := govips.LoadImageFromBuffer(src, p)
	if err != nil {
		return 0, 0, render.ErrUnsupported
	}
	defer img.Close()
	w, h := img.Width(), img.PageHeight()
	if h <= 0 {
		h = img.Height()
	}
	if int64(w)*int64(h) > e.cfg.MaxPixels {
		return 0, 0, render.ErrResolution
	}
	if o := img.Orientation(); o >= 5 && o <= 8 { // rotated by 90° or 270°
		w, h = h, w
	}
	return w, h, nil
}

// thumbnail decodes and scales (shrink-on-load for JPEG and WebP, auto-rotation, sRGB) to the
// size the resize mode gives for a w×h source. Nothing is ever enlarged (imgproxy's default):
// a box larger than the source yields at most the source.
func thumbnail(src []byte, w, h int, o render.Options) (*govips.ImageRef, error) {
	W, H := o.Width, o.Height
	tw, th, size := maxCoord, maxCoord, govips.SizeDown
	scale := 1.0 // the largest factor either axis is scaled by
	switch {
	case W == 0 && H == 0: // re-encode only
	case o.ResizingType() == "force":
		tw, th, size = w, h, govips.SizeForce
		if W > 0 {
			tw = min(W, w)
		}
		if H > 0 {
			th = min(H, h)
		}
		scale = math.Max(float64(tw)/float64(w), float64(th)/float64(h))
	case o.ResizingType() == "fill" && W > 0 && H > 0 && o.Gravity == "sm":
		// Smart cover: libvips scales, then crops at the attention centre from a copy in
		// memory, since the detector reads the pixels twice and a thumbnail decodes once, in
		// order (a smart crop of its output fails with "out of order read").
		return govips.LoadThumbnailFromBuffer(src, W, H, govips.InterestingAttention, govips.SizeDown, nil)
	case o.ResizingType() == "fill" && W > 0 && H > 0:
		// cover: scale until the box is covered, then crop (see crop)
		scale = math.Min(1, math.Max(float64(W)/float64(w), float64(H)/float64(h)))
		tw, th = max(1, int(math.Round(float64(w)*scale))), max(1, int(math.Round(float64(h)*scale)))
	default: // contain, or one side given
		if W > 0 {
			tw = W
			scale = math.Min(scale, float64(W)/float64(w))
		}
		if H > 0 {
			th = H
			scale = math.Min(scale, float64(H)/float64(h))
		}
	}
	if shrink := jpegShrink(scale); shrink > 1 && govips.DetermineImageType(src) == govips.ImageTypeJPEG {
		// libvips' own thumbnail shrinks a JPEG on load only to twice the target or more
		// (a 2 MP photo to 200×200: by 2, decoding 866×578); imgproxy, whose output the
		// reference serves, shrinks as far as the target allows (by 4: 433×289). A cold 2 MP
		// JPEG → 200×200 WebP render then takes 8% less server CPU (18.5 → 16.9 ms on the
		// 2-core machine); most of what is left is the JPEG's entropy decoding, which no
		// shrink avoids.
		p := govips.NewImportParams()
		p.FailOnError.Set(false)
		p.JpegShrinkFactor.Set(shrink)
		img, err := govips.LoadImageFromBuffer(src, p)
		if err != nil {
			return nil, err
		}
		if err := img.ThumbnailWithSize(tw, th, govips.InterestingNone, size); err != nil {
			img.Close()
			return nil, err
		}
		return img, nil
	}
	return govips.LoadThumbnailFromBuffer(src, tw, th, govips.InterestingNone, size, nil)
}

// jpegShrink is the JPEG decoder's scale-down (1, 2, 4 or 8) for an image to be scaled by
// scale: the largest that still leaves at least the target's pixels, as imgproxy chooses it.
func jpegShrink(scale float64) int {
	switch s := 1 / scale; {
	case s >= 8:
		return 8
	case s >= 4:
		return 4
	case s >= 2:
		return 2
	}
	return 1
}

// crop cuts a cover-resized image down to the box, at the gravity (spec §5.3): the edges and
// corners, the centre (default), the focal point ("sm", libvips' attention detector, was
// applied by thumbnail).
// Offsets of at least 1 are pixels, smaller ones fractions of the image.
func crop(img *govips.ImageRef, o render.Options) error {
	if o.ResizingType() != "fill" || o.Width == 0 || o.Height == 0 {
		return nil
	}
	aw, ah := img.Width(), img.Height()
	cw, ch := min(o.Width, aw), min(o.Height, ah)
	if cw == aw && ch == ah {
		return nil
	}
	if o.Gravity == "sm" {
		return nil // cropped by thumbnail
	}
	var left, top float64
	if o.Gravity == "fp" {
		left = *o.XOffset*float64(aw) - float64(cw)/2
		top = *o.YOffset*float64(ah) - float64(ch)/2
	} else {
		dx, dy := offset(o.XOffset, aw), offset(o.YOffset, ah)
		g := o.Gravity
		switch {
		case g == "we" || g == "nowe" || g == "sowe":
			left = dx
		case g == "ea" || g == "noea" || g == "soea":
			left = float64(aw-cw) - dx
		default:
			left = float64(aw-cw)/2 + dx
		}
		switch {
		case g == "no" || g == "noea" || g == "nowe":
			top = dy
		case g == "so" || g == "soea" || g == "sowe":
			top = float64(ah-ch) - dy
		default:
			top = float64(ah-ch)/2 + dy
		}
	}
	l := max(0, min(int(math.Round(left)), aw-cw))
	t := max(0, min(int(math.Round(top)), ah-ch))
	return img.ExtractArea(l, t, cw, ch)
}

func offset(v *float64, size int) float64 {
	switch {
	case v == nil:
		return 0
	case math.Abs(*v) >= 1:
		return *v
	}
	return *v * float64(size)
}

// encode writes img as f without metadata (EXIF, XMP, ICC: stripped, as imgproxy does).
// JPEG has no alpha: transparent pixels are laid on white.
func (e *Engine) encode(img *govips.ImageRef, o render.Options, f render.Format) ([]byte, error) {
	q := o.Quality
	if q == 0 {
		q = e.cfg.Quality
	}
	var out []byte
	var err error
	switch f {
	case render.WebP:
		// libvips 8.14's WebP saver writes the image's EXIF and XMP whatever it is told:
		// the metadata goes first (an author, a description, a GPS position…).
		if err := img.RemoveMetadata(); err != nil {
			return nil, err
		}
		out, _, err = img.ExportWebp(&govips.WebpExportParams{StripMetadata: true, Quality: q, ReductionEffort: 4})
	case render.AVIF:
		out, _, err = img.ExportAvif(&govips.AvifExportParams{StripMetadata: true, Quality: q, Bitdepth: 8, Effort: 2, Speed: 8})
	case render.PNG:
		out, _, err = img.ExportPng(&govips.PngExportParams{StripMetadata: true, Compression: 6, Filter: govips.PngFilterAll})
	case render.GIF:
		out, _, err = img.ExportGIF(&govips.GifExportParams{StripMetadata: true, Quality: q, Effort: 7, Bitdepth: 8})
	default:
		if img.HasAlpha() {
			if err := img.Flatten(&govips.Color{R: 255, G: 255, B: 255}); err != nil {
				return nil, err
			}
		}
		out, _, err = img.ExportJpeg(&govips.JpegExportParams{StripMetadata: true, Quality: q, OptimizeCoding: true})
	}
	return out, err
}

// workersWaitUntimed reports whether libvips' idle workers wait for work without a timeout
// (the workaround above is built for this libvips), and how many waits they have begun.
func workersWaitUntimed() (bool, int64) {
	return C.idleWaitsUntimed() == 1, int64(C.idleWaits())
}

// libvipsStarted reports whether libvips has been started in this process.
func libvipsStarted() bool { return C.started() == 1 }

// libvipsSettings are what start sets: libvips' threads per render, and whether its operation
// cache is off.
func libvipsSettings() (int, bool) { return int(C.vips_concurrency_get()), C.cacheOff() == 1 }
