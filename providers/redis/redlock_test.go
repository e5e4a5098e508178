package redis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/redis"
	"github.com/hasplock/hasp/service"
)

// redlockSet is n redis-servers, their clients (counted on the wire) and
// a Redlock over them.
type redlockSet struct {
	srvs    []*launch.RedisServer
	clients []*goredis.Client
	wire    *wire
	p       *redis.Redlock
	s       *service.Service
}

func newRedlockSet(t *testing.T, n int, opts ...redis.Option) *redlockSet {
	t.Helper()
	rs := &redlockSet{wire: &wire{}}
	for range n {
		srv := launch.Redis(t)
		c := client(srv.Addr, rs.wire)
		t.Cleanup(func() { _ = c.Close() })
		rs.srvs, rs.clients = append(rs.srvs, srv), append(rs.clients, c)
	}
	var err error
	rs.p, err = redis.NewRedlock(context.Background(), rs.clients, opts...)
	require.NoError(t, err)
	rs.s = service.New(rs.p)
	return rs
}

// node returns a one-server provider on node i (same key prefix).
func (rs *redlockSet) node(t *testing.T, i int) *redis.Provider {
	t.Helper()
	p, err := redis.New(context.Background(), client(rs.srvs[i].Addr, nil))
	require.NoError(t, err)
	return p
}

func (rs *redlockSet) counters(t *testing.T, name string) []int64 {
	t.Helper()
	var out []int64
	for _, srv := range rs.srvs {
		c := client(srv.Addr, nil)
		v, err := c.HGet(context.Background(), redis.DefaultPrefix+name, "tok").Int64()
		_ = c.Close()
		require.NoError(t, err)
		out = append(out, v)
	}
	return out
}

// TestRedlockRequestCounts: one round trip to each node per operation
// when the nodes agree.
func TestRedlockRequestCounts(t *testing.T) {
	rs := newRedlockSet(t, 3)
	ctx := context.Background()
	count := func(f func()) int64 {
		w0 := rs.wire.writes.Load()
		f()
		return rs.wire.writes.Load() - w0
	}
	var l lock.Lease
	var err error
	for _, tt := range []struct {
		op string
		f  func()
	}{
		{"acquire", func() { l, err = rs.s.Acquire(ctx, lock.AcquireRequest{Name: "n"}); require.NoError(t, err) }},
		{"renew", func() {
			_, err = rs.s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID})
			require.NoError(t, err)
		}},
		{"held acquire", func() {
			_, err = rs.s.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
			require.ErrorIs(t, err, lock.ErrHeld)
		}},
		{"status", func() { _, err = rs.s.Status(ctx, "n"); require.NoError(t, err) }},
		{"release", func() { require.NoError(t, rs.s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID})) }},
	} {
		assert.Equal(t, int64(3), count(tt.f), "%s: one request to each of 3 nodes", tt.op)
	}
}

// TestRedlockTokenCommit: when the majority issued different tokens, the
// grant raises the others to the largest (one more round trip to those
// nodes only), so that every later majority issues more.
func TestRedlockTokenCommit(t *testing.T) {
	rs := newRedlockSet(t, 3)
	ctx := context.Background()
	ahead := providers.TokenBase(time.Now().Add(time.Hour))
	c := client(rs.srvs[0].Addr, nil)
	require.NoError(t, c.HSet(ctx, redis.DefaultPrefix+"n", "tok", ahead).Err())
	_ = c.Close()

	w0 := rs.wire.writes.Load()
	l, err := rs.s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
	require.NoError(t, err)
	assert.Equal(t, ahead+1, l.FencingToken, "the largest token of the majority")
	assert.Equal(t, int64(5), rs.wire.writes.Load()-w0, "3 acquires, then 2 commits")
	assert.Equal(t, []int64{ahead + 1, ahead + 1, ahead + 1}, rs.counters(t, "n"), "every granted node has seen the token")
	require.NoError(t, rs.s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}))

	// The next grant needs no commit, and any two nodes give more.
	rs.srvs[0].Kill()
	w0 = rs.wire.writes.Load()
	l2, err := rs.s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
	require.NoError(t, err)
	assert.Equal(t, ahead+2, l2.FencingToken, "greater, from the two other nodes")
	assert.LessOrEqual(t, rs.wire.writes.Load()-w0, int64(3), "no commit round")
}

