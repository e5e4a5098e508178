package etcd_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/etcd"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/service"
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

// TestPermitRequestCounts pins what semaphores cost on etcd: an acquire,
// a renew and a release of a permit are one read and one transaction
// each; a plain acquire of a busy table costs what a held mutex's does.
func TestPermitRequestCounts(t *testing.T) {
	e, err := local.StartEmbedded(context.Background(), t.TempDir(), local.EmbeddedOptions{UnsafeNoFsync: true, ClientURL: "http://127.0.0.1:0"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	p := etcd.New(e.Client)
	t.Cleanup(func() { _ = p.Close() })
	s := service.New(p)
	ctx := context.Background()
	spent := func(f func()) int64 {
		before := p.BackendRequests()
		f()
		return p.BackendRequests() - before
	}
	var l lock.Lease
	assert.Equal(t, int64(2), spent(func() {
		l, err = s.Acquire(ctx, lock.AcquireRequest{Name: "sem", Permits: 3})
		require.NoError(t, err)
	}), "acquire a permit")
	assert.Equal(t, int64(2), spent(func() {
		_, err = s.Renew(ctx, lock.RenewRequest{Name: "sem", LeaseID: l.LeaseID})
		require.NoError(t, err)
	}), "renew a permit")
	assert.Equal(t, int64(2), spent(func() {
		_, err = s.Acquire(ctx, lock.AcquireRequest{Name: "sem"})
		require.ErrorIs(t, err, lock.ErrPermitsMismatch)
	}), "a plain acquire of a busy table: as of a held mutex (the pooled lease's keep-alive, one transaction)")
	assert.Equal(t, int64(2), spent(func() {
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "sem", LeaseID: l.LeaseID}))
	}), "release a permit")
}
