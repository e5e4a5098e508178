package redis_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/providers/redis"
	"github.com/hasplock/hasp/service"
)

// TestPermitRequestCounts: a semaphore acquire, renew and release cost two
// round trips each when uncontended, on the wire and by BackendRequests:
// the load script (LoadPermits) and the store script (StorePermits). An
// acquire that finds every permit taken costs the load alone; a plain
// acquire of a busy table costs its one acquire script, which returns the
// table; a status is one script. A mutex acquire of the idle table takes
// the hash over, counter and all, in its one script, and removes the
// table.
func TestPermitRequestCounts(t *testing.T) {
	srv := launch.Redis(t)
	w := &wire{}
	rdb := client(srv.Addr, w)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	p, err := redis.New(ctx, rdb)
	require.NoError(t, err)
	s := service.New(p)
	count := func(what string, want int64, f func()) {
		t.Helper()
		w0, b0 := w.writes.Load(), p.BackendRequests()
		f()
		assert.Equal(t, want, w.writes.Load()-w0, "%s: requests on the wire", what)
		assert.Equal(t, want, p.BackendRequests()-b0, "%s: BackendRequests", what)
	}
	var leases []lock.Lease
	for range 2 {
		count("acquire", 2, func() {
			l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "sem", Permits: 2, Owner: "o"})
			require.NoError(t, err)
			leases = append(leases, l)
		})
	}
	count("full semaphore", 1, func() {
		_, err := s.TryAcquire(ctx, lock.AcquireRequest{Name: "sem", Permits: 2})
		require.ErrorIs(t, err, lock.ErrHeld)
	})
	count("plain acquire of a busy table", 1, func() {
		_, err := s.TryAcquire(ctx, lock.AcquireRequest{Name: "sem"})
		require.ErrorIs(t, err, lock.ErrPermitsMismatch)
	})
	count("renew", 2, func() {
		_, err := s.Renew(ctx, lock.RenewRequest{Name: "sem", LeaseID: leases[0].LeaseID})
		require.NoError(t, err)
	})
	count("status", 1, func() {
		st, err := s.Status(ctx, "sem")
		require.NoError(t, err)
		assert.Len(t, st.Holders, 2)
	})
	for _, l := range leases {
		count("release", 2, func() {
			require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "sem", LeaseID: l.LeaseID}))
		})
	}
	count("lost release", 1, func() {
		require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: "sem", LeaseID: leases[0].LeaseID}), lock.ErrLeaseLost)
	})
	var m lock.Lease
	count("mutex takeover of the idle table", 1, func() {
		m, err = s.Acquire(ctx, lock.AcquireRequest{Name: "sem"})
		require.NoError(t, err)
	})
	assert.Greater(t, m.FencingToken, leases[1].FencingToken, "one counter")
	h, err := rdb.HGetAll(ctx, redis.DefaultPrefix+"sem").Result()
	require.NoError(t, err)
	assert.NotContains(t, h, "pt", "the takeover removed the table")
	assert.Equal(t, providers.HashLeaseID(m.LeaseID), h["lh"])
}

