// Package providertest is the one conformance suite that every provider
// runs: the semantics of API v1 (happy paths, held and lost errors, expiry
// and takeover, renewals, fencing tokens across release, expiry and restart,
// server-side waits) and a contention test whose checker fails on any
// overlap of holders or any fencing token that does not increase.
//
// A provider's test calls Run with a Harness that opens it against a real
// backend.
package providertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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

// Harness opens the provider under test. Sub-tests use names unique to
// them, so one backend may serve them all.
type Harness struct {
	// Open returns a provider on the backend. Required. The suite closes it.
	Open func(t *testing.T) providers.Provider
	// OpenWithClock returns a provider that judges expiry by c, for
	// providers that use the service's clock; nil if the provider does not.
	OpenWithClock func(t *testing.T, c lock.Clock) providers.Provider
	// Restart stops and restarts the backend keeping its data; providers
	// opened before may be closed by it. Nil if the backend cannot restart.
	Restart func(t *testing.T)
	// Contention sets the size of the contention test; zero values take
	// the defaults (8 goroutines, 3 names, 2000 acquires).
	Contention ContentionConfig
}

// ContentionConfig sizes the contention test.
type ContentionConfig struct {
	Goroutines int
	Names      int
	Acquires   int
}

// OffsetClock is the system clock shifted by an adjustable offset, to test
// providers that judge expiry by the service's clock.
type OffsetClock struct{ off atomic.Int64 }

// Now returns the system time plus the offset.
func (c *OffsetClock) Now() time.Time { return time.Now().Add(time.Duration(c.off.Load())) }

// Set sets the offset.
func (c *OffsetClock) Set(d time.Duration) { c.off.Store(int64(d)) }

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	open := func(t *testing.T) *service.Service {
		p := h.Open(t)
		t.Cleanup(func() { _ = p.Close() })
		return service.New(p)
	}
	tests := []semanticsTest{
		{"AcquireRenewReleaseStatus", testHappyPath},
		{"StatusOfUnknownName", testStatusUnknown},
		{"Held", testHeld},
		{"WrongLeaseID", testWrongLeaseID},
		{"ReleaseTwice", testReleaseTwice},
		{"LeaseIDsAreUnique", testLeaseIDs},
		{"TokensIncreaseAcrossRelease", testTokensAcrossRelease},
		{"NamesAreIndependent", testIndependentNames},
		{"RenewKeepsGrantedTTL", testRenewDefaultTTL},
		{"RenewChangesTTL", testRenewNewTTL},
		{"ConcurrentRenews", testConcurrentRenews},
		{"ExpiryAndTakeover", testExpiry},
		{"RenewAfterExpiryIsLost", testRenewAfterExpiry},
		{"WaitForRelease", testWaitRelease},
		{"WaitForExpiry", testWaitExpiry},
		{"WaitTimesOut", testWaitTimeout},
		{"WaitEndsWithContext", testWaitContext},
		{"ListByPrefix", testList},
		{"WatchSeesEveryChange", testWatchChanges},
		{"WatchReportsNoFalseChange", testWatchNoChange},
	}
	// The sub-tests run in parallel inside this group, which returns when
	// they all have.
	t.Run("Semantics", func(t *testing.T) {
		runParallel(t, open, tests)
		t.Run("ServiceClockTakeover", func(t *testing.T) {
			if h.OpenWithClock == nil {
				t.Skip("provider does not judge expiry by the service's clock")
			}
			t.Parallel()
			testClockTakeover(t, h, uniqueName(t))
		})
	})
	t.Run("WatchCost", func(t *testing.T) {
		p := h.Open(t)
		t.Cleanup(func() { _ = p.Close() })
		testWatchCost(t, p, uniqueName(t))
	})
	t.Run("WatchLatency", func(t *testing.T) {
		testWatchLatency(t, open(t), open(t), open(t), uniqueName(t))
	})
	t.Run("Election", func(t *testing.T) {
		Election(t, []*service.Service{open(t), open(t)}, uniqueName(t), ElectionConfig{})
	})
	t.Run("Contention", func(t *testing.T) {
		testContention(t, open(t), h.Contention)
	})
	t.Run("Permits", func(t *testing.T) {
		runPermits(t, open, h.Contention)
	})
	// Restart last and alone: it disturbs the backend for others.
	t.Run("TokensSurviveRestart", func(t *testing.T) {
		if h.Restart == nil {
			t.Skip("backend cannot be restarted by the harness")
		}
		testRestart(t, h, uniqueName(t))
	})
}

