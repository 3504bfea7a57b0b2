package tests

// Image transformation (/render/image/{public,authenticated,sign}/…, POST /object/sign with a
// transform) over real HTTP against the real proxy, a real database, real blob stores and the
// real libvips renderer, pinned to spec RENDER.md: §13's checkable assertions (subtests are
// named after their number), adapted where this server deliberately differs from the
// reference (no imgproxy: what the reference's stub saw is checked through X-Transformations
// and by decoding the output; conditional requests get 304; Range is honoured; the token's
// format is honoured; a bounded queue answers 429). Then what the reference leaves to
// imgproxy: resize semantics and formats decoded from the bytes, EXIF rotation, alpha, the
// decompression-bomb and size limits, RLS, and the variant cache in the blob store (written
// once, served without a render, freed by the collector with its source).

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	govips "github.com/davidbyttow/govips/v2/vips"
	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/proxy"
	"github.com/pgstorage/storage/render"
)

// ---------------------------------------------------------------------------------------------
// Images.

var (
	red         = color.NRGBA{255, 0, 0, 255}
	blue        = color.NRGBA{0, 0, 255, 255}
	transparent = color.NRGBA{0, 0, 0, 0}
)

// halves is a w×h image whose left half is left and right half right: where a crop or a
// rotation lands shows in the colour of a known pixel.
func halves(w, h int, left, right color.NRGBA) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := right
			if x < w/2 {
				c = left
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

func encodePNG(t *testing.T, img image.Image) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, img))
	return b.String()
}

func encodeJPEG(t *testing.T, img image.Image) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}))
	return b.String()
}

// redBluePNG is the w×h PNG most cases render: left half red, right half blue, opaque.
func redBluePNG(t *testing.T, w, h int) string { return encodePNG(t, halves(w, h, red, blue)) }

// alphaPNG is a w×h PNG whose left half is opaque red and right half fully transparent.
func alphaPNG(t *testing.T, w, h int) string { return encodePNG(t, halves(w, h, red, transparent)) }

// noisePNG is a w×h PNG of pseudo-random pixels: it does not compress, so its size is about
// 3·w·h bytes.
func noisePNG(t *testing.T, w, h int) string {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	x := uint32(2463534242)
	for i := 0; i < len(img.Pix); i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		img.Pix[i] = byte(x)
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	return encodePNG(t, img)
}

// vipsEncode converts an image to WebP, AVIF or GIF with libvips (Go has no encoder for them).
func vipsEncode(t *testing.T, src string, f render.Format) string {
	t.Helper()
	renderEngine() // starts libvips
	img, err := govips.NewImageFromBuffer([]byte(src))
	require.NoError(t, err)
	defer img.Close()
	var out []byte
	switch f {
	case render.WebP:
		out, _, err = img.ExportWebp(&govips.WebpExportParams{Lossless: true})
	case render.AVIF:
		out, _, err = img.ExportAvif(&govips.AvifExportParams{Quality: 90, Bitdepth: 8, Speed: 8})
	default:
		t.Fatalf("vipsEncode: %s", f)
	}
	require.NoError(t, err)
	return string(out)
}

// animatedGIF is a w×h GIF of two frames: red, then blue.
func animatedGIF(t *testing.T, w, h int) string {
	t.Helper()
	pal := color.Palette{red, blue}
	g := &gif.GIF{Delay: []int{10, 10}}
	for _, idx := range []uint8{0, 1} {
		f := image.NewPaletted(image.Rect(0, 0, w, h), pal)
		for i := range f.Pix {
			f.Pix[i] = idx
		}
		g.Image = append(g.Image, f)
	}
	var b bytes.Buffer
	require.NoError(t, gif.EncodeAll(&b, g))
	return b.String()
}

// rotatedJPEG is a w×h red|blue JPEG whose EXIF Orientation is 6 (displayed rotated 90°
// clockwise: h×w, red on top, blue at the bottom).
func rotatedJPEG(t *testing.T, w, h int) string {
	t.Helper()
	renderEngine()
	img, err := govips.NewImageFromBuffer([]byte(encodeJPEG(t, halves(w, h, red, blue))))
	require.NoError(t, err)
	defer img.Close()
	require.NoError(t, img.SetOrientation(6))
	out, _, err := img.ExportJpeg(&govips.JpegExportParams{Quality: 95, StripMetadata: false})
	require.NoError(t, err)
	check, err := govips.NewImageFromBuffer(out)
	require.NoError(t, err)
	defer check.Close()
	require.Equal(t, 6, check.Orientation(), "the JPEG carries EXIF orientation 6")
	require.Equal(t, [2]int{w, h}, [2]int{check.Width(), check.Height()}, "stored unrotated")
	return string(out)
}

// bombPNG is a decompression bomb: a valid PNG of a few hundred bytes whose header declares
// w×h greyscale pixels (50000×50000: 2.5 GB decoded), with a little compressed data.
func bombPNG(t *testing.T, w, h uint32) string {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 0 // bit depth 8, greyscale; compression, filter, interlace 0
	chunk("IHDR", ihdr)
	var z bytes.Buffer
	zw, err := zlib.NewWriterLevel(&z, zlib.BestCompression)
	require.NoError(t, err)
	_, err = zw.Write(make([]byte, 4*(int(w)+1))) // four rows of zeros
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	chunk("IDAT", z.Bytes())
	chunk("IEND", nil)
	require.Less(t, b.Len(), 1024, "the bomb is small")
	return b.String()
}

// ---------------------------------------------------------------------------------------------
// Decoding responses.

// decoded is what an image response decodes to.
type decoded struct {
	Width, Height int
	Format        govips.ImageType
}

func decodeImage(t *testing.T, body []byte) decoded {
	t.Helper()
	renderEngine() // starts libvips
	img, err := govips.NewImageFromBuffer(body)
	require.NoError(t, err)
	defer img.Close()
	return decoded{img.Width(), img.Height(), img.Format()}
}

// imageFacts are what the resize cases check beyond the size.
type imageFacts struct {
	Alpha bool
	Pages int // frames in the file (1 for a still image)
}

func inspectImage(t *testing.T, body []byte) imageFacts {
	t.Helper()
	renderEngine()
	img, err := govips.NewImageFromBuffer(body)
	require.NoError(t, err)
	defer img.Close()
	return imageFacts{Alpha: img.HasAlpha(), Pages: img.Pages()}
}

// pixel is the colour at (x, y) of an image response, as 0–255 per band (RGB, plus alpha
// when the image has one).
func pixel(t *testing.T, body []byte, x, y int) []float64 {
	t.Helper()
	renderEngine()
	img, err := govips.NewImageFromBuffer(body)
	require.NoError(t, err)
	defer img.Close()
	p, err := img.GetPoint(x, y)
	require.NoError(t, err)
	return p
}

// requireColour asserts the RGB of a pixel within a tolerance (lossy formats, resampling).
func requireColour(t *testing.T, want color.NRGBA, got []float64, what string) {
	t.Helper()
	require.GreaterOrEqual(t, len(got), 3, "%s: bands %v", what, got)
	for i, w := range []uint8{want.R, want.G, want.B} {
		require.InDelta(t, float64(w), got[i], 40, "%s: band %d of %v, want %v", what, i, got, want)
	}
}

// imageTypes maps response Content-Types to what libvips decodes.
var imageTypes = map[string]govips.ImageType{
	"image/png": govips.ImageTypePNG, "image/jpeg": govips.ImageTypeJPEG, "image/webp": govips.ImageTypeWEBP,
	"image/avif": govips.ImageTypeAVIF, "image/gif": govips.ImageTypeGIF,
}

// requireImage asserts a 200 image response of that type and size, the bytes agreeing with
// the Content-Type and Content-Length, and returns the body.
func requireImage(t *testing.T, r httpResponse, contentType string, w, h int) []byte {
	t.Helper()
	require.Equal(t, http.StatusOK, r.Status, "%s", r)
	require.Equal(t, contentType, r.Header.Get("Content-Type"))
	require.Equal(t, strconv.Itoa(len(r.Body)), r.Header.Get("Content-Length"))
	require.Equal(t, decoded{w, h, imageTypes[contentType]}, decodeImage(t, r.Body))
	return r.Body
}

// ---------------------------------------------------------------------------------------------
// The environment.

// pngW×pngH is the size of p.png, the image §13's cases render (the spec's is 1×1; a larger
// one shows what the resize did).
const pngW, pngH = 400, 200