// TestPermitHash: the layout of a hash holding a permit table (lh
// "permit-table", exp the table's BusyUntil, tok the counter, pt the
// table, no lease fields); a mutex lease's renew and release find it
// lost; the version changes with every write that changes the hash, a
// mutex path's renew included, and a store on a stale version writes
// nothing. (A write that leaves the hash as it was, such as two renews
// with one TTL in one millisecond, leaves the version too: the table
// written is then as right as it was when read.)
func TestPermitHash(t *testing.T) {
	srv := launch.Redis(t)
	rdb := client(srv.Addr, nil)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	p, err := redis.New(ctx, rdb)
	require.NoError(t, err)
	s := service.New(p)
	key := redis.DefaultPrefix + "h"

	m, err := s.Acquire(ctx, lock.AcquireRequest{Name: "h", Owner: "own", Metadata: "md"})
	require.NoError(t, err)
	rec, err := p.LoadPermits(ctx, "h")
	require.NoError(t, err)
	require.NotNil(t, rec.Mutex, "a live plain lease")
	assert.Equal(t, m.FencingToken, rec.Mutex.FencingToken)
	assert.Equal(t, m.ExpiresAt, rec.Mutex.ExpiresAt)
	assert.Equal(t, "own", rec.Mutex.Owner)
	assert.Equal(t, "md", rec.Mutex.Metadata)
	assert.Nil(t, rec.Table)
	assert.False(t, rec.MayBeStale)
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "h", LeaseID: m.LeaseID, TTL: 7 * time.Second})
	require.NoError(t, err)
	_, err = p.StorePermits(ctx, "h", rec, providers.PermitTable{Permits: 2})
	require.ErrorIs(t, err, providers.ErrConflict, "the renew changed the version")
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "h", LeaseID: m.LeaseID}))

	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "h", Permits: 2, TTL: 5 * time.Second, LockDelay: time.Second})
	require.NoError(t, err)
	assert.Greater(t, l.FencingToken, m.FencingToken)
	h, err := rdb.HGetAll(ctx, key).Result()
	require.NoError(t, err)
	assert.Equal(t, "permit-table", h["lh"])
	assert.Equal(t, l.ExpiresAt.Add(time.Second).UnixMilli(), mustInt(t, h["exp"]), "exp is BusyUntil")
	assert.Equal(t, l.FencingToken, mustInt(t, h["tok"]))
	tbl, err := providers.DecodePermitTable(h["pt"], 0)
	require.NoError(t, err)
	require.Len(t, tbl.Holders, 1)
	assert.Equal(t, l.FencingToken, tbl.Holders[0].Token)
	for _, f := range []string{"rep", "ttl", "own", "md"} {
		assert.NotContains(t, h, f)
	}

	// The mutex path: a renew or release of a mutex lease finds it lost.
	_, err = p.Renew(ctx, lock.RenewRequest{Name: "h", LeaseID: m.LeaseID})
	assert.ErrorIs(t, err, lock.ErrLeaseLost)
	assert.ErrorIs(t, p.Release(ctx, lock.ReleaseRequest{Name: "h", LeaseID: m.LeaseID}), lock.ErrLeaseLost)

	rec, err = p.LoadPermits(ctx, "h")
	require.NoError(t, err)
	require.NotNil(t, rec.Table)
	assert.Nil(t, rec.Mutex)
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "h", LeaseID: l.LeaseID, TTL: 7 * time.Second})
	require.NoError(t, err)
	_, err = p.StorePermits(ctx, "h", rec, *rec.Table)
	require.ErrorIs(t, err, providers.ErrConflict, "the permit's renew changed the version")
	after, err := rdb.HGetAll(ctx, key).Result()
	require.NoError(t, err)
	assert.NotEqual(t, h["pt"], after["pt"], "the renew's table")

	// Released: the table stays, idle, for its release mark.
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "h", LeaseID: l.LeaseID}))
	h, err = rdb.HGetAll(ctx, key).Result()
	require.NoError(t, err)
	assert.Equal(t, "permit-table", h["lh"])
	assert.Equal(t, "0", h["exp"], "idle")
	st, err := s.Status(ctx, "h")
	require.NoError(t, err)
	assert.False(t, st.Held)
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(s, 10, 64)
	require.NoError(t, err, s)
	return v
}

