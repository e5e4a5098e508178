package zookeeper_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/providers/zookeeper"
	"github.com/hasplock/hasp/service"
)

// harness runs the suite on the shared server, under a prefix of its own,
// restarting the server (SIGKILL, then a start from its data directory)
// for the suite's restart test.
func harness(t *testing.T, opts ...zookeeper.Option) providertest.Harness {
	zks := launch.SharedZooKeeper(t)
	pfx := prefix(t)
	return providertest.Harness{
		Open: func(t *testing.T) providers.Provider { return open(t, zks.Addr, pfx, opts...) },
		// The suite moves the clock 6 s: far beyond the skew check, which
		// TestClockSkew covers.
		OpenWithClock: func(t *testing.T, c lock.Clock) providers.Provider {
			return open(t, zks.Addr, pfx, append(opts, zookeeper.WithClock(c), zookeeper.WithMaxClockSkew(0))...)
		},
		Restart:    func(t *testing.T) { require.NoError(t, zks.Restart()) },
		Contention: providertest.ContentionConfig{Goroutines: 8, Names: 3, Acquires: 2000},
	}
}

// TestConformance runs the conformance suite and the contention checker
// against a real ZooKeeper 3.8 server (standalone, on loopback).
func TestConformance(t *testing.T) {
	providertest.Run(t, harness(t))
}

// TestConformanceNoCache: the same without the version cache, so that
// every operation decides on a fresh read.
func TestConformanceNoCache(t *testing.T) {
	providertest.Run(t, harness(t, zookeeper.WithVersionCache(0)))
}

// TestRequestCounts pins the requests per operation, counted on the wire
// by opcode and by the provider's own counter.
func TestRequestCounts(t *testing.T) {
	zks := launch.SharedZooKeeper(t)
	wire := newWireProxy(t, zks.Addr)
	pfx := prefix(t)
	p, q := open(t, wire.addr(), pfx), open(t, wire.addr(), pfx) // two service instances
	s, sq := service.New(p), service.New(q)
	ctx := context.Background()
	require.NoError(t, p.Provision(ctx))
	step := func(t *testing.T, want map[string]int, prov *zookeeper.Provider, before int64) {
		t.Helper()
		n := 0
		for _, v := range want {
			n += v
		}
		assert.Equal(t, want, wire.reset())
		assert.Equal(t, int64(n), prov.BackendRequests()-before, "the provider counts the same requests")
	}
	wire.reset()

	n := p.BackendRequests()
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
	require.NoError(t, err)
	step(t, map[string]int{"get": 1, "multi": 1}, p, n)

	for range 5 {
		n = p.BackendRequests()
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}))
		l, err = s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
		require.NoError(t, err)
		step(t, map[string]int{"set": 2}, p, n)
	}

	n = p.BackendRequests()
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID})
	require.NoError(t, err)
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID, TTL: 5 * time.Second})
	require.NoError(t, err)
	step(t, map[string]int{"set": 2}, p, n)

	// Another instance knows no version: a read, then the write.
	n = q.BackendRequests()
	_, err = sq.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID})
	require.NoError(t, err)
	step(t, map[string]int{"get": 1, "set": 1}, q, n)

	// A held lock costs one read, even from a remembered version (which
	// may be out of date).
	for range 2 {
		n = q.BackendRequests()
		_, err = sq.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
		require.ErrorIs(t, err, lock.ErrHeld)
		step(t, map[string]int{"get": 1}, q, n)
	}

	// p's version is out of date (q renewed): its release is refused by
	// ZooKeeper, reads, and writes again.
	n = p.BackendRequests()
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}))
	step(t, map[string]int{"set": 2, "get": 1}, p, n)

	// q remembers the lock held: it reads, finds it free, writes.
	n = q.BackendRequests()
	lq, err := sq.Acquire(ctx, lock.AcquireRequest{Name: "n"})
	require.NoError(t, err)
	assert.Greater(t, lq.FencingToken, l.FencingToken)
	step(t, map[string]int{"get": 1, "set": 1}, q, n)

	n = p.BackendRequests()
	st, err := s.Status(ctx, "n")
	require.NoError(t, err)
	assert.True(t, st.Held)
	require.NoError(t, p.Ping(ctx))
	step(t, map[string]int{"get": 1, "exists": 1}, p, n)

	// lease_lost is the leader's word: a read, a sync, a read.
	n = p.BackendRequests()
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID})
	require.ErrorIs(t, err, lock.ErrLeaseLost)
	step(t, map[string]int{"get": 2, "sync": 1}, p, n)

	// A page of a listing: the children of the prefix, then a read of
	// each candidate.
	n = p.BackendRequests()
	items, next, err := s.List(ctx, "", 10, "")
	require.NoError(t, err)
	assert.Empty(t, next)
	require.Len(t, items, 1)
	assert.Equal(t, lq.FencingToken, items[0].Holder.FencingToken)
	step(t, map[string]int{"children2": 1, "get": 1}, p, n)
}