// newRenderEnv is §13's setup on backend be: public bucket pb and private bucket b, each with
// p.png (pngW×pngH, red|blue) uploaded with Cache-Control: max-age=3600, and a text object
// pb/t.txt.
func newRenderEnv(t *testing.T, be objectBackend, opts ...httpOpt) *objEnv {
	t.Helper()
	o := newObjEnv(t, be, opts...)
	o.mkBucket(t, `{"name":"pb","public":true}`)
	p := redBluePNG(t, pngW, pngH)
	for _, b := range []string{"pb", "b"} {
		o.mustUpload(t, b, "p.png", p, withHeader("Content-Type", "image/png"), withHeader("Cache-Control", "max-age=3600"))
	}
	o.mustUpload(t, "pb", "t.txt", "not an image", withHeader("Content-Type", "text/plain"))
	return o
}

// heldQueue is a render queue of one slot and no waiting room whose slot the test holds
// until it ends: any request that gets as far as rendering is refused with 429, so a
// response other than that proves no render was started.
func heldQueue(t *testing.T) *render.Queue {
	t.Helper()
	q := render.NewQueue(1, 0, 0)
	release, err := q.Acquire(context.Background())
	require.NoError(t, err)
	t.Cleanup(release)
	return q
}

func withQueue(q *render.Queue) httpOpt {
	return withRender(func(c *proxy.RenderConfig) { c.Queue = q })
}

// signTransform POSTs /object/sign/{bucket}/{key} with a transform as the service and returns
// the signedURL and the token's claims (without iat and exp, whose difference it asserts).
func (o *objEnv) signTransform(t *testing.T, prefix, bucket, key, transform string) (string, map[string]any) {
	t.Helper()
	r := o.do(t, "POST", prefix+"/object/sign/"+bucket+"/"+key, o.service, `{"expiresIn":60,"transform":`+transform+`}`)
	requireOKJSON(t, r)
	var m map[string]string
	require.NoError(t, json.Unmarshal(r.Body, &m), "body: %s", r.Body)
	require.Len(t, m, 1, "body: %s", r.Body)
	u := m["signedURL"]
	_, claims := signDecode(t, signTokenOf(t, u))
	require.Equal(t, int64(60), signClaimInt(t, claims, "exp")-signClaimInt(t, claims, "iat"), "exp - iat")
	delete(claims, "iat")
	delete(claims, "exp")
	return u, claims
}

// The refusals of the render routes.
var (
	errRenderUnsupported = apiError{"400", "InvalidRequest", "InvalidRequest", "The source image is invalid or unsupported for rendering"}
	errRenderResolution  = apiError{"400", "InvalidRequest", "InvalidRequest", "The source image resolution is too large to process"}
	errRenderFileSize    = apiError{"400", "InvalidRequest", "InvalidRequest", "The source image file is too large to process"}
	errRenderBusy        = apiError{"429", "SlowDown", "Too Many Requests", "Too many image transformations in progress; retry later"}
	errRenderFocalPoint  = apiError{"400", "InvalidParameter", "InvalidParameter", "Focal point requires x and y coordinates within 0-1 range"}
)

func errSchema(message string) apiError { return apiError{"400", "InvalidRequest", "Error", message} }

// requireRenderBusy asserts the queue-full refusal: HTTP 429 with Retry-After.
func requireRenderBusy(t *testing.T, r httpResponse) {
	t.Helper()
	requireAPIError(t, r, http.StatusTooManyRequests, errRenderBusy)
	require.Equal(t, "1", r.Header.Get("Retry-After"))
}

// variantKeys are the keys under render/ in o's store.
func (o *objEnv) variantKeys(t *testing.T) []string {
	t.Helper()
	var keys []string
	for _, k := range listBlobs(t, o.blobs) {
		if strings.HasPrefix(k, "render/") {
			keys = append(keys, k)
		}
	}
	return keys
}

// ---------------------------------------------------------------------------------------------
// §13 with the feature off.

func TestRenderDisabled(t *testing.T) {
	t.Parallel()
	o := newRenderEnv(t, signFileBackend(t), withRender(func(c *proxy.RenderConfig) { c.Engine = nil }))

	t.Run("01_RoutesAreUnknown", func(t *testing.T) {
		for _, path := range []string{
			"/render/image/public/pb/p.png?width=1",
			"/render/image/authenticated/b/p.png?width=1&height=1",
			"/render/image/sign/b/p.png?token=x",
			"/storage/v1/render/image/public/pb/p.png?width=1",
		} {
			requireAPIError(t, o.get(t, path, o.service), http.StatusNotFound,
				apiError{"404", "InvalidRequest", "Not Found", "Route GET:" + path + " not found"})
		}
	})

	t.Run("02_SignIgnoresTransform", func(t *testing.T) {
		u, claims := o.signTransform(t, "", "b", "p.png", `{"width":1,"height":1,"format":"webp"}`)
		require.True(t, strings.HasPrefix(u, "/object/sign/b/p.png?token="), u)
		require.Equal(t, map[string]any{"url": "b/p.png", "scope": "download"}, claims)
		requireBytes(t, o.fetch(t, u), redBluePNG(t, pngW, pngH))
	})
}

// ---------------------------------------------------------------------------------------------
// §13 with the feature on, on both backends.

