package render

import (
	"math"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// parseQuery runs Parse on a query string as the render routes do (a parameter given without
// a value counts as given and empty).
func parseQuery(t *testing.T, q string, l Limits, where string) (Options, string) {
	t.Helper()
	v, err := url.ParseQuery(q)
	require.NoError(t, err)
	return Parse(func(name string) (string, bool) {
		vs, ok := v[name]
		if !ok {
			return "", false
		}
		return vs[0], true
	}, l, where)
}

func num(f float64) *float64 { return &f }

func TestParse(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		query string
		want  Options
	}{
		{"", Options{}},
		{"width=100&height=50", Options{Width: 100, Height: 50}},
		{"width=100.0", Options{Width: 100}}, // an integral number is an integer
		{"width=1e2", Options{Width: 100}},
		{"width=%2012%20", Options{Width: 12}}, // JavaScript's coercion ignores surrounding spaces
		{"width=0&height=0", Options{}},        // 0 is "not given"
		{"width=5000", Options{Width: 2000}},   // clamped, not refused
		{"height=99999999999", Options{Height: 2000}},
		{"resize=cover", Options{Resize: "cover"}},
		{"resize=contain", Options{Resize: "contain"}},
		{"resize=fill", Options{Resize: "fill"}},
		{"format=origin", Options{Format: "origin"}},
		{"format=webp", Options{Format: "webp"}},
		{"format=avif", Options{Format: "avif"}},
		{"quality=20", Options{Quality: 20}},
		{"quality=100", Options{Quality: 100}},
		{"gravity=sowe", Options{Gravity: "sowe"}},
		{"gravity=sm&x_offset=12&y_offset=-4", Options{Gravity: "sm", XOffset: num(12), YOffset: num(-4)}},
		{"gravity=no&x_offset=12", Options{Gravity: "no", XOffset: num(12)}},
		{"gravity=fp&x_offset=0&y_offset=1", Options{Gravity: "fp", XOffset: num(0), YOffset: num(1)}},
		{"gravity=fp&x_offset=0.25&y_offset=0.75", Options{Gravity: "fp", XOffset: num(0.25), YOffset: num(0.75)}},
		{"x_offset=-1.5", Options{XOffset: num(-1.5)}}, // offsets without fp are any finite number
		{"download&cacheNonce=1&versionId=x&unknown=y", Options{}},
	} {
		o, msg := parseQuery(t, c.query, DefaultLimits, "querystring")
		require.Empty(t, msg, c.query)
		require.Equal(t, c.want, o, c.query)
	}
	// Every gravity of the schema is accepted (fp with its offsets).
	for _, g := range gravities {
		q := "gravity=" + g
		if g == "fp" {
			q += "&x_offset=0.5&y_offset=0.5"
		}
		o, msg := parseQuery(t, q, DefaultLimits, "querystring")
		require.Empty(t, msg, q)
		require.Equal(t, g, o.Gravity)
	}
}