// semanticsTest is one sub-test of a group that runs in parallel, each on
// its own service instance and name.
type semanticsTest struct {
	name string
	fn   func(t *testing.T, s *service.Service, name string)
}

// runParallel runs tests in parallel inside t (which returns when they all
// have), each on a service from open and a name of its own.
func runParallel(t *testing.T, open func(t *testing.T) *service.Service, tests []semanticsTest) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t), uniqueName(t))
		})
	}
}

func uniqueName(t *testing.T) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	n := strings.NewReplacer("/", ".", " ", "_").Replace(t.Name())
	return "test." + n + "." + hex.EncodeToString(b[:])
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func acquire(t *testing.T, s *service.Service, name string, ttl time.Duration) lock.Lease {
	t.Helper()
	before := time.Now()
	l, err := s.Acquire(ctxFor(t), lock.AcquireRequest{Name: name, TTL: ttl, Owner: "owner-" + name[len(name)-4:]})
	require.NoError(t, err, "acquire %s", name)
	checkLease(t, l, name, ttl, before)
	return l
}

// checkLease checks the fields every granted lease must carry.
func checkLease(t *testing.T, l lock.Lease, name string, ttl time.Duration, before time.Time) {
	t.Helper()
	assert.Equal(t, name, l.Name)
	assert.GreaterOrEqual(t, len(l.LeaseID), 22, "lease id carries at least 128 random bits")
	assert.LessOrEqual(t, len(l.LeaseID), lock.MaxLeaseIDLen)
	assert.Positive(t, l.FencingToken)
	assert.Less(t, l.FencingToken, lock.MaxFencingToken)
	if ttl != 0 {
		assert.GreaterOrEqual(t, l.TTL, ttl, "granted ttl may only round up")
	}
	assert.Zero(t, l.TTL%time.Millisecond, "granted ttl is whole milliseconds")
	assert.Equal(t, l.ExpiresAt, l.ExpiresAt.Truncate(time.Millisecond), "expires_at has millisecond precision")
	// Expiry counts from no earlier than the call and no later than now.
	assert.False(t, l.ExpiresAt.Before(before.Add(l.TTL).Add(-time.Millisecond)), "expires_at %s earlier than call start + ttl", l.ExpiresAt)
	assert.False(t, l.ExpiresAt.After(time.Now().Add(l.TTL)), "expires_at %s later than now + ttl", l.ExpiresAt)
}

func testHappyPath(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	before := time.Now()
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Owner: "worker-1", Metadata: `{"job":42}`})
	require.NoError(t, err)
	checkLease(t, l, name, lock.DefaultTTL, before)
	assert.Equal(t, "worker-1", l.Owner)
	assert.Equal(t, `{"job":42}`, l.Metadata)

	st, err := s.Status(ctx, name)
	require.NoError(t, err)
	assert.True(t, st.Held)
	assert.Equal(t, lock.Holder{Owner: "worker-1", FencingToken: l.FencingToken, ExpiresAt: l.ExpiresAt, Metadata: `{"job":42}`}, st.Holder)

	time.Sleep(5 * time.Millisecond)
	r, err := s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID})
	require.NoError(t, err)
	assert.Equal(t, l.LeaseID, r.LeaseID)
	assert.Equal(t, l.FencingToken, r.FencingToken, "renew keeps the token")
	assert.Equal(t, l.Owner, r.Owner)
	assert.Equal(t, l.Metadata, r.Metadata)
	assert.False(t, r.ExpiresAt.Before(l.ExpiresAt), "renew does not shorten the lease")

	st, err = s.Status(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, r.ExpiresAt, st.Holder.ExpiresAt, "status shows the renewed expiry")

	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))
	st, err = s.Status(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, lock.Status{Name: name}, st)
}

func testStatusUnknown(t *testing.T, s *service.Service, name string) {
	st, err := s.Status(ctxFor(t), name)
	require.NoError(t, err)
	assert.Equal(t, lock.Status{Name: name}, st)
}

