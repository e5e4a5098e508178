package spanner_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/faults"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/local/testbed/spanneremu"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/providers/spanner"
	"github.com/hasplock/hasp/service"
)

// TestElectionThroughFaults runs the election (5 candidates, one paused
// past its TTL, watching observers, which poll on Spanner) on three
// service instances (as three function instances), each with its own
// Spanner client behind one fault-injecting TCP proxy to the emulator:
// delays, resets, responses dropped after the request went through,
// stalls.
func TestElectionThroughFaults(t *testing.T) {
	e := launch.Spanner(t)
	db := database(t, e)
	proxy, err := faults.NewTCPProxy(e.Addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	var instances []*service.Service
	for range 3 {
		p, err := spanner.New(context.Background(), db, spanner.WithClientOptions(spanneremu.ClientOptions(proxy.Addr())...))
		require.NoError(t, err)
		t.Cleanup(func() { _ = p.Close() })
		instances = append(instances, service.New(p, service.WithOpTimeout(2*time.Second)))
	}
	providertest.ElectionThroughFaults(t, instances, faults.Plan{Delay: 20 * time.Millisecond, DelayP: 0.05, ResetP: 0.002, DropResponseP: 0.005, Stall: 200 * time.Millisecond, StallP: 0.005}, proxy)
}