// TestList: names come in byte order, decoded from their znodes ('/',
// "." and ".."); a page costs one children read and at most the read
// budget of gets, never more than limit held locks need; a page whose
// budget is spent on free names ends with a continuation, even empty;
// znodes that are not hasp's are skipped.
func TestList(t *testing.T) {
	zks := launch.SharedZooKeeper(t)
	wire := newWireProxy(t, zks.Addr)
	pfx := prefix(t)
	p := open(t, wire.addr(), pfx, zookeeper.WithListReadBudget(3))
	s := service.New(p)
	ctx := context.Background()

	// No prefix znode yet: an empty, complete listing.
	items, next, err := p.List(ctx, "", 10, "")
	require.NoError(t, err)
	assert.Empty(t, items)
	assert.Empty(t, next)

	held := []string{"b", "a/c", "a/b", "a//b", "a/", "a", "..", "."}
	leases := map[string]lock.Lease{}
	for _, n := range held {
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: n, Owner: "o" + n, Metadata: "m" + n, TTL: time.Minute})
		require.NoError(t, err)
		leases[n] = l
	}
	for i := range 4 {
		n := "a/free" + strconv.Itoa(i)
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: n})
		require.NoError(t, err)
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: n, LeaseID: l.LeaseID}))
	}
	conn := dial(t, zks.Addr)
	_, err = conn.Create(pfx+"/foreign", []byte("not hasp"), 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	_, err = conn.Create(pfx+"/x%41", nil, 0, zk.WorldACL(zk.PermAll)) // no lock name maps to it
	require.NoError(t, err)

	type page struct {
		names []string
		gets  int
	}
	list := func(prefix string, limit int) []page {
		t.Helper()
		var pages []page
		after := ""
		for {
			require.Less(t, len(pages), 20, "the listing ends")
			wire.reset()
			before := p.BackendRequests()
			items, next, err := p.List(ctx, prefix, limit, after)
			require.NoError(t, err)
			counts := wire.reset()
			assert.Equal(t, 1, counts["children2"], "one children read a page")
			assert.LessOrEqual(t, counts["get"], 3, "the read budget")
			pg := page{gets: counts["get"]}
			delete(counts, "children2")
			delete(counts, "get")
			assert.Empty(t, counts, "nothing but children and get")
			assert.Equal(t, int64(1+pg.gets), p.BackendRequests()-before, "the provider counts the same requests")
			for _, st := range items {
				l := leases[st.Name]
				assert.Equal(t, lock.Status{Name: st.Name, Held: true, Holder: lock.Holder{
					Owner: l.Owner, FencingToken: l.FencingToken, ExpiresAt: l.ExpiresAt, Metadata: l.Metadata,
				}}, st)
				pg.names = append(pg.names, st.Name)
			}
			pages = append(pages, pg)
			if next == "" {
				return pages
			}
			after = next
		}
	}

	assert.Equal(t, []page{
		{[]string{"a/", "a//b"}, 2},
		{[]string{"a/b", "a/c"}, 2},
		{nil, 3}, // a/free0..2: the budget is spent
		{nil, 1}, // a/free3
	}, list("a/", 2))

	var all []string
	for _, pg := range list("", 2) {
		assert.LessOrEqual(t, len(pg.names), 2)
		all = append(all, pg.names...)
	}
	assert.Equal(t, []string{".", "..", "a", "a/", "a//b", "a/b", "a/c", "b"}, all, "every held name once, in byte order")

	// Never more reads than limit held locks need.
	assert.Equal(t, []page{{[]string{"b"}, 1}}, list("b", 1000))
	assert.Equal(t, []page{
		{[]string{"a"}, 1}, {[]string{"a/"}, 1}, {[]string{"a//b"}, 1}, {[]string{"a/b"}, 1}, {[]string{"a/c"}, 1},
		{nil, 3}, {nil, 1},
	}, list("a", 1))

	// A continuation outside the prefix is no page token of this listing.
	_, _, err = p.List(ctx, "a/", 2, "b")
	require.ErrorIs(t, err, lock.ErrInvalidArgument)
	_, _, err = s.List(ctx, "a/", 2, "YQ") // "a"
	require.ErrorIs(t, err, lock.ErrInvalidArgument)
}

