package etcd_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/etcd"
	"github.com/hasplock/hasp/providers/providertest"
)

// TestConformance runs the suite against a real etcd server (embedded,
// over etcd's gRPC API), restarting it from its data directory.
func TestConformance(t *testing.T) {
	dir := t.TempDir()
	start := func() *local.Embedded {
		e, err := local.StartEmbedded(context.Background(), dir, local.EmbeddedOptions{UnsafeNoFsync: true, ClientURL: "http://127.0.0.1:0"})
		require.NoError(t, err)
		return e
	}
	var mu sync.Mutex
	e := start()
	t.Cleanup(func() { mu.Lock(); defer mu.Unlock(); _ = e.Close() })
	current := func() *local.Embedded { mu.Lock(); defer mu.Unlock(); return e }
	providertest.Run(t, providertest.Harness{
		Open: func(t *testing.T) providers.Provider { return etcd.New(current().Client) },
		OpenWithClock: func(t *testing.T, c lock.Clock) providers.Provider {
			return etcd.New(current().Client, etcd.WithClock(c))
		},
		Restart: func(t *testing.T) {
			mu.Lock()
			defer mu.Unlock()
			require.NoError(t, e.Close())
			e = start()
		},
	})
}
