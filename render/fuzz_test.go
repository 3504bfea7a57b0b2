package render

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"

	"github.com/pgstorage/storage/blob"
)

// Fuzz targets for the transformation parameters (`make fuzz`; the seeds also run as plain
// tests).

var fuzzFormats = []Format{JPEG, PNG, WebP, AVIF, GIF}

// FuzzParse: the query of /render/image is refused with a schema message naming the query, or
// read into options within the schema; those options, minted into a signed token's claim and
// read back, name the same cached variant in every format (a signed URL renders what its
// signer asked for), and normalizing them is idempotent.
func FuzzParse(f *testing.F) {
	for _, q := range []string{"", "width=100", "width=100&height=100&resize=contain&quality=80&format=webp",
		"width=0", "width=-1", "width=1.5", "width=1e3", "width=99999999999", "height=%20", "quality=19",
		"quality=100.0", "resize=stretch", "format=origin", "format=png", "gravity=fp&x_offset=0.5&y_offset=1",
		"gravity=fp&x_offset=2&y_offset=0", "gravity=fp", "gravity=no&x_offset=10&y_offset=-5", "gravity=sm",
		"gravity=ce&x_offset=1e-7", "x_offset=NaN", "x_offset=Inf", "width", "width=&height=3", "width=0x10",
		"width=100&height=100&gravity=soea&y_offset=0.25", "width=2001&height=1&resize=fill&quality=20"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, query string) {
		var args fasthttp.Args
		args.Parse(query)
		o, msg := Parse(func(name string) (string, bool) {
			v := args.Peek(name)
			return string(v), v != nil
		}, DefaultLimits, "querystring")
		if msg != "" {
			require.True(t, strings.HasPrefix(msg, "querystring"), msg)
			require.True(t, o.Empty())
			return
		}
		requireValid(t, o, DefaultLimits)
		claim := ParseTransformations(o.Transformations(), DefaultLimits)
		require.True(t, claim.CheckFocalPoint(), "%+v from %q", claim, o.Transformations())
		for _, format := range fuzzFormats {
			require.Equal(t, o.Variant(format), claim.Variant(format), "claim %q", o.Transformations())
		}
		n := o.Normalized()
		require.Equal(t, n.Variant(JPEG), n.Normalized().Variant(JPEG))
	})
}

// FuzzParseTransformations: a token's claim is read leniently but never outside the limits,
// and whatever it holds, its variant names are one blob key segment of the expected form.
func FuzzParseTransformations(f *testing.F) {
	for _, c := range []string{"", "height:100,width:100,resize:undefined", "width:3000,quality:80,format:webp",
		"gravity:fp:0.5:0.5", "gravity:fp:2:-1", "gravity:no:1e400:x", "width:12abc,height:-5", "resize:fill,width:,height",
		"quality:500", "format:avif,gravity:sm:1:1", ",,,:", "width:+7", "gravity:ce:1e-7:1e21"} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, claim string) {
		o := ParseTransformations(claim, DefaultLimits)
		for _, v := range []int{o.Width, o.Height} {
			require.True(t, v == 0 || v >= DefaultLimits.MinSize && v <= DefaultLimits.MaxSize, "size %d", v)
		}
		for _, format := range fuzzFormats {
			v := o.Variant(format)
			require.Regexp(t, `^[0-9a-f]{32}\.`+string(format)+`$`, v)
			require.NoError(t, blob.CheckKey(blob.VariantKey("0123456789abcdef", v)))
		}
	})
}

// requireValid checks options Parse accepted against the schema.
func requireValid(t *testing.T, o Options, l Limits) {
	t.Helper()
	for _, v := range []int{o.Width, o.Height} {
		require.True(t, v == 0 || v >= l.MinSize && v <= l.MaxSize, "size %d", v)
	}
	require.True(t, o.Quality == 0 || o.Quality >= 20 && o.Quality <= 100, "quality %d", o.Quality)
	require.Contains(t, append([]string{""}, resizeModes...), o.Resize)
	require.Contains(t, append([]string{""}, formats...), o.Format)
	require.Contains(t, append([]string{""}, gravities...), o.Gravity)
	require.True(t, o.CheckFocalPoint(), "%+v", o)
}