// TestWaitersWatch: a waiting acquire sets one watch and sends nothing
// more while the holder keeps the lock, and is handed the lock as soon as
// it is released (no polling).
func TestWaitersWatch(t *testing.T) {
	zks := launch.SharedZooKeeper(t)
	pfx := prefix(t)
	holder, waiter := open(t, zks.Addr, pfx), open(t, zks.Addr, pfx)
	ctx := context.Background()
	l, err := service.New(holder).Acquire(ctx, lock.AcquireRequest{Name: "w", TTL: 20 * time.Second})
	require.NoError(t, err)
	before := waiter.BackendRequests()
	type result struct {
		l   lock.Lease
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		l, err := service.New(waiter).Acquire(ctx, lock.AcquireRequest{Name: "w", Wait: 10 * time.Second})
		done <- result{l, err, time.Now()}
	}()
	time.Sleep(1500 * time.Millisecond)
	assert.Equal(t, int64(2), waiter.BackendRequests()-before, "1.5 s of waiting: one read (held) and one watch (GetW), no polling")
	released := time.Now()
	require.NoError(t, service.New(holder).Release(ctx, lock.ReleaseRequest{Name: "w", LeaseID: l.LeaseID}))
	r := <-done
	require.NoError(t, r.err)
	assert.Greater(t, r.l.FencingToken, l.FencingToken)
	assert.Less(t, r.at.Sub(released), 500*time.Millisecond, "woken by the watch")
	assert.Equal(t, int64(4), waiter.BackendRequests()-before, "then a read with a new watch, and the acquire's write")
}

// TestWaitFollowsRenewals: a waiter's timer follows the holder's renewals
// (seen through the watch) and does not take the lock at the first
// expiry it saw.
func TestWaitFollowsRenewals(t *testing.T) {
	zks := launch.SharedZooKeeper(t)
	pfx := prefix(t)
	hs, ws := service.New(open(t, zks.Addr, pfx)), service.New(open(t, zks.Addr, pfx))
	ctx := context.Background()
	l, err := hs.Acquire(ctx, lock.AcquireRequest{Name: "r", TTL: 2 * time.Second})
	require.NoError(t, err)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
				_, _ = hs.Renew(ctx, lock.RenewRequest{Name: "r", LeaseID: l.LeaseID})
			}
		}
	}()
	start := time.Now()
	_, err = ws.Acquire(ctx, lock.AcquireRequest{Name: "r", Wait: 4 * time.Second})
	close(stop)
	wg.Wait()
	require.ErrorIs(t, err, lock.ErrHeld, "the holder kept renewing")
	assert.GreaterOrEqual(t, time.Since(start), 4*time.Second)
}

