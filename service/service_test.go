package service_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/memory"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/service"
)

// polled hides the memory provider's Watcher and HolderWatcher, so the
// service must poll; it keeps its Lister.
type polled struct{ providers.Provider }

func (polled) Close() error { return nil }

func (q polled) List(ctx context.Context, prefix string, limit int, after string) ([]lock.Status, string, error) {
	return q.Provider.(providers.Lister).List(ctx, prefix, limit, after)
}

// TestPolledWaits runs the conformance suite through the polling path of
// the server-side wait (jittered backoff bounded by the holder's expiry).
func TestPolledWaits(t *testing.T) {
	p := memory.New()
	var _ providers.Watcher = p
	providertest.Run(t, providertest.Harness{
		Open: func(t *testing.T) providers.Provider {
			_, isWatcher := any(polled{p}).(providers.Watcher)
			require.False(t, isWatcher)
			return polled{p}
		},
	})
}

// TestLocalWake: on a provider that cannot watch, a release through the
// same service hands the lock to a local waiter without waiting for its
// next poll.
func TestLocalWake(t *testing.T) {
	s := service.New(polled{memory.New()}, service.WithPollInterval(time.Minute, time.Minute))
	ctx := context.Background()
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "a"})
	require.NoError(t, err)
	got := make(chan error, 1)
	go func() {
		_, err := s.Acquire(ctx, lock.AcquireRequest{Name: "a", Wait: 20 * time.Second})
		got <- err
	}()
	time.Sleep(100 * time.Millisecond) // let it fail once and start waiting
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "a", LeaseID: l.LeaseID}))
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter was not woken by the release (its next poll is a minute away)")
	}
}

// slow never answers until ctx ends.
type slow struct{ providers.Provider }

func (slow) Acquire(ctx context.Context, _ lock.AcquireRequest) (lock.Lease, error) {
	<-ctx.Done()
	return lock.Lease{}, ctx.Err()
}

func TestOpTimeoutIsUnavailable(t *testing.T) {
	s := service.New(slow{memory.New()}, service.WithOpTimeout(50*time.Millisecond))
	_, err := s.Acquire(context.Background(), lock.AcquireRequest{Name: "a"})
	assert.ErrorIs(t, err, lock.ErrUnavailable, "a backend that does not answer is unavailable, never success")
}

func TestValidatesBeforeProvider(t *testing.T) {
	s := service.New(memory.New())
	_, err := s.Acquire(context.Background(), lock.AcquireRequest{Name: "bad name"})
	assert.ErrorIs(t, err, lock.ErrInvalidArgument)
	_, err = s.Status(context.Background(), "")
	assert.ErrorIs(t, err, lock.ErrInvalidArgument)
	st, err := s.Status(context.Background(), "bad-name-never-written")
	require.NoError(t, err)
	assert.False(t, st.Held)
}

func TestLeaseIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := providers.NewLeaseID()
		assert.Len(t, id, 32)
		assert.False(t, seen[id])
		seen[id] = true
	}
}

func Example() {
	svc := service.New(memory.New()) // memory is for tests; hasp serve uses etcd
	ctx := context.Background()
	l, err := svc.Acquire(ctx, lock.AcquireRequest{Name: "nightly-report", Owner: "worker-7", TTL: 10 * time.Second})
	if err != nil {
		panic(err)
	}
	fmt.Println("token", l.FencingToken)
	_, err = svc.Acquire(ctx, lock.AcquireRequest{Name: "nightly-report", Wait: 100 * time.Millisecond})
	fmt.Println("second acquire:", err != nil && lock.RetryAfter(err) > 0)
	_ = svc.Release(ctx, lock.ReleaseRequest{Name: "nightly-report", LeaseID: l.LeaseID})
	l2, _ := svc.Acquire(ctx, lock.AcquireRequest{Name: "nightly-report"})
	fmt.Println("token", l2.FencingToken)
	// Output:
	// token 1
	// second acquire: true
	// token 2
}

// TestSpans: acquire, renew and release are spans with the lock's name,
// success and fencing token, and never the lease id.
func TestSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	s := service.New(memory.New())
	ctx := context.Background()
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
	require.NoError(t, err)
	_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
	require.ErrorIs(t, err, lock.ErrHeld)
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID})
	require.NoError(t, err)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}))
	spans := exp.GetSpans()
	require.Len(t, spans, 4)
	want := []struct {
		name, result string
		success      bool
		token        int64
	}{
		{"lock.acquire", "acquired", true, l.FencingToken},
		{"lock.acquire", "held", false, 0},
		{"lock.renew", "renewed", true, l.FencingToken},
		{"lock.release", "released", true, 0},
	}
	for i, sp := range spans {
		attrs := map[attribute.Key]attribute.Value{}
		for _, a := range sp.Attributes {
			attrs[a.Key] = a.Value
			assert.NotContains(t, a.Value.Emit(), l.LeaseID)
		}
		assert.Equal(t, want[i].name, sp.Name)
		assert.Equal(t, "n", attrs[service.AttrName].AsString())
		assert.Equal(t, want[i].success, attrs[service.AttrSuccess].AsBool(), sp.Name)
		assert.Equal(t, want[i].result, attrs[service.AttrResult].AsString(), sp.Name)
		if want[i].token > 0 {
			assert.Equal(t, want[i].token, attrs[service.AttrFencingToken].AsInt64(), sp.Name)
		}
	}
}