// TestParseRefusals pins the schema's messages (spec §3, §13 assertions 12–16): the first
// invalid field, named under where.
func TestParseRefusals(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ query, msg string }{
		{"width=-1", "querystring/width must be >= 0"},
		{"height=-100", "querystring/height must be >= 0"},
		{"width=1.5", "querystring/width must be integer"},
		{"width=abc", "querystring/width must be integer"},
		{"width=", "querystring/width must be integer"},
		{"width", "querystring/width must be integer"},
		{"width=Infinity", "querystring/width must be integer"},
		{"width=NaN", "querystring/width must be integer"},
		{"width=12px", "querystring/width must be integer"},
		{"height=0.5", "querystring/height must be integer"},
		{"quality=10", "querystring/quality must be >= 20"},
		{"quality=19", "querystring/quality must be >= 20"},
		{"quality=101", "querystring/quality must be <= 100"},
		{"quality=50.5", "querystring/quality must be integer"},
		{"resize=stretch", "querystring/resize must be equal to one of the allowed values"},
		{"resize=Cover", "querystring/resize must be equal to one of the allowed values"},
		{"resize=", "querystring/resize must be equal to one of the allowed values"},
		{"format=png", "querystring/format must be equal to one of the allowed values"},
		{"format=avif%0Ax", "querystring/format must be equal to one of the allowed values"},
		{"gravity=obj", "querystring/gravity must be equal to one of the allowed values"},
		{"gravity=center", "querystring/gravity must be equal to one of the allowed values"},
		{"x_offset=abc", "querystring/x_offset must be number"},
		{"y_offset=", "querystring/y_offset must be number"},
		{"gravity=no&x_offset=Infinity", "querystring/x_offset must be number"},
		// The focal point needs both offsets, each within the image.
		{"gravity=fp", "querystring must have required property 'x_offset'"},
		{"gravity=fp&x_offset=0.5", "querystring must have required property 'y_offset'"},
		{"gravity=fp&y_offset=0.5", "querystring must have required property 'x_offset'"},
		{"gravity=fp&x_offset=1.1&y_offset=0.5", "querystring/x_offset must be <= 1"},
		{"gravity=fp&x_offset=-0.1&y_offset=0.5", "querystring/x_offset must be >= 0"},
		{"gravity=fp&x_offset=0.5&y_offset=2", "querystring/y_offset must be <= 1"},
		{"gravity=fp&x_offset=0.5&y_offset=-1", "querystring/y_offset must be >= 0"},
		// One refusal is reported: the first field, in the order Parse reads them.
		{"quality=5&width=-1", "querystring/width must be >= 0"},
		{"width=10&resize=x&quality=5", "querystring/resize must be equal to one of the allowed values"},
	} {
		o, msg := parseQuery(t, c.query, DefaultLimits, "querystring")
		require.Equal(t, c.msg, msg, c.query)
		require.Equal(t, Options{}, o, c.query)
	}
	// The assertions' looser forms: the message names the field.
	_, msg := parseQuery(t, "gravity=fp", DefaultLimits, "querystring")
	require.Contains(t, msg, "x_offset")
	_, msg = parseQuery(t, "gravity=obj", DefaultLimits, "querystring")
	require.Contains(t, msg, "gravity")
	// POST /object/sign's transform speaks under its own path.
	_, msg = parseQuery(t, "quality=101", DefaultLimits, "body/transform")
	require.Equal(t, "body/transform/quality must be <= 100", msg)
	_, msg = parseQuery(t, "gravity=fp", DefaultLimits, "body/transform")
	require.Equal(t, "body/transform must have required property 'x_offset'", msg)
}

func TestParseLimits(t *testing.T) {
	t.Parallel()
	l := Limits{MinSize: 10, MaxSize: 500}
	for _, c := range []struct {
		query string
		want  Options
	}{
		{"width=3", Options{Width: 10}},
		{"height=1", Options{Height: 10}},
		{"width=10&height=500", Options{Width: 10, Height: 500}},
		{"width=501&height=9", Options{Width: 500, Height: 10}},
		{"width=0", Options{}}, // not given stays not given: MinSize does not invent a size
	} {
		o, msg := parseQuery(t, c.query, l, "querystring")
		require.Empty(t, msg, c.query)
		require.Equal(t, c.want, o, c.query)
	}
	o, _ := parseQuery(t, "width=1&height=2001", DefaultLimits, "querystring")
	require.Equal(t, Options{Width: 1, Height: 2000}, o)
}

func TestEmpty(t *testing.T) {
	t.Parallel()
	require.True(t, Options{}.Empty())
	require.False(t, Options{Format: "origin"}.Empty())
	require.False(t, Options{Width: 1}.Empty())
	require.False(t, Options{XOffset: num(0)}.Empty())
}

// TestTransformations pins the signed token's claim as the reference mints it (spec §4.3).
func TestTransformations(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{}, ""},
		{Options{Width: 100, Height: 100, Resize: "contain"}, "height:100,width:100,resize:contain"},
		{Options{Width: 1, Height: 1}, "height:1,width:1,resize:undefined"},
		{Options{Width: 100}, "width:100,resize:undefined"},
		{Options{Height: 100, Resize: "fill"}, "height:100,resize:fill"},
		{Options{Resize: "cover"}, ""}, // no size, no resize
		{Options{Format: "origin"}, ""},
		{Options{Width: 10, Format: "origin"}, "width:10,resize:undefined"},
		{Options{Format: "webp"}, "format:webp"},
		{Options{Quality: 50, Format: "avif"}, "quality:50,format:avif"},
		{Options{Gravity: "ce"}, "gravity:ce"},
		{Options{Gravity: "sm", XOffset: num(12), YOffset: num(-4)}, "gravity:sm"},
		{Options{Gravity: "no", XOffset: num(12)}, "gravity:no:12:0"},
		{Options{Gravity: "soea", YOffset: num(-0.5)}, "gravity:soea:0:-0.5"},
		{Options{Gravity: "fp", XOffset: num(0), YOffset: num(1)}, "gravity:fp:0:1"},
		{Options{Gravity: "fp", XOffset: num(0.25), YOffset: num(0.75)}, "gravity:fp:0.25:0.75"},
		{Options{XOffset: num(3)}, ""}, // offsets without a gravity
		{
			Options{Width: 200, Height: 100, Resize: "cover", Quality: 90, Format: "webp", Gravity: "we", XOffset: num(5), YOffset: num(6)},
			"height:100,width:200,resize:cover,quality:90,format:webp,gravity:we:5:6",
		},
	} {
		require.Equal(t, c.want, c.o.Transformations(), "%+v", c.o)
	}
	// Parsed from a query: clamped before it is written.
	o, _ := parseQuery(t, "width=5000&height=0", DefaultLimits, "body/transform")
	require.Equal(t, "width:2000,resize:undefined", o.Transformations())
}

