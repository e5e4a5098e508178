// Package service is hasp's one lock service: it validates requests by the
// rules of API v1, generates lease ids, implements the server-side wait
// once for every provider, and delegates storage to a providers.Provider.
// Every front end (hasp serve, the Lambda, the Cloud Function, the Azure
// handler) calls it through the api package.
package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

// DefaultOpTimeout bounds each call to the provider, so that a backend that
// hangs answers 503 rather than holding the caller until its own timeout.
const DefaultOpTimeout = 10 * time.Second

// Service validates requests and delegates to a provider.
type Service struct {
	p         providers.Provider
	opTimeout time.Duration
	// poll makes the backoff used between attempts by providers that cannot
	// watch: jittered, exponential, starting small so a handoff is prompt.
	poll func() *backoff.ExponentialBackOff
	// lines lets one local waiter per name at a time wait on the backend,
	// the others queued behind it (see acquire); a release through this
	// service wakes it at once.
	lines lines
	obs   Observer
	// notes wakes polling watches on changes made through this service.
	notes     notes
	watchPoll time.Duration

	pingFor time.Duration // a successful ping is remembered this long
	pingMu  sync.Mutex
	pingOK  time.Time // when the last ping succeeded
}

// Observer is told of every acquire, renew and release the service
// completes (requests that fail validation are not reported). Metrics
// recorders implement it; calls must be fast and must not block. The
// requests carry lease ids: secrets, never to be exported or logged.
type Observer interface {
	// ObserveAcquire reports an acquire: its lease (when err is nil), its
	// error, how long it took (waiting included), and whether the lock was
	// held at the first attempt.
	ObserveAcquire(ctx context.Context, req lock.AcquireRequest, l lock.Lease, err error, took time.Duration, contended bool)
	// ObserveRenew reports a renew and its outcome.
	ObserveRenew(ctx context.Context, req lock.RenewRequest, l lock.Lease, err error, took time.Duration)
	// ObserveRelease reports a release and its outcome.
	ObserveRelease(ctx context.Context, req lock.ReleaseRequest, err error, took time.Duration)
}

// WithObserver reports every operation to o.
func WithObserver(o Observer) Option { return func(s *Service) { s.obs = o } }

// Option configures a Service.
type Option func(*Service)

// WithOpTimeout bounds each provider call (default DefaultOpTimeout).
func WithOpTimeout(d time.Duration) Option { return func(s *Service) { s.opTimeout = d } }

// WithPollInterval sets the jittered exponential backoff between attempts
// of a waiting acquire on providers that cannot watch: from first up to
// last (default 10 ms up to 500 ms). A release through this same service
// wakes the longest waiting local acquire at once, whatever the backoff.
func WithPollInterval(first, last time.Duration) Option {
	return func(s *Service) {
		s.poll = func() *backoff.ExponentialBackOff {
			b := backoff.NewExponentialBackOff()
			b.InitialInterval, b.MaxInterval, b.Multiplier, b.RandomizationFactor = first, last, 2, 0.5
			return b
		}
	}
}

// New returns a service over p. The service does not own p: Close closes it.
func New(p providers.Provider, opts ...Option) *Service {
	s := &Service{
		p:         p,
		opTimeout: DefaultOpTimeout,
		watchPoll: DefaultWatchPoll,
	}
	WithPollInterval(10*time.Millisecond, 500*time.Millisecond)(s)
	for _, o := range opts {
		o(s)
	}
	return s
}

// ProviderName returns the provider's name.
func (s *Service) ProviderName() string { return s.p.Name() }

// Provider returns the provider the service delegates to.
func (s *Service) Provider() providers.Provider { return s.p }

// Close closes the provider.
func (s *Service) Close() error { return s.p.Close() }

// Acquire takes the lock for a new lease. With req.Wait > 0 it waits up to
// that long for a held lock: providers that watch are woken by the change,
// the others are polled with jittered backoff that never sleeps past the
// holder's expiry. ctx bounds the whole call. A lock still held at the end
// is a *lock.HeldError.
func (s *Service) Acquire(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	if err := req.Validate(); err != nil {
		return lock.Lease{}, err
	}
	if wantsPermits(req) {
		if _, err := s.permitStore(); err != nil {
			return lock.Lease{}, err
		}
		req.LeaseID = providers.PermitLeaseID()
	} else {
		req.LeaseID = providers.NewLeaseID()
	}
	start := time.Now()
	ctx, span := tracer.Start(ctx, "lock.acquire", trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(AttrName.String(req.Name), AttrTTLMs.Int64(req.TTL.Milliseconds()), AttrWaitMs.Int64(req.Wait.Milliseconds())))
	l, contended, err := s.acquire(ctx, req, start)
	if err == nil {
		s.notes.notify(req.Name)
	}
	span.SetAttributes(AttrContended.Bool(contended))
	endSpan(span, "acquire", l.FencingToken, err)
	if s.obs != nil {
		s.obs.ObserveAcquire(ctx, req, l, err, time.Since(start), contended)
	}
	return l, err
}

