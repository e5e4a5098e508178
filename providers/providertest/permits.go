package providertest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/service"
)

// runPermits runs the semaphore and lock-delay tests on a provider that
// keeps permit tables; on one that does not, it checks that such acquires
// are refused as unsupported and change nothing.
func runPermits(t *testing.T, open func(t *testing.T) *service.Service, cfg ContentionConfig) {
	probe := open(t)
	if _, ok := providers.As[providers.PermitStore](probe.Provider()); !ok {
		t.Run("Unsupported", func(t *testing.T) { testPermitsUnsupported(t, probe, uniqueName(t)) })
		return
	}
	tests := []semanticsTest{
		{"Semaphore", testSemaphore},
		{"PermitsMismatch", testPermitsMismatch},
		{"SemaphoreRenewAndExpiry", testSemaphoreExpiry},
		{"SemaphoreWait", testSemaphoreWait},
		{"LockDelay", testLockDelay},
		{"LockDelayNotAfterRelease", testLockDelayReleased},
		{"TokensAcrossMutexAndSemaphore", testTokensAcrossKinds},
		{"ListShowsLivePermits", testPermitList},
		{"RecordTooLarge", testRecordTooLarge},
	}
	t.Run("Semantics", func(t *testing.T) { runParallel(t, open, tests) })
	t.Run("Contention", func(t *testing.T) {
		testPermitContention(t, []*service.Service{open(t), open(t)}, cfg)
	})
}

func acquireN(t *testing.T, s *service.Service, name string, permits int, ttl time.Duration) lock.Lease {
	t.Helper()
	before := time.Now()
	l, err := s.Acquire(ctxFor(t), lock.AcquireRequest{Name: name, TTL: ttl, Permits: permits, Owner: "o"})
	require.NoError(t, err, "acquire a permit of %d of %s", permits, name)
	checkLease(t, l, name, ttl, before)
	assert.Equal(t, permits, l.Permits)
	return l
}

// testRecordTooLarge: a semaphore of lock.MaxPermits whose holders'
// owners and metadata are as long as allowed, in characters that JSON
// escapes sixfold (about 7.8 MB of table), is either held whole or refused
// at the store's item limit with lock.ErrRecordTooLarge (never an internal
// error), and a refused write changes nothing. The most such permits the
// store takes is found by bisection over StorePermits; then the service's
// acquire of one more is refused, and the holders still hold.
func testRecordTooLarge(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	ps, _ := providers.As[providers.PermitStore](s.Provider())
	owner, md := strings.Repeat("<", lock.MaxOwnerLen), strings.Repeat("\x01", lock.MaxMetadataLen)
	store := func(n int) error {
		var (
			rec providers.PermitRecord
			err = providers.ErrConflict
		)
		// A conflict (ZooKeeper's first write makes its prefix) is read
		// again, as the service does.
		for try := 0; errors.Is(err, providers.ErrConflict) && try < 3; try++ {
			rec, err = ps.LoadPermits(ctx, name)
			require.NoError(t, err)
			tab := providers.PermitTable{Permits: lock.MaxPermits}
			exp := rec.Now.Add(time.Minute).UnixMilli()
			for range n {
				tab.Holders = append(tab.Holders, providers.Permit{Lease: providers.HashLeaseID(providers.PermitLeaseID()),
					Owner: owner, Metadata: md, TTLms: 60000, ExpMs: exp})
			}
			_, err = ps.StorePermits(ctx, name, rec, tab)
		}
		if err != nil {
			require.ErrorIs(t, err, lock.ErrRecordTooLarge, "a table of %d permits", n)
			after, lerr := ps.LoadPermits(ctx, name)
			require.NoError(t, lerr)
			assert.Equal(t, rec.Version, after.Version, "a refused write of %d permits changes nothing", n)
		}
		return err
	}
	fit, over := lock.MaxPermits-1, lock.MaxPermits
	if store(fit) != nil {
		fit, over = 0, fit
		for over-fit > 1 {
			if mid := (fit + over) / 2; store(mid) == nil {
				fit = mid
			} else {
				over = mid
			}
		}
		// The last write that took is of fit permits: the record holds
		// them.
		require.Greater(t, fit, 0, "not even one permit fits")
	}
	if over < lock.MaxPermits {
		t.Logf("%d permits of the largest fit in one record; %d do not", fit, over)
	} else {
		t.Logf("a table of %d permits of the largest fits in one record", fit)
	}

	big := lock.AcquireRequest{Name: name, Permits: lock.MaxPermits, Owner: owner, Metadata: md, TTL: time.Minute}
	l, err := s.Acquire(ctx, big)
	held := fit
	if over < lock.MaxPermits {
		// %.300v: a store's error may quote its request.
		require.Truef(t, errors.Is(err, lock.ErrRecordTooLarge) && !errors.Is(err, lock.ErrHeld), "permit %d of the largest: %.300v", over, err)
	} else {
		held = lock.MaxPermits
		require.NoError(t, err, "the last permit")
		_, err = s.TryAcquire(ctx, big)
		require.ErrorIs(t, err, lock.ErrHeld, "every permit is held")
		defer func() { require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID})) }()
	}
	st, err := s.Status(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, held, len(st.Holders), "the holders still hold")
	assert.Equal(t, md, st.Holder.Metadata)
}

