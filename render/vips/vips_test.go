package vips

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"

	govips "github.com/davidbyttow/govips/v2/vips"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/render"
)

// The engine is tested on sources generated here: Go's encoders for JPEG, PNG and GIF, and
// libvips' own for WebP, AVIF, HEIC and TIFF. Outputs are checked by decoding them again:
// their format, size, and the colours where a crop or the alpha channel decides them.

var (
	red   = color.NRGBA{R: 255, A: 255}
	blue  = color.NRGBA{B: 255, A: 255}
	green = color.NRGBA{G: 255, A: 255}
)

// gradient is a photo-like w×h image: smooth colour ramps plus a little noise.
func gradient(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(1, 2))
	for y := range h {
		for x := range w {
			n := rng.IntN(16)
			img.SetNRGBA(x, y, color.NRGBA{
				R: uint8(255*x/w) ^ uint8(n),
				G: uint8(255*y/h) ^ uint8(n),
				B: uint8(128 + n),
				A: 255,
			})
		}
	}
	return img
}

// halves is a w×h image whose first half is a and second half b: left and right, or top and
// bottom when vertical.
func halves(w, h int, a, b color.NRGBA, vertical bool) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := a
			if (!vertical && x >= w/2) || (vertical && y >= h/2) {
				c = b
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

func encodeJPEG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}))
	return b.Bytes()
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	return b.Bytes()
}

// convert re-encodes a source with libvips, for the formats Go cannot write.
func convert(t *testing.T, src []byte, to govips.ImageType) []byte {
	t.Helper()
	img, err := govips.NewImageFromBuffer(src)
	require.NoError(t, err)
	defer img.Close()
	var out []byte
	switch to {
	case govips.ImageTypeWEBP:
		out, _, err = img.ExportWebp(&govips.WebpExportParams{Quality: 90, Lossless: true})
	case govips.ImageTypeAVIF:
		out, _, err = img.ExportAvif(&govips.AvifExportParams{Quality: 90, Bitdepth: 8, Speed: 8})
	case govips.ImageTypeHEIF:
		out, _, err = img.ExportHeif(&govips.HeifExportParams{Quality: 90, Bitdepth: 8})
	case govips.ImageTypeTIFF:
		out, _, err = img.ExportTiff(govips.NewTiffExportParams())
	default:
		t.Fatalf("convert to %v", to)
	}
	require.NoError(t, err)
	require.Equal(t, to, govips.DetermineImageType(out))
	return out
}

// withOrientation is src (a JPEG) carrying EXIF Orientation o, pixels untouched.
func withOrientation(t *testing.T, src []byte, o int) []byte {
	t.Helper()
	img, err := govips.NewImageFromBuffer(src)
	require.NoError(t, err)
	defer img.Close()
	require.NoError(t, img.SetOrientation(o))
	out, _, err := img.ExportJpeg(&govips.JpegExportParams{Quality: 95})
	require.NoError(t, err)
	check, err := govips.NewImageFromBuffer(out)
	require.NoError(t, err)
	defer check.Close()
	require.Equal(t, o, check.Orientation())
	require.True(t, check.HasExif())
	return out
}

// decoded is what a test reads back from a rendered image.
type decoded struct {
	format        govips.ImageType
	width, height int
	alpha, exif   bool
	pixels        *image.NRGBA // the pixels, through a lossless PNG
}

func decode(t *testing.T, out []byte) decoded {
	t.Helper()
	img, err := govips.NewImageFromBuffer(out)
	require.NoError(t, err)
	defer img.Close()
	d := decoded{format: govips.DetermineImageType(out), width: img.Width(), height: img.Height(),
		alpha: img.HasAlpha(), exif: img.HasExif()}
	b, _, err := img.ExportPng(&govips.PngExportParams{Compression: 1})
	require.NoError(t, err)
	p, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	d.pixels = image.NewNRGBA(p.Bounds())
	for y := p.Bounds().Min.Y; y < p.Bounds().Max.Y; y++ {
		for x := p.Bounds().Min.X; x < p.Bounds().Max.X; x++ {
			d.pixels.Set(x, y, p.At(x, y))
		}
	}
	return d
}