// acquire is Acquire's loop; contended reports whether the first attempt
// found the lock held.
//
// Waiters of one name on this instance take turns: the first one waits on
// the backend (a watch, or polling), the others queue behind it in
// arrival order and try again only when it leaves (with the lock, or at
// its deadline); a newcomer that may wait queues behind them too instead
// of trying first. A release then sets off one attempt per instance rather
// than one per waiter; the backend still decides who gets the lock.
func (s *Service) acquire(ctx context.Context, req lock.AcquireRequest, start time.Time) (_ lock.Lease, contended bool, _ error) {
	deadline := start.Add(req.Wait)
	watcher, _ := s.p.(providers.Watcher)
	var (
		poll  *backoff.ExponentialBackOff
		me    *place
		leave func()
	)
	defer func() {
		if leave != nil {
			leave()
		}
	}()
	if req.Wait > 0 && s.lines.busy(req.Name) {
		// Others of this instance already wait for the name: queue behind
		// them rather than barge in. A holder that releases and at once
		// acquires again would otherwise win nearly every time against a
		// waiter the backend has to wake (seen on the embedded etcd once
		// its acquire became one RPC: waiters starved for seconds).
		contended = true
		wctx, cancel := context.WithDeadline(ctx, deadline)
		var werr error
		me, leave, _, werr = s.lines.enter(wctx, req.Name)
		cancel()
		if ctx.Err() != nil {
			return lock.Lease{}, true, fmt.Errorf("acquire %q: %w", req.Name, ctx.Err())
		}
		_ = werr // the wait ran out in the line: one last attempt answers
	}
	for {
		lease, err := s.call(ctx, func(ctx context.Context) (lock.Lease, error) { return s.attempt(ctx, req) })
		var held *lock.HeldError
		if !errors.As(err, &held) {
			return lease, contended, err
		}
		contended = true
		if held.RetryAfter < 0 {
			held.RetryAfter = 0
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return lock.Lease{}, true, held
		}
		wctx, cancel := context.WithTimeout(ctx, remaining)
		var (
			queued bool
			werr   error
		)
		if leave == nil {
			// Take a place in this instance's line for the name. A waiter
			// that had to queue tries again at once when its turn comes:
			// the lock may have changed meanwhile.
			me, leave, queued, werr = s.lines.enter(wctx, req.Name)
		}
		switch {
		case werr != nil || queued:
		case watcher != nil:
			werr = watcher.WaitChange(wctx, held)
		default:
			if poll == nil {
				poll = s.poll()
			}
			d := poll.NextBackOff()
			if held.RetryAfter > 0 && d > held.RetryAfter {
				d = held.RetryAfter
			}
			werr = sleepOrWake(wctx, d, me.wake)
		}
		cancel()
		if ctx.Err() != nil {
			return lock.Lease{}, true, fmt.Errorf("acquire %q: %w", req.Name, ctx.Err())
		}
		if werr != nil && !errors.Is(werr, context.DeadlineExceeded) {
			return lock.Lease{}, true, werr
		}
	}
}

// TryAcquire is Acquire without waiting, whatever req.Wait says.
func (s *Service) TryAcquire(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	req.Wait = 0
	return s.Acquire(ctx, req)
}

// Renew extends a lease and keeps its token.
func (s *Service) Renew(ctx context.Context, req lock.RenewRequest) (lock.Lease, error) {
	if err := req.Validate(); err != nil {
		return lock.Lease{}, err
	}
	start := time.Now()
	ctx, span := tracer.Start(ctx, "lock.renew", trace.WithAttributes(AttrName.String(req.Name)))
	l, err := s.call(ctx, func(ctx context.Context) (lock.Lease, error) {
		if providers.IsPermitLeaseID(req.LeaseID) {
			return s.renewPermit(ctx, req)
		}
		l, err := s.p.Renew(ctx, req)
		if err == nil {
			l.Permits = 1
		}
		return l, err
	})
	endSpan(span, "renew", l.FencingToken, err)
	if s.obs != nil {
		s.obs.ObserveRenew(ctx, req, l, err, time.Since(start))
	}
	return l, err
}

// Release ends a lease.
func (s *Service) Release(ctx context.Context, req lock.ReleaseRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	start := time.Now()
	ctx, span := tracer.Start(ctx, "lock.release", trace.WithAttributes(AttrName.String(req.Name)))
	_, err := s.call(ctx, func(ctx context.Context) (lock.Lease, error) {
		if providers.IsPermitLeaseID(req.LeaseID) {
			return lock.Lease{}, s.releasePermit(ctx, req)
		}
		return lock.Lease{}, s.p.Release(ctx, req)
	})
	if err == nil {
		s.lines.wake(req.Name)
		s.notes.notify(req.Name)
	}
	endSpan(span, "release", 0, err)
	if s.obs != nil {
		s.obs.ObserveRelease(ctx, req, err, time.Since(start))
	}
	return err
}

// Status reports who holds name.
func (s *Service) Status(ctx context.Context, name string) (lock.Status, error) {
	if err := lock.ValidateName(name); err != nil {
		return lock.Status{}, err
	}
	var st lock.Status
	_, err := s.call(ctx, func(ctx context.Context) (lock.Lease, error) {
		var err error
		st, err = s.p.Status(ctx, name)
		return lock.Lease{}, err
	})
	return st, err
}

// Ping checks that the backend answers (see WithPingCache).
func (s *Service) Ping(ctx context.Context) error {
	if s.pingCached() {
		return nil
	}
	_, err := s.call(ctx, func(ctx context.Context) (lock.Lease, error) { return lock.Lease{}, s.p.Ping(ctx) })
	if err == nil && s.pingFor > 0 {
		s.pingMu.Lock()
		s.pingOK = time.Now()
		s.pingMu.Unlock()
	}
	return err
}

// Guarantee is what the store keeps when it keeps less than API v1's
// semantics in full (providers.Guarantor), or "".
func (s *Service) Guarantee() string { return providers.GuaranteeOf(s.p) }

// ErrUnsupported is providers.ErrUnsupported: the store lacks the optional
// capability an operation needs (listing, for one); the API answers 501.
var ErrUnsupported = providers.ErrUnsupported
