package digest_test

import (
	"crypto/md5"
	"encoding"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/digest"
)

// TestAsync: bytes written in pieces of any size, around the buffer size and across a resumed
// hash state, hash to what MD5 gives in one go.
func TestAsync(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 3<<20+12345)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	want := md5.Sum(data)
	for _, piece := range []int{1, 1000, 128<<10 - 1, 128 << 10, 128<<10 + 1, 1 << 20, len(data)} {
		h := md5.New()
		// The first third is hashed before, as a resumed upload's state.
		h.Write(data[:len(data)/3])
		state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		require.NoError(t, err)
		h = md5.New()
		require.NoError(t, h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state))
		a := digest.New(h)
		for p := data[len(data)/3:]; len(p) > 0; {
			n := min(piece, len(p))
			k, err := a.Write(p[:n])
			require.NoError(t, err)
			require.Equal(t, n, k)
			p = p[n:]
		}
		require.Equal(t, want[:], a.Sum().Sum(nil), "pieces of %d", piece)
		require.Equal(t, want[:], a.Sum().Sum(nil), "Sum again")
	}
	empty := digest.New(md5.New())
	require.Equal(t, md5.New().Sum(nil), empty.Sum().Sum(nil))
	small := digest.New(md5.New()) // hashed in line, never started
	_, _ = small.Write(data[:1000])
	_, _ = small.Write(data[1000:5000])
	want5k := md5.Sum(data[:5000])
	require.Equal(t, want5k[:], small.Sum().Sum(nil))
}
