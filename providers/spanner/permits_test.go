package spanner_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"
	"google.golang.org/grpc"

	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/providers/spanner"
	"github.com/hasplock/hasp/service"
)

// TestPermitRequestCounts: on a warm client, a semaphore acquire costs
// three RPCs (the strong single-use read that decides, then
// UpdatePermits's read-write transaction: the query that reads the row and
// begins it, and the commit); an acquire that finds every permit taken
// stops after the read: one RPC. A renew or release is the transaction
// alone: two RPCs, whatever it answers.
func TestPermitRequestCounts(t *testing.T) {
	e := launch.Spanner(t)
	p := open(t, e, database(t, e))
	defer p.Close()
	s := service.New(p)
	ctx := context.Background()
	_, err := s.Status(ctx, "warm") // opens the session
	require.NoError(t, err)
	count := func(what string, want int64, f func()) {
		t.Helper()
		before := p.BackendRequests()
		f()
		assert.Equal(t, want, p.BackendRequests()-before, what)
	}
	var a, b lock.Lease
	count("first acquire (a new row)", 3, func() {
		a, err = s.Acquire(ctx, lock.AcquireRequest{Name: "n", Permits: 2})
		require.NoError(t, err)
	})
	count("second acquire", 3, func() {
		b, err = s.Acquire(ctx, lock.AcquireRequest{Name: "n", Permits: 2})
		require.NoError(t, err)
	})
	count("held acquire: the read decides", 1, func() {
		_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "n", Permits: 2})
		require.ErrorIs(t, err, lock.ErrHeld)
	})
	count("plain acquire of a busy table: one transaction, as a held mutex", 2, func() {
		_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
		require.ErrorIs(t, err, lock.ErrPermitsMismatch)
	})
	count("renew", 2, func() {
		_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: a.LeaseID, TTL: 5 * time.Second})
		require.NoError(t, err)
	})
	count("status is one read", 1, func() {
		st, err := s.Status(ctx, "n")
		require.NoError(t, err)
		assert.Len(t, st.Holders, 2)
	})
	for _, l := range []lock.Lease{a, b} {
		count("release", 2, func() {
			require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}))
		})
	}
	count("release again: lost, decided in the transaction", 2, func() {
		require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: a.LeaseID}), lock.ErrLeaseLost)
	})
	count("a plain acquire of the idle table takes the row over", 2, func() {
		m, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
		require.NoError(t, err)
		assert.Greater(t, m.FencingToken, b.FencingToken)
	})
}

// TestPermitRunAgainAfterApplied: the client library runs StorePermits's
// transaction again after its commit was applied (answered Aborted here),
// with another instance at work in between or not. The run finds the row
// changed and answers a conflict; the service reads the row again and
// recognises its own write: the acquire answers its permit, the release
// answers released (its release mark), and a second release is lost.
func TestPermitRunAgainAfterApplied(t *testing.T) {
	e := launch.Spanner(t)
	for _, tc := range []struct {
		name    string
		acquire bool // else release
		other   bool // another instance takes a permit in between
	}{
		{"release, nobody in between", false, false},
		{"release, a permit taken in between", false, true},
		{"acquire, nobody in between", true, false},
		{"acquire, a permit taken in between", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := database(t, e)
			other := open(t, e, db)
			defer other.Close()
			others := service.New(other)
			ctx := context.Background()
			ab := &abortAppliedCommit{between: func() {
				if tc.other {
					_, err := others.TryAcquire(ctx, lock.AcquireRequest{Name: "n", Permits: 3})
					require.NoError(t, err)
				}
			}}
			p := open(t, e, db, spanner.WithClientOptions(option.WithGRPCDialOption(grpc.WithChainUnaryInterceptor(ab.intercept))))
			defer p.Close()
			s := service.New(p)
			first, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n", Permits: 3})
			require.NoError(t, err)
			ab.armed.Store(true)
			if tc.acquire {
				l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n", Permits: 3})
				require.True(t, ab.done.Load(), "the acquire's commit was applied and answered Aborted")
				require.NoError(t, err, "the permit is ours")
				assert.Greater(t, l.FencingToken, first.FencingToken)
				st, err := s.Status(ctx, "n")
				require.NoError(t, err)
				want := 2
				if tc.other {
					want = 3
				}
				require.Len(t, st.Holders, want, "one permit for the acquire, not two")
				assert.Equal(t, l.FencingToken, st.Holders[1].FencingToken)
				assert.Equal(t, l.ExpiresAt, st.Holders[1].ExpiresAt)
				_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID})
				require.NoError(t, err, "the permit holds")
				return
			}
			err = s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: first.LeaseID})
			require.True(t, ab.done.Load(), "the release's commit was applied and answered Aborted")
			require.NoError(t, err, "the release went through")
			st, err := s.Status(ctx, "n")
			require.NoError(t, err)
			assert.Equal(t, tc.other, st.Held)
			require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: first.LeaseID}), lock.ErrLeaseLost, "a second release is lost")
		})
	}
}