// share is the fraction of d's pixels within a tolerance of c (lossy encoders blur edges).
func (d decoded) share(c color.NRGBA) float64 {
	near := func(a, b uint8) bool { return max(a, b)-min(a, b) < 64 }
	n, all := 0, 0
	for y := range d.height {
		for x := range d.width {
			p := d.pixels.NRGBAAt(x, y)
			all++
			if near(p.R, c.R) && near(p.G, c.G) && near(p.B, c.B) && near(p.A, c.A) {
				n++
			}
		}
	}
	return float64(n) / float64(all)
}

func render1(t *testing.T, e *Engine, src []byte, o render.Options, f render.Format) decoded {
	t.Helper()
	out, err := e.Render(src, o, f)
	require.NoError(t, err, "%+v as %s", o, f)
	return decode(t, out)
}

func num(f float64) *float64 { return &f }

var outputTypes = map[render.Format]govips.ImageType{
	render.JPEG: govips.ImageTypeJPEG, render.PNG: govips.ImageTypePNG, render.WebP: govips.ImageTypeWEBP,
	render.AVIF: govips.ImageTypeAVIF, render.GIF: govips.ImageTypeGIF,
}

// TestSourceFormats: every source format decodes, and every output format is written.
func TestSourceFormats(t *testing.T) {
	t.Parallel()
	e := New(Config{})
	jpg := encodeJPEG(t, gradient(400, 200))
	sources := map[string][]byte{
		"jpeg": jpg,
		"png":  encodePNG(t, halves(400, 200, green, color.NRGBA{}, false)), // with alpha
		"webp": convert(t, jpg, govips.ImageTypeWEBP),
		"avif": convert(t, jpg, govips.ImageTypeAVIF),
		"heic": convert(t, jpg, govips.ImageTypeHEIF),
		"tiff": convert(t, jpg, govips.ImageTypeTIFF),
		"gif":  gifOf(t, 400, 200, red),
	}
	for name, src := range sources {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for f, want := range outputTypes {
				d := render1(t, e, src, render.Options{Width: 100}, f)
				require.Equal(t, want, d.format, "%s as %s", name, f)
				require.Equal(t, [2]int{100, 50}, [2]int{d.width, d.height}, "%s as %s", name, f)
			}
			// No transformation: re-encoded at the source's size.
			d := render1(t, e, src, render.Options{}, render.PNG)
			require.Equal(t, [2]int{400, 200}, [2]int{d.width, d.height})
		})
	}
}

// gifOf is a GIF of w×h frames, one per colour: an animation when given several.
func gifOf(t *testing.T, w, h int, frames ...color.NRGBA) []byte {
	t.Helper()
	g := &gif.GIF{}
	for _, c := range frames {
		p := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{c, color.White})
		for i := range p.Pix {
			p.Pix[i] = 0
		}
		g.Image = append(g.Image, p)
		g.Delay = append(g.Delay, 10)
	}
	var b bytes.Buffer
	require.NoError(t, gif.EncodeAll(&b, g))
	return b.Bytes()
}

// TestAnimatedGIF: an animation renders its first frame, at one frame's size.
func TestAnimatedGIF(t *testing.T) {
	t.Parallel()
	e := New(Config{})
	src := gifOf(t, 60, 40, red, blue)
	for _, c := range []struct {
		o    render.Options
		w, h int
	}{
		{render.Options{}, 60, 40},
		{render.Options{Width: 30}, 30, 20},
		{render.Options{Width: 20, Height: 20}, 20, 20},
	} {
		for _, f := range []render.Format{render.PNG, render.GIF, render.WebP} {
			d := render1(t, e, src, c.o, f)
			require.Equal(t, [2]int{c.w, c.h}, [2]int{d.width, d.height}, "%+v as %s", c.o, f)
			require.Greater(t, d.share(red), 0.95, "%+v as %s: the first frame", c.o, f)
		}
	}
}

