package spanner_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/local/testbed/spanneremu"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/providers/spanner"
	"github.com/hasplock/hasp/service"
)

var dbSeq atomic.Int64

// database creates a new database with the lock table in the emulator.
func database(t *testing.T, e *spanneremu.Emulator) string {
	t.Helper()
	ctx := context.Background()
	db, err := spanneremu.CreateDatabase(ctx, e.Addr, "hasp-test", "locks", fmt.Sprintf("db%d", dbSeq.Add(1)), nil)
	require.NoError(t, err)
	created, err := spanner.CreateSchema(ctx, db, spanner.DefaultTable, e.ClientOptions()...)
	require.NoError(t, err)
	require.True(t, created)
	return db
}

func open(t *testing.T, e *spanneremu.Emulator, db string, opts ...spanner.Option) *spanner.Provider {
	t.Helper()
	p, err := spanner.New(context.Background(), db, append(opts, spanner.WithClientOptions(e.ClientOptions()...))...)
	require.NoError(t, err)
	return p
}

// TestConformance runs the conformance and contention suite on the
// emulator. The emulator runs one read-write transaction at a time and
// aborts the others, so contention is sized down from the default.
func TestConformance(t *testing.T) {
	e := launch.Spanner(t)
	db := database(t, e)
	providertest.Run(t, providertest.Harness{
		Open:       func(t *testing.T) providers.Provider { return open(t, e, db) },
		Contention: providertest.ContentionConfig{Goroutines: 8, Names: 3, Acquires: 1000},
	})
}

func TestCreateSchemaIsIdempotent(t *testing.T) {
	e := launch.Spanner(t)
	db := database(t, e)
	created, err := spanner.CreateSchema(context.Background(), db, spanner.DefaultTable, e.ClientOptions()...)
	require.NoError(t, err)
	assert.False(t, created, "the table was already there")
	created, err = spanner.CreateSchema(context.Background(), db, "other_locks", e.ClientOptions()...)
	require.NoError(t, err)
	assert.True(t, created)
	p := open(t, e, db, spanner.WithTable("other_locks"))
	defer p.Close()
	require.NoError(t, p.Ping(context.Background()))
	_, err = spanner.CreateSchema(context.Background(), db, "bad-name;", e.ClientOptions()...)
	require.Error(t, err)
}

// TestPingWithoutTable: a database without the schema fails the health
// check with an internal error, not a retryable one.
func TestPingWithoutTable(t *testing.T) {
	e := launch.Spanner(t)
	db, err := spanneremu.CreateDatabase(context.Background(), e.Addr, "hasp-test", "locks", "empty", nil)
	require.NoError(t, err)
	p := open(t, e, db)
	defer p.Close()
	err = p.Ping(context.Background())
	require.Error(t, err)
	assert.NotErrorIs(t, err, lock.ErrUnavailable)
}

// TestRequestCounts: each operation is one read-write transaction of two
// RPCs (the query that begins it, and the commit), on a warm client.
func TestRequestCounts(t *testing.T) {
	e := launch.Spanner(t)
	p := open(t, e, database(t, e))
	defer p.Close()
	s := service.New(p)
	ctx := context.Background()
	_, err := s.Status(ctx, "warm") // opens the session
	require.NoError(t, err)
	for i := range 3 {
		before := p.BackendRequests()
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
		require.NoError(t, err)
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}))
		assert.Equal(t, int64(4), p.BackendRequests()-before, "cycle %d: two RPCs per acquire and per release", i)
	}
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
	require.NoError(t, err)
	before := p.BackendRequests()
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID, TTL: 5 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, int64(2), p.BackendRequests()-before, "renew")
	before = p.BackendRequests()
	_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
	require.ErrorIs(t, err, lock.ErrHeld)
	assert.Equal(t, int64(2), p.BackendRequests()-before, "held acquire: the holder comes with the read")
	before = p.BackendRequests()
	st, err := s.Status(ctx, "n")
	require.NoError(t, err)
	assert.True(t, st.Held)
	assert.Equal(t, int64(1), p.BackendRequests()-before, "status is one read")
}

// TestExpiryIsSpanners: a lease's expiry is Spanner's clock at the
// transaction plus TTL (the provider has no clock of its own); here the
// emulator shares the machine's clock, so it falls between the local times
// before and after the call. Status and a held acquire show the same.
func TestExpiryIsSpanners(t *testing.T) {
	e := launch.Spanner(t)
	s := service.New(open(t, e, database(t, e)))
	ctx := context.Background()
	before := time.Now()
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n", TTL: 5 * time.Second})
	after := time.Now()
	require.NoError(t, err)
	assert.False(t, l.ExpiresAt.Before(before.Add(5*time.Second).Truncate(time.Millisecond)), "expiry %v, sent at %v", l.ExpiresAt, before)
	assert.False(t, l.ExpiresAt.After(after.Add(5*time.Second)), "expiry %v, answered at %v", l.ExpiresAt, after)
	st, err := s.Status(ctx, "n")
	require.NoError(t, err)
	assert.Equal(t, l.ExpiresAt, st.Holder.ExpiresAt)
	_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
	var held *lock.HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, l.ExpiresAt, held.Holder.ExpiresAt)
	assert.InDelta(t, 5*time.Second, held.RetryAfter, float64(time.Second), "retry after the rest of the TTL")
}