func testPermitsUnsupported(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	_, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Permits: 3})
	require.ErrorIs(t, err, providers.ErrUnsupported)
	_, err = s.Acquire(ctx, lock.AcquireRequest{Name: name, LockDelay: time.Second})
	require.ErrorIs(t, err, providers.ErrUnsupported)
	st, err := s.Status(ctx, name)
	require.NoError(t, err)
	assert.False(t, st.Held, "a refused acquire leaves nothing behind")
	acquire(t, s, name, 5*time.Second)
}

// testSemaphore: N permits are granted with strictly increasing tokens,
// the next acquire is held, status lists the holders (never a lease id),
// and a released permit goes to the next acquire with a greater token.
func testSemaphore(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	const n = 3
	var leases []lock.Lease
	for i := range n {
		l := acquireN(t, s, name, n, 10*time.Second)
		if i > 0 {
			assert.Greater(t, l.FencingToken, leases[i-1].FencingToken, "tokens increase in grant order")
		}
		leases = append(leases, l)
	}
	_, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Permits: n})
	var held *lock.HeldError
	require.ErrorAs(t, err, &held, "every permit is taken")
	assert.Equal(t, n, held.Permits)
	assert.Positive(t, held.RetryAfter)
	assert.LessOrEqual(t, held.RetryAfter, 10*time.Second)

	st, err := s.Status(ctx, name)
	require.NoError(t, err)
	assert.True(t, st.Held)
	assert.Equal(t, n, st.Permits)
	require.Len(t, st.Holders, n)
	for i, h := range st.Holders {
		assert.Equal(t, leases[i].FencingToken, h.FencingToken, "holders in token order")
		assert.Equal(t, leases[i].ExpiresAt, h.ExpiresAt)
		assert.Equal(t, "o", h.Owner)
	}
	assert.Equal(t, leases[n-1].FencingToken, st.Holder.FencingToken, "the top-level holder is the newest")

	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: leases[1].LeaseID}))
	assert.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: leases[1].LeaseID}), lock.ErrLeaseLost, "a second release is lost, as a mutex's")
	_, err = s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: leases[1].LeaseID})
	assert.ErrorIs(t, err, lock.ErrLeaseLost)
	l := acquireN(t, s, name, n, 10*time.Second)
	assert.Greater(t, l.FencingToken, leases[n-1].FencingToken)
	for _, l := range []lock.Lease{leases[0], leases[2], l} {
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))
	}
	st, err = s.Status(ctx, name)
	require.NoError(t, err)
	assert.False(t, st.Held, "every permit released")
}

// testPermitsMismatch: an acquire whose permit count disagrees with the
// live holders', a mutex's included, fails and changes nothing.
func testPermitsMismatch(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	l := acquireN(t, s, name, 3, 10*time.Second)
	for _, permits := range []int{1, 2, 4} {
		_, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Permits: permits})
		var mm *lock.PermitsMismatchError
		require.ErrorAs(t, err, &mm, "permits %d against 3", permits)
		assert.Equal(t, 3, mm.Permits)
		assert.Equal(t, permits, mm.Requested)
	}
	st, err := s.Status(ctx, name)
	require.NoError(t, err)
	assert.Len(t, st.Holders, 1, "nothing changed")
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))

	// Free again: any count may take it. A mutex refuses a semaphore.
	m := acquire(t, s, name, 10*time.Second)
	_, err = s.Acquire(ctx, lock.AcquireRequest{Name: name, Permits: 2})
	require.ErrorIs(t, err, lock.ErrPermitsMismatch)
	_, err = s.Acquire(ctx, lock.AcquireRequest{Name: name, LockDelay: time.Second})
	var held *lock.HeldError
	require.ErrorAs(t, err, &held, "a lock-delayed mutex acquire of a held mutex is simply held")
	assert.Equal(t, m.FencingToken, held.Holder.FencingToken)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: m.LeaseID}))
}

