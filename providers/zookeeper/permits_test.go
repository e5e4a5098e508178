package zookeeper_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/providers/zookeeper"
	"github.com/hasplock/hasp/service"
)

// TestPermitRequestCounts pins the requests of a semaphore's acquire,
// renew and release: two each, one read (LoadPermits's GetData) and one
// conditional write (a SetData at the version read, or the create Multi
// for a new name), with the version cache on or off, since LoadPermits
// never starts from a remembered version. An acquire that finds every
// permit taken is one read; so is a plain acquire of a busy table (a
// permits mismatch). A lease_lost answer is the read and a check Multi
// (ConfirmPermits). A plain acquire of an idle table starts from the
// version the last release wrote: one SetData (a read more without the
// cache).
func TestPermitRequestCounts(t *testing.T) {
	for _, cache := range []int{zookeeper.DefaultVersionCache, 0} {
		t.Run(fmt.Sprintf("cache=%d", cache), func(t *testing.T) {
			zks := launch.SharedZooKeeper(t)
			wire := newWireProxy(t, zks.Addr)
			pfx := prefix(t)
			p := open(t, wire.addr(), pfx, zookeeper.WithVersionCache(cache))
			s := service.New(p)
			ctx := context.Background()
			require.NoError(t, p.Provision(ctx))
			wire.reset()
			step := func(t *testing.T, what string, want map[string]int, before int64) {
				t.Helper()
				n := 0
				for _, v := range want {
					n += v
				}
				assert.Equal(t, want, wire.reset(), what)
				assert.Equal(t, int64(n), p.BackendRequests()-before, "%s: the provider counts the same requests", what)
			}
			sem := lock.AcquireRequest{Name: "sem", Permits: 3, TTL: 10 * time.Second}

			n := p.BackendRequests()
			a, err := s.Acquire(ctx, sem)
			require.NoError(t, err)
			step(t, "first acquire of a new name", map[string]int{"get": 1, "multi": 1}, n)

			var leases []lock.Lease
			for i := range 2 {
				n = p.BackendRequests()
				l, err := s.Acquire(ctx, sem)
				require.NoError(t, err)
				step(t, fmt.Sprintf("acquire %d", i), map[string]int{"get": 1, "set": 1}, n)
				leases = append(leases, l)
			}
			assert.Greater(t, leases[1].FencingToken, leases[0].FencingToken)

			n = p.BackendRequests()
			_, err = s.Renew(ctx, lock.RenewRequest{Name: "sem", LeaseID: a.LeaseID})
			require.NoError(t, err)
			step(t, "renew", map[string]int{"get": 1, "set": 1}, n)

			n = p.BackendRequests()
			_, err = s.TryAcquire(ctx, sem)
			var held *lock.HeldError
			require.ErrorAs(t, err, &held)
			step(t, "acquire of a full semaphore", map[string]int{"get": 1}, n)

			n = p.BackendRequests()
			_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "sem"})
			require.ErrorIs(t, err, lock.ErrPermitsMismatch)
			step(t, "plain acquire of a busy table", map[string]int{"get": 1}, n)

			n = p.BackendRequests()
			st, err := s.Status(ctx, "sem")
			require.NoError(t, err)
			assert.Len(t, st.Holders, 3)
			step(t, "status", map[string]int{"get": 1}, n)

			// lease_lost is confirmed by the leader before it is answered
			// (the read may come from a lagging server): a Multi of one
			// version check.
			n = p.BackendRequests()
			_, err = s.Renew(ctx, lock.RenewRequest{Name: "sem", LeaseID: providers.PermitLeaseID()})
			require.ErrorIs(t, err, lock.ErrLeaseLost)
			step(t, "renew of a permit not in the table", map[string]int{"get": 1, "multi": 1}, n)
			n = p.BackendRequests()
			require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: "sem", LeaseID: providers.PermitLeaseID()}), lock.ErrLeaseLost)
			step(t, "release of a permit not in the table", map[string]int{"get": 1, "multi": 1}, n)
			n = p.BackendRequests()
			_, err = s.Renew(ctx, lock.RenewRequest{Name: "none", LeaseID: providers.PermitLeaseID()})
			require.ErrorIs(t, err, lock.ErrLeaseLost)
			step(t, "renew of a permit of a name without a znode", map[string]int{"get": 1, "multi": 1}, n)

			for i, l := range append(leases, a) {
				n = p.BackendRequests()
				require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "sem", LeaseID: l.LeaseID}))
				step(t, fmt.Sprintf("release %d", i), map[string]int{"get": 1, "set": 1}, n)
			}

			n = p.BackendRequests()
			m, err := s.Acquire(ctx, lock.AcquireRequest{Name: "sem"})
			require.NoError(t, err)
			assert.Equal(t, leases[1].FencingToken+1, m.FencingToken, "one counter for both kinds")
			want := map[string]int{"set": 1} // from the version the release wrote
			if cache == 0 {
				want["get"] = 1
			}
			step(t, "plain acquire of an idle table", want, n)
		})
	}
}

