package ingest

import (
	"testing"
	"time"
)

// TestRetryAfterCapped: a Retry-After in seconds or as a date is honoured,
// up to a day; one asking for years (or overflowing) stops nothing for
// longer than that.
func TestRetryAfterCapped(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{"Mon, 02 Mar 2026 15:00:00 GMT", time.Hour},
		{"86400000", 24 * time.Hour},
		{"99999999999999999999", 24 * time.Hour},
		{"-5", 0},
		{"soon", 0},
	} {
		if got := retryAfter(tc.in, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
