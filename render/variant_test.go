package render

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob"
)

// TestOutput pins format negotiation (spec §5.4): explicit webp/avif, WebP for clients that
// accept it, else the object's declared format when we write it, else JPEG.
func TestOutput(t *testing.T) {
	t.Parallel()
	const webpAccept = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8" // a browser's <img> Accept
	for _, c := range []struct {
		format, accept, mimetype string
		want                     Format
	}{
		// Explicit formats win over Accept and the source.
		{"webp", "", "image/png", WebP},
		{"webp", "image/jpeg", "image/jpeg", WebP},
		{"avif", "", "image/png", AVIF},
		{"avif", "image/webp", "image/jpeg", AVIF},
		// No format: WebP when accepted (AVIF only when asked for by name).
		{"", webpAccept, "image/jpeg", WebP},
		{"", "image/webp", "image/png", WebP},
		{"", "IMAGE/WEBP", "image/png", WebP},
		{"", "text/html, image/webp ;q=0.5", "image/gif", WebP},
		{"", "image/avif", "image/jpeg", JPEG},
		{"", "image/webp;q=0", "image/png", PNG},
		{"", "image/webp; q=0.0", "image/png", PNG},
		{"", "image/webp;q=0.001", "image/png", WebP},
		{"", "image/webpx", "image/png", PNG},
		{"", "*/*", "image/png", PNG},
		{"", "image/*", "image/png", PNG},
		{"", "", "image/png", PNG},
		// origin: the source's format whatever the client accepts.
		{"origin", webpAccept, "image/png", PNG},
		{"origin", webpAccept, "image/jpeg", JPEG},
		{"origin", "", "image/apng", PNG},
		{"origin", "", "image/webp", WebP},
		{"origin", "", "image/gif", GIF},
		{"origin", "", "image/avif", AVIF},
		{"origin", "", "IMAGE/PNG; charset=binary", PNG},
		{"origin", "", " image/gif ", GIF},
		// Sources we do not write fall back to JPEG, as imgproxy does (HEIC, TIFF, unknown).
		{"origin", "", "image/heic", JPEG},
		{"origin", "", "image/heif", JPEG},
		{"origin", "", "image/tiff", JPEG},
		{"origin", "", "image/jpeg", JPEG},
		{"origin", "", "text/plain", JPEG},
		{"origin", "", "", JPEG},
		{"", "", "image/heic", JPEG},
	} {
		require.Equal(t, c.want, Output(Options{Format: c.format}, c.accept, c.mimetype), "%+v", c)
	}
	require.True(t, Options{}.Negotiated())
	require.True(t, Options{Width: 10}.Negotiated())
	require.False(t, Options{Format: "origin"}.Negotiated())
	require.False(t, Options{Format: "webp"}.Negotiated())
	require.Equal(t, "image/webp", WebP.ContentType())
	require.Equal(t, "image/jpeg", JPEG.ContentType())
}

// TestVariantShared: options that render the same pixels share one cached variant.
func TestVariantShared(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		a, b Options
	}{
		{"resize without size", Options{Resize: "contain"}, Options{}},
		{"fill without size", Options{Resize: "fill", Quality: 50}, Options{Quality: 50}},
		{"gravity without size", Options{Gravity: "no", XOffset: num(3)}, Options{}},
		{"cover is the default", Options{Width: 100, Height: 100, Resize: "cover"}, Options{Width: 100, Height: 100}},
		{"token's resize:undefined is cover", Options{Width: 100, Height: 100, Resize: "undefined"}, Options{Width: 100, Height: 100}},
		{"centre is the default", Options{Width: 100, Height: 100, Gravity: "ce"}, Options{Width: 100, Height: 100}},
		{"gravity when contain", Options{Width: 100, Height: 100, Resize: "contain", Gravity: "no"}, Options{Width: 100, Height: 100, Resize: "contain"}},
		{"gravity when fill", Options{Width: 100, Height: 100, Resize: "fill", Gravity: "fp", XOffset: num(0), YOffset: num(1)}, Options{Width: 100, Height: 100, Resize: "fill"}},
		{"gravity with one side", Options{Width: 100, Gravity: "ea"}, Options{Width: 100}},
		{"smart gravity takes no offsets", Options{Width: 9, Height: 9, Gravity: "sm", XOffset: num(12), YOffset: num(-4)}, Options{Width: 9, Height: 9, Gravity: "sm"}},
		{"format decided by Output", Options{Width: 100, Format: "webp"}, Options{Width: 100, Format: "origin"}},
	} {
		require.Equal(t, c.b.Normalized(), c.a.Normalized(), c.name)
		for _, f := range []Format{JPEG, WebP} {
			require.Equal(t, c.b.Variant(f), c.a.Variant(f), c.name)
		}
	}
	// A query and the token minted from it name the same variant.
	o, msg := parseQuery(t, "width=100&height=100&gravity=we&x_offset=5", DefaultLimits, "querystring")
	require.Empty(t, msg)
	require.Equal(t, o.Variant(WebP), ParseTransformations(o.Transformations(), DefaultLimits).Variant(WebP))
}