// TestPermitZnode: a znode holding a permit table looks held to the mutex
// path until the table's last permit is free (lease "permits", exp_ms the
// table's BusyUntil), keeps one token counter, and loses its table to the
// plain acquire that takes it over once idle.
func TestPermitZnode(t *testing.T) {
	zks := launch.SharedZooKeeper(t)
	pfx := prefix(t)
	s := service.New(open(t, zks.Addr, pfx))
	conn := dial(t, zks.Addr)
	ctx := context.Background()
	const name = "jobs/sem"
	data := func() map[string]any {
		b, _, err := conn.Get(pfx + "/jobs%2Fsem")
		require.NoError(t, err)
		var d map[string]any
		require.NoError(t, json.Unmarshal(b, &d))
		return d
	}

	m, err := s.Acquire(ctx, lock.AcquireRequest{Name: name})
	require.NoError(t, err)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: m.LeaseID}))
	a, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Permits: 2, TTL: 10 * time.Second, Owner: "a", LockDelay: time.Second})
	require.NoError(t, err)
	b, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Permits: 2, TTL: 5 * time.Second, Owner: "b"})
	require.NoError(t, err)
	assert.Equal(t, m.FencingToken+1, a.FencingToken)
	assert.Equal(t, a.FencingToken+1, b.FencingToken)

	d := data()
	assert.Equal(t, "permits", d["lease"], "a lease field that matches no lease")
	assert.Equal(t, float64(b.FencingToken), d["token"], "the counter")
	assert.Equal(t, float64(a.ExpiresAt.Add(time.Second).UnixMilli()), d["exp_ms"], "held until the last permit is free")
	for _, k := range []string{"owner", "md", "ttl_ms", "rel"} {
		assert.NotContains(t, d, k)
	}
	table, err := providers.DecodePermitTable(d["permits"].(string), 0)
	require.NoError(t, err)
	assert.Equal(t, 2, table.Permits)
	require.Len(t, table.Holders, 2)
	assert.NotContains(t, d["permits"], a.LeaseID, "never a lease id")

	for _, l := range []lock.Lease{a, b} {
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))
	}
	d = data()
	assert.NotContains(t, d, "exp_ms", "idle: free to the mutex path")
	assert.Contains(t, d, "permits", "an idle table keeps its release marks")

	m2, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Owner: "m"})
	require.NoError(t, err)
	assert.Equal(t, b.FencingToken+1, m2.FencingToken)
	d = data()
	assert.NotContains(t, d, "permits", "a plain acquire removes the table")
	assert.Regexp(t, `^[0-9a-f]{64}$`, d["lease"])
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: m2.LeaseID}))
}

