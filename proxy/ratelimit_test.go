package proxy

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRateLimiter(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	l := newRateLimiter(1) // 4 per 4-second window
	l.now = func() time.Time { return now }
	for i := range 4 {
		require.True(t, l.allow("ip-/a"), "request %d", i+1)
	}
	require.False(t, l.allow("ip-/a"), "the 5th in the window")
	require.True(t, l.allow("ip-/b"), "another path is counted apart")
	require.True(t, l.allow("other-/a"), "another address is counted apart")

	// Over the limit, every request starts the window again: 3 s later it is still refused.
	now = now.Add(3 * time.Second)
	require.False(t, l.allow("ip-/a"))
	now = now.Add(3 * time.Second)
	require.False(t, l.allow("ip-/a"), "3 s after the last refusal: still inside its window")
	now = now.Add(4 * time.Second)
	require.True(t, l.allow("ip-/a"), "a whole window without requests")
}

func TestRateLimiterBoundsItsKeys(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	l := newRateLimiter(5)
	l.now = func() time.Time { return now }
	for i := range maxRateKeys {
		require.True(t, l.allow(strconv.Itoa(i)))
	}
	require.False(t, l.allow("one more"), "a new key beyond the bound is refused")
	require.True(t, l.allow("7"), "counted keys go on")
	now = now.Add(rateWindow)
	require.True(t, l.allow("one more"), "expired keys are dropped")
	require.Len(t, l.slots, 1)
}