// TestOrientation: a JPEG stored 300×100 with EXIF Orientation 6 (rotate 90° clockwise to
// display) is rendered as displayed, 100×300, and its sizes are the displayed ones.
func TestOrientation(t *testing.T) {
	t.Parallel()
	e := New(Config{})
	// Stored: left half red, right half blue. Displayed: red on top, blue below.
	src := withOrientation(t, encodeJPEG(t, halves(300, 100, red, blue, false)), 6)
	for _, c := range []struct {
		o    render.Options
		w, h int
	}{
		{render.Options{}, 100, 300},
		{render.Options{Width: 50}, 50, 150},
		{render.Options{Height: 150}, 50, 150},
		{render.Options{Width: 50, Height: 50, Resize: "contain"}, 17, 50},
		// Cover scales the displayed 100×300 not at all and crops 100×100: a box from the
		// stored size would have scaled it to 33×100.
		{render.Options{Width: 100, Height: 100}, 100, 100},
	} {
		d := render1(t, e, src, c.o, render.PNG)
		require.Equal(t, [2]int{c.w, c.h}, [2]int{d.width, d.height}, "%+v", c.o)
		require.False(t, d.exif)
	}
	top := render1(t, e, src, render.Options{Width: 100, Height: 100, Gravity: "no"}, render.PNG)
	require.Greater(t, top.share(red), 0.9)
	bottom := render1(t, e, src, render.Options{Width: 100, Height: 100, Gravity: "so"}, render.PNG)
	require.Greater(t, bottom.share(blue), 0.9)
	// The JPEG output is upright and says nothing of an orientation.
	out, err := e.Render(src, render.Options{}, render.JPEG)
	require.NoError(t, err)
	img, err := govips.NewImageFromBuffer(out)
	require.NoError(t, err)
	defer img.Close()
	require.Equal(t, [2]int{100, 300}, [2]int{img.Width(), img.Height()})
	require.Contains(t, []int{0, 1}, img.Orientation())
	require.False(t, img.HasExif())
}

// TestResize: each mode's output size (spec §5.2), nothing ever enlarged. A JPEG source goes
// through the decoder's own shrink wherever the target allows one.
func TestResize(t *testing.T) {
	t.Parallel()
	e := New(Config{})
	pngSrc, jpegSrc := encodePNG(t, gradient(400, 200)), encodeJPEG(t, gradient(400, 200))
	for _, c := range []struct {
		o    render.Options
		w, h int
	}{
		{render.Options{}, 400, 200},
		// cover (the default): scaled to cover the box, the overflow cropped.
		{render.Options{Width: 100, Height: 100}, 100, 100},
		{render.Options{Width: 100, Height: 100, Resize: "cover"}, 100, 100},
		{render.Options{Width: 150, Height: 150}, 150, 150},
		{render.Options{Width: 33, Height: 77}, 33, 77},
		{render.Options{Width: 300, Height: 20}, 300, 20},
		// contain: inside the box, no padding.
		{render.Options{Width: 100, Height: 100, Resize: "contain"}, 100, 50},
		{render.Options{Width: 100, Height: 20, Resize: "contain"}, 40, 20},
		// fill: each axis to the box, the aspect ratio lost.
		{render.Options{Width: 100, Height: 100, Resize: "fill"}, 100, 100},
		{render.Options{Width: 10, Height: 150, Resize: "fill"}, 10, 150},
		{render.Options{Width: 50, Height: 20, Resize: "fill"}, 50, 20},
		{render.Options{Width: 49, Height: 20, Resize: "contain"}, 40, 20},
		{render.Options{Width: 50, Height: 25, Resize: "contain"}, 50, 25},
		// One side: the other follows the aspect ratio; fill keeps the source's.
		{render.Options{Width: 100}, 100, 50},
		{render.Options{Height: 50}, 100, 50},
		{render.Options{Width: 100, Resize: "contain"}, 100, 50},
		{render.Options{Width: 100, Resize: "fill"}, 100, 200},
		{render.Options{Height: 50, Resize: "fill"}, 400, 50},
		// No enlargement: a box larger than the source yields at most the source.
		{render.Options{Width: 800}, 400, 200},
		{render.Options{Height: 2000}, 400, 200},
		{render.Options{Width: 800, Height: 800}, 400, 200},
		{render.Options{Width: 800, Height: 800, Resize: "contain"}, 400, 200},
		{render.Options{Width: 800, Height: 800, Resize: "fill"}, 400, 200},
		{render.Options{Width: 800, Height: 100, Resize: "fill"}, 400, 100},
		{render.Options{Width: 800, Height: 100}, 400, 100},
	} {
		for name, src := range map[string][]byte{"png": pngSrc, "jpeg": jpegSrc} {
			d := render1(t, e, src, c.o, render.PNG)
			require.Equal(t, [2]int{c.w, c.h}, [2]int{d.width, d.height}, "%s %+v", name, c.o)
		}
	}
	// The spec's example: a 200×100 source in a 150×150 cover box.
	small := encodeJPEG(t, gradient(200, 100))
	d := render1(t, e, small, render.Options{Width: 150, Height: 150}, render.WebP)
	require.Equal(t, [2]int{150, 100}, [2]int{d.width, d.height})
}

