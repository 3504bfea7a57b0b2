package file

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

// bursts is a reader that delivers data in bursts: a read returns at most what is left of
// the current burst, as a socket returns what has arrived. At a burst's end it records the
// size of the buffer the next read was given: that buffer is what a read waiting for the
// client's next bytes would hold.
type bursts struct {
	data    []byte
	sizes   []int // burst sizes, in order; the last repeats
	left    int   // of the current burst
	waiting []int // len(p) of each read that started a burst after the first
	started bool
}

func (b *bursts) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, io.EOF
	}
	if b.left == 0 {
		if b.started {
			b.waiting = append(b.waiting, len(p))
		}
		b.started = true
		b.left = b.sizes[0]
		if len(b.sizes) > 1 {
			b.sizes = b.sizes[1:]
		}
	}
	n := min(len(p), b.left, len(b.data))
	copy(p, b.data[:n])
	b.data, b.left = b.data[n:], b.left-n
	return n, nil
}

func TestCopyBody(t *testing.T) {
	t.Parallel()
	data := make([]byte, 3<<20+12345)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	for name, tc := range map[string]struct {
		r    func() io.Reader
		want []byte
	}{
		"WholeReads":  {func() io.Reader { return bytes.NewReader(data) }, data},
		"OneByte":     {func() io.Reader { return iotest.OneByteReader(bytes.NewReader(data[:100<<10])) }, data[:100<<10]},
		"HalfReads":   {func() io.Reader { return iotest.HalfReader(bytes.NewReader(data)) }, data},
		"Bursts":      {func() io.Reader { return &bursts{data: data, sizes: []int{300 << 10, 7, 16 << 10, 1 << 20, 100}} }, data},
		"DataErrEOF":  {func() io.Reader { return iotest.DataErrReader(bytes.NewReader(data)) }, data},
		"SmallBursts": {func() io.Reader { return &bursts{data: data[:1<<20], sizes: []int{5000}} }, data[:1<<20]},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			n, err := copyBody(&out, tc.r())
			require.NoError(t, err)
			require.Equal(t, int64(len(tc.want)), n)
			require.True(t, bytes.Equal(tc.want, out.Bytes()), "bytes differ")
		})
	}

	t.Run("WaitsWithTheSmallBuffer", func(t *testing.T) {
		t.Parallel()
		// A burst larger than the large buffer, then pauses between small and large bursts:
		// every read that waits for a burst after a short read is given the small buffer.
		// (A burst that ends exactly where a large read does leaves the next read waiting
		// with the large buffer; the cap on uploads in progress bounds that case.)
		b := &bursts{data: data, sizes: []int{300 << 10, 50 << 10, 10, 1<<20 + 1000, 16 << 10, 16 << 10, 64 << 10, 40 << 10}}
		var out bytes.Buffer
		_, err := copyBody(&out, b)
		require.NoError(t, err)
		require.True(t, bytes.Equal(data, out.Bytes()))
		require.NotEmpty(t, b.waiting)
		for i, n := range b.waiting {
			require.LessOrEqual(t, n, waitBufSize, "wait %d held a %d-byte buffer", i, n)
		}
	})

	t.Run("ReadError", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("client gone")
		var out bytes.Buffer
		n, err := copyBody(&out, io.MultiReader(bytes.NewReader(data[:70000]), iotest.ErrReader(boom)))
		require.ErrorIs(t, err, boom)
		require.Equal(t, int64(70000), n)
		require.True(t, bytes.Equal(data[:70000], out.Bytes()))
	})
}