func testHeld(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Owner: "first", Metadata: "m", TTL: 10 * time.Second})
	require.NoError(t, err)
	_, err = s.Acquire(ctx, lock.AcquireRequest{Name: name, Owner: "second"})
	require.ErrorIs(t, err, lock.ErrHeld)
	var held *lock.HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, name, held.Name)
	assert.Equal(t, "first", held.Holder.Owner)
	assert.Equal(t, l.FencingToken, held.Holder.FencingToken)
	assert.Equal(t, l.ExpiresAt, held.Holder.ExpiresAt)
	assert.Positive(t, held.RetryAfter)
	assert.LessOrEqual(t, held.RetryAfter, time.Until(l.ExpiresAt)+time.Second, "retry hint at most the time to expiry")
	assert.NotContains(t, err.Error(), l.LeaseID, "a held error never shows the holder's lease id")
	// The holder is untouched.
	_, err = s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID})
	require.NoError(t, err)
}

func testWrongLeaseID(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	l := acquire(t, s, name, 10*time.Second)
	for _, id := range []string{providers.NewLeaseID(), l.LeaseID[:len(l.LeaseID)-1], l.LeaseID + "x", strings.ToUpper(l.LeaseID)} {
		if id == l.LeaseID {
			continue
		}
		_, err := s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: id})
		assert.ErrorIs(t, err, lock.ErrLeaseLost, "renew with id %q", id)
		assert.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: id}), lock.ErrLeaseLost)
	}
	// A lease id for another name is lost there.
	_, err := s.Renew(ctx, lock.RenewRequest{Name: name + ".other", LeaseID: l.LeaseID})
	assert.ErrorIs(t, err, lock.ErrLeaseLost)
	st, err := s.Status(ctx, name)
	require.NoError(t, err)
	assert.True(t, st.Held, "wrong ids must not disturb the holder")
	assert.Equal(t, l.FencingToken, st.Holder.FencingToken)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))
}

func testReleaseTwice(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	l := acquire(t, s, name, 10*time.Second)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))
	assert.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}), lock.ErrLeaseLost)
	_, err := s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID})
	assert.ErrorIs(t, err, lock.ErrLeaseLost)
	// A later holder is not disturbed by the old id.
	l2 := acquire(t, s, name, 10*time.Second)
	assert.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}), lock.ErrLeaseLost)
	_, err = s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l2.LeaseID})
	require.NoError(t, err)
}

func testLeaseIDs(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	seen := map[string]bool{}
	for range 5 {
		l := acquire(t, s, name, 10*time.Second)
		assert.False(t, seen[l.LeaseID], "lease id reused")
		seen[l.LeaseID] = true
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))
	}
}

func testTokensAcrossRelease(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	var last int64
	for i := range 10 {
		l := acquire(t, s, name, 10*time.Second)
		require.Greater(t, l.FencingToken, last, "acquire %d", i)
		last = l.FencingToken
		if i%2 == 0 {
			_, err := s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID})
			require.NoError(t, err)
		}
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))
	}
}

func testIndependentNames(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	a := acquire(t, s, name+".a", 10*time.Second)
	b := acquire(t, s, name+".b", 10*time.Second)
	_, err := s.Renew(ctx, lock.RenewRequest{Name: name + ".b", LeaseID: a.LeaseID})
	assert.ErrorIs(t, err, lock.ErrLeaseLost, "a lease renews only its own name")
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name + ".a", LeaseID: a.LeaseID}))
	st, err := s.Status(ctx, name+".b")
	require.NoError(t, err)
	assert.True(t, st.Held)
	assert.Equal(t, b.FencingToken, st.Holder.FencingToken)
}

func testRenewDefaultTTL(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	l := acquire(t, s, name, 3*time.Second)
	before := time.Now()
	r, err := s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID})
	require.NoError(t, err)
	assert.Equal(t, l.TTL, r.TTL, "renew without ttl keeps the granted ttl")
	assert.False(t, r.ExpiresAt.Before(before.Add(r.TTL).Add(-time.Millisecond)), "renewed expiry counts from the renew")
}

func testRenewNewTTL(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	l := acquire(t, s, name, 2*time.Second)
	r, err := s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID, TTL: 10 * time.Second})
	require.NoError(t, err)
	assert.GreaterOrEqual(t, r.TTL, 10*time.Second)
	assert.Equal(t, l.FencingToken, r.FencingToken)
	// The lease outlives its original expiry.
	time.Sleep(time.Until(l.ExpiresAt) + 1200*time.Millisecond)
	_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: name})
	require.ErrorIs(t, err, lock.ErrHeld, "renewed lease must outlive its first expiry")
	r2, err := s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID})
	require.NoError(t, err)
	assert.Equal(t, r.TTL, r2.TTL, "a later renew keeps the newly granted ttl")
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))
}