func TestJPEGShrink(t *testing.T) {
	t.Parallel()
	for scale, want := range map[float64]int{
		1: 1, 0.51: 1, 0.5: 2, 0.26: 2, 0.25: 4, 200.0 / 1155: 4, 0.13: 4, 0.125: 8, 0.01: 8,
	} {
		require.Equal(t, want, jpegShrink(scale), "%v", scale)
	}
}

// TestGravity: a cover crop keeps the region its gravity names (spec §5.3).
func TestGravity(t *testing.T) {
	t.Parallel()
	e := New(Config{})
	wide := encodePNG(t, halves(400, 100, red, blue, false)) // red left, blue right
	tall := encodePNG(t, halves(100, 400, red, blue, true))  // red on top, blue below
	for _, c := range []struct {
		src     []byte
		gravity string
		x, y    *float64
		want    color.NRGBA
	}{
		{wide, "we", nil, nil, red},
		{wide, "nowe", nil, nil, red},
		{wide, "sowe", nil, nil, red},
		{wide, "ea", nil, nil, blue},
		{wide, "noea", nil, nil, blue},
		{wide, "soea", nil, nil, blue},
		{wide, "fp", num(0.9), num(0.5), blue},
		{wide, "fp", num(0.1), num(0.5), red},
		{wide, "fp", num(1), num(1), blue},
		// Offsets: at least 1 is pixels, below 1 a fraction of the image.
		{wide, "we", num(300), nil, blue},
		{wide, "we", num(0.75), nil, blue},
		{wide, "ea", num(300), nil, red},
		{wide, "ce", num(-150), nil, red},
		{wide, "ce", num(0.375), nil, blue},
		{tall, "no", nil, nil, red},
		{tall, "noea", nil, nil, red},
		{tall, "so", nil, nil, blue},
		{tall, "sowe", nil, nil, blue},
		{tall, "fp", num(0.5), num(0.8), blue},
		{tall, "so", nil, num(300), red},
		// Past the edge: the crop stops at it.
		{tall, "no", nil, num(5000), blue},
	} {
		o := render.Options{Width: 100, Height: 100, Gravity: c.gravity, XOffset: c.x, YOffset: c.y}
		d := render1(t, e, c.src, o, render.PNG)
		require.Equal(t, [2]int{100, 100}, [2]int{d.width, d.height})
		require.Greater(t, d.share(c.want), 0.9, "%+v", o)
	}
	// The centre (the default, and every gravity's other axis) takes half of each.
	for _, g := range []string{"", "ce", "no", "so"} {
		d := render1(t, e, wide, render.Options{Width: 100, Height: 100, Gravity: g}, render.PNG)
		require.InDelta(t, 0.5, d.share(red), 0.05, g)
		require.InDelta(t, 0.5, d.share(blue), 0.05, g)
	}
	// Smart crop picks a region of the box's size, whatever the source's format (the
	// attention detector reads its input twice, which a sequentially decoded PNG, JPEG or
	// TIFF cannot give it after the thumbnail: libvips' "out of order read").
	for _, src := range [][]byte{wide, convert(t, encodePNG(t, gradient(400, 100)), govips.ImageTypeWEBP),
		encodeJPEG(t, gradient(400, 100)), convert(t, encodePNG(t, gradient(400, 100)), govips.ImageTypeTIFF)} {
		d := render1(t, e, src, render.Options{Width: 100, Height: 100, Gravity: "sm"}, render.JPEG)
		require.Equal(t, [2]int{100, 100}, [2]int{d.width, d.height})
	}
	// Gravity is ignored when nothing is cropped.
	d := render1(t, e, wide, render.Options{Width: 100, Height: 100, Resize: "contain", Gravity: "ea"}, render.PNG)
	require.Equal(t, [2]int{100, 25}, [2]int{d.width, d.height})
	require.InDelta(t, 0.5, d.share(red), 0.05)
}