// TestPermitWriteRetriedAfterApplied: the client sends again a store
// script whose answer was lost after the server ran it. The retry finds
// the hash changed by that very write (its digest differs), so
// StorePermits answers ErrConflict, and the service, reading the hash
// again, finds its own write: a release answers released (its mark is in
// the table), even when another instance took the freed permit in
// between, and a second release is lost; an acquire answers the permit it
// was granted, once.
func TestPermitWriteRetriedAfterApplied(t *testing.T) {
	srv := launch.Redis(t)
	ctx := context.Background()
	plain := client(srv.Addr, nil)
	t.Cleanup(func() { _ = plain.Close() })
	other, err := redis.New(ctx, plain)
	require.NoError(t, err)
	others := service.New(other)
	open := func(w *wire) (*service.Service, *redis.Provider) {
		rdb := client(srv.Addr, w)
		t.Cleanup(func() { _ = rdb.Close() })
		p, err := redis.New(ctx, rdb)
		require.NoError(t, err)
		return service.New(p), p
	}

	for _, take := range []bool{false, true} {
		name := "release"
		if take {
			name += ".taken"
		}
		t.Run(name, func(t *testing.T) {
			var taken lock.Lease
			keep, err := others.Acquire(ctx, lock.AcquireRequest{Name: name, Permits: 2})
			require.NoError(t, err)
			w := &wire{meanwhile: func() {
				if take {
					l, err := others.TryAcquire(ctx, lock.AcquireRequest{Name: name, Permits: 2})
					assert.NoError(t, err, "the release was applied: a permit is free")
					taken = l
				}
			}}
			s, p := open(w)
			l, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Permits: 2})
			require.NoError(t, err)
			// The release's table is the first to carry a mark.
			w.dropNext(`"r":[`)
			b0 := p.BackendRequests()
			require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}), "the release went through")
			require.Equal(t, int64(1), w.dropped.Load(), "the first answer was lost")
			assert.Equal(t, int64(3), p.BackendRequests()-b0, "load, store (sent twice by the client, counted once), load")
			require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}), lock.ErrLeaseLost, "a second release is lost")
			st, err := s.Status(ctx, name)
			require.NoError(t, err)
			want := []int64{keep.FencingToken}
			if take {
				want = append(want, taken.FencingToken)
			}
			var got []int64
			for _, h := range st.Holders {
				got = append(got, h.FencingToken)
			}
			assert.Equal(t, want, got, "the retry left the other permits alone")
		})
	}

	t.Run("acquire", func(t *testing.T) {
		w := &wire{}
		s, _ := open(w)
		// The owner is in the stored table only, not in the load script.
		w.dropNext("owner-marker")
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "acquire", Permits: 2, Owner: "owner-marker"})
		require.NoError(t, err, "the acquire went through")
		require.Equal(t, int64(1), w.dropped.Load(), "the first answer was lost")
		st, err := s.Status(ctx, "acquire")
		require.NoError(t, err)
		require.Len(t, st.Holders, 1, "granted once")
		assert.Equal(t, l.FencingToken, st.Holders[0].FencingToken)
		assert.Equal(t, l.ExpiresAt, st.Holders[0].ExpiresAt)
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "acquire", LeaseID: l.LeaseID}))
	})
}

// TestPermitExpiryByClocks: a permit's expiry is measured from the
// earlier of the service's clock and the server's, as a mutex lease's
// expires_at is: a service whose clock runs behind reports (and stores)
// the earlier expiry, one whose clock runs ahead follows the server's;
// and a service ahead does not find others' permits expired early.
func TestPermitExpiryByClocks(t *testing.T) {
	srv := launch.Redis(t)
	ctx := context.Background()
	rdb := client(srv.Addr, nil)
	t.Cleanup(func() { _ = rdb.Close() })
	withOffset := func(d time.Duration) *service.Service {
		c := &providertest.OffsetClock{}
		c.Set(d)
		p, err := redis.New(ctx, rdb, redis.WithClock(c))
		require.NoError(t, err)
		return service.New(p)
	}
	behind, ahead := withOffset(-10*time.Second), withOffset(10*time.Second)

	before := time.Now()
	l, err := behind.Acquire(ctx, lock.AcquireRequest{Name: "b", Permits: 2, TTL: 5 * time.Second})
	require.NoError(t, err)
	assert.WithinDuration(t, before.Add(-5*time.Second), l.ExpiresAt, time.Second, "by the service's clock, the earlier")

	before = time.Now()
	l, err = ahead.Acquire(ctx, lock.AcquireRequest{Name: "a", Permits: 1, LockDelay: time.Second, TTL: 5 * time.Second})
	require.NoError(t, err)
	assert.WithinDuration(t, before.Add(5*time.Second), l.ExpiresAt, time.Second, "by the server's clock, the earlier")
	_, err = ahead.TryAcquire(ctx, lock.AcquireRequest{Name: "a", LockDelay: time.Second})
	assert.ErrorIs(t, err, lock.ErrHeld, "the fast clock does not end the permit")
	_, err = ahead.TryAcquire(ctx, lock.AcquireRequest{Name: "a"})
	assert.ErrorIs(t, err, lock.ErrHeld, "nor does the mutex path")
}