// TestPermitLostAnswers: the answer to a permit table write is dropped
// after ZooKeeper applied it (the connection closes before it passes).
// The client fails the request and never sends it again; StorePermits
// reads the znode once: its own record means the write took place; a
// record changed since (another instance took the permit a release freed,
// between the write and that read) is ErrConflict, and the service reads
// again and finds the release's mark. Either way a release answers
// released, an acquire the permit it was granted (a new name's create
// too), and a second release of the lease lease_lost.
func TestPermitLostAnswers(t *testing.T) {
	zks := launch.SharedZooKeeper(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sem := func(name string) lock.AcquireRequest {
		return lock.AcquireRequest{Name: name, Permits: 2, TTL: 10 * time.Second}
	}
	for _, take := range []bool{false, true} {
		t.Run(fmt.Sprintf("release/taken=%v", take), func(t *testing.T) {
			wire := newWireProxy(t, zks.Addr)
			pfx := prefix(t)
			other := service.New(open(t, zks.Addr, pfx))
			s := service.New(open(t, wire.addr(), pfx))
			a, err := other.Acquire(ctx, sem("n"))
			require.NoError(t, err)
			b, err := other.Acquire(ctx, sem("n"))
			require.NoError(t, err)
			var (
				next    lock.Lease
				nextErr error
				setSeen atomic.Bool
			)
			if take {
				// The first read after the dropped write (StorePermits's)
				// waits for another instance to take the freed permit.
				wire.onRequest(func(op string) {
					if op == "get" && setSeen.Load() {
						next, nextErr = other.TryAcquire(ctx, sem("n"))
						wire.before = nil // the proxy's lock is held
					}
				})
			}
			wire.dropAnswerThen("set", func() { setSeen.Store(true) })
			err = s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: a.LeaseID})
			require.Equal(t, int64(1), wire.dropped.Load(), "the release's answer was dropped")
			require.NoError(t, err, "the release took place: released")
			want := []int64{b.FencingToken}
			if take {
				require.NoError(t, nextErr, "the release was applied: a permit was free")
				want = append(want, next.FencingToken)
			}
			st, err := other.Status(ctx, "n")
			require.NoError(t, err)
			var got []int64
			for _, h := range st.Holders {
				got = append(got, h.FencingToken)
			}
			assert.Equal(t, want, got, "the other permits are untouched")
			require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: a.LeaseID}), lock.ErrLeaseLost, "a second release of the lease")
		})
	}
	for _, op := range []string{"multi", "set"} {
		t.Run("acquire/"+op, func(t *testing.T) {
			wire := newWireProxy(t, zks.Addr)
			pfx := prefix(t)
			other := service.New(open(t, zks.Addr, pfx))
			s := service.New(open(t, wire.addr(), pfx))
			var first lock.Lease
			if op == "set" { // the znode exists
				var err error
				first, err = other.Acquire(ctx, sem("n"))
				require.NoError(t, err)
			} else {
				require.NoError(t, other.Provider().(*zookeeper.Provider).Provision(ctx))
			}
			wire.dropAnswer(op)
			l, err := s.Acquire(ctx, sem("n"))
			require.Equal(t, int64(1), wire.dropped.Load(), "the write's answer was dropped")
			require.NoError(t, err, "the acquire's write took place")
			assert.Greater(t, l.FencingToken, first.FencingToken)
			st, err := other.Status(ctx, "n")
			require.NoError(t, err)
			require.NotEmpty(t, st.Holders)
			assert.Equal(t, l.FencingToken, st.Holder.FencingToken, "the permit the write granted, once")
			_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID})
			assert.NoError(t, err)
		})
	}
	t.Run("unknown", func(t *testing.T) {
		// The call's context ends as the write reaches the server: the
		// znode cannot be read, so the outcome is unknown.
		wire := newWireProxy(t, zks.Addr)
		pfx := prefix(t)
		p := open(t, wire.addr(), pfx)
		l, err := service.New(p).Acquire(ctx, sem("u"))
		require.NoError(t, err)
		cctx, cancel := context.WithCancel(ctx)
		wire.dropAnswerThen("set", cancel)
		err = service.New(p).Release(cctx, lock.ReleaseRequest{Name: "u", LeaseID: l.LeaseID})
		require.ErrorIs(t, err, lock.ErrUnavailable)
		assert.NotErrorIs(t, err, lock.ErrLeaseLost)
	})
}