// TestAlpha: transparency survives into formats that have it and is laid on white in JPEG.
func TestAlpha(t *testing.T) {
	t.Parallel()
	e := New(Config{})
	src := encodePNG(t, halves(200, 100, green, color.NRGBA{}, false)) // right half transparent
	for _, f := range []render.Format{render.PNG, render.WebP, render.AVIF} {
		d := render1(t, e, src, render.Options{Width: 100}, f)
		require.True(t, d.alpha, f)
		require.Equal(t, uint8(255), d.pixels.NRGBAAt(10, 25).A, f)
		require.Equal(t, uint8(0), d.pixels.NRGBAAt(90, 25).A, f)
		require.InDelta(t, 0.5, d.share(green), 0.05, f)
	}
	d := render1(t, e, src, render.Options{Width: 100}, render.JPEG)
	require.False(t, d.alpha)
	require.InDelta(t, 0.5, d.share(green), 0.05)
	require.InDelta(t, 0.5, d.share(color.NRGBA{R: 255, G: 255, B: 255, A: 255}), 0.05)
	// An opaque source gets no alpha channel.
	d = render1(t, e, encodeJPEG(t, gradient(200, 100)), render.Options{Width: 100}, render.PNG)
	require.False(t, d.alpha)
}

// TestMetadataStripped: no EXIF reaches the output, neither as metadata nor as the source's
// text, WebP included (libvips 8.14's WebP saver writes the source's EXIF although asked to
// strip it, so the renderer removes the metadata from the image first).
func TestMetadataStripped(t *testing.T) {
	t.Parallel()
	e := New(Config{})
	img, err := govips.NewImageFromBuffer(encodeJPEG(t, gradient(300, 100)))
	require.NoError(t, err)
	require.NoError(t, img.SetOrientation(1))
	img.SetString("exif-ifd0-Artist", "Jane Private")
	img.SetString("exif-ifd0-ImageDescription", "12 Private Street")
	src, _, err := img.ExportJpeg(&govips.JpegExportParams{Quality: 90})
	img.Close()
	require.NoError(t, err)
	require.True(t, bytes.Contains(src, []byte("Jane Private")))
	for _, f := range []render.Format{render.JPEG, render.PNG, render.WebP, render.AVIF, render.GIF} {
		for _, o := range []render.Options{{}, {Width: 50}} {
			out, err := e.Render(src, o, f)
			require.NoError(t, err)
			require.False(t, bytes.Contains(out, []byte("Jane Private")), "%+v as %s", o, f)
			require.False(t, bytes.Contains(out, []byte("12 Private Street")), "%+v as %s", o, f)
			img, err := govips.NewImageFromBuffer(out)
			require.NoError(t, err)
			if f != render.WebP { // libvips' WebP saver writes an EXIF block of its own (no source field in it)
				require.False(t, img.HasExif(), "%+v as %s", o, f)
			}
			for k := range img.GetExif() {
				require.NotContains(t, k, "Artist", "%+v as %s", o, f)
				require.NotContains(t, k, "ImageDescription", "%+v as %s", o, f)
			}
			img.Close()
		}
	}
}

