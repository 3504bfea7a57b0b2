// Package render is image transformation as the REST API's /render/image routes and signed
// transform URLs speak it (spec RENDER.md): the parameters and their validation, the two
// string forms a transformation travels in (the token's "transformations" claim and the
// X-Transformations header), output-format negotiation, the name a rendered variant is cached
// under, and the bounded queue renders wait in. The pixels are package render/vips's.
package render

import (
	"math"
	"strconv"
	"strings"
)

// Options is one transformation: the query of /render/image/{public,authenticated}, the
// "transform" object of POST /object/sign, or a signed token's "transformations" claim.
type Options struct {
	Width, Height int    // clamped to the limits; 0 = not given
	Resize        string // as given: cover, contain, fill; "" = not given (cover)
	Format        string // origin, webp, avif; "" = not given (negotiated from Accept)
	Quality       int    // 20–100; 0 = the encoder's default
	Gravity       string // no so ea we noea nowe soea sowe ce sm fp; "" = centre
	// XOffset and YOffset are the gravity's offsets when given (fp: the focal point, 0–1).
	XOffset, YOffset *float64
}

// Limits bound the requested size: width and height are clamped into [MinSize, MaxSize]
// (IMAGE_TRANSFORMATION_LIMIT_MIN_SIZE / _MAX_SIZE), as the reference does, not refused.
type Limits struct {
	MinSize, MaxSize int
}

// DefaultLimits are the reference's: [1, 2000].
var DefaultLimits = Limits{MinSize: 1, MaxSize: 2000}

// Empty reports whether o transforms nothing a client asked for (storage-js sends no
// transform then, and the signed URL serves the original).
func (o Options) Empty() bool {
	return o == Options{}
}

var (
	resizeModes = []string{"cover", "contain", "fill"}
	formats     = []string{"origin", "avif", "webp"}
	gravities   = []string{"no", "so", "ea", "we", "noea", "nowe", "soea", "sowe", "ce", "sm", "fp"}
)

// Parse reads a transformation from named values as the reference's schema does (values
// coerced from strings, unknown names ignored, width and height clamped). where prefixes the
// messages of refusals ("querystring", "body/transform"); the message is the schema error's,
// naming the field, e.g. "querystring/width must be >= 0".
func Parse(get func(name string) (string, bool), l Limits, where string) (Options, string) {
	var o Options
	var msg string
	integer := func(name string, lo, hi int) int {
		v, ok := get(name)
		if !ok || msg != "" {
			return 0
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		switch {
		case err != nil || math.IsInf(f, 0) || math.IsNaN(f) || f != math.Trunc(f) || strings.TrimSpace(v) == "":
			msg = where + "/" + name + " must be integer"
		case f < float64(lo):
			msg = where + "/" + name + " must be >= " + strconv.Itoa(lo)
		case hi > 0 && f > float64(hi):
			msg = where + "/" + name + " must be <= " + strconv.Itoa(hi)
		default:
			return int(min(f, math.MaxInt32))
		}
		return 0
	}
	enum := func(name string, allowed []string) string {
		v, ok := get(name)
		if !ok || msg != "" {
			return ""
		}
		for _, a := range allowed {
			if v == a {
				return v
			}
		}
		msg = where + "/" + name + " must be equal to one of the allowed values"
		return ""
	}
	number := func(name string) *float64 {
		v, ok := get(name)
		if !ok || msg != "" {
			return nil
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || strings.TrimSpace(v) == "" {
			msg = where + "/" + name + " must be number"
			return nil
		}
		return &f
	}
	o.Width = l.clamp(integer("width", 0, 0))
	o.Height = l.clamp(integer("height", 0, 0))
	o.Resize = enum("resize", resizeModes)
	o.Format = enum("format", formats)
	o.Quality = integer("quality", 20, 100)
	o.Gravity = enum("gravity", gravities)
	o.XOffset = number("x_offset")
	o.YOffset = number("y_offset")
	if msg == "" && o.Gravity == "fp" {
		msg = focalPointMessage(o, where)
	}
	if msg != "" {
		return Options{}, msg
	}
	return o, ""
}

// focalPointMessage is the schema's extra rule: gravity fp needs both offsets, each in [0, 1].
func focalPointMessage(o Options, where string) string {
	for _, c := range []struct {
		name string
		v    *float64
	}{{"x_offset", o.XOffset}, {"y_offset", o.YOffset}} {
		switch {
		case c.v == nil:
			return where + " must have required property '" + c.name + "'"
		case *c.v < 0:
			return where + "/" + c.name + " must be >= 0"
		case *c.v > 1:
			return where + "/" + c.name + " must be <= 1"
		}
	}
	return ""
}

// FocalPointMessage is the refusal of a signed token whose fp offsets are out of range.
const FocalPointMessage = "Focal point requires x and y coordinates within 0-1 range"

// clamp bounds a requested size; 0 (not given) stays 0.
func (l Limits) clamp(v int) int {
	if v <= 0 {
		return 0
	}
	return max(l.MinSize, min(v, l.MaxSize))
}

// Transformations is o as a signed token's "transformations" claim (spec §4.3): the form the
// reference mints, so that tokens travel between the two servers. Its quirks are kept: the
// raw resize value follows every size, "undefined" when none was given, and format origin
// leaves no trace.
func (o Options) Transformations() string {
	var s []string
	if o.Height > 0 {
		s = append(s, "height:"+strconv.Itoa(o.Height))
	}
	if o.Width > 0 {
		s = append(s, "width:"+strconv.Itoa(o.Width))
	}
	if o.Width > 0 || o.Height > 0 {
		r := o.Resize
		if r == "" {
			r = "undefined"
		}
		s = append(s, "resize:"+r)
	}
	if o.Quality > 0 {
		s = append(s, "quality:"+strconv.Itoa(o.Quality))
	}
	if o.Format != "" && o.Format != "origin" {
		s = append(s, "format:"+o.Format)
	}
	if g := o.gravitySegment(); g != "" {
		s = append(s, g)
	}
	return strings.Join(s, ",")
}

// ParseTransformations reads a token's claim leniently, as the reference does: unknown
// names, empty values and unparsable numbers are skipped, sizes are clamped. The result's
// fp offsets still have to pass CheckFocalPoint.
func ParseTransformations(claim string, l Limits) Options {
	var o Options
	for item := range strings.SplitSeq(claim, ",") {
		parts := strings.Split(item, ":")
		if len(parts) < 2 || parts[1] == "" {
			continue
		}
		name, value := parts[0], parts[1]
		switch name {
		case "height":
			o.Height = l.clamp(leadingInt(value))
		case "width":
			o.Width = l.clamp(leadingInt(value))
		case "quality":
			o.Quality = leadingInt(value)
		case "resize":
			o.Resize = value
		case "format":
			o.Format = value
		case "gravity":
			o.Gravity = value
			if len(parts) > 2 {
				o.XOffset = finite(parts[2])
			}
			if len(parts) > 3 {
				o.YOffset = finite(parts[3])
			}
		}
	}
	return o
}

// CheckFocalPoint reports whether o's focal point, if any, lies within the image.
func (o Options) CheckFocalPoint() bool {
	return o.Gravity != "fp" || o.XOffset != nil && o.YOffset != nil &&
		*o.XOffset >= 0 && *o.XOffset <= 1 && *o.YOffset >= 0 && *o.YOffset <= 1
}

// leadingInt is JavaScript's parseInt(s, 10): the leading digits (with a sign), 0 if none.
func leadingInt(s string) int {
	s = strings.TrimLeft(s, " \t\n")
	end := 0
	if end < len(s) && (s[end] == '-' || s[end] == '+') {
		end++
	}
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	n, err := strconv.Atoi(s[:end])
	if err != nil {
		return 0
	}
	return n
}

func finite(s string) *float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return nil
	}
	return &f
}

