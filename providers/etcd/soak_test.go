package etcd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hasplock/hasp/local"
	"github.com/hasplock/hasp/local/testbed/faults"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/providers/etcd"
	"github.com/hasplock/hasp/providers/providertest"
)

// TestSoak: two service instances with clocks ±250 ms, each with its own
// etcd client behind a fault-injecting TCP proxy (delays, resets, stalls,
// responses dropped after the request went through), and etcd restarted
// from its data directory every few seconds. Size: HASP_SOAK (make soak).
func TestSoak(t *testing.T) { soak(t, 1, providertest.SoakAcquires()) }

// TestSoakSemaphore: the same with semaphores of 3 permits (1,000
// acquires in make test; HASP_SOAK in make soak).
func TestSoakSemaphore(t *testing.T) { soak(t, 3, providertest.SoakAcquiresOr(1000)) }

func soak(t *testing.T, permits, acquires int) {
	dir := t.TempDir()
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", launch.FreePort(t))
	start := func() *local.Embedded {
		e, err := local.StartEmbedded(context.Background(), dir, local.EmbeddedOptions{ClientURL: clientURL, UnsafeNoFsync: true})
		require.NoError(t, err)
		return e
	}
	e := start()
	proxy, err := faults.NewTCPProxy(clientURL[len("http://"):])
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })

	var instances []providertest.Instance
	for _, skew := range []time.Duration{250 * time.Millisecond, -250 * time.Millisecond} {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + proxy.Addr()}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
		require.NoError(t, err)
		t.Cleanup(func() { _ = cli.Close() })
		c := &providertest.OffsetClock{}
		c.Set(skew)
		p := etcd.New(cli, etcd.WithClock(c))
		t.Cleanup(func() { _ = p.Close() })
		instances = append(instances, providertest.Instance{Provider: p, Skew: skew})
	}
	proxy.SetPlan(faults.Plan{Delay: 20 * time.Millisecond, DelayP: 0.02, ResetP: 0.001, DropResponseP: 0.002, Stall: 300 * time.Millisecond, StallP: 0.001})
	restarts := 0
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
				require.NoError(t, e.Close())
				e = start()
				restarts++
			}
		},
	})
	t.Cleanup(func() { _ = e.Close() })
	proxy.SetPlan(faults.Plan{})
	f := proxy.Counts()
	t.Logf("etcd soak (permits %d): %s; faults injected: %d delays, %d resets, %d dropped responses, %d stalls; %d etcd restarts",
		permits, res.String(), f.Delays, f.Resets, f.DroppedResponses, f.Stalls, restarts)
	assert.Empty(t, res.Violations, res.Report())
	assert.Positive(t, f.Total(), "faults were injected")
}