// TestLostAnswers: the answer to each kind of write is dropped after
// ZooKeeper applied it (the connection closes before it passes). The
// client fails the request; the provider reads the znode, finds its own
// write, and answers as if the answer had arrived: never a lease it does
// not hold, never a false lease_lost.
func TestLostAnswers(t *testing.T) {
	zks := launch.SharedZooKeeper(t)
	wire := newWireProxy(t, zks.Addr)
	pfx := prefix(t)
	p := open(t, wire.addr(), pfx)
	other := service.New(open(t, zks.Addr, pfx))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, p.Provision(ctx))
	s := service.New(p)

	wire.dropAnswer("multi") // the create of a new lock's znode
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "lost", TTL: 30 * time.Second})
	require.NoError(t, err, "the acquire's write took place")
	require.Equal(t, int64(1), wire.dropped.Load())
	st, err := other.Status(ctx, "lost")
	require.NoError(t, err)
	assert.Equal(t, l.FencingToken, st.Holder.FencingToken)

	wire.dropAnswer("set")
	r, err := s.Renew(ctx, lock.RenewRequest{Name: "lost", LeaseID: l.LeaseID, TTL: 40 * time.Second})
	require.NoError(t, err, "the renew's write took place")
	require.Equal(t, int64(2), wire.dropped.Load())
	st, err = other.Status(ctx, "lost")
	require.NoError(t, err)
	assert.Equal(t, r.ExpiresAt, st.Holder.ExpiresAt)

	wire.dropAnswer("set")
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "lost", LeaseID: l.LeaseID}), "the release took place: released, not lease_lost")
	require.Equal(t, int64(3), wire.dropped.Load())
	st, err = other.Status(ctx, "lost")
	require.NoError(t, err)
	assert.False(t, st.Held)
	require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: "lost", LeaseID: l.LeaseID}), lock.ErrLeaseLost, "a second release of the lease")

	wire.dropAnswer("set") // an acquire from the remembered free version
	l2, err := s.Acquire(ctx, lock.AcquireRequest{Name: "lost", TTL: 30 * time.Second})
	require.NoError(t, err)
	require.Equal(t, int64(4), wire.dropped.Load())
	assert.Greater(t, l2.FencingToken, l.FencingToken)
	_, err = other.TryAcquire(ctx, lock.AcquireRequest{Name: "lost"})
	require.ErrorIs(t, err, lock.ErrHeld)
}

// TestUnknownOutcome: when the answer is lost and the call's context
// ends before the znode could be read, the outcome is unknown:
// unavailable, never success nor lease_lost (here the release did take
// place).
func TestUnknownOutcome(t *testing.T) {
	zks := launch.SharedZooKeeper(t)
	wire := newWireProxy(t, zks.Addr)
	pfx := prefix(t)
	p := open(t, wire.addr(), pfx)
	ctx := context.Background()
	require.NoError(t, p.Provision(ctx))
	l, err := service.New(p).Acquire(ctx, lock.AcquireRequest{Name: "u", TTL: 30 * time.Second})
	require.NoError(t, err)
	cctx, cancel := context.WithCancel(ctx)
	wire.dropAnswerThen("set", cancel) // the context ends as the write reaches the server
	err = p.Release(cctx, lock.ReleaseRequest{Name: "u", LeaseID: l.LeaseID})
	require.ErrorIs(t, err, lock.ErrUnavailable)
	assert.NotErrorIs(t, err, lock.ErrLeaseLost)
	// The connection the answer was dropped on closes; the client opens
	// another.
	require.Eventually(t, func() bool { return p.Ping(ctx) == nil }, 10*time.Second, 10*time.Millisecond)
	st, err := p.Status(ctx, "u")
	require.NoError(t, err)
	assert.False(t, st.Held, "the release took place all the same")
}