// TestSkewedServiceClock: Spanner judges expiry, and the expiry a holder
// is told is the earlier of Spanner's and the service's readings: a
// service clock an hour behind reports an expiry an hour earlier (by its
// own clock, still the truth); one an hour ahead changes nothing. Neither
// can take over a live lease.
func TestSkewedServiceClock(t *testing.T) {
	e := launch.Spanner(t)
	db := database(t, e)
	ctx := context.Background()
	for _, skew := range []time.Duration{-time.Hour, time.Hour} {
		c := &providertest.OffsetClock{}
		c.Set(skew)
		p := open(t, e, db, spanner.WithClock(c))
		s := service.New(p)
		name := fmt.Sprintf("skew%d", skew/time.Hour)
		before := time.Now()
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, TTL: 5 * time.Second})
		require.NoError(t, err)
		want := before.Add(5 * time.Second)
		if skew < 0 {
			want = want.Add(skew)
		}
		assert.WithinDuration(t, want, l.ExpiresAt, time.Second, "skew %s", skew)
		st, err := s.Status(ctx, name)
		require.NoError(t, err)
		assert.Equal(t, l.ExpiresAt, st.Holder.ExpiresAt, "status shows what the holder was told")
		_, err = service.New(open(t, e, db)).TryAcquire(ctx, lock.AcquireRequest{Name: name})
		require.ErrorIs(t, err, lock.ErrHeld, "Spanner's clock says the lease is live")
		r, err := s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID})
		require.NoError(t, err)
		assert.False(t, r.ExpiresAt.Before(l.ExpiresAt))
		require.NoError(t, p.Close())
	}
}

// TestNewRowTokens: a new row's first token is above Spanner's time in
// milliseconds × 1000, so tokens cannot go back even if a row is deleted
// by hand.
func TestNewRowTokens(t *testing.T) {
	e := launch.Spanner(t)
	s := service.New(open(t, e, database(t, e)))
	before := time.Now()
	l, err := s.Acquire(context.Background(), lock.AcquireRequest{Name: "fresh"})
	require.NoError(t, err)
	assert.Greater(t, l.FencingToken, (before.UnixMilli()-1000)*1000)
	assert.Less(t, l.FencingToken, lock.MaxFencingToken)
}

func TestOpenURL(t *testing.T) {
	for _, bad := range []string{"spanner://", "spanner://projects/p", "spanner://projects/p/instances/i/databases/", "spanner://projects/p/instances/i/databases/d?table=no-dash"} {
		_, err := providers.Open(context.Background(), bad)
		assert.Error(t, err, bad)
	}
	e := launch.Spanner(t)
	db := database(t, e)
	t.Setenv("SPANNER_EMULATOR_HOST", e.Addr)
	p, err := providers.Open(context.Background(), "spanner://"+db)
	require.NoError(t, err)
	defer p.Close()
	assert.Equal(t, "spanner", p.Name())
	require.NoError(t, p.Ping(context.Background()))
}

func TestMapErr(t *testing.T) {
	for _, tt := range []struct {
		code codes.Code
		want error
	}{
		{codes.Unavailable, lock.ErrUnavailable},
		{codes.DeadlineExceeded, lock.ErrUnavailable},
		{codes.Internal, lock.ErrUnavailable},
		{codes.ResourceExhausted, lock.ErrThrottled},
		{codes.PermissionDenied, nil},
		{codes.NotFound, nil},
	} {
		err := spanner.MapErr(status.Error(tt.code, "x"))
		if tt.want == nil {
			assert.NotErrorIs(t, err, lock.ErrUnavailable, tt.code)
			assert.NotErrorIs(t, err, lock.ErrThrottled, tt.code)
			continue
		}
		assert.ErrorIs(t, err, tt.want, tt.code)
		assert.Positive(t, lock.RetryAfter(err), tt.code)
	}
	assert.ErrorIs(t, spanner.MapErr(context.DeadlineExceeded), lock.ErrUnavailable)
	plain := spanner.MapErr(errors.New("a bug"))
	assert.NotErrorIs(t, plain, lock.ErrUnavailable, "errors that are not RPC errors are internal")
}