// testSemaphoreExpiry: renew keeps a permit's token and moves its expiry;
// an expired permit is lost and frees its place.
func testSemaphoreExpiry(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	a := acquireN(t, s, name, 2, time.Second)
	b := acquireN(t, s, name, 2, 10*time.Second)
	r, err := s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: b.LeaseID, TTL: 20 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, b.FencingToken, r.FencingToken)
	assert.Equal(t, 20*time.Second, r.TTL)
	assert.True(t, r.ExpiresAt.After(b.ExpiresAt))
	assert.Equal(t, 2, r.Permits)
	waitUntil(a.ExpiresAt.Add(50 * time.Millisecond))
	_, err = s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: a.LeaseID})
	assert.ErrorIs(t, err, lock.ErrLeaseLost)
	assert.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: a.LeaseID}), lock.ErrLeaseLost)
	c := acquireN(t, s, name, 2, 10*time.Second)
	assert.Greater(t, c.FencingToken, b.FencingToken)
	st, err := s.Status(ctx, name)
	require.NoError(t, err)
	assert.Len(t, st.Holders, 2)
	for _, l := range []lock.Lease{b, c} {
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))
	}
}

// testSemaphoreWait: an acquire that waits is handed the first permit
// freed.
func testSemaphoreWait(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	a := acquireN(t, s, name, 2, 10*time.Second)
	b := acquireN(t, s, name, 2, 10*time.Second)
	got := make(chan lock.Lease, 1)
	go func() {
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Permits: 2, Wait: 5 * time.Second})
		assert.NoError(t, err)
		got <- l
	}()
	time.Sleep(200 * time.Millisecond)
	released := time.Now()
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: a.LeaseID}))
	l := <-got
	assert.Greater(t, l.FencingToken, b.FencingToken)
	assert.Less(t, time.Since(released), 3*time.Second, "the waiter got the freed permit")
	for _, l := range []lock.Lease{b, l} {
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))
	}
}

// testLockDelay: a lease with a lock-delay that expires without a release
// keeps the name unavailable until its expiry plus the delay, for plain
// acquires too; status and the held error say until when.
func testLockDelay(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	const delay = 1500 * time.Millisecond
	before := time.Now()
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, TTL: time.Second, LockDelay: delay})
	require.NoError(t, err)
	checkLease(t, l, name, time.Second, before)
	assert.Equal(t, delay, l.LockDelay)
	waitUntil(l.ExpiresAt.Add(100 * time.Millisecond))
	_, err = s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID})
	assert.ErrorIs(t, err, lock.ErrLeaseLost, "the lease itself has ended")
	for _, req := range []lock.AcquireRequest{{Name: name}, {Name: name, LockDelay: delay}} {
		_, err = s.Acquire(ctx, req)
		var held *lock.HeldError
		require.ErrorAs(t, err, &held, "still delayed (lock_delay_ms %d)", req.LockDelay.Milliseconds())
		assert.Equal(t, l.FencingToken, held.Holder.FencingToken)
		assert.Equal(t, l.ExpiresAt.Add(delay), held.DelayedUntil)
		assert.Greater(t, held.RetryAfter, time.Duration(0))
		assert.LessOrEqual(t, held.RetryAfter, delay)
	}
	st, err := s.Status(ctx, name)
	require.NoError(t, err)
	assert.False(t, st.Held, "no live lease")
	require.Len(t, st.Delayed, 1)
	assert.Equal(t, l.ExpiresAt.Add(delay), st.Delayed[0].FreeAt())
	// A waiting acquire gets it once the delay runs out, not before.
	m, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Wait: 5 * time.Second})
	require.NoError(t, err)
	assert.False(t, time.Now().Before(l.ExpiresAt.Add(delay)), "granted only after the delay")
	assert.Greater(t, m.FencingToken, l.FencingToken)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: m.LeaseID}))
}

// testLockDelayReleased: a lease released in time leaves no delay.
func testLockDelayReleased(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, TTL: 10 * time.Second, LockDelay: lock.MaxLockDelay})
	require.NoError(t, err)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))
	m := acquire(t, s, name, 10*time.Second)
	assert.Greater(t, m.FencingToken, l.FencingToken)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: m.LeaseID}))
}