func TestRenderRoutes(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newRenderEnv(t, be)
		sub := func(name string, fn func(t *testing.T)) {
			t.Run(name, func(t *testing.T) { t.Parallel(); fn(t) })
		}

		sub("03_Public", func(t *testing.T) {
			r := o.get(t, "/render/image/public/pb/p.png?width=1&height=1", "")
			requireImage(t, r, "image/png", 1, 1)
			require.Equal(t, "height:1,width:1,resizing_type:fill", r.Header.Get("X-Transformations"))
			// Any Authorization is ignored on the public route.
			r = o.get(t, "/render/image/public/pb/p.png?width=1&height=1", "", withHeader("Authorization", "Bearer not-a-jwt"))
			requireImage(t, r, "image/png", 1, 1)
		})

		sub("04_FormatWebP", func(t *testing.T) {
			r := o.get(t, "/render/image/public/pb/p.png?width=1&height=1&format=webp", "")
			requireImage(t, r, "image/webp", 1, 1)
			require.Equal(t, "height:1,width:1,resizing_type:fill,format:webp", r.Header.Get("X-Transformations"))
			require.Empty(t, r.Header.Values("Vary"), "an explicit format does not vary by Accept")
		})

		sub("05_ResizeModes", func(t *testing.T) {
			for _, tc := range []struct {
				resize, segment string
				w, h            int
			}{
				{"contain", "fit", 100, 50}, // letterboxed without padding
				{"fill", "force", 100, 100}, // distorted
				{"cover", "fill", 100, 100}, // cropped
				{"", "fill", 100, 100},      // cover is the default
			} {
				q := "width=100&height=100"
				if tc.resize != "" {
					q += "&resize=" + tc.resize
				}
				r := o.get(t, "/render/image/public/pb/p.png?"+q, "")
				requireImage(t, r, "image/png", tc.w, tc.h)
				require.Equal(t, "height:100,width:100,resizing_type:"+tc.segment, r.Header.Get("X-Transformations"), q)
			}
		})

		sub("06_Clamped", func(t *testing.T) {
			r := o.get(t, "/render/image/public/pb/p.png?width=5000", "")
			requireImage(t, r, "image/png", pngW, pngH) // never enlarged
			require.Equal(t, "width:2000,resizing_type:fill", r.Header.Get("X-Transformations"))
		})

		sub("07_NoTransformation", func(t *testing.T) {
			r := o.get(t, "/render/image/public/pb/p.png?width=0&height=0", "")
			requireImage(t, r, "image/png", pngW, pngH)
			require.Empty(t, r.Header.Values("X-Transformations"))
		})

		sub("08_QualityAVIF", func(t *testing.T) {
			r := o.get(t, "/render/image/public/pb/p.png?quality=50&format=avif", "")
			requireImage(t, r, "image/avif", pngW, pngH)
			require.Equal(t, "quality:50,format:avif", r.Header.Get("X-Transformations"))
		})

		sub("09_GravitySmart", func(t *testing.T) {
			r := o.get(t, "/render/image/public/pb/p.png?width=100&height=100&gravity=sm&x_offset=12&y_offset=-4", "")
			requireImage(t, r, "image/png", 100, 100)
			require.Equal(t, "height:100,width:100,resizing_type:fill,gravity:sm", r.Header.Get("X-Transformations"))
		})

		sub("10_GravityOffsets", func(t *testing.T) {
			r := o.get(t, "/render/image/public/pb/p.png?gravity=no&x_offset=12", "")
			requireImage(t, r, "image/png", pngW, pngH)
			require.Equal(t, "gravity:no:12:0", r.Header.Get("X-Transformations"))
			r = o.get(t, "/render/image/public/pb/p.png?gravity=ce", "")
			requireImage(t, r, "image/png", pngW, pngH)
			require.Equal(t, "gravity:ce", r.Header.Get("X-Transformations"))
		})

		sub("11_FocalPoint", func(t *testing.T) {
			r := o.get(t, "/render/image/public/pb/p.png?gravity=fp&x_offset=0.25&y_offset=0.75", "")
			requireImage(t, r, "image/png", pngW, pngH)
			require.Equal(t, "gravity:fp:0.25:0.75", r.Header.Get("X-Transformations"))
		})

		sub("17_AcceptNegotiation", func(t *testing.T) {
			const path = "/render/image/public/pb/p.png?width=100"
			r := o.get(t, path, "", withHeader("Accept", "image/avif,image/webp"))
			requireImage(t, r, "image/webp", 100, 50) // AVIF only when asked for by format
			require.Equal(t, "Accept", r.Header.Get("Vary"))
			r = o.get(t, path+"&format=origin", "", withHeader("Accept", "image/avif,image/webp"))
			requireImage(t, r, "image/png", 100, 50)
			require.Empty(t, r.Header.Values("Vary"))
			r = o.get(t, path, "")
			requireImage(t, r, "image/png", 100, 50)
			require.Equal(t, "Accept", r.Header.Get("Vary"))
			r = o.get(t, path, "", withHeader("Accept", "image/webp;q=0, image/*"))
			requireImage(t, r, "image/png", 100, 50)
		})

		sub("18_Headers", func(t *testing.T) {
			src := o.get(t, "/object/public/pb/p.png", "")
			require.Equal(t, http.StatusOK, src.Status, "%s", src)
			require.NotEmpty(t, src.Header.Get("ETag"))
			for _, q := range []string{"width=1&height=1", "width=100&format=webp", "height=7"} {
				r := o.get(t, "/render/image/public/pb/p.png?"+q, "")
				require.Equal(t, http.StatusOK, r.Status, "%s", r)
				require.Equal(t, src.Header.Get("ETag"), r.Header.Get("ETag"), "the source's ETag, for every variant")
				require.Equal(t, src.Header.Get("Last-Modified"), r.Header.Get("Last-Modified"))
				require.Equal(t, "max-age=3600", r.Header.Get("Cache-Control"))
				require.Equal(t, "bytes", r.Header.Get("Accept-Ranges"))
				require.Equal(t, "none", r.Header.Get("X-Robots-Tag"))
				require.Empty(t, r.Header.Values("Content-Disposition"))
				require.Empty(t, r.Header.Values("Expires"))
			}
		})

		sub("19_Conditional", func(t *testing.T) {
			const path = "/render/image/public/pb/p.png?width=1&height=1"
			etag := o.get(t, path, "").Header.Get("ETag")
			r := o.get(t, path, "", withHeader("If-None-Match", etag))
			require.Equal(t, http.StatusNotModified, r.Status, "%s", r)
			require.Empty(t, r.Body)
			require.Equal(t, etag, r.Header.Get("ETag"))
			require.Equal(t, "max-age=3600", r.Header.Get("Cache-Control"))
			require.Equal(t, "Accept", r.Header.Get("Vary"), "a 304 names what the response varies by")
			r = o.get(t, path, "", withHeader("If-None-Match", `"other"`))
			requireImage(t, r, "image/png", 1, 1)
			require.Equal(t, "max-age=3600, stale-while-revalidate=30", r.Header.Get("Cache-Control"))
			// If-Modified-Since at the source's date: not modified either.
			r = o.get(t, path, "", withHeader("If-Modified-Since", r.Header.Get("Last-Modified")))
			require.Equal(t, http.StatusNotModified, r.Status, "%s", r)
		})

		sub("20_Download", func(t *testing.T) {
			r := o.get(t, "/render/image/public/pb/p.png?width=1&download", "")
			requireImage(t, r, "image/png", 1, 1)
			require.Equal(t, "attachment;", r.Header.Get("Content-Disposition"))
			r = o.get(t, "/render/image/public/pb/p.png?width=1&download=a%20b.png", "")
			requireImage(t, r, "image/png", 1, 1)
			require.Equal(t, "attachment; filename=a%20b.png; filename*=UTF-8''a%20b.png", r.Header.Get("Content-Disposition"))
		})

		sub("21_PrivateBucketOnPublicRoute", func(t *testing.T) {
			requireAPIError(t, o.get(t, "/render/image/public/b/p.png?width=1", ""), 400, errNoSuchBucket)
			requireAPIError(t, o.get(t, "/render/image/public/missing/p.png?width=1", ""), 400, errNoSuchBucket)
		})

		sub("22_MissingObject", func(t *testing.T) {
			requireAPIError(t, o.get(t, "/render/image/public/pb/missing.png?width=1", ""), 400, errNoSuchKey)
			requireAPIError(t, o.get(t, "/render/image/authenticated/b/missing.png?width=1", o.service), 400, errNoSuchKey)
			// A missing bucket on the authenticated route is a missing object (the reference
			// looks up the object alone).
			requireAPIError(t, o.get(t, "/render/image/authenticated/missing/p.png?width=1", o.service), 400, errNoSuchKey)
		})

		sub("23_Authenticated", func(t *testing.T) {
			r := o.get(t, "/render/image/authenticated/b/p.png?width=1&height=1", o.service)
			requireImage(t, r, "image/png", 1, 1)
			require.Equal(t, "height:1,width:1,resizing_type:fill", r.Header.Get("X-Transformations"))
			require.Equal(t, "max-age=3600", r.Header.Get("Cache-Control"))
			// Bucket publicity is irrelevant on this route.
			requireImage(t, o.get(t, "/render/image/authenticated/pb/p.png?width=1&height=1", o.service), "image/png", 1, 1)
		})

		sub("24_AuthenticatedWithoutJWT", func(t *testing.T) {
			denied := apiError{"403", "AccessDenied", "Unauthorized", "Invalid Compact JWS"}
			requireAPIError(t, o.get(t, "/render/image/authenticated/b/p.png?width=1&height=1", "", withHeader("Authorization", "Bearer not-a-jwt")), 400, denied)
			requireAPIError(t, o.get(t, "/render/image/authenticated/b/p.png?width=1&height=1", ""), 400, denied)
		})

		sub("25_AnonWithoutPolicy", func(t *testing.T) {
			requireAPIError(t, o.get(t, "/render/image/authenticated/b/p.png?width=1&height=1", o.anon), 400, errNoSuchKey)
			requireAPIError(t, o.get(t, "/render/image/authenticated/b/p.png?width=1&height=1", o.userA), 400, errNoSuchKey)
		})

		sub("26_27_SignContain", func(t *testing.T) {
			u, claims := o.signTransform(t, "", "b", "p.png", `{"width":100,"height":100,"resize":"contain"}`)
			require.Regexp(t, `^/render/image/sign/b/p\.png\?token=[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`, u)
			require.Equal(t, map[string]any{"url": "b/p.png", "scope": "download", "transformations": "height:100,width:100,resize:contain"}, claims)
			_, all := signDecode(t, signTokenOf(t, u))
			exp := time.Unix(signClaimInt(t, all, "exp"), 0)

			r := o.fetch(t, u)
			requireImage(t, r, "image/png", 100, 50)
			require.Equal(t, exp.UTC().Format(http.TimeFormat), r.Header.Get("Expires"))
			require.Empty(t, r.Header.Values("Cache-Control"))
			require.Equal(t, "height:100,width:100,resizing_type:fit", r.Header.Get("X-Transformations"))
			require.Equal(t, o.get(t, "/object/b/p.png", o.service).Header.Get("ETag"), r.Header.Get("ETag"))
			nm := o.fetch(t, u, withHeader("If-None-Match", r.Header.Get("ETag")))
			require.Equal(t, http.StatusNotModified, nm.Status, "%s", nm)
			require.Equal(t, r.Header.Get("Expires"), nm.Header.Get("Expires"))
			require.Empty(t, nm.Header.Values("Cache-Control"))
			// Any Authorization is ignored: the token is the authorization.
			requireImage(t, o.fetch(t, u, withHeader("Authorization", "Bearer not-a-jwt")), "image/png", 100, 50)

			r = o.fetch(t, u+"&download=thumb.png")
			requireImage(t, r, "image/png", 100, 50)
			require.Equal(t, "attachment; filename=thumb.png; filename*=UTF-8''thumb.png", r.Header.Get("Content-Disposition"))
		})

		sub("28_SignIgnoresQuery", func(t *testing.T) {
			u, _ := o.signTransform(t, "", "b", "p.png", `{"width":100,"height":100,"resize":"contain"}`)
			for _, extra := range []string{"&width=5", "&width=5&height=5&resize=fill&format=avif", "&width=-1&quality=7&gravity=fp"} {
				r := o.fetch(t, u+extra)
				requireImage(t, r, "image/png", 100, 50)
				require.Equal(t, "height:100,width:100,resizing_type:fit", r.Header.Get("X-Transformations"), extra)
			}
		})

		sub("29_ResizeUndefined", func(t *testing.T) {
			u, claims := o.signTransform(t, "", "b", "p.png", `{"width":1,"height":1}`)
			require.Equal(t, "height:1,width:1,resize:undefined", claims["transformations"])
			r := o.fetch(t, u)
			requireImage(t, r, "image/png", 1, 1)
			require.Equal(t, "height:1,width:1,resizing_type:fill", r.Header.Get("X-Transformations"))
		})

		sub("30_SignFocalPoint", func(t *testing.T) {
			u, claims := o.signTransform(t, "", "b", "p.png", `{"gravity":"fp","x_offset":0,"y_offset":1,"width":1,"height":1,"resize":"cover"}`)
			require.Equal(t, "height:1,width:1,resize:cover,gravity:fp:0:1", claims["transformations"])
			r := o.fetch(t, u)
			requireImage(t, r, "image/png", 1, 1)
			require.Equal(t, "height:1,width:1,resizing_type:fill,gravity:fp:0:1", r.Header.Get("X-Transformations"))
		})

		sub("31_SignOriginOnly", func(t *testing.T) {
			for _, tr := range []string{`{"format":"origin"}`, `{"resize":"cover"}`, `{}`} {
				u, claims := o.signTransform(t, "", "b", "p.png", tr)
				require.True(t, strings.HasPrefix(u, "/object/sign/b/p.png?token="), "%s: %s", tr, u)
				delete(claims, "format") // the reference keeps a format given alone; it is unused here
				require.Equal(t, map[string]any{"url": "b/p.png", "scope": "download"}, claims, tr)
				requireBytes(t, o.fetch(t, u), redBluePNG(t, pngW, pngH))
			}
		})

		sub("SignFormatClaim", func(t *testing.T) {
			// The token's format is honoured (the reference drops it, spec §12 gap 3): origin
			// keeps the source's format whatever the client accepts, and does not vary by Accept.
			u, claims := o.signTransform(t, "", "b", "p.png", `{"width":100,"height":100,"format":"origin"}`)
			require.Equal(t, map[string]any{"url": "b/p.png", "scope": "download", "format": "origin",
				"transformations": "height:100,width:100,resize:undefined"}, claims)
			r := o.fetch(t, u, withHeader("Accept", "image/avif,image/webp"))
			requireImage(t, r, "image/png", 100, 100)
			require.Empty(t, r.Header.Values("Vary"))

			u, claims = o.signTransform(t, "", "b", "p.png", `{"width":100,"format":"avif"}`)
			require.Equal(t, "avif", claims["format"])
			require.Equal(t, "width:100,resize:undefined,format:avif", claims["transformations"])
			r = o.fetch(t, u)
			requireImage(t, r, "image/avif", 100, 50)
			require.Equal(t, "width:100,resizing_type:fill,format:avif", r.Header.Get("X-Transformations"))

			// Without a format the client's Accept decides, and the response varies by it.
			u, _ = o.signTransform(t, "", "b", "p.png", `{"width":100}`)
			r = o.fetch(t, u, withHeader("Accept", "image/webp"))
			requireImage(t, r, "image/webp", 100, 50)
			require.Equal(t, "Accept", r.Header.Get("Vary"))
		})

		sub("SignTransformationsFormat", func(t *testing.T) {
			// A token whose transformations name the format and which has no format claim, as
			// storage.url_sign mints for a SQL caller that passes none: the reference renders
			// what the transformations say.
			var u string
			require.NoError(t, asRole(t, o.db, asService, false, func(tx pgx.Tx) error {
				return tx.QueryRow(context.Background(), `select storage.url_sign('b', 'p.png', 60, 'width:100,resize:cover,format:webp')`).Scan(&u)
			}))
			_, claims := signDecode(t, signTokenOf(t, u))
			require.NotContains(t, claims, "format")
			r := o.fetch(t, u)
			requireImage(t, r, "image/webp", 100, 50)
			require.Equal(t, "width:100,resizing_type:fill,format:webp", r.Header.Get("X-Transformations"))
		})

		sub("SignLegacyToken", func(t *testing.T) {
			// Tokens without scope (minted before scopes existed) are download tokens.
			now := time.Now().Unix()
			tok := signMint(t, jwt.MapClaims{"url": "b/p.png", "iat": now, "exp": now + 60, "transformations": "height:50,width:50,resize:fill"})
			r := o.get(t, "/render/image/sign/b/p.png?token="+tok, "")
			requireImage(t, r, "image/png", 50, 50)
			require.Equal(t, "height:50,width:50,resizing_type:force", r.Header.Get("X-Transformations"))
			// No transformations claim: the original size, re-encoded.
			tok = signMint(t, jwt.MapClaims{"url": "b/p.png", "scope": "download", "iat": now, "exp": now + 60})
			r = o.get(t, "/render/image/sign/b/p.png?token="+tok, "")
			requireImage(t, r, "image/png", pngW, pngH)
			require.Empty(t, r.Header.Values("X-Transformations"))
		})

		sub("32_MalformedToken", func(t *testing.T) {
			requireAPIError(t, o.get(t, "/render/image/sign/b/p.png?token=this-is-not-a-jwt", ""), 400, errSignMalformed)
		})

		sub("33_UploadToken", func(t *testing.T) {
			_, tok := o.signUpload(t, "b", "p.png", o.service, withHeader("x-upsert", "true"))
			requireAPIError(t, o.get(t, "/render/image/sign/b/p.png?token="+tok, ""), 400, errSignNotDownload)
		})

		sub("34_TokenOfAnotherObject", func(t *testing.T) {
			tok := signTokenOf(t, o.signURL(t, "pb", "p.png", o.service, 60))
			requireAPIError(t, o.get(t, "/render/image/sign/b/p.png?token="+tok, ""), 400, errSignInvalid)
			u, _ := o.signTransform(t, "", "pb", "p.png", `{"width":10}`)
			requireAPIError(t, o.get(t, "/render/image/sign/b/p.png?token="+signTokenOf(t, u), ""), 400, errSignInvalid)
		})

		sub("35_ExpiredToken", func(t *testing.T) {
			now := time.Now().Unix()
			tok := signMint(t, jwt.MapClaims{"url": "b/p.png", "scope": "download", "iat": now - 120, "exp": now - 60,
				"transformations": "height:100,width:100,resize:contain"})
			requireAPIError(t, o.get(t, "/render/image/sign/b/p.png?token="+tok, ""), 400, errSignExpired)
		})

		sub("36_NoToken", func(t *testing.T) {
			requireAPIError(t, o.get(t, "/render/image/sign/b/p.png", ""), 400, errSignNoToken)
			requireAPIError(t, o.get(t, "/render/image/sign/b/p.png?width=1", ""), 400, errSignNoToken)
		})

		sub("37_NotAnImage", func(t *testing.T) {
			for _, q := range []string{"width=1&height=1", "", "format=webp"} {
				r := o.get(t, "/render/image/public/pb/t.txt?"+q, "")
				requireAPIError(t, r, 400, errRenderUnsupported)
				// An error is not the object: nothing a cache would keep it by.
				for _, h := range []string{"ETag", "Last-Modified", "Cache-Control", "X-Transformations", "Vary", "Accept-Ranges"} {
					require.Empty(t, r.Header.Values(h), h)
				}
			}
		})

		sub("Range", func(t *testing.T) {
			// Variants are served as blobs are: a Range is honoured, on the render that
			// writes the variant as on the cached copy.
			const path = "/render/image/public/pb/p.png?width=123"
			first := o.get(t, path, "", withHeader("Range", "bytes=0-9"))
			require.Equal(t, http.StatusPartialContent, first.Status, "%s", first)
			full := o.get(t, path, "")
			body := requireImage(t, full, "image/png", 123, 62)
			require.Equal(t, body[:10], first.Body)
			require.Equal(t, "bytes 0-9/"+strconv.Itoa(len(body)), first.Header.Get("Content-Range"))
			tail := o.get(t, path, "", withHeader("Range", "bytes=-5"))
			require.Equal(t, http.StatusPartialContent, tail.Status, "%s", tail)
			require.Equal(t, body[len(body)-5:], tail.Body)
			require.Equal(t, fmt.Sprintf("bytes %d-%d/%d", len(body)-5, len(body)-1, len(body)), tail.Header.Get("Content-Range"))
			requireAPIError(t, o.get(t, path, "", withHeader("Range", fmt.Sprintf("bytes=%d-", len(body)+10))), 416,
				apiError{"416", "InvalidRange", "invalid_range", "invalid range provided"})
		})

		sub("Head", func(t *testing.T) {
			for _, path := range []string{
				"/render/image/public/pb/p.png?width=77&height=77&format=webp", // rendered by the HEAD
				"/render/image/public/pb/p.png?width=77&height=77&format=webp", // cached
				"/render/image/authenticated/b/p.png?width=78",
			} {
				h := o.do(t, "HEAD", path, o.service, "")
				require.Equal(t, http.StatusOK, h.Status, "%s", h)
				require.Empty(t, h.Body)
				g := o.get(t, path, o.service)
				require.Equal(t, http.StatusOK, g.Status, "%s", g)
				for _, name := range []string{"Content-Type", "Content-Length", "ETag", "Cache-Control", "X-Transformations", "Accept-Ranges", "Last-Modified"} {
					require.Equal(t, g.Header.Get(name), h.Header.Get(name), "%s of HEAD %s", name, path)
				}
			}
			h := o.do(t, "HEAD", "/render/image/public/pb/missing.png?width=1", "", "")
			require.Equal(t, http.StatusBadRequest, h.Status)
			require.Empty(t, h.Body)
		})

		sub("Keys", func(t *testing.T) {
			// Keys are read as on the download routes: percent-decoded once.
			const key = "dir/a b(1)+c.png"
			o.mustUpload(t, "pb", key, redBluePNG(t, 20, 10), withHeader("Content-Type", "image/png"))
			requireImage(t, o.get(t, "/render/image/public/pb/"+escapeKey(key)+"?width=10", ""), "image/png", 10, 5)
			requireImage(t, o.get(t, "/render/image/public/pb/"+percentEncodeAll(key)+"?width=10", ""), "image/png", 10, 5)
			u, _ := o.signTransform(t, "", "pb", escapeKey(key), `{"width":10}`)
			require.True(t, strings.HasPrefix(u, "/render/image/sign/pb/"+signPathEscape(key)+"?token="), u)
			requireImage(t, o.fetch(t, u), "image/png", 10, 5)
		})

		sub("GatewayPrefix", func(t *testing.T) {
			const v1 = "/storage/v1"
			r := o.get(t, v1+"/render/image/public/pb/p.png?width=100&height=100&resize=contain", "")
			requireImage(t, r, "image/png", 100, 50)
			require.Equal(t, "height:100,width:100,resizing_type:fit", r.Header.Get("X-Transformations"))
			requireImage(t, o.get(t, v1+"/render/image/authenticated/b/p.png?width=50", o.service), "image/png", 50, 25)
			requireAPIError(t, o.get(t, v1+"/render/image/authenticated/b/p.png?width=50", o.anon), 400, errNoSuchKey)
			requireAPIError(t, o.get(t, v1+"/render/image/public/pb/p.png?width=-1", ""), 400, errSchema("querystring/width must be >= 0"))
			u, _ := o.signTransform(t, v1, "b", "p.png", `{"width":50,"height":50,"resize":"fill"}`)
			require.True(t, strings.HasPrefix(u, "/render/image/sign/b/p.png?token="), "relative, without the prefix: %s", u)
			r = o.fetch(t, v1+u)
			requireImage(t, r, "image/png", 50, 50)
			require.Equal(t, "height:50,width:50,resizing_type:force", r.Header.Get("X-Transformations"))
			h := o.do(t, "HEAD", v1+"/render/image/public/pb/p.png?width=10", "", "")
			require.Equal(t, http.StatusOK, h.Status, "%s", h)
			require.Equal(t, "image/png", h.Header.Get("Content-Type"))
		})
	})
}

