package s3test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pgstorage/storage/blob/s3"
)

// TestStart: the helper other packages use gives a working bucket.
func TestStart(t *testing.T) {
	t.Parallel()
	cfg := Start(t)
	st, err := s3.New(t.Context(), cfg)
	require.NoError(t, err)
	require.NoError(t, st.Put(t.Context(), "k", strings.NewReader("hello"), 5))
	size, err := st.Size(t.Context(), "k")
	require.NoError(t, err)
	require.EqualValues(t, 5, size)
}

// TestStop: Stop ends the process and removes its directory, and may be called twice.
func TestStop(t *testing.T) {
	t.Parallel()
	s, err := StartServer()
	require.NoError(t, err)
	s.Stop()
	s.Stop()
	<-s.exited
	_, err = os.Stat(s.dir)
	require.ErrorIs(t, err, os.ErrNotExist)
}
