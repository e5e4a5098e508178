package zookeeper_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/faults"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/providers/zookeeper"
)

// TestSoak: two service instances with clocks +250 ms and -250 ms off
// (the skew check stays on: each is within its 1 s of the server's clock),
// each with its own ZooKeeper session behind a fault-injecting TCP proxy
// (delays, resets, stalls, answers dropped after the server applied the
// request), and the server killed and restarted from its data directory
// every 4 s. Size: HASP_SOAK (make soak).
func TestSoak(t *testing.T) { soak(t, 1, providertest.SoakAcquires()) }

// TestSoakSemaphore: the same with semaphores of 3 permits (2,000
// acquires in make test: enough for the server to be restarted at least
// once, as the soak checks).
func TestSoakSemaphore(t *testing.T) { soak(t, 3, providertest.SoakAcquiresOr(2000)) }

func soak(t *testing.T, permits, acquires int) {
	zks := launch.SharedZooKeeper(t)
	pfx := prefix(t)
	proxy, err := faults.NewTCPProxy(zks.Addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })

	var instances []providertest.Instance
	for _, skew := range []time.Duration{250 * time.Millisecond, -250 * time.Millisecond} {
		c := &providertest.OffsetClock{}
		c.Set(skew)
		p := open(t, proxy.Addr(), pfx, zookeeper.WithClock(c))
		instances = append(instances, providertest.Instance{Provider: p, Skew: skew})
	}
	proxy.SetPlan(faults.Plan{Delay: 20 * time.Millisecond, DelayP: 0.02, ResetP: 0.001, DropResponseP: 0.002, Stall: 300 * time.Millisecond, StallP: 0.001})
	var restarts atomic.Int64
	res := providertest.Soak(context.Background(), instances, providertest.SoakConfig{
		Acquires: acquires, Progress: providertest.ProgressLogger(t),
		TTL: 2 * time.Second, Permits: permits,
		Disturb: func(ctx context.Context) {
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(4 * time.Second):
				}
				if err := zks.Restart(); err != nil {
					t.Errorf("restart: %v", err)
					return
				}
				restarts.Add(1)
			}
		},
	})
	proxy.SetPlan(faults.Plan{})
	f := proxy.Counts()
	var requests int64
	for _, in := range instances {
		requests += in.Provider.(*zookeeper.Provider).BackendRequests()
	}
	t.Logf("zookeeper soak (permits %d): %s; faults injected: %d delays, %d resets, %d dropped responses, %d stalls; %d ZooKeeper restarts; %d requests",
		permits, res.String(), f.Delays, f.Resets, f.DroppedResponses, f.Stalls, restarts.Load(), requests)
	assert.Empty(t, res.Violations, res.Report())
	assert.Positive(t, f.Total(), "faults were injected")
	assert.Positive(t, restarts.Load(), "the server was restarted mid-soak")
}