// testConcurrentRenews: renews of one live lease that race each other (a
// retry beside the original, a manual renew beside the background one)
// all succeed; none reports the lease lost.
func testConcurrentRenews(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	l := acquire(t, s, name, 10*time.Second)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ttl := time.Duration(0)
			if i%3 == 0 {
				ttl = time.Duration(10+i) * time.Second
			}
			r, err := s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID, TTL: ttl})
			if assert.NoError(t, err, "concurrent renew %d", i) {
				assert.Equal(t, l.FencingToken, r.FencingToken)
			}
		}()
	}
	wg.Wait()
	st, err := s.Status(ctx, name)
	require.NoError(t, err)
	assert.True(t, st.Held)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))
	st, err = s.Status(ctx, name)
	require.NoError(t, err)
	assert.False(t, st.Held, "released after the concurrent renews")
}

// waitUntil sleeps until t.
func waitUntil(at time.Time) { time.Sleep(time.Until(at)) }

func testExpiry(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	l := acquire(t, s, name, time.Second)
	// Never earlier: just before expires_at the lock is still held.
	waitUntil(l.ExpiresAt.Add(-250 * time.Millisecond))
	_, err := s.TryAcquire(ctx, lock.AcquireRequest{Name: name})
	require.ErrorIs(t, err, lock.ErrHeld, "lease ended before its expires_at")
	// After expires_at another acquirer gets it (a backend may take a
	// moment to notice; the wait covers that).
	l2, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Wait: 5 * time.Second})
	require.NoError(t, err)
	got := time.Now()
	assert.False(t, got.Before(l.ExpiresAt), "taken over at %s, before expires_at %s", got, l.ExpiresAt)
	assert.Greater(t, l2.FencingToken, l.FencingToken, "token increases across expiry")
	_, err = s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID})
	assert.ErrorIs(t, err, lock.ErrLeaseLost)
	assert.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}), lock.ErrLeaseLost)
	st, err := s.Status(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, l2.FencingToken, st.Holder.FencingToken)
}

func testRenewAfterExpiry(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	l := acquire(t, s, name, time.Second)
	waitUntil(l.ExpiresAt.Add(50 * time.Millisecond))
	_, err := s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID})
	assert.ErrorIs(t, err, lock.ErrLeaseLost, "renew after expires_at")
	assert.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}), lock.ErrLeaseLost, "release after expires_at")
	st, err := s.Status(ctx, name)
	require.NoError(t, err)
	assert.False(t, st.Held, "status after expires_at")
	l2 := acquire(t, s, name, time.Second)
	assert.Greater(t, l2.FencingToken, l.FencingToken)
}

func testWaitRelease(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	l := acquire(t, s, name, 30*time.Second)
	type release struct {
		at  time.Time
		err error
	}
	done := make(chan release, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		at := time.Now()
		done <- release{at, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID})}
	}()
	l2, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Wait: 10 * time.Second})
	got := time.Now()
	r := <-done // the release's outcome, whatever the acquire's
	require.NoError(t, r.err, "release")
	require.NoError(t, err, "waiting acquire")
	assert.Greater(t, l2.FencingToken, l.FencingToken)
	assert.False(t, got.Before(r.at), "granted before the release")
	assert.Less(t, got.Sub(r.at), 2*time.Second, "a waiter hears of a release promptly")
}

func testWaitExpiry(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	l := acquire(t, s, name, time.Second)
	l2, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Wait: 10 * time.Second})
	require.NoError(t, err)
	assert.False(t, time.Now().Before(l.ExpiresAt), "granted before the holder expired")
	assert.Greater(t, l2.FencingToken, l.FencingToken)
}

func testWaitTimeout(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	l := acquire(t, s, name, 30*time.Second)
	start := time.Now()
	_, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Wait: 500 * time.Millisecond})
	elapsed := time.Since(start)
	require.ErrorIs(t, err, lock.ErrHeld)
	assert.GreaterOrEqual(t, elapsed, 500*time.Millisecond, "waited the whole wait")
	assert.Less(t, elapsed, 5*time.Second, "did not wait much longer than asked")
	var held *lock.HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, l.FencingToken, held.Holder.FencingToken)
}

func testWaitContext(t *testing.T, s *service.Service, name string) {
	acquire(t, s, name, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Wait: 10 * time.Second})
	require.Error(t, err)
	assert.Less(t, time.Since(start), 5*time.Second, "the caller's context bounds the wait")
}

