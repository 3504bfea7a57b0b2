package render

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Format is an output format.
type Format string

// The formats a variant is written in.
const (
	JPEG Format = "jpeg"
	PNG  Format = "png"
	WebP Format = "webp"
	AVIF Format = "avif"
	GIF  Format = "gif"
)

// ContentType is the format's media type.
func (f Format) ContentType() string { return "image/" + string(f) }

// Output is the format o is written in for a request that accepts accept, of an object whose
// stored content type is mimetype (spec §5.4). An explicit webp or avif wins. Without a
// format, a client that accepts WebP gets WebP (imgproxy's WebP detection, which Supabase
// enables); AVIF is only sent when asked for, since encoding it costs many times more. Otherwise
// ("origin") the variant keeps the object's declared format when it is one we write, else
// JPEG, as imgproxy falls back for sources it cannot write (HEIC…). The output is decided
// from the request and the row alone, before any byte is read, so a cached variant is found
// by name.
func Output(o Options, accept, mimetype string) Format {
	switch o.Format {
	case "webp":
		return WebP
	case "avif":
		return AVIF
	case "":
		if acceptsWebP(accept) {
			return WebP
		}
	}
	mt, _, _ := strings.Cut(strings.ToLower(mimetype), ";")
	switch strings.TrimSpace(mt) {
	case "image/png", "image/apng":
		return PNG
	case "image/webp":
		return WebP
	case "image/gif":
		return GIF
	case "image/avif":
		return AVIF
	}
	return JPEG
}

// acceptsWebP reports whether an Accept header lists image/webp with a non-zero quality.
func acceptsWebP(accept string) bool {
	for part := range strings.SplitSeq(accept, ",") {
		mt, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(mt), "image/webp") {
			continue
		}
		for p := range strings.SplitSeq(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.TrimSpace(k) == "q" {
				if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && q == 0 {
					return false
				}
			}
		}
		return true
	}
	return false
}

// Negotiated reports whether the output format of o depends on the request's Accept header
// (the response then varies by it).
func (o Options) Negotiated() bool { return o.Format == "" }

// pipelineVersion names the renderer's behaviour: bump it when the same options would render
// different pixels, so that variants cached before are not served for the new ones.
const pipelineVersion = "1"

// Variant is the name o rendered as f is cached under, beside its source's version (one blob
// key segment: a digest of the normalized transformation, and the format's extension).
// Options that render the same pixels share a name: a resize mode without a size, a gravity
// that crops nothing, centre written or not.
func (o Options) Variant(f Format) string {
	n := o.Normalized()
	var b strings.Builder
	b.WriteString("v" + pipelineVersion)
	for _, s := range n.Segments() {
		b.WriteString("/" + s)
	}
	b.WriteString("/" + string(f))
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:16]) + "." + string(f)
}

// Normalized is o with what cannot change the pixels dropped: format (decided by Output),
// the resize mode when no size is given, and the gravity unless cover crops at it (both
// sizes given); centre is the default gravity, and smart gravity takes no offsets.
func (o Options) Normalized() Options {
	n := Options{Width: o.Width, Height: o.Height, Quality: o.Quality}
	if n.Width == 0 && n.Height == 0 {
		return n
	}
	n.Resize = "cover"
	if o.Resize == "contain" || o.Resize == "fill" {
		n.Resize = o.Resize
	}
	if n.Resize == "cover" && n.Width > 0 && n.Height > 0 {
		switch g := o.Gravity; {
		case g == "sm":
			n.Gravity = g
		case g == "" || g == "ce" && o.XOffset == nil && o.YOffset == nil:
			// the centre, the default
		default:
			n.Gravity, n.XOffset, n.YOffset = g, o.XOffset, o.YOffset
		}
	}
	return n
}

// Error is a refusal of the renderer: the source is not an image it renders, or is over a
// limit. Message is the reference's (spec §7); the REST answer is HTTP 400 with it.
type Error struct{ Message string }

func (e *Error) Error() string { return e.Message }

// The renderer's refusals.
var (
	ErrUnsupported = &Error{"The source image is invalid or unsupported for rendering"}
	ErrResolution  = &Error{"The source image resolution is too large to process"}
	ErrFileSize    = &Error{"The source image file is too large to process"}
)

// Engine renders one variant: decode src, apply o, encode as f.
type Engine interface {
	Render(src []byte, o Options, f Format) ([]byte, error)
}

// ErrBusy: every render slot is taken and the queue is full, or the wait for a slot outlasted
// the queue timeout.
var ErrBusy = errors.New("render: too many image transformations in progress")

// Queue bounds the renders in progress (each holds its source and its pixels in memory) and
// the requests waiting for one: beyond both, requests are refused at once instead of piling up.
type Queue struct {
	slots   chan struct{}
	waiting chan struct{}
	timeout time.Duration
}

// NewQueue allows concurrency renders at once and queue more waiting, each at most timeout
// (0: as long as its request lives).
func NewQueue(concurrency, queue int, timeout time.Duration) *Queue {
	return &Queue{slots: make(chan struct{}, max(concurrency, 1)), waiting: make(chan struct{}, max(queue, 0)), timeout: timeout}
}

// Acquire takes a render slot, waiting in the queue if there is room; release gives it back.
func (q *Queue) Acquire(ctx context.Context) (release func(), err error) {
	release = func() { <-q.slots }
	select {
	case q.slots <- struct{}{}:
		return release, nil
	default:
	}
	select {
	case q.waiting <- struct{}{}:
		defer func() { <-q.waiting }()
	default:
		return nil, ErrBusy
	}
	var expired <-chan time.Time
	if q.timeout > 0 {
		t := time.NewTimer(q.timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case q.slots <- struct{}{}:
		return release, nil
	case <-expired:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ErrBusy
	}
}