// TestParseTransformations reads claims as the reference does, tokens it minted included.
func TestParseTransformations(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		claim string
		want  Options
	}{
		{"", Options{}},
		{"height:100,width:100,resize:contain", Options{Width: 100, Height: 100, Resize: "contain"}},
		{"height:1,width:1,resize:undefined", Options{Width: 1, Height: 1, Resize: "undefined"}},
		{"quality:50,format:avif", Options{Quality: 50, Format: "avif"}},
		{"format:origin", Options{Format: "origin"}},
		{"gravity:sm", Options{Gravity: "sm"}},
		{"gravity:no:12:0", Options{Gravity: "no", XOffset: num(12), YOffset: num(0)}},
		{"gravity:no:12", Options{Gravity: "no", XOffset: num(12)}},
		{"gravity:fp:0.25:0.75", Options{Gravity: "fp", XOffset: num(0.25), YOffset: num(0.75)}},
		{"gravity:fp:1e-7:1", Options{Gravity: "fp", XOffset: num(1e-7), YOffset: num(1)}},
		// Non-finite offsets are dropped, not the gravity.
		{"gravity:no:NaN:Infinity", Options{Gravity: "no"}},
		{"gravity:ea:abc:-Infinity", Options{Gravity: "ea"}},
		{"gravity:ea:x:2", Options{Gravity: "ea", YOffset: num(2)}},
		// Integers are JavaScript's parseInt: the leading digits.
		{"width:12abc", Options{Width: 12}},
		{"width: 34", Options{Width: 34}},
		{"width:+56", Options{Width: 56}},
		{"quality:85.9", Options{Quality: 85}},
		{"width:abc", Options{}},
		{"width:5000,height:9999", Options{Width: 2000, Height: 2000}},
		// Unknown names, empty values and items without a value are skipped.
		{"foo:bar,width:10", Options{Width: 10}},
		{"width:,height:20", Options{Height: 20}},
		{"width,height:20", Options{Height: 20}},
		{",,height:20,", Options{Height: 20}},
		{"resize:,format:", Options{}},
		// Values are taken verbatim; a later item wins.
		{"resize:stretch", Options{Resize: "stretch"}},
		{"width:10,width:20", Options{Width: 20}},
	} {
		require.Equal(t, c.want, ParseTransformations(c.claim, DefaultLimits), c.claim)
	}
	require.Equal(t, Options{Width: 10, Height: 500}, ParseTransformations("width:3,height:900", Limits{MinSize: 10, MaxSize: 500}))
	// A claim re-written from what was read is the reference's form again.
	require.Equal(t, "gravity:no", ParseTransformations("gravity:no:NaN:Infinity", DefaultLimits).Transformations())
	for _, claim := range []string{
		"height:100,width:100,resize:contain",
		"height:1,width:1,resize:undefined",
		"height:100,width:200,resize:cover,quality:90,format:webp,gravity:we:5:6",
		"gravity:fp:0.25:0.75",
		"quality:50,format:avif",
	} {
		require.Equal(t, claim, ParseTransformations(claim, DefaultLimits).Transformations())
	}
}

// TestTransformationsRoundTrip: a transformation minted into a token renders as the query
// that minted it (format origin aside, which leaves no trace).
func TestTransformationsRoundTrip(t *testing.T) {
	t.Parallel()
	for _, q := range []string{
		"width=100&height=100",
		"width=100&height=100&resize=contain",
		"width=5000&resize=fill",
		"height=30&quality=40&format=webp",
		"width=100&height=100&gravity=sm&x_offset=12&y_offset=-4",
		"width=100&height=100&gravity=no&x_offset=12",
		"width=1&height=1&gravity=fp&x_offset=0&y_offset=1",
		"gravity=fp&x_offset=0.25&y_offset=0.75",
	} {
		o, msg := parseQuery(t, q, DefaultLimits, "body/transform")
		require.Empty(t, msg)
		back := ParseTransformations(o.Transformations(), DefaultLimits)
		require.Equal(t, o.Segments(), back.Segments(), q)
		require.True(t, back.CheckFocalPoint(), q)
	}
}

