package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"

	"github.com/hasplock/hasp/lock"
)

// ErrReleased is the cause of a lease's Context after Release.
var ErrReleased = errors.New("client: lease released")

// errReleaseFailed is the cause of a lease's Context after a Release that
// failed (its renewals are stopped all the same).
var errReleaseFailed = errors.New("client: release failed, renewals stopped")

// ErrDetached is the cause of a lease's Context after Detach.
var ErrDetached = errors.New("client: lease detached")

// ErrExpiring is the cause of a lease's Context (wrapped with
// lock.ErrLeaseLost) when the lease could not be renewed before its safety
// deadline: it may still be valid on the server, but not for long enough to
// rely on.
var ErrExpiring = fmt.Errorf("%w: not renewed before its safety deadline", lock.ErrLeaseLost)

// Lease is a held lock, or one permit of a semaphore (WithPermits). Its
// methods are safe for concurrent use.
type Lease struct {
	c      *Client
	name   string
	id     string
	owner  string
	md     string
	token  int64
	perms  int
	delay  time.Duration
	cfg    acquireConfig
	capAt  time.Time
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu        sync.Mutex
	ttl       time.Duration
	expiresAt time.Time // the service's
	deadline  time.Time // ours: when sent + ttl - margin passes
	kick      chan struct{}

	stopOnce sync.Once
	stop     context.CancelFunc // stops the background goroutine
	loopDone chan struct{}
}

func (c *Client) newLease(l lock.Lease, sent time.Time, cfg acquireConfig, capAt time.Time) *Lease {
	lctx, cancel := context.WithCancelCause(context.Background())
	loopCtx, stop := context.WithCancel(context.Background())
	ls := &Lease{
		c: c, name: l.Name, id: l.LeaseID, owner: l.Owner, md: l.Metadata, token: l.FencingToken, perms: max(l.Permits, 1), delay: l.LockDelay,
		cfg: cfg, capAt: capAt, ctx: lctx, cancel: cancel,
		ttl: l.TTL, expiresAt: l.ExpiresAt, kick: make(chan struct{}, 1),
		stop: stop, loopDone: make(chan struct{}),
	}
	ls.deadline = ls.safeDeadline(sent, l.TTL)
	go ls.loop(loopCtx)
	return ls
}

// safeDeadline is when a lease granted by a request sent at sent stops
// being safe to rely on.
func (l *Lease) safeDeadline(sent time.Time, ttl time.Duration) time.Time {
	d := sent.Add(ttl - l.cfg.margin)
	if !l.capAt.IsZero() && l.capAt.Before(d) {
		d = l.capAt
	}
	return d
}

// Name returns the lock's name.
func (l *Lease) Name() string { return l.name }

// Token returns the fencing token: send it with every write to the
// protected resource.
func (l *Lease) Token() int64 { return l.token }

// ID returns the secret lease id. Keep it out of logs.
func (l *Lease) ID() string { return l.id }

// Permits is the permit count of the semaphore the lease holds a permit
// of; 1 for a mutex.
func (l *Lease) Permits() int { return l.perms }

// LockDelay is the lease's lock-delay (WithLockDelay); zero for none.
func (l *Lease) LockDelay() time.Duration { return l.delay }

// Owner returns the lease's owner label.
func (l *Lease) Owner() string { return l.owner }

// TTL returns the TTL the service last granted.
func (l *Lease) TTL() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ttl
}

// Detach stops the background goroutine without releasing the lease, which
// then lives on the service until its TTL runs out or someone releases it
// by id (as `hasp acquire` does before it exits). Context is cancelled.
func (l *Lease) Detach() {
	l.stopOnce.Do(l.stop)
	<-l.loopDone
	l.lose(ErrDetached)
}

// Metadata returns the metadata stored with the lease.
func (l *Lease) Metadata() string { return l.md }

// ExpiresAt returns the lease's expiry as the service last reported it.
func (l *Lease) ExpiresAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.expiresAt
}

// Deadline returns when the client will treat the lease as lost unless it
// is renewed first: the last acquire or renew's send time plus TTL, minus
// the safety margin.
func (l *Lease) Deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deadline
}

// SafetyMargin returns how long before the lease can end, by this
// process's clock, its Context is cancelled (see WithSafetyMargin): the
// lease cannot end before Deadline() + SafetyMargin().
func (l *Lease) SafetyMargin() time.Duration { return l.cfg.margin }

// Context returns a context that is cancelled when the lease is lost, about
// to be, or released. context.Cause tells which: an error wrapping
// lock.ErrLeaseLost, or ErrReleased.
func (l *Lease) Context() context.Context { return l.ctx }

// Done is closed when Context is cancelled.
func (l *Lease) Done() <-chan struct{} { return l.ctx.Done() }

