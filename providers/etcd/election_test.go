package etcd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hasplock/hasp/local"
	"github.com/hasplock/hasp/local/testbed/faults"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/providers/etcd"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/service"
)

// TestElectionThroughFaults runs the election (5 candidates, one paused
// past its TTL, watching observers) on two service instances whose etcd
// clients go through a fault-injecting TCP proxy: delayed chunks, reset
// connections, responses dropped after etcd applied the request, stalls.
func TestElectionThroughFaults(t *testing.T) {
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", launch.FreePort(t))
	e, err := local.StartEmbedded(context.Background(), t.TempDir(), local.EmbeddedOptions{ClientURL: clientURL, UnsafeNoFsync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	proxy, err := faults.NewTCPProxy(clientURL[len("http://"):])
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	var instances []*service.Service
	for range 2 {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + proxy.Addr()}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
		require.NoError(t, err)
		t.Cleanup(func() { _ = cli.Close() })
		p := etcd.New(cli)
		t.Cleanup(func() { _ = p.Close() })
		instances = append(instances, service.New(p, service.WithOpTimeout(2*time.Second)))
	}
	providertest.ElectionThroughFaults(t, instances, faults.Plan{Delay: 20 * time.Millisecond, DelayP: 0.05, ResetP: 0.002, DropResponseP: 0.005, Stall: 200 * time.Millisecond, StallP: 0.002}, proxy)
}
