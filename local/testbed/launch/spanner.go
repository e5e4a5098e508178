package launch

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hasplock/hasp/local/testbed/spanneremu"
	spannerp "github.com/hasplock/hasp/providers/spanner"
)

// Spanner starts the Cloud Spanner emulator (on the machine image) on a
// free loopback port and returns its address (host:port). It turns off
// multiplexed sessions for this process, which the emulator rejects under
// concurrency (see spanneremu).
func Spanner(t testing.TB) *spanneremu.Emulator {
	t.Helper()
	_, err := spanneremu.Find()
	Require(t, !errors.Is(err, spanneremu.ErrNotInstalled), "the Cloud Spanner emulator", "Debian package google-cloud-cli-spanner-emulator, on the machine image")
	logs := &syncWriter{b: &strings.Builder{}}
	e, err := spanneremu.Start(context.Background(), logs)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	t.Cleanup(e.Stop)
	spannerp.EmulatorCompat()
	return e
}