// Err returns nil while the lease is held, then the cause of its end.
func (l *Lease) Err() error {
	if l.ctx.Err() == nil {
		return nil
	}
	return context.Cause(l.ctx)
}

// lose ends the lease with cause.
func (l *Lease) lose(cause error) { l.cancel(cause) }

// Renew renews the lease now (the background renewals do this by
// themselves). A lease_lost answer ends the lease and returns an error
// wrapping lock.ErrLeaseLost; other failures leave it to its deadline.
func (l *Lease) Renew(ctx context.Context) error {
	if err := l.Err(); err != nil {
		return err
	}
	ttl := l.cfg.req.TTL
	if !l.capAt.IsZero() {
		ttl = min(ttl, time.Until(l.capAt).Truncate(time.Millisecond))
		if ttl < lock.MinTTL {
			return fmt.Errorf("client: renew would pass the context's deadline: %w", lock.ErrInvalidArgument)
		}
	}
	sent := time.Now()
	got, err := l.c.RenewLease(ctx, l.name, l.id, ttl)
	if errors.Is(err, lock.ErrLeaseLost) {
		l.lose(err)
		return err
	}
	if err != nil {
		return err
	}
	l.mu.Lock()
	if l.ctx.Err() == nil {
		l.ttl, l.expiresAt = got.TTL, got.ExpiresAt
		if d := l.safeDeadline(sent, got.TTL); d.After(l.deadline) {
			l.deadline = d
		}
	}
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return nil
}

// loop renews the lease in the background and ends it at its deadline.
func (l *Lease) loop(ctx context.Context) {
	defer close(l.loopDone)
	backoff := retry.NewExponentialJitterBackoff(5 * time.Second)
	failures := 0
	next := time.Now().Add(l.cfg.renewEvery)
	for {
		deadline := l.Deadline()
		wake := deadline
		if l.cfg.autoRenew && next.Before(wake) {
			wake = next
		}
		t := time.NewTimer(time.Until(wake))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-l.ctx.Done():
			t.Stop()
			return
		case <-l.kick:
			t.Stop()
			continue
		case <-t.C:
		}
		if !time.Now().Before(l.Deadline()) {
			l.lose(ErrExpiring)
			return
		}
		if !l.cfg.autoRenew || time.Now().Before(next) {
			continue
		}
		rctx, cancel := context.WithDeadline(ctx, l.Deadline())
		err := l.Renew(rctx)
		cancel()
		switch {
		case err == nil:
			failures = 0
			next = time.Now().Add(l.cfg.renewEvery)
		case errors.Is(err, lock.ErrLeaseLost), l.ctx.Err() != nil, ctx.Err() != nil:
			return
		case errors.Is(err, lock.ErrInvalidArgument):
			// The deadline cap leaves no room to renew: ride out the lease.
			next = l.Deadline()
		default:
			// Unknown outcome: renewing again with the same lease id is safe.
			d, _ := backoff.BackoffDelay(failures, err)
			failures++
			d = min(max(d/4, lock.RetryAfter(err)), time.Until(l.Deadline())/4)
			next = time.Now().Add(max(d, 10*time.Millisecond))
		}
	}
}

// Release stops the background renewals, then releases the lease,
// retrying on unavailability until ctx ends. Afterwards Context is
// cancelled with cause ErrReleased. If the lease was already lost it
// returns an error wrapping lock.ErrLeaseLost, never success.
func (l *Lease) Release(ctx context.Context) error {
	l.stopOnce.Do(l.stop)
	<-l.loopDone
	if err := l.Err(); err != nil {
		switch {
		case errors.Is(err, ErrReleased):
			return nil
		case errors.Is(err, ErrExpiring), errors.Is(err, errReleaseFailed), errors.Is(err, ErrDetached):
			// Possibly still held on the service: release it.
		default:
			return err // the service said the lease is lost
		}
	}
	backoff := retry.NewExponentialJitterBackoff(2 * time.Second)
	for attempt := 0; ; attempt++ {
		err := l.c.ReleaseLease(ctx, l.name, l.id)
		if err == nil {
			l.lose(ErrReleased)
			return nil
		}
		if attempt > 0 && errors.Is(err, lock.ErrLeaseLost) && time.Now().Before(l.Deadline()) {
			// An earlier attempt whose answer was lost did release it: before
			// its deadline the lease cannot have expired or been taken over.
			l.lose(ErrReleased)
			return nil
		}
		if !retryable(err) || ctx.Err() != nil {
			// Renewals are stopped either way: the lease is over for us.
			l.lose(fmt.Errorf("%w: %w", errReleaseFailed, err))
			return err
		}
		d, _ := backoff.BackoffDelay(attempt, err)
		if serr := sleep(ctx, max(d/2, lock.RetryAfter(err))); serr != nil {
			l.lose(fmt.Errorf("%w: %w", errReleaseFailed, err))
			return serr
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