// TestRedlockHasNoPermits: a Redlock keeps no permit tables (no
// compare-and-swap of one record over a majority): it is no
// providers.PermitStore, and semaphore and lock-delay acquires answer
// ErrUnsupported (the conformance suite checks that too).
func TestRedlockHasNoPermits(t *testing.T) {
	rs := newRedlockSet(t, 3)
	_, ok := providers.As[providers.PermitStore](rs.p)
	assert.False(t, ok)
	_, err := rs.s.Acquire(context.Background(), lock.AcquireRequest{Name: "r", Permits: 2})
	assert.ErrorIs(t, err, providers.ErrUnsupported)
	_, ok = any(&redis.Provider{}).(providers.PermitStore)
	assert.True(t, ok, "one server does")
}

// TestPermitLargeTable: semaphores of lock.MaxPermits permits, with short
// owners and metadata, and with owners and metadata as long as allowed
// and made of characters that JSON escapes six-fold (the largest table
// there can be, about 7.8 MB), are stored, read, renewed and released
// within the client's timeouts; the test logs their size, what each step
// took, and the server's time per script (the server serves no one else
// meanwhile).
func TestPermitLargeTable(t *testing.T) {
	for _, tt := range []struct{ name, owner, md string }{
		{"typical", "worker-0042", `{"job":"nightly-report"}`},
		{"largest", strings.Repeat("<", lock.MaxOwnerLen), strings.Repeat("\x01", lock.MaxMetadataLen)},
	} {
		t.Run(tt.name, func(t *testing.T) { testLargeTable(t, tt.owner, tt.md) })
	}
}

func testLargeTable(t *testing.T, owner, md string) {
	srv := launch.Redis(t)
	rdb := client(srv.Addr, nil)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	p, err := redis.New(ctx, rdb)
	require.NoError(t, err)
	s := service.New(p)
	rec, err := p.LoadPermits(ctx, "big")
	require.NoError(t, err)
	tbl := providers.PermitTable{Permits: lock.MaxPermits}
	exp := rec.Now.Add(time.Minute).UnixMilli()
	for i := range lock.MaxPermits {
		tbl.Holders = append(tbl.Holders, providers.Permit{
			Lease: providers.HashLeaseID(strconv.Itoa(i)), Owner: owner, Metadata: md, TTLms: 60000, ExpMs: exp,
		})
	}
	start := time.Now()
	_, err = p.StorePermits(ctx, "big", rec, tbl)
	require.NoError(t, err)
	stored := time.Since(start)
	size, err := rdb.HStrLen(ctx, redis.DefaultPrefix+"big", "pt").Result()
	require.NoError(t, err)
	start = time.Now()
	rec, err = p.LoadPermits(ctx, "big")
	require.NoError(t, err)
	loaded := time.Since(start)
	require.Len(t, rec.Table.Holders, lock.MaxPermits)
	require.NoError(t, rdb.ConfigResetStat(ctx).Err())

	start = time.Now()
	_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "big", Permits: lock.MaxPermits})
	require.ErrorIs(t, err, lock.ErrHeld)
	held := time.Since(start)
	start = time.Now()
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "big", LeaseID: providers.PermitLeaseID()})
	require.ErrorIs(t, err, lock.ErrLeaseLost, "not a holder")
	lostRenew := time.Since(start)
	cur, err := p.LoadPermits(ctx, "big")
	require.NoError(t, err)
	cur.Table.Holders = cur.Table.Holders[1:]
	start = time.Now()
	_, err = p.StorePermits(ctx, "big", cur, *cur.Table)
	require.NoError(t, err)
	rewritten := time.Since(start)
	stats, err := rdb.Info(ctx, "commandstats").Result()
	require.NoError(t, err)
	_, evalsha, _ := strings.Cut(stats, "cmdstat_evalsha:")
	evalsha, _, _ = strings.Cut(evalsha, "\r\n")
	t.Logf("table of %d permits: %d bytes; store %v, load %v, full acquire (load) %v, lost renew (load) %v, rewrite (store) %v; server time of the last 4 scripts: %s",
		lock.MaxPermits, size, stored, loaded, held, lostRenew, rewritten, evalsha)
}
