package main

import (
	"testing"
)

func TestParseByteSize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want byteSize
		bad  bool
	}{
		{in: "512", want: 512},
		{in: "64KiB", want: 64 << 10},
		{in: "96MiB", want: 96 << 20},
		{in: " 1.5 GiB ", want: 3 << 29},
		{in: "2GB", want: 2e9},
		{in: "10kB", want: 1e4},
		{in: "7B", want: 7},
		{in: "0", want: 0},
		{in: "", bad: true},
		{in: "MiB", bad: true},
		{in: "-1MiB", bad: true},
		{in: "NaN", bad: true},
		{in: "NaNMiB", bad: true},
		{in: "Inf", bad: true},
		{in: "1e30TiB", bad: true},
		{in: "9223372036854775807", bad: true}, // rounds to 2^63 as a float
		{in: "12 apples", bad: true},
	} {
		got, err := parseByteSize(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("parseByteSize(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"96MiB", "1.5GiB", "NaN", "-0", "1e18", "0x10MB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := parseByteSize(s)
		if err == nil && b < 0 {
			t.Fatalf("parseByteSize(%q) = %d", s, b)
		}
	})
}

// TestMemoryLimitFor: the default limit stays at its floor while the
// working set fits, and rises to the live heap with its headroom, plus
// the memory outside the heap, when it does not.
func TestMemoryLimitFor(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	for _, tc := range []struct {
		live, outside uint64
		want          int64
	}{
		{0, 0, defaultMemoryLimit},
		{40 * mib, 10 * mib, defaultMemoryLimit},            // 60 MiB of working set: the floor
		{60 * mib, 15 * mib, 90 * mib},                      // 60 × 1.25 + 15
		{400 * mib, 20 * mib, 520 * mib},                    // a large audience: 400 × 1.25 + 20
		{defaultMemoryLimit, 0, defaultMemoryLimit * 5 / 4}, // the live heap at the floor gets its quarter
	} {
		if got := memoryLimitFor(defaultMemoryLimit, tc.live, tc.outside); got != tc.want {
			t.Errorf("memoryLimitFor(live %d MiB, outside %d MiB) = %d MiB, want %d MiB", tc.live/mib, tc.outside/mib, got/mib, tc.want/mib)
		}
	}
}