// TestQuality: the request's quality, else the configured default, reaches the encoder.
func TestQuality(t *testing.T) {
	t.Parallel()
	src := encodeJPEG(t, gradient(400, 200))
	def, low := New(Config{}), New(Config{Quality: 30})
	for _, f := range []render.Format{render.JPEG, render.WebP} {
		a, err := low.Render(src, render.Options{Width: 200}, f)
		require.NoError(t, err)
		b, err := def.Render(src, render.Options{Width: 200, Quality: 30}, f)
		require.NoError(t, err)
		require.Equal(t, a, b, "%s: the default stands in for the request's quality", f)
		high, err := def.Render(src, render.Options{Width: 200, Quality: 100}, f)
		require.NoError(t, err)
		require.Less(t, len(a), len(high), f)
	}
}

// pngHeader is a PNG that declares w×h RGB pixels and holds almost none: a decompression bomb
// as far as its header goes.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(data)))
		body := append([]byte(typ), data...)
		b.Write(body)
		_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(body))
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8 bits, RGB
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01}) // zlib of one zero byte
	chunk("IEND", nil)
	return b.Bytes()
}

// TestRefusals: sources that are not images we render, or are over the resolution limit.
func TestRefusals(t *testing.T) {
	t.Parallel()
	e := New(Config{})
	bomb := pngHeader(50000, 50000)
	require.Less(t, len(bomb), 100)
	_, err := e.Render(bomb, render.Options{Width: 10}, render.JPEG)
	require.ErrorIs(t, err, render.ErrResolution)
	_, err = e.Render(bomb, render.Options{}, render.PNG)
	require.ErrorIs(t, err, render.ErrResolution)

	jpg := encodeJPEG(t, gradient(400, 200))
	for name, src := range map[string][]byte{
		"empty":                    nil,
		"short":                    []byte("GIF89a"),
		"text":                     []byte("hello, storage; this is not an image\n"),
		"html":                     []byte("<!doctype html><html><body><img src=x></body></html>"),
		"svg":                      []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>`),
		"svg with XML declaration": []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>`),
		"pdf":                      []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"),
		"bmp":                      append([]byte("BM\x46\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00"), make([]byte, 64)...),
		"zeros":                    make([]byte, 4096),
		"jpeg cut in its header":   jpg[:200],
		"png cut in its header":    bomb[:20],
	} {
		_, err := e.Render(src, render.Options{Width: 10}, render.JPEG)
		require.ErrorIs(t, err, render.ErrUnsupported, name)
	}
}

// TestTruncatedJPEG: libvips decodes what a truncated JPEG holds and fills the rest (its
// loaders do not fail on a damaged file unless asked to), as imgproxy serves it.
func TestTruncatedJPEG(t *testing.T) {
	t.Parallel()
	e := New(Config{})
	jpg := encodeJPEG(t, gradient(400, 200))
	for _, f := range []render.Format{render.JPEG, render.WebP} {
		d := render1(t, e, jpg[:len(jpg)/2], render.Options{Width: 100}, f)
		require.Equal(t, outputTypes[f], d.format)
		require.Equal(t, [2]int{100, 50}, [2]int{d.width, d.height})
	}
}

// TestMaxPixels: the resolution limit counts the first frame's pixels and allows exactly
// MaxPixels.
func TestMaxPixels(t *testing.T) {
	t.Parallel()
	src := encodePNG(t, gradient(400, 200))
	_, err := New(Config{MaxPixels: 400 * 200}).Render(src, render.Options{Width: 10}, render.JPEG)
	require.NoError(t, err)
	_, err = New(Config{MaxPixels: 400*200 - 1}).Render(src, render.Options{Width: 10}, render.JPEG)
	require.ErrorIs(t, err, render.ErrResolution)
	// A JPEG that EXIF rotates: the same boundary.
	rotated := withOrientation(t, encodeJPEG(t, gradient(300, 100)), 6)
	_, err = New(Config{MaxPixels: 300*100 - 1}).Render(rotated, render.Options{}, render.JPEG)
	require.ErrorIs(t, err, render.ErrResolution)
	_, err = New(Config{MaxPixels: 300 * 100}).Render(rotated, render.Options{}, render.JPEG)
	require.NoError(t, err)
	// An animation counts one frame, not the strip of all of them.
	anim := gifOf(t, 60, 40, red, blue)
	_, err = New(Config{MaxPixels: 60 * 40}).Render(anim, render.Options{}, render.GIF)
	require.NoError(t, err)
	_, err = New(Config{MaxPixels: 60*40 - 1}).Render(anim, render.Options{}, render.GIF)
	require.ErrorIs(t, err, render.ErrResolution)
	// The default limit is 50 MP.
	require.Equal(t, int64(DefaultMaxPixels), New(Config{}).cfg.MaxPixels)
}

