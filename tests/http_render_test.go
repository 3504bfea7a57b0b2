package tests

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"net/http"
	"testing"

	govips "github.com/davidbyttow/govips/v2/vips"
	"github.com/stretchr/testify/require"
)

// testJPEG is a w×h JPEG of a gradient.
func testJPEG(t *testing.T, w, h int) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 128, 255})
		}
	}
	var b bytes.Buffer
	require.NoError(t, jpeg.Encode(&b, img, nil))
	return b.String()
}

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

func TestRenderSmoke(t *testing.T) {
	t.Parallel()
	forEachObjectBackend(t, func(t *testing.T, be objectBackend) {
		o := newObjEnv(t, be)
		o.mkBucket(t, `{"name":"pb","public":true}`)
		o.mustUpload(t, "pb", "a.jpg", testJPEG(t, 400, 200), withHeader("Content-Type", "image/jpeg"))
		r := o.get(t, "/render/image/public/pb/a.jpg?width=100&height=100&format=webp", "")
		require.Equal(t, http.StatusOK, r.Status, "%s", r)
		require.Equal(t, "image/webp", r.Header.Get("Content-Type"))
		require.Equal(t, "height:100,width:100,resizing_type:fill,format:webp", r.Header.Get("X-Transformations"))
		require.Equal(t, decoded{100, 100, govips.ImageTypeWEBP}, decodeImage(t, r.Body))
		again := o.get(t, "/render/image/public/pb/a.jpg?width=100&height=100&format=webp", "")
		require.Equal(t, r.Body, again.Body)
		c := o.get(t, "/render/image/authenticated/pb/a.jpg?width=100&height=100&resize=contain", o.service)
		require.Equal(t, http.StatusOK, c.Status, "%s", c)
		require.Equal(t, decoded{100, 50, govips.ImageTypeJPEG}, decodeImage(t, c.Body))
		s := o.do(t, "POST", "/object/sign/pb/a.jpg", o.service, `{"expiresIn":60,"transform":{"width":50,"height":50}}`)
		require.Equal(t, http.StatusOK, s.Status, "%s", s)
		require.Contains(t, string(s.Body), `"/render/image/sign/pb/a.jpg?token=`)
	})
}