// TestVariantDistinct: options that can render different pixels never share a name.
func TestVariantDistinct(t *testing.T) {
	t.Parallel()
	type variant struct {
		o Options
		f Format
	}
	all := []variant{
		{Options{}, JPEG},
		{Options{}, PNG},
		{Options{}, WebP},
		{Options{}, AVIF},
		{Options{}, GIF},
		{Options{Width: 100}, WebP},
		{Options{Height: 100}, WebP},
		{Options{Width: 101}, WebP},
		{Options{Width: 100, Height: 100}, WebP},
		{Options{Width: 100, Height: 50}, WebP},
		{Options{Width: 50, Height: 100}, WebP},
		{Options{Width: 100, Height: 100, Resize: "contain"}, WebP},
		{Options{Width: 100, Height: 100, Resize: "fill"}, WebP},
		{Options{Width: 100, Resize: "fill"}, WebP},
		{Options{Width: 100, Height: 100, Quality: 50}, WebP},
		{Options{Width: 100, Height: 100, Quality: 51}, WebP},
		{Options{Quality: 50}, WebP},
		{Options{Width: 100, Height: 100, Gravity: "no"}, WebP},
		{Options{Width: 100, Height: 100, Gravity: "so"}, WebP},
		{Options{Width: 100, Height: 100, Gravity: "sm"}, WebP},
		{Options{Width: 100, Height: 100, Gravity: "ce", XOffset: num(12)}, WebP},
		{Options{Width: 100, Height: 100, Gravity: "no", XOffset: num(12)}, WebP},
		{Options{Width: 100, Height: 100, Gravity: "no", YOffset: num(12)}, WebP},
		{Options{Width: 100, Height: 100, Gravity: "fp", XOffset: num(0.25), YOffset: num(0.75)}, WebP},
		{Options{Width: 100, Height: 100, Gravity: "fp", XOffset: num(0.75), YOffset: num(0.25)}, WebP},
		{Options{Width: 100, Height: 100, Gravity: "fp", XOffset: num(0.25), YOffset: num(0.75)}, JPEG},
	}
	seen := map[string]variant{}
	for _, v := range all {
		name := v.o.Variant(v.f)
		prev, dup := seen[name]
		require.False(t, dup, "%+v and %+v share %s", prev, v, name)
		seen[name] = v
	}
}

// TestVariantName: a variant's name is one valid segment of a blob key, ending in its format.
func TestVariantName(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{
		{},
		{Width: 2000, Height: 2000, Resize: "fill", Quality: 100},
		{Width: 1, Height: 1, Gravity: "fp", XOffset: num(1e-7), YOffset: num(1)},
		{Width: 10, Height: 10, Gravity: "nowe", XOffset: num(-1e21)},
		// A token's verbatim values must not reach the key.
		{Width: 10, Height: 10, Resize: "../../x/\x00"},
	} {
		for _, f := range []Format{JPEG, PNG, WebP, AVIF, GIF} {
			name := o.Variant(f)
			require.NoError(t, blob.CheckKey("x/"+name), name)
			require.NotContains(t, name, "/")
			require.True(t, strings.HasSuffix(name, "."+string(f)), name)
			require.Equal(t, name, o.Variant(f), "stable")
		}
	}
}

// await waits for an Acquire run in the background, with a bound far beyond any machine's
// scheduling delay: the bound only stops a hung test, it measures nothing.
func await(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Acquire did not return")
		return nil
	}
}

