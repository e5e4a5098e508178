package etcd_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hasplock/hasp/local"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers/etcd"
)

// TestLeaseRecycling pins what the lease pool costs and guarantees: a
// recycled lease that etcd still keeps for a whole TTL is reused without a
// keep-alive (two RPCs per acquire+release), one refreshed longer ago gets
// a keep-alive first, and etcd always keeps the key's lease at least until
// the hasp lease's expiry.
func TestLeaseRecycling(t *testing.T) {
	e, err := local.StartEmbedded(context.Background(), t.TempDir(), local.EmbeddedOptions{UnsafeNoFsync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	p := etcd.New(e.Client)
	t.Cleanup(func() { _ = p.Close() })
	ctx := context.Background()

	// cycle acquires and releases name, checking on the way that etcd keeps
	// the key's lease at least as long as the hasp lease; it returns the
	// RPCs spent.
	cycle := func(name string, ttl time.Duration) int64 {
		t.Helper()
		before := p.BackendRequests()
		l, err := p.Acquire(ctx, lock.AcquireRequest{Name: name, LeaseID: "l-" + name, TTL: ttl})
		require.NoError(t, err)
		assert.Equal(t, ttl, l.TTL, "the granted TTL is the asked one, whatever the etcd lease's slack")
		spent := p.BackendRequests() - before
		kv, err := e.Client.Get(ctx, etcd.DefaultPrefix+name)
		require.NoError(t, err)
		require.Len(t, kv.Kvs, 1)
		ttlResp, err := e.Client.TimeToLive(ctx, clientv3.LeaseID(kv.Kvs[0].Lease))
		require.NoError(t, err)
		// TimeToLive rounds the remaining time down to whole seconds.
		assert.GreaterOrEqual(t, time.Duration(ttlResp.TTL+1)*time.Second, time.Until(l.ExpiresAt),
			"etcd keeps the key's lease until the hasp lease's expiry at least")
		before = p.BackendRequests()
		require.NoError(t, p.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))
		return spent + p.BackendRequests() - before
	}

	assert.Equal(t, int64(3), cycle("a", 30*time.Second), "first cycle: grant, create, delete")
	for range 5 {
		assert.Equal(t, int64(2), cycle("a", 30*time.Second), "a recycled lease needs no keep-alive")
	}

	// A 1 s TTL has a 1 s slack: a lease idle for longer is kept alive
	// before it is reused.
	assert.Equal(t, int64(3), cycle("b", time.Second))
	assert.Equal(t, int64(2), cycle("b", time.Second))
	time.Sleep(1200 * time.Millisecond)
	// A keep-alive, create, delete; or a new grant besides, if the machine
	// stalled so long that the idle lease expired.
	assert.Greater(t, cycle("b", time.Second), int64(2), "a lease idle past its slack is refreshed before reuse")
}