// testTokensAcrossKinds: one counter serves a name used as a mutex, then
// as a semaphore, then as a mutex again.
func testTokensAcrossKinds(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	var last int64
	for round, permits := range []int{1, 3, 1, 5, 1} {
		l := acquireN(t, s, name, permits, 10*time.Second)
		assert.Greater(t, l.FencingToken, last, "round %d (permits %d)", round, permits)
		last = l.FencingToken
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))
	}
}

// testPermitList: a listing shows a semaphore with a live permit (its
// status from the table: permits, holders) beside a plain lock, and not a
// name whose only lease expired and is lock-delayed (not held, though
// unavailable); status shows that one under Delayed.
func testPermitList(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	sem := acquireN(t, s, name+"/sem", 3, 10*time.Second)
	mu := acquire(t, s, name+"/mutex", 10*time.Second)
	delayed, err := s.Acquire(ctx, lock.AcquireRequest{Name: name + "/delayed", TTL: time.Second, LockDelay: time.Minute})
	require.NoError(t, err)
	waitUntil(delayed.ExpiresAt.Add(50 * time.Millisecond))

	got := map[string]lock.Status{}
	page := ""
	for {
		items, next, err := s.List(ctx, name+"/", 100, page)
		require.NoError(t, err)
		for _, st := range items {
			got[st.Name] = st
		}
		if next == "" {
			break
		}
		page = next
	}
	require.Len(t, got, 2, "the delayed name is not held: %v", got)
	assert.Equal(t, 3, got[name+"/sem"].Permits)
	require.Len(t, got[name+"/sem"].Holders, 1)
	assert.Equal(t, sem.FencingToken, got[name+"/sem"].Holder.FencingToken)
	assert.Equal(t, mu.FencingToken, got[name+"/mutex"].Holder.FencingToken)
	assert.Zero(t, got[name+"/mutex"].Permits, "a plain lock lists as before")

	st, err := s.Status(ctx, name+"/delayed")
	require.NoError(t, err)
	assert.False(t, st.Held)
	assert.Len(t, st.Delayed, 1)
}

// testPermitContention: goroutines on two service instances take permits
// of semaphores of 3 with waits, hold them briefly, sometimes renew, and
// release; CheckPermits must find no more than 3 holders at once, no
// token twice, and tokens in grant order. A guard counts the holders of
// each name inside the protected section.
func testPermitContention(t *testing.T, instances []*service.Service, cfg ContentionConfig) {
	const permits = 3
	goroutines := max(cfg.Goroutines, 8)
	acquires := max(cfg.Acquires/4, 100)
	names := []string{uniqueName(t) + ".0", uniqueName(t) + ".1"}
	ctx := ctxFor(t)
	var (
		hist    History
		issued  atomic.Int64
		inside  [2]atomic.Int32
		guardOK atomic.Bool
		errs    = make(chan error, goroutines)
		wg      sync.WaitGroup
	)
	guardOK.Store(true)
	for g := range goroutines {
		s := instances[g%len(instances)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; issued.Add(1) <= int64(acquires); i++ {
				k := (g + i) % len(names)
				sent := time.Now()
				l, err := s.Acquire(ctx, lock.AcquireRequest{Name: names[k], Permits: permits, TTL: 30 * time.Second, Wait: 20 * time.Second, Owner: fmt.Sprint(g)})
				start := time.Now()
				if err != nil {
					errs <- fmt.Errorf("goroutine %d acquire %s: %w", g, names[k], err)
					return
				}
				if inside[k].Add(1) > permits {
					guardOK.Store(false)
				}
				if i%4 == 0 {
					if _, err := s.Renew(ctx, lock.RenewRequest{Name: names[k], LeaseID: l.LeaseID}); err != nil {
						errs <- fmt.Errorf("goroutine %d renew: %w", g, err)
						return
					}
				}
				time.Sleep(time.Millisecond)
				inside[k].Add(-1)
				hist.Add(Hold{Name: names[k], Token: l.FencingToken, Start: start, End: time.Now(), Client: g, Sent: sent})
				if err := s.Release(ctx, lock.ReleaseRequest{Name: names[k], LeaseID: l.LeaseID}); err != nil {
					errs <- fmt.Errorf("goroutine %d release: %w", g, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, lock.ErrThrottled) {
			t.Error(err)
		}
	}
	assert.True(t, guardOK.Load(), "more than %d holders inside the protected section at once", permits)
	hist.mu.Lock()
	err := CheckPermits(hist.holds, permits)
	hist.mu.Unlock()
	require.NoError(t, err)
	assert.Equal(t, acquires, hist.Len(), "every acquire completed")
}