// ---------------------------------------------------------------------------------------------
// Refusals before any work: parameters, tokens and focal points are checked before the
// object is looked up and before a render slot is taken (the only slot is held by the test,
// so a request that got as far as rendering would be answered 429).

func TestRenderRefusedBeforeWork(t *testing.T) {
	t.Parallel()
	o := newRenderEnv(t, signFileBackend(t), withQueue(heldQueue(t)))

	// The held slot is what proves the cases below: an uncached variant is refused.
	requireRenderBusy(t, o.get(t, "/render/image/public/pb/p.png?width=10", ""))

	for _, tc := range []struct {
		name, query, message string
	}{
		{"12_FocalPointWithoutOffsets", "gravity=fp", "querystring must have required property 'x_offset'"},
		{"12_FocalPointWithoutY", "gravity=fp&x_offset=0.5", "querystring must have required property 'y_offset'"},
		{"13_FocalPointOutOfRange", "gravity=fp&x_offset=1.1&y_offset=0.5", "querystring/x_offset must be <= 1"},
		{"13_FocalPointNegative", "gravity=fp&x_offset=0.5&y_offset=-0.1", "querystring/y_offset must be >= 0"},
		{"14_Gravity", "gravity=obj", "querystring/gravity must be equal to one of the allowed values"},
		{"15_Width", "width=-1", "querystring/width must be >= 0"},
		{"15_Height", "height=-3", "querystring/height must be >= 0"},
		{"15_WidthNotInteger", "width=1.5", "querystring/width must be integer"},
		{"15_WidthNotNumber", "width=abc", "querystring/width must be integer"},
		{"16_QualityLow", "quality=10", "querystring/quality must be >= 20"},
		{"16_QualityHigh", "quality=101", "querystring/quality must be <= 100"},
		{"16_Resize", "resize=stretch", "querystring/resize must be equal to one of the allowed values"},
		{"16_Format", "format=png", "querystring/format must be equal to one of the allowed values"},
		{"16_FormatWithNewline", "format=avif%0A", "querystring/format must be equal to one of the allowed values"},
		{"Offset", "x_offset=left", "querystring/x_offset must be number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := errSchema(tc.message)
			for _, path := range []string{
				"/render/image/public/pb/p.png?",
				"/render/image/public/pb/missing.png?", // the parameters are refused before the lookup
				"/render/image/public/missing/p.png?",
				"/render/image/authenticated/b/p.png?",
				"/storage/v1/render/image/public/pb/p.png?",
			} {
				r := o.get(t, path+tc.query, o.service)
				requireAPIError(t, r, 400, want)
				require.NotContains(t, r.Header.Get("Content-Type"), "image/")
			}
		})
	}

	t.Run("32_MalformedTokenBeforeLookup", func(t *testing.T) {
		t.Parallel()
		requireAPIError(t, o.get(t, "/render/image/sign/b/missing.png?token=this-is-not-a-jwt", ""), 400, errSignMalformed)
	})

	t.Run("FocalPointInToken", func(t *testing.T) {
		t.Parallel()
		// storage.url_sign takes any transformations string (only POST /object/sign's schema
		// checks offsets); the sign route refuses a focal point outside the image.
		for _, tr := range []string{"gravity:fp:2:0.5", "height:10,width:10,gravity:fp:0.5:-1"} {
			var u string
			require.NoError(t, asRole(t, o.db, asService, false, func(tx pgx.Tx) error {
				return tx.QueryRow(context.Background(), `select storage.url_sign('b', 'p.png', 60, $1, null)`, tr).Scan(&u)
			}))
			require.True(t, strings.HasPrefix(u, "/render/image/sign/b/p.png?token="), u)
			requireAPIError(t, o.fetch(t, u), 400, errRenderFocalPoint)
		}
	})

	t.Run("SignSchema", func(t *testing.T) {
		t.Parallel()
		// POST /object/sign validates the transform as the query is validated.
		for _, tc := range []struct{ transform, message string }{
			{`{"quality":101}`, "body/transform/quality must be <= 100"},
			{`{"gravity":"fp","x_offset":0.5}`, "body/transform must have required property 'y_offset'"},
			{`{"format":"png"}`, "body/transform/format must be equal to one of the allowed values"},
		} {
			r := o.do(t, "POST", "/object/sign/b/p.png", o.service, `{"expiresIn":60,"transform":`+tc.transform+`}`)
			requireAPIError(t, r, 400, errSchema(tc.message))
		}
	})
}

