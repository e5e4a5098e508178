package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/memory"
	"github.com/hasplock/hasp/providers/providertest"
)

func TestConformance(t *testing.T) {
	p := memory.New()
	providertest.Run(t, providertest.Harness{
		Open: func(t *testing.T) providers.Provider { return nopClose{p} },
		OpenWithClock: func(t *testing.T, c lock.Clock) providers.Provider {
			return nopClose{p.View(c)}
		},
	})
}

// nopClose keeps the shared provider open across sub-tests.
type nopClose struct{ providers.Provider }

func (nopClose) Close() error { return nil }

// Unwrap lets providers.As find the provider's optional capabilities.
func (n nopClose) Unwrap() providers.Provider { return n.Provider }

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

func TestExpiryAtExactInstant(t *testing.T) {
	c := &fakeClock{t: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)}
	p := memory.New(memory.WithClock(c))
	ctx := context.Background()
	l, err := p.Acquire(ctx, lock.AcquireRequest{Name: "a", LeaseID: "id1", TTL: 2 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, c.t.Add(2*time.Second), l.ExpiresAt)

	c.t = l.ExpiresAt.Add(-time.Millisecond)
	_, err = p.Acquire(ctx, lock.AcquireRequest{Name: "a", LeaseID: "id2", TTL: 2 * time.Second})
	var held *lock.HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, time.Millisecond, held.RetryAfter)

	c.t = l.ExpiresAt // the lease ends at expires_at
	_, err = p.Renew(ctx, lock.RenewRequest{Name: "a", LeaseID: "id1"})
	assert.ErrorIs(t, err, lock.ErrLeaseLost)
	l2, err := p.Acquire(ctx, lock.AcquireRequest{Name: "a", LeaseID: "id2", TTL: 2 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, l.FencingToken+1, l2.FencingToken)
}

func TestClosedIsUnavailable(t *testing.T) {
	p := memory.New()
	require.NoError(t, p.Close())
	_, err := p.Acquire(context.Background(), lock.AcquireRequest{Name: "a", LeaseID: "x", TTL: time.Second})
	assert.ErrorIs(t, err, lock.ErrUnavailable)
	assert.ErrorIs(t, p.Ping(context.Background()), lock.ErrUnavailable)
}

func TestOpenURL(t *testing.T) {
	p, err := providers.Open(context.Background(), "memory:")
	require.NoError(t, err)
	assert.Equal(t, "memory", p.Name())
	_, err = providers.Open(context.Background(), "memory://somewhere")
	assert.Error(t, err)
}
