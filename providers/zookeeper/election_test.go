package zookeeper_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/faults"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/service"
)

// TestElectionThroughFaults runs the election (5 candidates, one paused
// past its TTL, observers on ZooKeeper watches) on three service
// instances, each with its own sessions, behind one fault-injecting TCP
// proxy to the server: delays, resets, answers dropped after the request
// went through (the connection closes: the client reconnects, and the
// provider drops and re-dials its watch session, ending every watch on it),
// stalls.
func TestElectionThroughFaults(t *testing.T) {
	zks := launch.SharedZooKeeper(t)
	proxy, err := faults.NewTCPProxy(zks.Addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	pfx := prefix(t)
	var instances []*service.Service
	for range 3 {
		instances = append(instances, service.New(open(t, proxy.Addr(), pfx), service.WithOpTimeout(2*time.Second)))
	}
	providertest.ElectionThroughFaults(t, instances, faults.Plan{Delay: 20 * time.Millisecond, DelayP: 0.05, ResetP: 0.01, DropResponseP: 0.02, Stall: 200 * time.Millisecond, StallP: 0.01}, proxy)
}