// acquire runs one Acquire in the background; its release lands in *released.
func acquire(ctx context.Context, q *Queue, released *func()) <-chan error {
	done := make(chan error, 1)
	go func() {
		release, err := q.Acquire(ctx)
		if released != nil {
			*released = release
		}
		done <- err
	}()
	return done
}

// oneWaiting reports whether one request waits for a slot.
func oneWaiting(q *Queue) func() bool {
	return func() bool { return len(q.waiting) == 1 }
}

func TestQueueSlots(t *testing.T) {
	t.Parallel()
	q := NewQueue(2, 1, 0)
	ctx := context.Background()
	r1, err := q.Acquire(ctx)
	require.NoError(t, err)
	r2, err := q.Acquire(ctx)
	require.NoError(t, err)
	require.Len(t, q.slots, 2)
	// Both slots taken: the next request waits (no timeout, so only a release lets it in).
	var r3 func()
	third := acquire(ctx, q, &r3)
	require.Eventually(t, oneWaiting(q), 30*time.Second, time.Millisecond)
	// The queue is full too: refused at once. With no timeout and a context that never ends,
	// returning at all proves it did not wait.
	_, err = acquireReturned(t, ctx, q)
	require.ErrorIs(t, err, ErrBusy)
	select {
	case err := <-third:
		t.Fatalf("the waiter got in without a release: %v", err)
	default:
	}
	// A release lets the waiter in; it leaves the queue and holds the slot.
	r1()
	require.NoError(t, await(t, third))
	require.Len(t, q.slots, 2)
	require.Empty(t, q.waiting)
	// The queue has room again: a new request waits instead of being refused.
	var r4 func()
	fourth := acquire(ctx, q, &r4)
	require.Eventually(t, oneWaiting(q), 30*time.Second, time.Millisecond)
	r2()
	require.NoError(t, await(t, fourth))
	r3()
	r4()
	require.Empty(t, q.slots)
}

// acquireReturned runs one Acquire in the background and waits for it.
func acquireReturned(t *testing.T, ctx context.Context, q *Queue) (func(), error) {
	t.Helper()
	var release func()
	err := await(t, acquire(ctx, q, &release))
	return release, err
}

func TestQueueNoWaiting(t *testing.T) {
	t.Parallel()
	// No queue: the second request is refused at once; a concurrency below 1 is 1.
	q := NewQueue(0, 0, 0)
	release, err := q.Acquire(context.Background())
	require.NoError(t, err)
	_, err = acquireReturned(t, context.Background(), q)
	require.ErrorIs(t, err, ErrBusy)
	release()
	release, err = q.Acquire(context.Background())
	require.NoError(t, err)
	release()
	require.Empty(t, q.slots)
}

func TestQueueTimeout(t *testing.T) {
	t.Parallel()
	q := NewQueue(1, 4, 20*time.Millisecond)
	hold, err := q.Acquire(context.Background())
	require.NoError(t, err)
	defer hold()
	// The slot is never released: the wait ends with the queue's timeout, not the context's.
	_, err = acquireReturned(t, context.Background(), q)
	require.ErrorIs(t, err, ErrBusy)
	require.Empty(t, q.waiting, "a timed-out request leaves the queue")
	require.Len(t, q.slots, 1)
}

func TestQueueContext(t *testing.T) {
	t.Parallel()
	q := NewQueue(1, 1, 0)
	hold, err := q.Acquire(context.Background())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := acquire(ctx, q, nil)
	require.Eventually(t, oneWaiting(q), 30*time.Second, time.Millisecond)
	// The request goes away (its client hung up): it stops waiting and frees its place.
	cancel()
	require.ErrorIs(t, await(t, done), ErrBusy)
	require.Empty(t, q.waiting)
	hold()
	release, err := q.Acquire(context.Background())
	require.NoError(t, err)
	release()
}

func TestErrors(t *testing.T) {
	t.Parallel()
	var e *Error
	require.True(t, errors.As(error(ErrResolution), &e))
	require.Equal(t, "The source image resolution is too large to process", e.Error())
	require.Equal(t, "The source image is invalid or unsupported for rendering", ErrUnsupported.Error())
	require.Equal(t, "The source image file is too large to process", ErrFileSize.Error())
}