// ---------------------------------------------------------------------------------------------
// Source refusals: not an image, a decompression bomb, a source over the size limit.

func TestRenderRefusedSources(t *testing.T) {
	t.Parallel()
	const maxSource = 20_000
	o := newRenderEnv(t, signFileBackend(t), withRender(func(c *proxy.RenderConfig) { c.MaxSourceSize = maxSource }))

	t.Run("Bomb", func(t *testing.T) {
		t.Parallel()
		o.mustUpload(t, "pb", "bomb.png", bombPNG(t, 50000, 50000), withHeader("Content-Type", "image/png"))
		for _, q := range []string{"width=100&height=100", "", "format=webp", "width=1&resize=contain"} {
			requireAPIError(t, o.get(t, "/render/image/public/pb/bomb.png?"+q, ""), 400, errRenderResolution)
		}
		// A modest PNG built the same way renders: the refusal is the resolution's.
		o.mustUpload(t, "pb", "small.png", bombPNG(t, 40, 4), withHeader("Content-Type", "image/png"))
		requireImage(t, o.get(t, "/render/image/public/pb/small.png?width=20", ""), "image/png", 20, 2)
	})

	t.Run("FileSize", func(t *testing.T) {
		t.Parallel()
		big := noisePNG(t, 100, 100)
		require.Greater(t, len(big), maxSource)
		o.mustUpload(t, "pb", "big.png", big, withHeader("Content-Type", "image/png"))
		requireAPIError(t, o.get(t, "/render/image/public/pb/big.png?width=10", ""), 400, errRenderFileSize)
		// The object itself still downloads; smaller sources render.
		requireBytes(t, o.get(t, "/object/public/pb/big.png", ""), big)
		require.Less(t, len(redBluePNG(t, pngW, pngH)), maxSource)
		requireImage(t, o.get(t, "/render/image/public/pb/p.png?width=10", ""), "image/png", 10, 5)
	})

	t.Run("NotImages", func(t *testing.T) {
		t.Parallel()
		for name, content := range map[string]string{
			"empty.png": "",
			"svg.svg":   `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>`,
			"html.png":  "<html><body>hi</body></html>",
			"pdf.png":   "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
		} {
			t.Run(name, func(t *testing.T) {
				o.mustUpload(t, "pb", name, content, withHeader("Content-Type", "image/png"))
				requireAPIError(t, o.get(t, "/render/image/public/pb/"+name+"?width=10", ""), 400, errRenderUnsupported)
			})
		}
	})
}