// TestClockSkew shows the clock argument of the package documentation.
// Two instances +250 ms and -250 ms off real time (the soak's skew): a
// lease granted by the slow one can be taken over by the fast one at most
// 500 ms before its TTL has passed in real time, never earlier. An
// instance whose clock is 3 s off the ZooKeeper leader's is refused, by
// the mtime of its own writes; with the check off it grants.
func TestClockSkew(t *testing.T) {
	zks := launch.SharedZooKeeper(t)
	pfx := prefix(t)
	ctx := context.Background()
	clock := func(d time.Duration) *providertest.OffsetClock {
		c := &providertest.OffsetClock{}
		c.Set(d)
		return c
	}
	slow := service.New(open(t, zks.Addr, pfx, zookeeper.WithClock(clock(-250*time.Millisecond))))
	fast := service.New(open(t, zks.Addr, pfx, zookeeper.WithClock(clock(250*time.Millisecond))))
	sent := time.Now()
	l, err := slow.Acquire(ctx, lock.AcquireRequest{Name: "skew", TTL: 2 * time.Second})
	require.NoError(t, err)
	var taken time.Time
	for {
		_, err := fast.TryAcquire(ctx, lock.AcquireRequest{Name: "skew"})
		if err == nil {
			taken = time.Now()
			break
		}
		require.ErrorIs(t, err, lock.ErrHeld)
		time.Sleep(5 * time.Millisecond)
	}
	early := sent.Add(l.TTL).Sub(taken)
	t.Logf("taken over %s before the TTL passed in real time (skew between the instances: 500 ms)", early.Round(time.Millisecond))
	assert.LessOrEqual(t, early, 500*time.Millisecond+5*time.Millisecond, "never earlier than the skew allows")
	assert.Greater(t, early, 250*time.Millisecond, "the fast instance does take over early, by about the skew")

	off := open(t, zks.Addr, pfx, zookeeper.WithClock(clock(3*time.Second)))
	_, err = service.New(off).Acquire(ctx, lock.AcquireRequest{Name: "skew-far"})
	require.ErrorIs(t, err, lock.ErrUnavailable)
	require.ErrorIs(t, err, zookeeper.ErrClockSkew)
	assert.Contains(t, err.Error(), "allowed: 1s")
	// A sane instance's lease cannot be renewed through it either.
	ls, err := slow.Acquire(ctx, lock.AcquireRequest{Name: "skew-renew"})
	require.NoError(t, err)
	_, err = service.New(off).Renew(ctx, lock.RenewRequest{Name: "skew-renew", LeaseID: ls.LeaseID})
	require.ErrorIs(t, err, zookeeper.ErrClockSkew)
	behind := open(t, zks.Addr, pfx, zookeeper.WithClock(clock(-3*time.Second)))
	_, err = service.New(behind).Acquire(ctx, lock.AcquireRequest{Name: "skew-behind"})
	require.ErrorIs(t, err, zookeeper.ErrClockSkew)

	unchecked := open(t, zks.Addr, pfx, zookeeper.WithClock(clock(3*time.Second)), zookeeper.WithMaxClockSkew(0))
	_, err = service.New(unchecked).Acquire(ctx, lock.AcquireRequest{Name: "skew-unchecked"})
	require.NoError(t, err, "max_skew=0 turns the check off")
}

// TestNames: lock names that are not valid znode names as they stand
// ('/', ".", "..") map to distinct znodes.
func TestNames(t *testing.T) {
	zks := launch.SharedZooKeeper(t)
	pfx := prefix(t)
	s := service.New(open(t, zks.Addr, pfx))
	ctx := context.Background()
	names := []string{"a", "a/b", "a//b", "/a", "a/", ".", "..", "...", "a/./b", "a/../b", "%2F"[1:], "x:y@z=1+2~"}
	leases := map[string]lock.Lease{}
	for _, n := range names {
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: n, Owner: n})
		require.NoError(t, err, n)
		leases[n] = l
	}
	for _, n := range names {
		st, err := s.Status(ctx, n)
		require.NoError(t, err)
		assert.Equal(t, n, st.Holder.Owner, "each name is its own znode")
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: n, LeaseID: leases[n].LeaseID}))
	}
	conn := dial(t, zks.Addr)
	children, _, err := conn.Children(pfx)
	require.NoError(t, err)
	assert.Len(t, children, len(names))
}

// TestZnodeData: the znode holds the lease id's hash, never the id, and
// keeps the token counter after a release.
func TestZnodeData(t *testing.T) {
	zks := launch.SharedZooKeeper(t)
	pfx := prefix(t)
	s := service.New(open(t, zks.Addr, pfx))
	ctx := context.Background()
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "d", Owner: "o", Metadata: "m", TTL: 5 * time.Second})
	require.NoError(t, err)
	conn := dial(t, zks.Addr)
	data, st, err := conn.Get(pfx + "/d")
	require.NoError(t, err)
	assert.Zero(t, st.EphemeralOwner, "persistent")
	assert.NotContains(t, string(data), l.LeaseID)
	var rec map[string]any
	require.NoError(t, json.Unmarshal(data, &rec))
	assert.Equal(t, map[string]any{
		"v": 1.0, "name": "d", "token": float64(l.FencingToken), "lease": providers.HashLeaseID(l.LeaseID),
		"owner": "o", "md": "m", "exp_ms": float64(l.ExpiresAt.UnixMilli()), "ttl_ms": 5000.0,
	}, rec)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "d", LeaseID: l.LeaseID}))
	data, _, err = conn.Get(pfx + "/d")
	require.NoError(t, err)
	rec = nil
	require.NoError(t, json.Unmarshal(data, &rec))
	assert.Equal(t, float64(l.FencingToken), rec["token"])
	assert.NotContains(t, rec, "lease")
	assert.Contains(t, rec, "rel")
}