// TestConfirmPermits: the confirmation of a lease_lost answer is decided
// by the leader on the znode as it is. A record read before another
// instance wrote (as a lagging server would serve it) is refused as
// ErrConflict, a current one confirmed; a read that found no znode is
// confirmed while there is none and refused once one exists. It writes
// nothing: the data version stays.
func TestConfirmPermits(t *testing.T) {
	zks := launch.SharedZooKeeper(t)
	pfx := prefix(t)
	p := open(t, zks.Addr, pfx)
	other := service.New(open(t, zks.Addr, pfx))
	ctx := context.Background()
	require.NoError(t, p.Provision(ctx))

	none, err := p.LoadPermits(ctx, "c")
	require.NoError(t, err)
	assert.True(t, none.MayBeStale)
	assert.Nil(t, none.Version)
	require.NoError(t, p.ConfirmPermits(ctx, "c", none), "no znode, at the leader either")

	a, err := other.Acquire(ctx, lock.AcquireRequest{Name: "c", Permits: 2, TTL: 10 * time.Second})
	require.NoError(t, err)
	require.ErrorIs(t, p.ConfirmPermits(ctx, "c", none), providers.ErrConflict, "created since")

	old, err := p.LoadPermits(ctx, "c")
	require.NoError(t, err)
	require.NotNil(t, old.Table)
	require.NoError(t, p.ConfirmPermits(ctx, "c", old))
	cur, err := p.LoadPermits(ctx, "c")
	require.NoError(t, err)
	assert.Equal(t, old.Version, cur.Version, "a confirmation writes nothing")

	_, err = other.Renew(ctx, lock.RenewRequest{Name: "c", LeaseID: a.LeaseID})
	require.NoError(t, err)
	require.ErrorIs(t, p.ConfirmPermits(ctx, "c", old), providers.ErrConflict, "written since")
	cur, err = p.LoadPermits(ctx, "c")
	require.NoError(t, err)
	require.NoError(t, p.ConfirmPermits(ctx, "c", cur))
}

// TestPermitTableSize: a table of lock.MaxPermits permits fits in a znode
// when its owners and metadata are short; one whose record would pass
// ZooKeeper's default 1 MB bound (jute.maxbuffer) is refused before it is
// sent, with an error that says so, and nothing is written.
func TestPermitTableSize(t *testing.T) {
	zks := launch.SharedZooKeeper(t)
	p := open(t, zks.Addr, prefix(t))
	ctx := context.Background()
	require.NoError(t, p.Provision(ctx))
	table := func(owner, md string) providers.PermitTable {
		tb := providers.PermitTable{Permits: lock.MaxPermits}
		exp := time.Now().Add(time.Minute).UnixMilli()
		for range lock.MaxPermits {
			tb.Holders = append(tb.Holders, providers.Permit{Lease: providers.HashLeaseID(providers.PermitLeaseID()),
				Owner: owner, Metadata: md, TTLms: 60000, ExpMs: exp})
		}
		return tb
	}
	rec, err := p.LoadPermits(ctx, "big")
	require.NoError(t, err)
	small := table("worker-0001", "")
	_, err = p.StorePermits(ctx, "big", rec, small)
	require.NoError(t, err, "%d permits with short owners: %d bytes of table", lock.MaxPermits, len(providers.EncodePermitTable(small)))

	rec, err = p.LoadPermits(ctx, "big")
	require.NoError(t, err)
	large := table(strings.Repeat("o", lock.MaxOwnerLen), strings.Repeat("m", lock.MaxMetadataLen))
	_, err = p.StorePermits(ctx, "big", rec, large)
	require.ErrorIs(t, err, lock.ErrRecordTooLarge)
	assert.Contains(t, err.Error(), "jute.maxbuffer")
	after, err := p.LoadPermits(ctx, "big")
	require.NoError(t, err)
	assert.Equal(t, rec.Version, after.Version, "nothing written")
}

// TestPermitClockSkew: a permit is granted or renewed only through an
// instance whose clock its write's mtime shows within the maximum skew of
// the ZooKeeper leader's, as a mutex lease is; a release through it is
// not refused.
func TestPermitClockSkew(t *testing.T) {
	zks := launch.SharedZooKeeper(t)
	pfx := prefix(t)
	ctx := context.Background()
	c := &providertest.OffsetClock{}
	c.Set(3 * time.Second)
	off := service.New(open(t, zks.Addr, pfx, zookeeper.WithClock(c)))
	sane := service.New(open(t, zks.Addr, pfx))
	sem := lock.AcquireRequest{Name: "skew", Permits: 2, TTL: 10 * time.Second}

	_, err := off.Acquire(ctx, sem)
	require.ErrorIs(t, err, lock.ErrUnavailable)
	require.ErrorIs(t, err, zookeeper.ErrClockSkew)
	l, err := sane.Acquire(ctx, sem)
	require.NoError(t, err)
	_, err = off.Renew(ctx, lock.RenewRequest{Name: "skew", LeaseID: l.LeaseID})
	require.ErrorIs(t, err, zookeeper.ErrClockSkew)
	require.NoError(t, off.Release(ctx, lock.ReleaseRequest{Name: "skew", LeaseID: l.LeaseID}), "a release grants nothing")
}