// ---------------------------------------------------------------------------------------------
// Resize semantics and formats, checked on the decoded output.

func TestRenderResize(t *testing.T) {
	t.Parallel()
	o := newRenderEnv(t, signFileBackend(t))
	o.mustUpload(t, "pb", "a.jpg", encodeJPEG(t, halves(400, 200, red, blue)), withHeader("Content-Type", "image/jpeg"))
	o.mustUpload(t, "pb", "small.jpg", encodeJPEG(t, halves(200, 100, red, blue)), withHeader("Content-Type", "image/jpeg"))
	get := func(t *testing.T, path string, opts ...reqOpt) httpResponse {
		t.Helper()
		return o.get(t, "/render/image/public/pb/"+path, "", opts...)
	}

	t.Run("Sizes", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			query string
			w, h  int
		}{
			{"width=100", 100, 50}, // one side: the other keeps the aspect
			{"height=50", 100, 50},
			{"width=100&resize=contain", 100, 50},
			{"height=50&resize=fill", 400, 50}, // fill with one side: only that side changes
			{"width=100&height=100", 100, 100},
			{"width=100&height=100&resize=cover", 100, 100},
			{"width=100&height=100&resize=contain", 100, 50}, // letterboxed, no padding
			{"width=100&height=100&resize=fill", 100, 100},   // distorted
			{"width=300&height=20&resize=contain", 40, 20},
			{"width=50&height=150&resize=cover", 50, 150},
			{"width=1&height=1", 1, 1},
			{"width=1", 1, 1},
		} {
			requireImage(t, get(t, "a.jpg?"+tc.query), "image/jpeg", tc.w, tc.h)
		}
	})

	t.Run("NoEnlargement", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			query string
			w, h  int
		}{
			{"width=150&height=150", 150, 100},                // cover crops to what the source has
			{"width=150&height=150&resize=contain", 150, 75},  // shrinks to fit
			{"width=400&height=400&resize=contain", 200, 100}, // never grows
			{"width=400", 200, 100},
			{"height=2000", 200, 100},
		} {
			requireImage(t, get(t, "small.jpg?"+tc.query), "image/jpeg", tc.w, tc.h)
		}
	})

	t.Run("CoverGravity", func(t *testing.T) {
		t.Parallel()
		// p.png is red on the left, blue on the right; cover 100×100 scales it to 200×100 and
		// keeps the 100 columns the gravity says (the PNG output is lossless).
		for _, tc := range []struct {
			query      string
			at25, at75 color.NRGBA // colour at x=25 and x=75, y=50
		}{
			{"", red, blue}, // centre
			{"&gravity=ce", red, blue},
			{"&gravity=we", red, red},
			{"&gravity=nowe", red, red},
			{"&gravity=ea", blue, blue},
			{"&gravity=soea", blue, blue},
			{"&gravity=no", red, blue},
			{"&gravity=fp&x_offset=0&y_offset=0.5", red, red},
			{"&gravity=fp&x_offset=1&y_offset=0.5", blue, blue},
			{"&gravity=we&x_offset=100", blue, blue}, // pixels: 100 in from the west edge
			{"&gravity=ce&x_offset=0.25", blue, blue},
		} {
			r := get(t, "p.png?width=100&height=100"+tc.query)
			body := requireImage(t, r, "image/png", 100, 100)
			requireColour(t, tc.at25, pixel(t, body, 25, 50), "x=25 "+tc.query)
			requireColour(t, tc.at75, pixel(t, body, 75, 50), "x=75 "+tc.query)
		}
	})

	t.Run("SmartGravity", func(t *testing.T) {
		t.Parallel()
		// Flat grey with a busy, saturated patch along the right edge: cover 100×100 scales
		// it to 200×100; the centre crop misses the patch, the attention crop keeps it.
		img := image.NewNRGBA(image.Rect(0, 0, 400, 200))
		for y := 0; y < 200; y++ {
			for x := 0; x < 400; x++ {
				c := color.NRGBA{128, 128, 128, 255}
				if x >= 320 {
					c = color.NRGBA{255, 0, 0, 255}
					if (x/4+y/4)%2 == 0 {
						c = color.NRGBA{0, 255, 0, 255}
					}
				}
				img.SetNRGBA(x, y, c)
			}
		}
		o.mustUpload(t, "pb", "busy.png", encodePNG(t, img), withHeader("Content-Type", "image/png"))
		centre := requireImage(t, get(t, "busy.png?width=100&height=100"), "image/png", 100, 100)
		require.InDelta(t, 128, pixel(t, centre, 90, 50)[2], 8, "the centre crop is grey")
		smart := requireImage(t, get(t, "busy.png?width=100&height=100&gravity=sm"), "image/png", 100, 100)
		require.Less(t, pixel(t, smart, 90, 50)[2], 40.0, "the smart crop holds the patch (no blue in it)")
		require.InDelta(t, 128, pixel(t, smart, 10, 50)[2], 8, "and grey beside it")
	})

	t.Run("Quality", func(t *testing.T) {
		t.Parallel()
		low := requireImage(t, get(t, "a.jpg?width=300&quality=20"), "image/jpeg", 300, 150)
		high := requireImage(t, get(t, "a.jpg?width=300&quality=100"), "image/jpeg", 300, 150)
		require.Less(t, len(low), len(high), "quality reaches the encoder")
	})

	t.Run("Clamp", func(t *testing.T) {
		t.Parallel()
		// LIMIT_MIN_SIZE / LIMIT_MAX_SIZE of the server under test: [1, 2000]. On the
		// 200×100 source: width=5000 → 2000 → never enlarged.
		r := get(t, "small.jpg?width=5000&height=5000")
		requireImage(t, r, "image/jpeg", 200, 100)
		require.Equal(t, "height:2000,width:2000,resizing_type:fill", r.Header.Get("X-Transformations"))
	})
}