func TestCheckFocalPoint(t *testing.T) {
	t.Parallel()
	for claim, ok := range map[string]bool{
		"":                     true,
		"gravity:no:5:5":       true, // offsets of other gravities are pixels or fractions
		"gravity:fp:0:1":       true,
		"gravity:fp:0.5:0.5":   true,
		"gravity:fp":           false,
		"gravity:fp:0.5":       false,
		"gravity:fp:NaN:0.5":   false,
		"gravity:fp:1.1:0.5":   false,
		"gravity:fp:0.5:-0.01": false,
	} {
		require.Equal(t, ok, ParseTransformations(claim, DefaultLimits).CheckFocalPoint(), claim)
	}
}

func TestResizingType(t *testing.T) {
	t.Parallel()
	for resize, want := range map[string]string{
		"": "fill", "cover": "fill", "contain": "fit", "fill": "force", "undefined": "fill", "stretch": "fill",
	} {
		require.Equal(t, want, Options{Resize: resize}.ResizingType(), resize)
	}
}

// TestSegments pins the X-Transformations header: imgproxy's path segments as the reference
// builds them (spec §5.1 and §13 assertions 3–11).
func TestSegments(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		query string
		want  string // the segments joined by ","
	}{
		{"width=1&height=1", "height:1,width:1,resizing_type:fill"},                         // 3
		{"width=1&height=1&format=webp", "height:1,width:1,resizing_type:fill,format:webp"}, // 4
		{"width=100&height=100&resize=contain", "height:100,width:100,resizing_type:fit"},   // 5
		{"width=100&height=100&resize=fill", "height:100,width:100,resizing_type:force"},    // 5
		{"width=100&height=100&resize=cover", "height:100,width:100,resizing_type:fill"},    // 5
		{"width=5000", "width:2000,resizing_type:fill"},                                     // 6
		{"width=0&height=0", ""},                             // 7
		{"quality=50&format=avif", "quality:50,format:avif"}, // 8
		{"width=100&height=100&gravity=sm&x_offset=12&y_offset=-4", "height:100,width:100,resizing_type:fill,gravity:sm"}, // 9
		{"gravity=no&x_offset=12", "gravity:no:12:0"},                      // 10
		{"gravity=ce", "gravity:ce"},                                       // 10
		{"gravity=fp&x_offset=0.25&y_offset=0.75", "gravity:fp:0.25:0.75"}, // 11
		{"width=100&height=100&format=webp", "height:100,width:100,resizing_type:fill,format:webp"},
		{"height=50", "height:50,resizing_type:fill"},
		{"resize=contain", ""}, // a mode without a size sends nothing
		{"format=origin", ""},
		{"format=origin&width=7", "width:7,resizing_type:fill"},
		{"quality=20", "quality:20"},
		{"gravity=we&y_offset=0.5", "gravity:we:0:0.5"},
		{"width=10&height=20&resize=fill&quality=90&format=webp&gravity=sowe&x_offset=3&y_offset=4",
			"height:20,width:10,resizing_type:force,quality:90,format:webp,gravity:sowe:3:4"},
	} {
		o, msg := parseQuery(t, c.query, DefaultLimits, "querystring")
		require.Empty(t, msg, c.query)
		require.Equal(t, c.want, strings.Join(o.Segments(), ","), c.query)
		if c.want == "" {
			require.Empty(t, o.Segments(), c.query)
		}
	}
	// A token's resize:undefined renders as cover (assertion 29).
	require.Equal(t, []string{"height:1", "width:1", "resizing_type:fill"},
		ParseTransformations("height:1,width:1,resize:undefined", DefaultLimits).Segments())
}

// TestJSNumber: offsets are written as JavaScript's String(n) writes them.
func TestJSNumber(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		f    float64
		want string
	}{
		{0, "0"},
		{math.Copysign(0, -1), "0"},
		{1, "1"},
		{12, "12"},
		{-4, "-4"},
		{0.25, "0.25"},
		{0.75, "0.75"},
		{-0.5, "-0.5"},
		{0.30000000000000004, "0.30000000000000004"}, // 0.1 + 0.2 in doubles: the shortest form that reads back
		{123456789012, "123456789012"},
		{1e20, "100000000000000000000"},
		{1e21, "1e+21"},
		{-1e21, "-1e+21"},
		{1.5e300, "1.5e+300"},
		{1e-6, "0.000001"},
		{1.5e-6, "0.0000015"},
		{1e-7, "1e-7"},
		{-1e-7, "-1e-7"},
		{2.5e-10, "2.5e-10"},
	} {
		require.Equal(t, c.want, jsNumber(c.f), "%v", c.f)
	}
}