// ResizingType is the resize mode in imgproxy's words (fill, fit, force); unknown or absent
// modes are cover.
func (o Options) ResizingType() string {
	switch o.Resize {
	case "contain":
		return "fit"
	case "fill":
		return "force"
	}
	return "fill"
}

// Segments is o in imgproxy's form, the X-Transformations header's parts (spec §5.1):
// e.g. [height:100 width:100 resizing_type:fill]. Empty when o transforms nothing.
func (o Options) Segments() []string {
	var s []string
	if o.Height > 0 {
		s = append(s, "height:"+strconv.Itoa(o.Height))
	}
	if o.Width > 0 {
		s = append(s, "width:"+strconv.Itoa(o.Width))
	}
	if o.Width > 0 || o.Height > 0 {
		s = append(s, "resizing_type:"+o.ResizingType())
	}
	if o.Quality > 0 {
		s = append(s, "quality:"+strconv.Itoa(o.Quality))
	}
	if o.Format == "webp" || o.Format == "avif" {
		s = append(s, "format:"+o.Format)
	}
	if g := o.gravitySegment(); g != "" {
		s = append(s, g)
	}
	return s
}

// gravitySegment is the gravity in both string forms: "gravity:sm", "gravity:fp:x:y",
// "gravity:<g>", or "gravity:<g>:<x or 0>:<y or 0>" when an offset was given.
func (o Options) gravitySegment() string {
	switch {
	case o.Gravity == "":
		return ""
	case o.Gravity == "sm":
		return "gravity:sm"
	case o.Gravity == "fp":
		return "gravity:fp:" + jsNumber(deref(o.XOffset)) + ":" + jsNumber(deref(o.YOffset))
	case o.XOffset != nil || o.YOffset != nil:
		return "gravity:" + o.Gravity + ":" + jsNumber(deref(o.XOffset)) + ":" + jsNumber(deref(o.YOffset))
	}
	return "gravity:" + o.Gravity
}

func deref(f *float64) float64 {
	if f == nil {
		return 0
	}
	return *f
}

// jsNumber writes f as JavaScript's String(f) does: plain decimals, exponent form only for
// magnitudes at or above 1e21 or below 1e-6.
func jsNumber(f float64) string {
	if f == 0 {
		return "0"
	}
	if a := math.Abs(f); a >= 1e21 || a < 1e-6 {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		mant, exp, _ := strings.Cut(s, "e")
		if exp[0] == '+' {
			return mant + "e+" + strings.TrimLeft(exp[1:], "0")
		}
		return mant + "e-" + strings.TrimLeft(exp[1:], "0")
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}
