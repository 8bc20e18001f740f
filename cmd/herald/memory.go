package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// defaultMemoryLimit is serve's soft memory limit when neither the
// configuration nor GOMEMLIMIT sets one. It is a floor, not a cap (see
// followWorkingSet). Measured with `herald serve` fanning one update out
// to 10 000 webhooks on 1 000 hosts (BenchmarkServe), embedded NATS
// server: with 64 MiB and a quarter of headroom, peak RSS 93–94 MB to an
// instant receiver and 92 MB at 200 ms (86 MB against a NATS server of
// its own); 72 MiB held 96–101 MB and 80 MiB 103–107 MB, for up to a
// tenth more of the instant receiver's rate and none of the slow one's.
const defaultMemoryLimit = 64 << 20

// workingSetHeadroom is how far above the live heap the default limit
// rises when the live heap outgrows the floor, as a fraction of it: the
// collector then runs when the heap has grown by a quarter, instead of
// continuously (Go's limit costs up to half the CPU when the live heap
// exceeds it).
const workingSetHeadroom = 0.25

// byteSize is a number of bytes written with an optional unit: 512, 64KiB,
// 96MiB, 2GiB (also kB, MB, GB in powers of ten).
type byteSize int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

// parseByteSize reads a byteSize.
func parseByteSize(text string) (byteSize, error) {
	s := strings.TrimSpace(text)
	mult := int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || !(n >= 0) || math.IsInf(n, 0) || n*float64(mult) >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is not a size (e.g. 96MiB, 2GiB)", strings.TrimSpace(text))
	}
	return byteSize(n * float64(mult)), nil
}

// UnmarshalText reads a byteSize from a configuration file.
func (b *byteSize) UnmarshalText(text []byte) error {
	v, err := parseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String writes a byteSize in MiB.
func (b byteSize) String() string { return fmt.Sprintf("%.0fMiB", float64(b)/(1<<20)) }

// applyMemoryLimit sets the Go runtime's soft memory limit: the
// configured one (memory_limit, HERALD_MEMORY_LIMIT, --memory-limit), else
// GOMEMLIMIT when set (the runtime read it already), else
// defaultMemoryLimit. The garbage collector works harder as the process
// nears it, instead of letting the heap double before each collection; it
// is soft: a working set above it grows past it (and costs collection
// time) rather than fail. A configured limit (a container's) is kept as it
// is; the default one follows the working set (followWorkingSet) and
// applyMemoryLimit then returns true.
func applyMemoryLimit(configured byteSize, logger *slog.Logger) (follow bool) {
	switch {
	case configured > 0:
		debug.SetMemoryLimit(int64(configured))
	case os.Getenv("GOMEMLIMIT") != "":
		return false
	default:
		debug.SetMemoryLimit(defaultMemoryLimit)
		configured, follow = defaultMemoryLimit, true
	}
	logger.Debug("memory limit", "limit", configured.String(), "follows_working_set", follow)
	return follow
}

// memoryLimitFor returns the limit the default one becomes for a live heap
// of live bytes and outside bytes of Go memory outside the heap (stacks,
// the runtime's metadata): the floor, or the working set with its
// headroom when that is larger.
func memoryLimitFor(floor int64, live, outside uint64) int64 {
	return max(floor, int64(float64(live)*(1+workingSetHeadroom))+int64(outside))
}

// followWorkingSet keeps the default limit a floor until ctx ends: every
// 200 ms it sets the limit to memoryLimitFor the live heap of the last
// collection (every second, 2 048 webhook sends in flight delivered a
// third less in a three-second run: the limit caught up late), so a small working set stays near the floor while a large
// one (a big audience, a long backlog) gets headroom instead of a
// collector running without pause. Measured with 100 000 webhooks at
// 200 ms: a fixed 96 MiB limit spent half the CPU collecting and delivered
// 2 944/s; this one, 4 500/s and more (README, Benchmarks).
func followWorkingSet(ctx context.Context, floor int64, logger *slog.Logger) {
	samples := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	current := floor
	v := make([]uint64, len(samples))
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		metrics.Read(samples)
		for i, s := range samples {
			if s.Value.Kind() == metrics.KindUint64 {
				v[i] = s.Value.Uint64()
			}
		}
		heap := v[2] + v[3] + v[4] + v[5]
		var outside uint64
		if v[1] > heap {
			outside = v[1] - heap
		}
		want := memoryLimitFor(floor, v[0], outside)
		if d := want - current; d > current/16 || -d > current/16 {
			debug.SetMemoryLimit(want)
			logger.Debug("memory limit follows the working set", "limit", byteSize(want).String(), "live_heap", byteSize(v[0]).String())
			current = want
		}
	}
}