func TestRenderLimits(t *testing.T) {
	t.Parallel()
	o := newRenderEnv(t, signFileBackend(t), withRender(func(c *proxy.RenderConfig) {
		c.Limits = render.Limits{MinSize: 10, MaxSize: 100}
	}))
	r := o.get(t, "/render/image/public/pb/p.png?width=5000", "")
	requireImage(t, r, "image/png", 100, 50)
	require.Equal(t, "width:100,resizing_type:fill", r.Header.Get("X-Transformations"))
	r = o.get(t, "/render/image/public/pb/p.png?width=1&height=1", "")
	requireImage(t, r, "image/png", 10, 10)
	require.Equal(t, "height:10,width:10,resizing_type:fill", r.Header.Get("X-Transformations"))
	u, claims := o.signTransform(t, "", "b", "p.png", `{"width":5000}`)
	require.Equal(t, "width:100,resize:undefined", claims["transformations"])
	requireImage(t, o.fetch(t, u), "image/png", 100, 50)
}

func TestRenderSourceFormats(t *testing.T) {
	t.Parallel()
	o := newRenderEnv(t, signFileBackend(t))
	src := redBluePNG(t, 400, 200)
	get := func(t *testing.T, path string, opts ...reqOpt) httpResponse {
		t.Helper()
		return o.get(t, "/render/image/public/pb/"+path, "", opts...)
	}

	t.Run("JPEG", func(t *testing.T) {
		t.Parallel()
		o.mustUpload(t, "pb", "s.jpg", encodeJPEG(t, halves(400, 200, red, blue)), withHeader("Content-Type", "image/jpeg"))
		body := requireImage(t, get(t, "s.jpg?width=100"), "image/jpeg", 100, 50)
		requireColour(t, red, pixel(t, body, 10, 25), "left")
		requireColour(t, blue, pixel(t, body, 90, 25), "right")
		requireImage(t, get(t, "s.jpg?width=100&format=webp"), "image/webp", 100, 50)
		requireImage(t, get(t, "s.jpg?width=100", withHeader("Accept", "image/webp,*/*")), "image/webp", 100, 50)
	})

	t.Run("PNGWithAlpha", func(t *testing.T) {
		t.Parallel()
		o.mustUpload(t, "pb", "alpha.png", alphaPNG(t, 400, 200), withHeader("Content-Type", "image/png"))
		// PNG and WebP keep the transparency.
		for _, q := range []string{"", "&format=webp"} {
			r := get(t, "alpha.png?width=100"+q)
			ct := map[string]string{"": "image/png", "&format=webp": "image/webp"}[q]
			body := requireImage(t, r, ct, 100, 50)
			require.True(t, inspectImage(t, body).Alpha, "alpha kept in %s", ct)
			left, right := pixel(t, body, 10, 25), pixel(t, body, 90, 25)
			require.Len(t, left, 4)
			requireColour(t, red, left, "left")
			require.InDelta(t, 255, left[3], 1, "left is opaque")
			require.InDelta(t, 0, right[3], 1, "right is transparent")
		}
		// A source whose declared type is not an image format we write comes out as JPEG,
		// transparent pixels flattened onto white.
		o.mustUpload(t, "pb", "alpha.bin", alphaPNG(t, 400, 200), withHeader("Content-Type", "application/octet-stream"))
		body := requireImage(t, get(t, "alpha.bin?width=100"), "image/jpeg", 100, 50)
		require.False(t, inspectImage(t, body).Alpha)
		requireColour(t, red, pixel(t, body, 10, 25), "left")
		requireColour(t, color.NRGBA{255, 255, 255, 255}, pixel(t, body, 90, 25), "right: white")
	})

	t.Run("WebP", func(t *testing.T) {
		t.Parallel()
		o.mustUpload(t, "pb", "s.webp", vipsEncode(t, src, render.WebP), withHeader("Content-Type", "image/webp"))
		body := requireImage(t, get(t, "s.webp?width=100"), "image/webp", 100, 50)
		requireColour(t, red, pixel(t, body, 10, 25), "left")
		requireImage(t, get(t, "s.webp?width=100&height=100&resize=fill&format=origin"), "image/webp", 100, 100)
	})

	t.Run("AVIF", func(t *testing.T) {
		t.Parallel()
		o.mustUpload(t, "pb", "s.avif", vipsEncode(t, src, render.AVIF), withHeader("Content-Type", "image/avif"))
		body := requireImage(t, get(t, "s.avif?width=100"), "image/avif", 100, 50)
		requireColour(t, blue, pixel(t, body, 90, 25), "right")
		requireImage(t, get(t, "s.avif?width=100", withHeader("Accept", "image/webp")), "image/webp", 100, 50)
	})

	t.Run("AnimatedGIF", func(t *testing.T) {
		t.Parallel()
		g := animatedGIF(t, 400, 200)
		require.Equal(t, 2, inspectImage(t, []byte(g)).Pages, "the source is animated")
		o.mustUpload(t, "pb", "s.gif", g, withHeader("Content-Type", "image/gif"))
		// The first frame, as a still GIF for origin.
		body := requireImage(t, get(t, "s.gif?width=100"), "image/gif", 100, 50)
		require.Equal(t, 1, inspectImage(t, body).Pages)
		requireColour(t, red, pixel(t, body, 50, 25), "the first frame")
		body = requireImage(t, get(t, "s.gif?width=100&format=webp"), "image/webp", 100, 50)
		requireColour(t, red, pixel(t, body, 50, 25), "the first frame")
	})

	t.Run("EXIFOrientation", func(t *testing.T) {
		t.Parallel()
		// Stored 400×200 with Orientation 6: displayed 200×400, red on top.
		o.mustUpload(t, "pb", "rot.jpg", rotatedJPEG(t, 400, 200), withHeader("Content-Type", "image/jpeg"))
		for _, tc := range []struct {
			query string
			w, h  int
		}{
			{"width=100", 100, 200},
			{"height=100", 50, 100},
			{"width=100&height=100&resize=contain", 50, 100},
			{"", 200, 400},
		} {
			body := requireImage(t, get(t, "rot.jpg?"+tc.query), "image/jpeg", tc.w, tc.h)
			requireColour(t, red, pixel(t, body, tc.w/2, tc.h/8), tc.query+": top")
			requireColour(t, blue, pixel(t, body, tc.w/2, tc.h*7/8), tc.query+": bottom")
			// The rotation is applied and the tag stripped: viewers must not rotate again.
			img, err := govips.NewImageFromBuffer(body)
			require.NoError(t, err)
			require.Contains(t, []int{0, 1}, img.Orientation(), tc.query)
			img.Close()
		}
	})

	t.Run("DeclaredTypeDecidesOrigin", func(t *testing.T) {
		t.Parallel()
		// The bytes are sniffed to decode; the declared type names the origin format.
		o.mustUpload(t, "pb", "png-as-webp", src, withHeader("Content-Type", "image/webp"))
		requireImage(t, get(t, "png-as-webp?width=100"), "image/webp", 100, 50)
		o.mustUpload(t, "pb", "png-as-text", src, withHeader("Content-Type", "text/plain"))
		requireImage(t, get(t, "png-as-text?width=100"), "image/jpeg", 100, 50)
	})
}

// ---------------------------------------------------------------------------------------------
// RLS decides the authenticated route, as it decides a download.

