package client

import (
	"context"
	"errors"
	"fmt"
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

// WithPermits makes the name a semaphore of n permits (1 to 1000; default
// 1, a mutex): up to n leases hold it at once, each with its own fencing
// token. Every holder of a name must ask for the same n; another count
// fails with an error matching lock.ErrPermitsMismatch (a
// *lock.PermitsMismatchError), which Acquire does not retry.
func WithPermits(n int) AcquireOption { return func(c *acquireConfig) { c.req.Permits = n } }

// WithLockDelay asks for a lock-delay (0 to 1 min): if this lease expires
// without a release (the holder paused or died), the name, or this
// lease's permit, stays unavailable that much longer, so a paused
// holder's late writes land before anyone new starts. A release ends the
// lease with no delay.
func WithLockDelay(d time.Duration) AcquireOption {
	return func(c *acquireConfig) { c.req.LockDelay = d }
}

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