// TestTokensAfterDelete: a lock's znode deleted by hand (never by hasp)
// is created again with a counter from the clock, above the old tokens.
func TestTokensAfterDelete(t *testing.T) {
	zks := launch.SharedZooKeeper(t)
	pfx := prefix(t)
	p := open(t, zks.Addr, pfx)
	s := service.New(p)
	ctx := context.Background()
	var last int64
	for range 20 {
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "del"})
		require.NoError(t, err)
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "del", LeaseID: l.LeaseID}))
		last = l.FencingToken
	}
	conn := dial(t, zks.Addr)
	require.NoError(t, conn.Delete(pfx+"/del", -1))
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "del"})
	require.NoError(t, err, "the remembered version is refused; the provider reads and creates")
	assert.Greater(t, l.FencingToken, last)
	assert.Less(t, l.FencingToken, lock.MaxFencingToken)
}

// TestOpen: the store URL, through the registry.
func TestOpen(t *testing.T) {
	zks := launch.SharedZooKeeper(t)
	ctx := context.Background()
	pfx := prefix(t)
	p, err := providers.Open(ctx, "zk://"+zks.Addr+pfx+"?session_timeout=5s&max_skew=500ms")
	require.NoError(t, err)
	defer p.Close()
	assert.Equal(t, "zookeeper", p.Name())
	require.NoError(t, p.Ping(ctx))
	// The prefix is created on the first acquire.
	l, err := service.New(p).Acquire(ctx, lock.AcquireRequest{Name: "o"})
	require.NoError(t, err)
	conn := dial(t, zks.Addr)
	ok, _, err := conn.Exists(pfx + "/o")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Positive(t, l.FencingToken)

	// Two servers, one of them down: the client finds the live one.
	down := "127.0.0.1:" + itoa(launch.FreePort(t))
	p2, err := providers.Open(ctx, "zk://"+down+","+zks.Addr+pfx)
	require.NoError(t, err)
	defer p2.Close()
	st, err := service.New(p2).Status(ctx, "o")
	require.NoError(t, err)
	assert.True(t, st.Held)

	for _, bad := range []struct{ url, want string }{
		{"zk://" + zks.Addr + "/x?sesion_timeout=1s", `unknown parameter "sesion_timeout"`},
		{"zk:///x", "names no server"},
		{"zk://u:p@" + zks.Addr + "/x", "credentials are not supported"},
		{"zk://" + zks.Addr + "/x/", "not a znode path"},
		{"zk://" + zks.Addr + "/x//y", "not a znode path"},
		{"zk://" + zks.Addr + "/x/../y", "not a znode path"},
		{"zk://" + zks.Addr + "/zookeeper/x", "reserved"},
		{"zk://," + zks.Addr + "/x", "empty server"},
		{"zk://" + zks.Addr + "/x?session_timeout=fast", "session_timeout"},
		{"zk://" + zks.Addr + "/x?session_timeout=10ms", "at least 1s"},
		{"zk://" + zks.Addr + "/x?max_skew=-1s", "max_skew"},
	} {
		_, err := providers.Open(ctx, bad.url)
		if assert.Error(t, err, bad.url) {
			assert.Contains(t, err.Error(), bad.want, bad.url)
			assert.NotContains(t, err.Error(), ":p@", "no password in errors")
		}
	}
	u, _ := url.Parse("zk://" + zks.Addr)
	p3, err := zookeeper.Open(ctx, u)
	require.NoError(t, err)
	defer p3.Close()
	require.NoError(t, p3.Ping(ctx), "the default prefix need not exist for Ping")
}