// counting counts Acquire calls on a provider; watched says whether it
// keeps the memory provider's Watcher.
type counting struct {
	*memory.Provider
	acquires atomic.Int64
}

func (c *counting) Acquire(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	c.acquires.Add(1)
	return c.Provider.Acquire(ctx, req)
}

type countingPolled struct{ *counting }

func (countingPolled) WaitChange() {} // hides the Watcher: a different signature

// TestWaitersTakeTurns: the waiters of one name on one instance take
// turns, so a release sets off about two backend attempts (the first
// waiter's, and the next one's when its turn comes), not one per waiter,
// and every waiter still gets the lock in turn.
func TestWaitersTakeTurns(t *testing.T) {
	for _, tt := range []struct {
		name string
		wrap func(c *counting) providers.Provider
	}{
		{"watch", func(c *counting) providers.Provider { return c }},
		{"poll", func(c *counting) providers.Provider { return countingPolled{c} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &counting{Provider: memory.New()}
			s := service.New(tt.wrap(c), service.WithPollInterval(time.Second, time.Second))
			ctx := context.Background()
			first, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n", TTL: time.Minute})
			require.NoError(t, err)
			const waiters = 8
			got := make(chan lock.Lease, waiters)
			errs := make(chan error, waiters)
			for range waiters {
				go func() {
					l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n", TTL: time.Minute, Wait: 10 * time.Second})
					if err != nil {
						errs <- err
						return
					}
					got <- l
				}()
			}
			time.Sleep(200 * time.Millisecond) // all have tried once and queued
			before := c.acquires.Load()
			require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: first.LeaseID}))
			l := <-got
			time.Sleep(100 * time.Millisecond)
			assert.LessOrEqual(t, c.acquires.Load()-before, int64(3), "one release, a few attempts")
			prev := l.FencingToken
			require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}))
			for range waiters - 1 {
				select {
				case l := <-got:
					assert.Greater(t, l.FencingToken, prev)
					prev = l.FencingToken
					require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}))
				case err := <-errs:
					t.Fatal(err)
				case <-time.After(5 * time.Second):
					t.Fatal("a waiter was never handed the lock")
				}
			}
		})
	}
}

// pings counts Ping calls and fails them on demand.
type pings struct {
	*memory.Provider
	n    atomic.Int64
	fail atomic.Bool
}

func (p *pings) Ping(ctx context.Context) error {
	p.n.Add(1)
	if p.fail.Load() {
		return lock.ErrUnavailable
	}
	return nil
}

func TestPingCache(t *testing.T) {
	p := &pings{Provider: memory.New()}
	s := service.New(p, service.WithPingCache(200*time.Millisecond))
	ctx := context.Background()
	for range 5 {
		require.NoError(t, s.Ping(ctx))
	}
	assert.Equal(t, int64(1), p.n.Load(), "one success answers the next pings")
	time.Sleep(250 * time.Millisecond)
	p.fail.Store(true)
	require.Error(t, s.Ping(ctx), "an old success does not hide a failure")
	require.Error(t, s.Ping(ctx), "failures are not remembered")
	assert.Equal(t, int64(3), p.n.Load())
	uncached := service.New(p)
	p.fail.Store(false)
	require.NoError(t, uncached.Ping(ctx))
	require.NoError(t, uncached.Ping(ctx))
	assert.Equal(t, int64(5), p.n.Load(), "no cache unless asked")
}

// TestNewcomerQueuesBehindWaiters: a holder that releases and at once asks
// again (with a wait) queues behind the waiter already there, which gets
// the lock first; it does not barge in.
func TestNewcomerQueuesBehindWaiters(t *testing.T) {
	for name, p := range map[string]providers.Provider{"watching": memory.New(), "polled": polled{memory.New()}} {
		t.Run(name, func(t *testing.T) {
			s := service.New(p)
			ctx := context.Background()
			first, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
			require.NoError(t, err)
			got := make(chan lock.Lease, 1)
			go func() {
				w, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n", Wait: 5 * time.Second})
				assert.NoError(t, err)
				got <- w
			}()
			time.Sleep(100 * time.Millisecond) // the waiter is in line
			require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: first.LeaseID}))
			again := make(chan lock.Lease, 1)
			go func() {
				l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n", Wait: 5 * time.Second})
				assert.NoError(t, err)
				again <- l
			}()
			w := <-got
			require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: w.LeaseID}))
			l := <-again
			assert.Greater(t, l.FencingToken, w.FencingToken, "the waiter got the lock before the newcomer")
		})
	}
}
