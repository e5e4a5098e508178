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

// Defaults of AcquireOption.
const (
	// DefaultTTL is the lease TTL asked for when WithTTL is not given.
	DefaultTTL = lock.DefaultTTL
	// MaxServerWait is the longest wait_ms one request asks for; longer waits
	// are several requests in a row.
	MaxServerWait = lock.MaxWait
	// requestSlack bounds how long a request may take beyond its wait.
	requestSlack = 15 * time.Second
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

// AcquireOption configures Acquire, TryAcquire and Do.
type AcquireOption func(*acquireConfig)

type acquireConfig struct {
	req         lock.AcquireRequest
	maxWait     time.Duration // 0: until ctx ends
	hasMaxWait  bool
	autoRenew   bool
	renewEvery  time.Duration
	margin      time.Duration
	capDeadline bool
}

// WithTTL sets the lease's TTL (default DefaultTTL, 30 s; 1 s to 1 h).
func WithTTL(d time.Duration) AcquireOption { return func(c *acquireConfig) { c.req.TTL = d } }

// WithOwner labels the lease (shown by status; not an identity).
func WithOwner(owner string) AcquireOption { return func(c *acquireConfig) { c.req.Owner = owner } }

// WithMetadata stores up to 1 KiB with the lease.
func WithMetadata(md string) AcquireOption { return func(c *acquireConfig) { c.req.Metadata = md } }

// WithWait bounds how long Acquire waits for a held lock (default: until
// ctx ends). Zero makes Acquire try once, like TryAcquire.
func WithWait(d time.Duration) AcquireOption {
	return func(c *acquireConfig) { c.maxWait, c.hasMaxWait = d, true }
}

// WithAutoRenew turns background renewals on or off (default on, every
// TTL/3). Without them the lease's Context still ends at its safety
// deadline.
func WithAutoRenew(on bool) AcquireOption { return func(c *acquireConfig) { c.autoRenew = on } }

// WithRenewEvery sets the renewal period (default TTL/3).
func WithRenewEvery(d time.Duration) AcquireOption {
	return func(c *acquireConfig) { c.renewEvery = d }
}

// WithSafetyMargin sets how long before the lease's expiry, counted from
// when its last acquire or renew was sent, the lease is treated as lost
// (default: TTL/10, at least 250 ms and at most 5 s, and never more than
// TTL/4). It covers clock drift between this process and the service.
func WithSafetyMargin(d time.Duration) AcquireOption { return func(c *acquireConfig) { c.margin = d } }

// WithDeadlineCap caps the lease's TTL, and every renewal, by the deadline
// of the ctx given to Acquire, so that a serverless function never holds a
// lock past its own deadline. Acquire fails with lock.ErrInvalidArgument if
// less than the minimum TTL (1 s) is left.
func WithDeadlineCap() AcquireOption { return func(c *acquireConfig) { c.capDeadline = true } }

func defaultMargin(ttl time.Duration) time.Duration {
	return min(max(ttl/10, 250*time.Millisecond), 5*time.Second, ttl/4)
}

func (c *Client) config(ctx context.Context, name string, opts []AcquireOption) (acquireConfig, time.Time, error) {
	cfg := acquireConfig{req: lock.AcquireRequest{Name: name, TTL: DefaultTTL}, autoRenew: true}
	for _, o := range opts {
		o(&cfg)
	}
	var capAt time.Time
	if cfg.capDeadline {
		if d, ok := ctx.Deadline(); ok {
			capAt = d
			left := time.Until(d).Truncate(time.Millisecond)
			if left < lock.MinTTL {
				return cfg, capAt, lock.Invalid("ttl_ms", "the context's deadline leaves less than %s", lock.MinTTL)
			}
			cfg.req.TTL = min(cfg.req.TTL, left)
		}
	}
	if err := cfg.req.Validate(); err != nil {
		return cfg, capAt, err
	}
	if cfg.margin == 0 {
		cfg.margin = defaultMargin(cfg.req.TTL)
	}
	if cfg.renewEvery == 0 {
		cfg.renewEvery = cfg.req.TTL / 3
	}
	return cfg, capAt, nil
}

// TryAcquire makes one attempt to take the lock, without waiting. A held
// lock is a *lock.HeldError.
func (c *Client) TryAcquire(ctx context.Context, name string, opts ...AcquireOption) (*Lease, error) {
	return c.Acquire(ctx, name, append(opts, WithWait(0))...)
}

// Acquire takes the lock, waiting for it while it is held: until ctx ends,
// or for at most the WithWait duration. It waits on the server (wait_ms,
// at most 20 s per request), so the lock is handed over as soon as it is
// released, and backs off with jitter on throttling and unavailability,
// honouring Retry-After. The returned lease renews itself until Release.
func (c *Client) Acquire(ctx context.Context, name string, opts ...AcquireOption) (*Lease, error) {
	cfg, capAt, err := c.config(ctx, name, opts)
	if err != nil {
		return nil, err
	}
	var giveUp time.Time
	if cfg.hasMaxWait {
		giveUp = time.Now().Add(cfg.maxWait)
	}
	backoff := retry.NewExponentialJitterBackoff(5 * time.Second)
	for attempt := 0; ; attempt++ {
		req := cfg.req
		req.Wait = MaxServerWait
		if !giveUp.IsZero() {
			req.Wait = min(req.Wait, max(time.Until(giveUp), 0).Truncate(time.Millisecond))
		}
		if d, ok := ctx.Deadline(); ok {
			// Leave time for the answer to come back.
			req.Wait = min(req.Wait, max(time.Until(d)-time.Second, 0).Truncate(time.Millisecond))
		}
		if !capAt.IsZero() {
			req.TTL = min(cfg.req.TTL, time.Until(capAt).Truncate(time.Millisecond))
			if req.TTL < lock.MinTTL {
				return nil, lock.Invalid("ttl_ms", "the context's deadline leaves less than %s", lock.MinTTL)
			}
		}
		rctx, cancel := context.WithTimeout(ctx, req.Wait+requestSlack)
		sent := time.Now()
		l, err := c.AcquireOnce(rctx, req)
		cancel()
		if err == nil {
			return c.newLease(l, sent, cfg, capAt), nil
		}
		if ctx.Err() != nil {
			return nil, errors.Join(ctx.Err(), err)
		}
		if !giveUp.IsZero() && !time.Now().Before(giveUp) {
			return nil, err
		}
		var pause time.Duration
		switch {
		case errors.Is(err, lock.ErrHeld):
			// The server already waited; ask again at once unless it
			// answered early (it could not wait as long as asked).
			if req.Wait > 0 && time.Since(sent) >= req.Wait/2 {
				attempt = -1
				continue
			}
			pause, _ = backoff.BackoffDelay(min(attempt, 3), err)
			pause = min(pause/4, max(lock.RetryAfter(err), 50*time.Millisecond))
		case retryable(err):
			pause, _ = backoff.BackoffDelay(attempt, err)
			pause = max(pause, lock.RetryAfter(err))
		default:
			return nil, err
		}
		if !giveUp.IsZero() {
			pause = min(pause, time.Until(giveUp))
		}
		if serr := sleep(ctx, pause); serr != nil {
			return nil, errors.Join(serr, err)
		}
	}
}

// Do runs fn while holding the lock: it acquires (waiting as Acquire
// does), runs fn with a context that is cancelled if the lease is lost or
// about to be, and releases. It returns fn's error; if fn succeeded but the
// lease was lost while it ran, it returns an error wrapping
// lock.ErrLeaseLost, since fn's work may not have been protected.
func (c *Client) Do(ctx context.Context, name string, fn func(ctx context.Context) error, opts ...AcquireOption) error {
	l, err := c.Acquire(ctx, name, opts...)
	if err != nil {
		return err
	}
	release := func() error {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), requestSlack)
		defer rcancel()
		return l.Release(rctx)
	}
	released := false
	defer func() {
		if !released { // fn panicked: still stop renewing and release
			_ = release()
		}
	}()
	fctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(l.Context(), func() { cancel(context.Cause(l.Context())) })
	ferr := fn(fctx)
	stop()
	cancel(nil)
	lost := l.Err()
	released = true
	rerr := release()
	switch {
	case ferr != nil:
		return ferr
	case lost != nil:
		return fmt.Errorf("client: %q was lost while fn ran: %w", name, lost)
	case errors.Is(rerr, lock.ErrLeaseLost):
		return fmt.Errorf("client: %q was lost while fn ran: %w", name, rerr)
	}
	return rerr
}

// Lease is a held lock. Its methods are safe for concurrent use.
type Lease struct {
	c      *Client
	name   string
	id     string
	owner  string
	md     string
	token  int64
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
		c: c, name: l.Name, id: l.LeaseID, owner: l.Owner, md: l.Metadata, token: l.FencingToken,
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