// TestUnreachable: with no server, every operation answers unavailable
// within its context.
func TestUnreachable(t *testing.T) {
	p := open(t, "127.0.0.1:"+itoa(launch.FreePort(t)), "/x")
	s := service.New(p, service.WithOpTimeout(500*time.Millisecond))
	ctx := context.Background()
	start := time.Now()
	_, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
	require.ErrorIs(t, err, lock.ErrUnavailable)
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: providers.NewLeaseID()})
	require.ErrorIs(t, err, lock.ErrUnavailable)
	require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: providers.NewLeaseID()}), lock.ErrUnavailable)
	_, err = s.Status(ctx, "n")
	require.ErrorIs(t, err, lock.ErrUnavailable)
	require.ErrorIs(t, s.Ping(ctx), lock.ErrUnavailable)
	assert.Less(t, time.Since(start), 5*time.Second)
}

// TestSessionExpiry: hasp keeps no ephemeral znodes, so a session that
// expires (the server heard nothing from the client for the session
// timeout) loses nothing: the client opens a new session and the lease is
// still held and renewable.
func TestSessionExpiry(t *testing.T) {
	zks := launch.SharedZooKeeper(t)
	wire := newWireProxy(t, zks.Addr)
	pfx := prefix(t)
	p := open(t, wire.addr(), pfx, zookeeper.WithSessionTimeout(2*time.Second))
	s := service.New(p)
	ctx := context.Background()
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "e", TTL: 30 * time.Second})
	require.NoError(t, err)
	id := zookeeper.SessionID(p)
	wire.block(true) // cut the client off for longer than its session timeout
	time.Sleep(4 * time.Second)
	wire.block(false)
	require.Eventually(t, func() bool { return s.Ping(ctx) == nil }, 10*time.Second, 10*time.Millisecond, "the client reconnects")
	r, err := s.Renew(ctx, lock.RenewRequest{Name: "e", LeaseID: l.LeaseID})
	require.NoError(t, err)
	assert.Equal(t, l.FencingToken, r.FencingToken)
	assert.NotEqual(t, id, zookeeper.SessionID(p), "the session expired and a new one began")
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestHolderWatchesShared: long polls of a name nobody writes set one
// ZooKeeper watch, not one per call (the client keeps each until the znode
// changes and cannot remove it); a change still ends every watch waiting,
// and the next ones set a new watch.
func TestHolderWatchesShared(t *testing.T) {
	zks := launch.SharedZooKeeper(t)
	pfx := prefix(t)
	proxy := newWireProxy(t, zks.Addr)
	watcher, changer := open(t, proxy.addr(), pfx), open(t, zks.Addr, pfx)
	ws, cs := service.New(watcher), service.New(changer)
	ctx := context.Background()
	// The first watch dials the watch session and sets the watch.
	_, _, err := ws.Watch(ctx, "quiet", 0, 300*time.Millisecond)
	require.NoError(t, err)
	proxy.reset()
	const polls = 10
	for range polls {
		_, changed, err := ws.Watch(ctx, "quiet", 0, 20*time.Millisecond)
		require.NoError(t, err)
		require.False(t, changed)
	}
	counts := proxy.reset()
	assert.Zero(t, counts["exists"], "no new exists watch on the missing znode: %v", counts)
	assert.LessOrEqual(t, counts["get"], 3*polls, "each poll: a status read, a read without a watch, a last status read: %v", counts)

	// Several watches wait on the one watch; a grant ends them all.
	const watches = 4
	answers := make(chan lock.Status, watches)
	errs := make(chan error, watches)
	for range watches {
		go func() {
			st, changed, err := ws.Watch(ctx, "quiet", 0, 10*time.Second)
			if err == nil && !changed {
				err = errors.New("no change")
			}
			answers <- st
			errs <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	l, err := cs.Acquire(ctx, lock.AcquireRequest{Name: "quiet", TTL: 20 * time.Second})
	require.NoError(t, err)
	for range watches {
		require.NoError(t, <-errs)
		assert.Equal(t, l.FencingToken, (<-answers).Holder.FencingToken)
	}
	// The fired watch is gone: a watch of the holder sets a new one, and
	// sees the release.
	done := make(chan error, 1)
	go func() {
		st, changed, err := ws.Watch(ctx, "quiet", l.FencingToken, 10*time.Second)
		if err == nil && (!changed || st.Held) {
			err = errors.New("the release was not seen")
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, cs.Release(ctx, lock.ReleaseRequest{Name: "quiet", LeaseID: l.LeaseID}))
	require.NoError(t, <-done)
}
