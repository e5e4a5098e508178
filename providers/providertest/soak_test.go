package providertest_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/memory"
	"github.com/hasplock/hasp/providers/providertest"
)

// TestSoakMemory: the reference provider, two instances with clocks 250 ms
// apart on either side, client pauses longer than the TTL.
func TestSoakMemory(t *testing.T) {
	p := memory.New()
	fast, slow := &providertest.OffsetClock{}, &providertest.OffsetClock{}
	fast.Set(250 * time.Millisecond)
	slow.Set(-250 * time.Millisecond)
	res := providertest.Soak(context.Background(), []providertest.Instance{
		{Provider: p.View(fast), Skew: 250 * time.Millisecond},
		{Provider: p.View(slow), Skew: -250 * time.Millisecond},
	}, providertest.SoakConfig{Acquires: providertest.SoakAcquires(), Progress: providertest.ProgressLogger(t), TTL: time.Second})
	t.Log(res.String())
	assert.Empty(t, res.Violations, res.Report())
	assert.GreaterOrEqual(t, res.Acquires, int64(providertest.SoakAcquires()))
}

// broken wraps a provider and breaks one rule, to show the soak's checks
// catch it.
type broken struct {
	providers.Provider
	mu   sync.Mutex
	last map[string]string // the lease id last granted per name
	mode string
}

func (b *broken) Acquire(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	l, err := b.Provider.Acquire(ctx, req)
	var held *lock.HeldError
	if b.mode == "acquire-over-live-lease" && errors.As(err, &held) {
		// Take it anyway: release the holder behind its back first.
		b.mu.Lock()
		id := b.last[req.Name]
		b.mu.Unlock()
		_ = b.Provider.Release(ctx, lock.ReleaseRequest{Name: req.Name, LeaseID: id})
		l, err = b.Provider.Acquire(ctx, req)
	}
	if err == nil {
		b.mu.Lock()
		b.last[req.Name] = l.LeaseID
		b.mu.Unlock()
	}
	return l, err
}

func (b *broken) Release(ctx context.Context, req lock.ReleaseRequest) error {
	if b.mode == "release-without-ownership" {
		// Skip the ownership condition: release whoever holds the name.
		b.mu.Lock()
		req.LeaseID = b.last[req.Name]
		b.mu.Unlock()
	}
	return b.Provider.Release(ctx, req)
}

// TestSoakCatchesBrokenProviders: deliberately broken providers fail the
// soak's checks.
func TestSoakCatchesBrokenProviders(t *testing.T) {
	for _, mode := range []string{"release-without-ownership", "acquire-over-live-lease"} {
		t.Run(mode, func(t *testing.T) {
			b := &broken{Provider: memory.New(), last: map[string]string{}, mode: mode}
			res := providertest.Soak(context.Background(), []providertest.Instance{{Provider: b}},
				providertest.SoakConfig{Acquires: 500, TTL: time.Second, PauseP: 0.1, SkipReleaseP: 0.01, MaxDuration: 2 * time.Minute})
			t.Log(res.String())
			assert.NotEmpty(t, res.Violations, "a broken provider must fail the soak")
		})
	}
}

// TestSoakMemorySemaphore: the soak with semaphores of 3 permits and
// lock-delay-free leases, two instances with skewed clocks.
func TestSoakMemorySemaphore(t *testing.T) {
	p := memory.New()
	fast, slow := &providertest.OffsetClock{}, &providertest.OffsetClock{}
	fast.Set(250 * time.Millisecond)
	slow.Set(-250 * time.Millisecond)
	n := providertest.SoakAcquiresOr(1000)
	res := providertest.Soak(context.Background(), []providertest.Instance{
		{Provider: p.View(fast), Skew: 250 * time.Millisecond},
		{Provider: p.View(slow), Skew: -250 * time.Millisecond},
	}, providertest.SoakConfig{Acquires: n, Progress: providertest.ProgressLogger(t), TTL: time.Second, Permits: 3})
	t.Log(res.String())
	assert.Empty(t, res.Violations, res.Report())
	assert.GreaterOrEqual(t, res.Acquires, int64(n))
}

// lostUpdates is a permit store without compare-and-swap: it writes over
// whatever changed since the read.
type lostUpdates struct{ *memory.Provider }

func (l lostUpdates) StorePermits(ctx context.Context, name string, prev providers.PermitRecord, t providers.PermitTable) (int64, error) {
	time.Sleep(time.Millisecond) // widen the window between read and write
	cur, err := l.Provider.LoadPermits(ctx, name)
	if err != nil {
		return 0, err
	}
	prev.Version = cur.Version
	return l.Provider.StorePermits(ctx, name, prev, t)
}

// TestSoakCatchesLostPermitUpdates: a store that loses concurrent updates
// grants more permits than there are, and the semaphore soak says so.
func TestSoakCatchesLostPermitUpdates(t *testing.T) {
	res := providertest.Soak(context.Background(), []providertest.Instance{{Provider: lostUpdates{memory.New()}}},
		providertest.SoakConfig{Acquires: 500, TTL: time.Second, Permits: 3, Names: 1, Workers: 12, MaxDuration: 2 * time.Minute})
	t.Log(res.String())
	assert.NotEmpty(t, res.Violations, "a store without compare-and-swap must fail the soak")
}