// TestPermitExpiryIsSpanners: a permit's expiry is measured from
// Spanner's clock (LoadPermits's read timestamp), whatever the service's
// clock says: with the service an hour behind or ahead, the permit still
// ends TTL after the call by the machine's clock (the emulator's), and a
// plain acquire by an unskewed instance, judged by Spanner's clock in its
// transaction, finds the lock-delayed table busy.
func TestPermitExpiryIsSpanners(t *testing.T) {
	e := launch.Spanner(t)
	db := database(t, e)
	ctx := context.Background()
	plain := service.New(open(t, e, db))
	for _, skew := range []time.Duration{-time.Hour, time.Hour} {
		c := &providertest.OffsetClock{}
		c.Set(skew)
		p := open(t, e, db, spanner.WithClock(c))
		s := service.New(p)
		name := fmt.Sprintf("skew%d", skew/time.Hour)
		before := time.Now()
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, TTL: 5 * time.Second, Permits: 2})
		after := time.Now()
		require.NoError(t, err)
		assert.False(t, l.ExpiresAt.Before(before.Add(5*time.Second).Truncate(time.Millisecond)), "skew %s: expiry %v, sent at %v", skew, l.ExpiresAt, before)
		assert.False(t, l.ExpiresAt.After(after.Add(5*time.Second)), "skew %s: expiry %v, answered at %v", skew, l.ExpiresAt, after)
		m, err := s.Acquire(ctx, lock.AcquireRequest{Name: name + "d", TTL: 5 * time.Second, LockDelay: time.Second})
		require.NoError(t, err)
		_, err = plain.TryAcquire(ctx, lock.AcquireRequest{Name: name + "d"})
		var held *lock.HeldError
		require.ErrorAs(t, err, &held, "skew %s", skew)
		assert.Equal(t, m.FencingToken, held.Holder.FencingToken)
		assert.Equal(t, m.ExpiresAt, held.Holder.ExpiresAt)
		assert.InDelta(t, 6*time.Second, held.RetryAfter, float64(time.Second), "skew %s: the rest of the TTL plus the lock-delay", skew)
		require.NoError(t, p.Close())
	}
}

// TestListPermitTables: List shows a semaphore with a live permit as its
// table's status, and leaves out one whose permits are only lock-delayed
// (its row still passes the query's expiry test); such a row still counts
// toward the page, which then has a continuation.
func TestListPermitTables(t *testing.T) {
	e := launch.Spanner(t)
	p := open(t, e, database(t, e))
	defer p.Close()
	s := service.New(p)
	ctx := context.Background()
	d, err := s.Acquire(ctx, lock.AcquireRequest{Name: "l/a", TTL: time.Second, LockDelay: time.Minute})
	require.NoError(t, err)
	sem, err := s.Acquire(ctx, lock.AcquireRequest{Name: "l/b", TTL: 10 * time.Second, Permits: 3, Owner: "o"})
	require.NoError(t, err)
	m, err := s.Acquire(ctx, lock.AcquireRequest{Name: "l/c", TTL: 10 * time.Second})
	require.NoError(t, err)
	time.Sleep(time.Until(d.ExpiresAt.Add(100 * time.Millisecond)))

	items, next, err := p.List(ctx, "l/", 10, "")
	require.NoError(t, err)
	assert.Empty(t, next)
	require.Len(t, items, 2, "l/a is only lock-delayed")
	assert.Equal(t, "l/b", items[0].Name)
	assert.Equal(t, 3, items[0].Permits)
	require.Len(t, items[0].Holders, 1)
	assert.Equal(t, sem.FencingToken, items[0].Holder.FencingToken)
	assert.Equal(t, "o", items[0].Holder.Owner)
	assert.Equal(t, "l/c", items[1].Name)
	assert.Equal(t, m.FencingToken, items[1].Holder.FencingToken)

	items, next, err = p.List(ctx, "l/", 1, "")
	require.NoError(t, err)
	assert.Empty(t, items, "the page read l/a only")
	assert.Equal(t, "l/a", next)
	items, _, err = p.List(ctx, "l/", 1, next)
	require.NoError(t, err)
	require.Len(t, items, 1)
	assert.Equal(t, "l/b", items[0].Name)
}
