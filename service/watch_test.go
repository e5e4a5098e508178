package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/memory"
	"github.com/hasplock/hasp/service"
)

// TestWatchLocalWake: on a provider that cannot watch, a release through
// the same service wakes a watch at once, whatever the poll interval.
func TestWatchLocalWake(t *testing.T) {
	s := service.New(polled{memory.New()}, service.WithWatchPoll(10*time.Second))
	_, watches := providers.As[providers.HolderWatcher](s.Provider())
	require.False(t, watches)
	ctx := context.Background()
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "w", TTL: time.Minute})
	require.NoError(t, err)
	go func() {
		time.Sleep(50 * time.Millisecond)
		_ = s.Release(ctx, lock.ReleaseRequest{Name: "w", LeaseID: l.LeaseID})
	}()
	start := time.Now()
	st, changed, err := s.Watch(ctx, "w", l.FencingToken, 5*time.Second)
	require.NoError(t, err)
	assert.True(t, changed)
	assert.False(t, st.Held)
	assert.Less(t, time.Since(start), time.Second, "woken by the local release, not the 10 s poll")

	// And an acquire wakes a watch of a free lock.
	go func() {
		time.Sleep(50 * time.Millisecond)
		_, _ = s.Acquire(ctx, lock.AcquireRequest{Name: "w", TTL: time.Minute})
	}()
	start = time.Now()
	st, changed, err = s.Watch(ctx, "w", 0, 5*time.Second)
	require.NoError(t, err)
	assert.True(t, changed)
	assert.True(t, st.Held)
	assert.Less(t, time.Since(start), time.Second)
}

// TestWatchPollNeverPassesExpiry: a polled watch reads again when the
// holder's lease expires, even with a long poll interval.
func TestWatchPollNeverPassesExpiry(t *testing.T) {
	p := memory.New()
	s := service.New(polled{p}, service.WithWatchPoll(10*time.Second))
	other := service.New(polled{p}) // a change through another instance is not woken locally
	ctx := context.Background()
	l, err := other.Acquire(ctx, lock.AcquireRequest{Name: "x", TTL: time.Second})
	require.NoError(t, err)
	start := time.Now()
	st, changed, err := s.Watch(ctx, "x", l.FencingToken, 5*time.Second)
	require.NoError(t, err)
	assert.True(t, changed)
	assert.False(t, st.Held)
	assert.Less(t, time.Since(start), 2*time.Second)
}

type watchObs struct {
	nopObserver
	started, ended, changed int
}

func (o *watchObs) ObserveWatchStart(context.Context) { o.started++ }
func (o *watchObs) ObserveWatchEnd(_ context.Context, changed bool, err error) {
	o.ended++
	if changed && err == nil {
		o.changed++
	}
}

func TestWatchObserverAndList(t *testing.T) {
	o := &watchObs{}
	s := service.New(memory.New(), service.WithObserver(o))
	ctx := context.Background()
	_, err := s.Acquire(ctx, lock.AcquireRequest{Name: "a/1"})
	require.NoError(t, err)
	_, changed, err := s.Watch(ctx, "a/1", 0, 0)
	require.NoError(t, err)
	require.True(t, changed)
	_, changed, err = s.Watch(ctx, "a/2", 0, 0)
	require.NoError(t, err)
	require.False(t, changed)
	assert.Equal(t, 2, o.started)
	assert.Equal(t, 2, o.ended)
	assert.Equal(t, 1, o.changed)

	items, next, err := s.List(ctx, "a/", 0, "")
	require.NoError(t, err)
	assert.Empty(t, next)
	require.Len(t, items, 1)
	assert.Equal(t, "a/1", items[0].Name)
	for _, c := range []struct {
		prefix, page string
		limit        int
		field        string
	}{
		{"a b", "", 0, "prefix"},
		{"a/", "", 1001, "limit"},
		{"a/", "", -1, "limit"},
		{"a/", "%%%", 0, "page_token"},
	} {
		_, _, err := s.List(ctx, c.prefix, c.limit, c.page)
		var inv *lock.InvalidArgumentError
		require.ErrorAs(t, err, &inv, "%+v", c)
		assert.Equal(t, c.field, inv.Field)
	}
	_, _, err = service.New(bare{memory.New()}).List(ctx, "", 0, "")
	assert.ErrorIs(t, err, providers.ErrUnsupported, "a provider without Lister")
}

// bare has no optional capability at all.
type bare struct{ providers.Provider }

// nopObserver is a service.Observer that ignores everything.
type nopObserver struct{}

func (nopObserver) ObserveAcquire(context.Context, lock.AcquireRequest, lock.Lease, error, time.Duration, bool) {
}
func (nopObserver) ObserveRenew(context.Context, lock.RenewRequest, lock.Lease, error, time.Duration) {
}
func (nopObserver) ObserveRelease(context.Context, lock.ReleaseRequest, error, time.Duration) {}