// TestIdleWorkersWaitUntimed: libvips 8.14's workers wait for work in this package's
// vips_semaphore_down_timeout, which never times out, not in libvips' own, whose 15-second
// timeout races with a task handed to the worker (a write to freed memory: the heap
// corruption glibc aborted the server on under load). A worker has waited once before it runs
// the task it was given, so a finished render proves the waits go through ours.
func TestIdleWorkersWaitUntimed(t *testing.T) {
	t.Parallel()
	e := New(Config{})
	_, err := e.Render(encodeJPEG(t, gradient(64, 64)), render.Options{Width: 32}, render.WebP)
	require.NoError(t, err)
	untimed, waits := workersWaitUntimed()
	require.Equal(t, govips.MajorVersion == 8 && govips.MinorVersion == 14, untimed,
		"the workaround is built for libvips 8.14 alone (this is %s)", govips.Version)
	if untimed {
		require.Positive(t, waits, "libvips' workers do not wait in the untimed wait: its own is still linked")
	}
}

// childEnv marks a test binary started by a test below to run one test in a process of its
// own: the other tests here start libvips, and a process starts it once.
const childEnv = "VIPS_TEST_CHILD"

// inChild runs the test named in a new process of this test binary, unless this is that
// process: it reports whether it is.
func inChild(t *testing.T) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "--- PASS: "+t.Name(), "%s", out)
	return false
}

// TestStartsOnFirstRender: libvips starts with the first render, not with the engine (nor
// for a source refused unread): a server that renders nothing does not carry its modules and
// types, 9 MiB of resident memory.
func TestStartsOnFirstRender(t *testing.T) {
	t.Parallel()
	if !inChild(t) {
		return
	}
	e := New(Config{})
	require.False(t, libvipsStarted(), "libvips started with the engine")
	_, err := e.Render([]byte("neither JPEG, PNG, WebP, GIF, AVIF, HEIF nor TIFF"), render.Options{Width: 32}, render.JPEG)
	require.ErrorIs(t, err, render.ErrUnsupported)
	require.False(t, libvipsStarted(), "a source refused from its first bytes started libvips")
	out, err := e.Render(encodeJPEG(t, gradient(64, 64)), render.Options{Width: 32}, render.WebP)
	require.NoError(t, err)
	require.Equal(t, govips.ImageTypeWEBP, govips.DetermineImageType(out))
	require.True(t, libvipsStarted())
	threads, cacheOff := libvipsSettings()
	require.Equal(t, 1, threads)
	require.True(t, cacheOff)
}

// TestSettingsWhoeverStarted: when govips started libvips first, with its defaults (its
// calls start it when nothing has), the first render still sets one thread per render and no
// operation cache.
func TestSettingsWhoeverStarted(t *testing.T) {
	t.Parallel()
	if !inChild(t) {
		return
	}
	govips.Startup(nil)
	threads, cacheOff := libvipsSettings()
	require.False(t, threads == 1 && cacheOff, "govips' defaults are ours: this test proves nothing")
	_, err := New(Config{}).Render(encodeJPEG(t, gradient(64, 64)), render.Options{Width: 32}, render.WebP)
	require.NoError(t, err)
	threads, cacheOff = libvipsSettings()
	require.Equal(t, 1, threads)
	require.True(t, cacheOff)
}
