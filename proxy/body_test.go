package proxy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCountItems(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]int{
		`[]`:                              0,
		`[ ]`:                             0,
		`["a"]`:                           1,
		`["a","b"]`:                       2,
		`[ "a" , "b" ]`:                   2,
		`["a,b","c]","{d,"]`:              3,
		`["\"","\\",","]`:                 3,
		`[["a","b"],{"c":1,"d":[2,3]},4]`: 3,
		`[null,true,1.5e3]`:               3,
	} {
		require.Equal(t, want, countItems([]byte(raw)), raw)
	}
}