// TestRedlockMinorityDown: with one of three nodes down every operation
// works; with two down none is granted (unavailable, never a false
// success); the nodes restart from their append-only files with the lease.
func TestRedlockMinorityDown(t *testing.T) {
	rs := newRedlockSet(t, 3)
	ctx := context.Background()
	l1, err := rs.s.Acquire(ctx, lock.AcquireRequest{Name: "n", TTL: 30 * time.Second, Owner: "one"})
	require.NoError(t, err)

	rs.srvs[2].Kill()
	_, err = rs.s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l1.LeaseID})
	require.NoError(t, err, "renew with a majority")
	st, err := rs.s.Status(ctx, "n")
	require.NoError(t, err)
	assert.Equal(t, "one", st.Holder.Owner)
	require.NoError(t, rs.s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l1.LeaseID}), "release with a majority")
	l2, err := rs.s.Acquire(ctx, lock.AcquireRequest{Name: "n", TTL: 30 * time.Second, Owner: "two"})
	require.NoError(t, err, "acquire with a majority")
	assert.Greater(t, l2.FencingToken, l1.FencingToken)
	require.NoError(t, rs.s.Ping(ctx))

	rs.srvs[1].Kill()
	_, err = rs.s.Acquire(ctx, lock.AcquireRequest{Name: "other"})
	assert.ErrorIs(t, err, lock.ErrUnavailable, "one node of three grants nothing")
	_, err = rs.s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l2.LeaseID})
	assert.ErrorIs(t, err, lock.ErrUnavailable, "renew on one node: unknown, not lost")
	// (A release of l2 now would release node 0 only and answer
	// unavailable: its outcome is partial, so it is not tried here.)
	assert.ErrorIs(t, rs.s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: providers.NewLeaseID()}), lock.ErrUnavailable,
		"one node says lost: not a majority, so unknown")
	_, err = rs.s.Status(ctx, "n")
	assert.ErrorIs(t, err, lock.ErrUnavailable)
	assert.ErrorIs(t, rs.s.Ping(ctx), lock.ErrUnavailable)

	rs.srvs[1].Restart(t)
	rs.srvs[2].Restart(t)
	// go-redis answers with its last dial error for up to a second after
	// its dials failed, until a background dial succeeds.
	require.Eventually(t, func() bool { st, err = rs.s.Status(ctx, "n"); return err == nil }, 5*time.Second, 50*time.Millisecond, "status: %v", err)
	assert.True(t, st.Held, "the lease survived in the append-only files")
	assert.Equal(t, l2.FencingToken, st.Holder.FencingToken)
	_, err = rs.s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l2.LeaseID})
	require.NoError(t, err)
	_, err = rs.s.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
	assert.ErrorIs(t, err, lock.ErrHeld)
}

// TestRedlockUndo: an acquire that does not reach a majority leaves its
// lease on no node, and names a holder only when that holder may hold a
// majority.
func TestRedlockUndo(t *testing.T) {
	rs := newRedlockSet(t, 3)
	ctx := context.Background()
	n0, n1, n2 := rs.node(t, 0), rs.node(t, 1), rs.node(t, 2)
	other := lock.AcquireRequest{Name: "n", Owner: "other", TTL: 30 * time.Second, LeaseID: providers.NewLeaseID()}

	// "other" holds nodes 0 and 1: a majority. The acquire gets node 2
	// only, undoes it, and names the holder.
	for _, p := range []*redis.Provider{n0, n1} {
		_, err := p.Acquire(ctx, other)
		require.NoError(t, err)
	}
	_, err := rs.s.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
	var held *lock.HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, "other", held.Holder.Owner)
	st, err := n2.Status(ctx, "n")
	require.NoError(t, err)
	assert.False(t, st.Held, "undone on the node it had been granted")

	// "other" releases node 1; node 2 is down: one grant, one holder, one
	// unknown. Nobody can be named; nothing is left behind.
	require.NoError(t, n1.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: other.LeaseID}))
	rs.srvs[2].Kill()
	_, err = rs.s.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
	require.ErrorIs(t, err, lock.ErrUnavailable)
	assert.NotErrorIs(t, err, lock.ErrHeld)
	st, err = n1.Status(ctx, "n")
	require.NoError(t, err)
	assert.False(t, st.Held, "undone on node 1")
}

// TestRedlockDurability: every node's persistence is checked; a node down
// at start is checked before it is first used.
func TestRedlockDurability(t *testing.T) {
	ctx := context.Background()
	a, b := launch.Redis(t), launch.Redis(t)
	bad := launch.Redis(t, "--appendonly", "no")
	store := "redlock://" + strings.Join([]string{a.Addr, b.Addr, bad.Addr}, ",")
	_, err := providers.Open(ctx, store)
	require.ErrorIs(t, err, redis.ErrNotDurable)
	assert.Contains(t, err.Error(), bad.Addr)
	p := open(t, store+"?durability=none")
	assert.Equal(t, "best effort", providers.GuaranteeOf(p))
	require.NoError(t, p.Close())

	c := launch.Redis(t, "--appendfsync", "always")
	c.Kill()
	p = open(t, "redlock://"+strings.Join([]string{a.Addr, b.Addr, c.Addr}, ","))
	t.Cleanup(func() { _ = p.Close() })
	assert.Equal(t, "durable: AOF appendfsync everysec on every node, majority 2 of 3 (1 not yet checked)", providers.GuaranteeOf(p))
	c.Restart(t)
	_, err = service.New(p).Acquire(ctx, lock.AcquireRequest{Name: "n"})
	require.NoError(t, err)
	assert.Equal(t, "durable: AOF appendfsync everysec on every node, majority 2 of 3", providers.GuaranteeOf(p))

	d := launch.Redis(t, "--appendonly", "no")
	d.Kill()
	p2 := open(t, "redlock://"+strings.Join([]string{a.Addr, b.Addr, d.Addr}, ","))
	t.Cleanup(func() { _ = p2.Close() })
	d.Restart(t)
	s := service.New(p2)
	for range 2 {
		_, err = s.Status(ctx, "n") // the first use checks d, which is refused for good
		require.NoError(t, err)
	}
	assert.Contains(t, providers.GuaranteeOf(p2), "(1 refused: no persistence, never used)")

	_, err = redis.NewRedlock(ctx, []*goredis.Client{client(a.Addr, nil), client(d.Addr, nil)})
	assert.ErrorContains(t, err, "at least 3")
}
