package providertest

import (
	"os"
	"strconv"
)

// SoakAcquires is the size of a soak: HASP_SOAK if set (make soak sets it
// to 100000), else the short version's 2000 that make test runs.
func SoakAcquires() int { return SoakAcquiresOr(2000) }

// SoakAcquiresOr is the size of a soak: HASP_SOAK if set, else short, the
// size make test runs of a slow configuration.
func SoakAcquiresOr(short int) int {
	if n, err := strconv.Atoi(os.Getenv("HASP_SOAK")); err == nil && n > 0 {
		return n
	}
	return short
}

// ProgressLogger returns a SoakConfig.Progress that logs to t.
func ProgressLogger(t interface{ Logf(string, ...any) }) func(acquires, violations int) {
	return func(a, v int) { t.Logf("soak progress: %d acquires, %d violations so far", a, v) }
}