func TestRenderRLS(t *testing.T) {
	t.Parallel()
	o := newRenderEnv(t, signFileBackend(t))
	o.mkBucket(t, `{"name":"avatars"}`)
	admin(t, o.db, folderPolicies)
	keyA, keyB := userA.Sub+"/a.png", userB.Sub+"/b.png"
	requireUploaded(t, o.upload(t, "POST", "avatars", keyA, o.userA, redBluePNG(t, 40, 20), withHeader("Content-Type", "image/png")), "avatars/"+keyA)
	requireUploaded(t, o.upload(t, "POST", "avatars", keyB, o.userB, redBluePNG(t, 40, 20), withHeader("Content-Type", "image/png")), "avatars/"+keyB)

	requireImage(t, o.get(t, "/render/image/authenticated/avatars/"+keyA+"?width=20", o.userA), "image/png", 20, 10)
	requireImage(t, o.get(t, "/render/image/authenticated/avatars/"+keyB+"?width=20", o.userB), "image/png", 20, 10)
	// Another user's folder, and anon: hidden, so not found (never 403); the variant cached
	// by the owner's request does not leak either.
	requireAPIError(t, o.get(t, "/render/image/authenticated/avatars/"+keyB+"?width=20", o.userA), 400, errNoSuchKey)
	requireAPIError(t, o.get(t, "/render/image/authenticated/avatars/"+keyA+"?width=20", o.userB), 400, errNoSuchKey)
	requireAPIError(t, o.get(t, "/render/image/authenticated/avatars/"+keyA+"?width=20", o.anon), 400, errNoSuchKey)
	// The bucket is private: the public route does not serve it.
	requireAPIError(t, o.get(t, "/render/image/public/avatars/"+keyA+"?width=20", ""), 400, errNoSuchBucket)
	// Signing obeys the same policy: userA signs its own object, not userB's.
	r := o.do(t, "POST", "/object/sign/avatars/"+keyA, o.userA, `{"expiresIn":60,"transform":{"width":20}}`)
	var m map[string]string
	require.NoError(t, json.Unmarshal(okBody(t, r), &m))
	requireImage(t, o.fetch(t, m["signedURL"]), "image/png", 20, 10)
	requireAPIError(t, o.do(t, "POST", "/object/sign/avatars/"+keyB, o.userA, `{"expiresIn":60,"transform":{"width":20}}`), 400, errNoSuchKey)
}

// ---------------------------------------------------------------------------------------------
// The variant cache.

func TestRenderVariantCache(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		for _, inline := range []bool{false, true} {
			t.Run(map[bool]string{false: "blob", true: "inline"}[inline], func(t *testing.T) {
				t.Parallel()
				testRenderVariantCache(t, be, inline)
			})
		}
	})
}

// testRenderVariantCache is TestRenderVariantCache with the sources in the blob store, or
// inline (STORAGE_INLINE_MAX over their size).
func testRenderVariantCache(t *testing.T, be objectBackend, inline bool) {
	q := render.NewQueue(1, 0, 0)
	o := newRenderEnv(t, be, withQueue(q), withInline(map[bool]int64{false: 0, true: 1 << 20}[inline]))
	version := o.version(t, "pb", "p.png")
	require.Empty(t, o.variantKeys(t))
	if inline {
		o.requireInline(t, "pb", "p.png")
	}

	const path = "/render/image/public/pb/p.png?width=100&height=100"
	first := o.get(t, path, "")
	body := requireImage(t, first, "image/png", 100, 100)
	keys := o.variantKeys(t)
	require.Len(t, keys, 1, "one variant written")
	require.Contains(t, keys[0], version, "the variant is kept beside its source's version")

	// With the only render slot taken, cached variants are still served (a download, not
	// a render), byte for byte; what needs a render is refused.
	release, err := q.Acquire(context.Background())
	require.NoError(t, err)
	for _, p := range []string{
		path,
		path + "&resize=cover&gravity=ce", // the same pixels: the same variant
		path + "&format=origin",
	} {
		again := o.get(t, p, "")
		require.Equal(t, body, requireImage(t, again, "image/png", 100, 100), p)
		require.Equal(t, first.Header.Get("ETag"), again.Header.Get("ETag"))
	}
	r := o.get(t, path, "", withHeader("Range", "bytes=1-4"))
	require.Equal(t, http.StatusPartialContent, r.Status, "%s", r)
	require.Equal(t, body[1:5], r.Body)
	requireImage(t, o.get(t, "/render/image/authenticated/pb/p.png?width=100&height=100", o.service), "image/png", 100, 100)
	requireRenderBusy(t, o.get(t, path+"&format=webp", ""))
	requireRenderBusy(t, o.get(t, "/render/image/public/pb/p.png?width=99", ""))
	requireRenderBusy(t, o.get(t, path, "", withHeader("Accept", "image/webp")))
	release()
	require.Len(t, o.variantKeys(t), 1, "refused requests write nothing")

	// Another object's variant: the collector must keep it while its source lives.
	requireImage(t, o.get(t, "/render/image/authenticated/b/p.png?width=10", o.service), "image/png", 10, 5)
	requireImage(t, o.get(t, path+"&format=webp", ""), "image/webp", 100, 100)
	require.Len(t, o.variantKeys(t), 3)

	// A new version of the object has new variants: the old one is never served for it.
	o.mustUpload(t, "pb", "p.png", alphaPNG(t, 400, 200), withHeader("Content-Type", "image/png"), withHeader("x-upsert", "true"))
	body2 := requireImage(t, o.get(t, path, ""), "image/png", 100, 100)
	require.NotEqual(t, body, body2)
	require.True(t, inspectImage(t, body2).Alpha)

	// Deleting the object frees its versions, and the collector deletes their variants
	// with them; the other object's variant stays.
	requireOKJSON(t, o.do(t, "DELETE", "/object/pb/p.png", o.service, ""))
	collect(t, o.newCollector(0))
	left := o.variantKeys(t)
	require.Len(t, left, 1, "variants left: %v", left)
	require.Contains(t, left[0], o.version(t, "b", "p.png"))
	o.requireBlobsAccountedExceptVariants(t)
	requireInvariants(t, o.httpBundle)
}

// requireBlobsAccountedExceptVariants is requireBlobsAccounted on the blobs outside render/.
func (o *objEnv) requireBlobsAccountedExceptVariants(t *testing.T) {
	t.Helper()
	rowVersions := o.column(t, `select version from storage.objects where version is not null`)
	for _, k := range listBlobs(t, o.blobs) {
		if strings.HasPrefix(k, "render/") {
			continue
		}
		require.Contains(t, rowVersions, blobVersion(k), "blob %s is a row's version", k)
	}
}

func TestRenderNoCache(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		q := render.NewQueue(1, 0, 0)
		o := newRenderEnv(t, be, withQueue(q), withRender(func(c *proxy.RenderConfig) { c.NoCache = true }))
		const path = "/render/image/public/pb/p.png?width=100&height=100"
		first := requireImage(t, o.get(t, path, ""), "image/png", 100, 100)
		requireImage(t, o.get(t, path+"&format=webp", ""), "image/webp", 100, 100)
		requireImage(t, o.get(t, "/render/image/authenticated/b/p.png?width=10", o.service), "image/png", 10, 5)
		require.Empty(t, o.variantKeys(t), "nothing stored under render/")
		// The same request renders again (deterministically the same bytes)…
		require.Equal(t, first, requireImage(t, o.get(t, path, ""), "image/png", 100, 100))
		// …so it needs a slot every time.
		release, err := q.Acquire(context.Background())
		require.NoError(t, err)
		defer release()
		requireRenderBusy(t, o.get(t, path, ""))
		// Conditional requests are answered before any render.
		r := o.get(t, path, "", withHeader("If-None-Match", o.get(t, "/object/public/pb/p.png", "").Header.Get("ETag")))
		require.Equal(t, http.StatusNotModified, r.Status, "%s", r)
	})
}

func TestRenderConcurrentVariant(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newRenderEnv(t, be)
		// Requests racing for one uncached variant may render it more than once; the store
		// keeps one copy (written once) and every response is the same image.
		const n = 8
		bodies := make(chan httpResponse, n)
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, err := http.NewRequest("GET", o.baseURL+"/render/image/public/pb/p.png?width=64&height=64&format=webp", nil)
				if err != nil {
					panic(err)
				}
				resp, err := httpClient.Do(req)
				if err != nil {
					bodies <- httpResponse{Status: -1, Body: []byte(err.Error())}
					return
				}
				defer resp.Body.Close()
				data, err := io.ReadAll(resp.Body)
				if err != nil {
					data = []byte(err.Error())
				}
				bodies <- httpResponse{Status: resp.StatusCode, Header: resp.Header, Body: data}
			}()
		}
		wg.Wait()
		close(bodies)
		var first []byte
		for r := range bodies {
			body := requireImage(t, r, "image/webp", 64, 64)
			if first == nil {
				first = body
			}
			require.Equal(t, first, body)
		}
		keys := o.variantKeys(t)
		require.Len(t, keys, 1, "%v", keys)
		o.requireBlobsAccountedExceptVariants(t) // and no unfinished write left
	})
}