func testClockTakeover(t *testing.T, h Harness, name string) {
	ctx := ctxFor(t)
	c := &OffsetClock{}
	fast := h.OpenWithClock(t, c)
	t.Cleanup(func() { _ = fast.Close() })
	slow := h.Open(t)
	t.Cleanup(func() { _ = slow.Close() })
	sf, ss := service.New(fast), service.New(slow)

	l := acquire(t, ss, name, 5*time.Second)
	// A service whose clock reads past the lease's expiry treats it as
	// ended (the backend may still keep the record) and takes over.
	c.Set(6 * time.Second)
	l2, err := sf.TryAcquire(ctx, lock.AcquireRequest{Name: name})
	require.NoError(t, err, "takeover by the service's clock")
	assert.Greater(t, l2.FencingToken, l.FencingToken)
	_, err = ss.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID})
	assert.ErrorIs(t, err, lock.ErrLeaseLost, "the old holder has lost")
	_, err = sf.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l2.LeaseID})
	assert.NoError(t, err, "the new holder renews")
}

func testRestart(t *testing.T, h Harness, name string) {
	p := h.Open(t)
	s := service.New(p)
	ctx := ctxFor(t)
	a := acquire(t, s, name+".held", 60*time.Second)
	b := acquire(t, s, name+".released", 60*time.Second)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name + ".released", LeaseID: b.LeaseID}))
	_ = p.Close()

	h.Restart(t)

	p = h.Open(t)
	t.Cleanup(func() { _ = p.Close() })
	s = service.New(p)
	st, err := s.Status(ctx, name+".held")
	require.NoError(t, err)
	require.True(t, st.Held, "a valid lease survives a restart")
	assert.Equal(t, a.FencingToken, st.Holder.FencingToken)
	r, err := s.Renew(ctx, lock.RenewRequest{Name: name + ".held", LeaseID: a.LeaseID})
	require.NoError(t, err, "the holder renews after a restart")
	assert.Equal(t, a.FencingToken, r.FencingToken)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name + ".held", LeaseID: a.LeaseID}))
	a2 := acquire(t, s, name+".held", 10*time.Second)
	assert.Greater(t, a2.FencingToken, a.FencingToken, "token increases across restart")
	b2 := acquire(t, s, name+".released", 10*time.Second)
	assert.Greater(t, b2.FencingToken, b.FencingToken, "token increases across restart after release")
}

func testContention(t *testing.T, s *service.Service, cfg ContentionConfig) {
	if cfg.Goroutines == 0 {
		cfg.Goroutines = 8
	}
	if cfg.Names == 0 {
		cfg.Names = 3
	}
	if cfg.Acquires == 0 {
		cfg.Acquires = 2000
	}
	base := uniqueName(t)
	names := make([]string, cfg.Names)
	guards := make([]atomic.Int32, cfg.Names)
	for i := range names {
		names[i] = fmt.Sprintf("%s.%d", base, i)
	}
	ctx := ctxFor(t)
	var (
		hist    History
		issued  atomic.Int64
		guardOK atomic.Bool
		errs    = make(chan error, cfg.Goroutines)
		wg      sync.WaitGroup
	)
	guardOK.Store(true)
	for g := range cfg.Goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if issued.Add(1) > int64(cfg.Acquires) {
					return
				}
				k := (g + i) % cfg.Names
				l, err := s.Acquire(ctx, lock.AcquireRequest{Name: names[k], TTL: 30 * time.Second, Wait: 20 * time.Second, Owner: fmt.Sprint(g)})
				start := time.Now()
				if err != nil {
					errs <- fmt.Errorf("goroutine %d acquire %s: %w", g, names[k], err)
					return
				}
				// The protected resource: it must never see two holders.
				if !guards[k].CompareAndSwap(0, 1) {
					guardOK.Store(false)
				}
				if i%4 == 0 {
					if _, err := s.Renew(ctx, lock.RenewRequest{Name: names[k], LeaseID: l.LeaseID}); err != nil {
						errs <- fmt.Errorf("goroutine %d renew: %w", g, err)
						return
					}
				}
				guards[k].Store(0)
				end := time.Now()
				hist.Add(Hold{Name: names[k], Token: l.FencingToken, Start: start, End: end, Client: g})
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
		t.Error(err)
	}
	assert.True(t, guardOK.Load(), "two holders inside the protected section at once")
	require.NoError(t, hist.Check())
	assert.Equal(t, cfg.Acquires, hist.Len(), "every acquire completed")
}
