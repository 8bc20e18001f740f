package main

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// defaultMemoryLimit is serve's soft memory limit when neither the
// configuration nor GOMEMLIMIT sets one: what Herald needs for an audience
// of up to about 250 000 subscribers with its default concurrency.
const defaultMemoryLimit = 96 << 20

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
func parseByteSize(s string) (byteSize, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 || math.IsInf(n, 0) || n*float64(mult) > math.MaxInt64 {
		return 0, fmt.Errorf("%q is not a size (e.g. 96MiB, 2GiB)", s)
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
// nears it, instead of letting the heap double before each collection;
// it is soft: a working set above it grows past it (and costs collection
// time) rather than fail.
func applyMemoryLimit(configured byteSize, logger *slog.Logger) {
	switch {
	case configured > 0:
		debug.SetMemoryLimit(int64(configured))
	case os.Getenv("GOMEMLIMIT") != "":
		return
	default:
		debug.SetMemoryLimit(defaultMemoryLimit)
		configured = defaultMemoryLimit
	}
	logger.Debug("memory limit", "limit", configured.String())
}
