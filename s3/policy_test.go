package s3

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestContentLengthRange: a policy's content-length-range bounds sizes in bytes as its JSON
// numbers say, whatever their form: fractions round inwards, and bounds beyond int64 mean
// "larger than any upload" instead of wrapping to a negative size (which disabled the
// maximum, or the minimum).
func TestContentLengthRange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cond     string
		min, max int64
	}{
		{`["content-length-range",1,100]`, 1, 100},
		{`["content-length-range",0,0]`, 0, 0},
		{`["content-length-range",1.0,1e2]`, 1, 100},
		{`["content-length-range",0.5,1.5]`, 1, 1},
		{`["content-length-range",0,1e19]`, 0, math.MaxInt64},
		{`["content-length-range",1e19,1e300]`, math.MaxInt64, math.MaxInt64},
		{`["content-length-range",0,9223372036854775807]`, 0, math.MaxInt64},
	} {
		pol := policy{maxSize: -1}
		require.Nil(t, applyCondition([]byte(tc.cond), map[string]string{}, map[string]bool{}, &pol), tc.cond)
		require.Equal(t, policy{minSize: tc.min, maxSize: tc.max}, pol, tc.cond)
	}
	for _, cond := range []string{`["content-length-range",-1,10]`, `["content-length-range",5,1]`,
		`["content-length-range","1","10"]`, `["content-length-range",0.2,0.8]`} {
		pol := policy{maxSize: -1}
		require.Equal(t, errPolicyCondition, applyCondition([]byte(cond), map[string]string{}, map[string]bool{}, &pol), cond)
	}
}
