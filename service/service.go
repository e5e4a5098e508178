// Package service is hasp's one lock service: it validates requests by the
// rules of API v1, generates lease ids, implements the server-side wait
// once for every provider, and delegates storage to a providers.Provider.
// Every front end (hasp serve, the Lambda, the Cloud Function, the Azure
// handler) calls it through the api package.
package service

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
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
	// local hands a lock released through this service to the longest
	// waiting local acquire at once, for providers that cannot watch.
	local waitQueue
	// line lets one local waiter per name at a time wait on the backend;
	// the others queue behind it (see acquire).
	line turnstile
	obs  Observer

	pingFor time.Duration // a successful ping is remembered this long
	pingMu  sync.Mutex
	pingOK  time.Time // when the last ping succeeded
}

// WithPingCache lets Ping answer from a success less than d old instead of
// asking the backend again: for front ends whose health route is open to
// anyone (the Lambda's /v1/health runs DescribeTable). Failures are never
// remembered.
func WithPingCache(d time.Duration) Option { return func(s *Service) { s.pingFor = d } }

// pingCached reports whether a recent success answers Ping.
func (s *Service) pingCached() bool {
	if s.pingFor <= 0 {
		return false
	}
	s.pingMu.Lock()
	defer s.pingMu.Unlock()
	return !s.pingOK.IsZero() && time.Since(s.pingOK) < s.pingFor
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

// tracer makes the spans lock.acquire, lock.renew and lock.release. It is
// the global provider's: a no-op unless the program installs an SDK (see
// package telemetry).
var tracer = otel.Tracer("github.com/hasplock/hasp/service")

// Span attributes. The lease id is never recorded.
const (
	AttrName         = attribute.Key("lock.name")
	AttrSuccess      = attribute.Key("lock.success")
	AttrFencingToken = attribute.Key("lock.fencing_token")
	AttrResult       = attribute.Key("lock.result")
	AttrContended    = attribute.Key("lock.contended")
	AttrTTLMs        = attribute.Key("lock.ttl_ms")
	AttrWaitMs       = attribute.Key("lock.wait_ms")
)

// Result names a completed operation's outcome, as metrics and spans
// label it: "acquired", "renewed" or "released" on success, "held" for an
// acquire that did not get the lock, "lost" for a renew or release of a
// lease that had ended, "error" otherwise.
func Result(op string, err error) string {
	switch {
	case err == nil:
		switch op {
		case "acquire":
			return "acquired"
		case "renew":
			return "renewed"
		default:
			return "released"
		}
	case errors.Is(err, lock.ErrHeld):
		return "held"
	case errors.Is(err, lock.ErrLeaseLost):
		return "lost"
	default:
		return "error"
	}
}

// endSpan records the outcome on span and ends it.
func endSpan(span trace.Span, op string, token int64, err error) {
	res := Result(op, err)
	span.SetAttributes(AttrSuccess.Bool(err == nil), AttrResult.String(res))
	if token > 0 {
		span.SetAttributes(AttrFencingToken.Int64(token))
	}
	if res == "error" {
		span.RecordError(err)
		span.SetStatus(codes.Error, Result(op, err))
	}
	span.End()
}

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

// NewLeaseID returns a fresh lease id, 24 bytes in URL-safe base64: the
// issue time in Unix milliseconds (6 bytes, for LeaseIssuedAt) and 144
// random bits.
func NewLeaseID() string {
	var b [24]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// LeaseIssuedAt returns when a lease id made by NewLeaseID was issued, by
// the issuing instance's clock, so that any instance can measure how long
// a released lease was held. ok is false for ids it cannot read.
func LeaseIssuedAt(id string) (t time.Time, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(b) != 24 {
		return time.Time{}, false
	}
	var ms [8]byte
	copy(ms[2:], b[:6])
	return time.UnixMilli(int64(binary.BigEndian.Uint64(ms[:]))), true
}

// Acquire takes the lock for a new lease. With req.Wait > 0 it waits up to
// that long for a held lock: providers that watch are woken by the change,
// the others are polled with jittered backoff that never sleeps past the
// holder's expiry. ctx bounds the whole call. A lock still held at the end
// is a *lock.HeldError.
func (s *Service) Acquire(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	if err := req.Validate(); err != nil {
		return lock.Lease{}, err
	}
	req.LeaseID = NewLeaseID()
	start := time.Now()
	ctx, span := tracer.Start(ctx, "lock.acquire", trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(AttrName.String(req.Name), AttrTTLMs.Int64(req.TTL.Milliseconds()), AttrWaitMs.Int64(req.Wait.Milliseconds())))
	l, contended, err := s.acquire(ctx, req, start)
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
// its deadline). A release then sets off one attempt per instance rather
// than one per waiter; the backend still decides who gets the lock.
func (s *Service) acquire(ctx context.Context, req lock.AcquireRequest, start time.Time) (_ lock.Lease, contended bool, _ error) {
	deadline := start.Add(req.Wait)
	watcher, _ := s.p.(providers.Watcher)
	var poll *backoff.ExponentialBackOff
	var leave func()
	defer func() {
		if leave != nil {
			leave()
		}
	}()
	for {
		lease, err := s.call(ctx, func(ctx context.Context) (lock.Lease, error) { return s.p.Acquire(ctx, req) })
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
			leave, queued, werr = s.line.enter(wctx, req.Name)
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
			woken := s.local.add(req.Name)
			werr = sleepOrWake(wctx, d, woken)
			s.local.remove(req.Name, woken)
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
	l, err := s.call(ctx, func(ctx context.Context) (lock.Lease, error) { return s.p.Renew(ctx, req) })
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
	_, err := s.call(ctx, func(ctx context.Context) (lock.Lease, error) { return lock.Lease{}, s.p.Release(ctx, req) })
	if err == nil {
		s.local.wakeOne(req.Name)
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

// call runs one provider operation under the operation timeout. A timeout
// of that bound, while the caller's ctx is still live, is reported as
// lock.ErrUnavailable: the outcome of the write is unknown.
func (s *Service) call(ctx context.Context, op func(context.Context) (lock.Lease, error)) (lock.Lease, error) {
	octx, cancel := context.WithTimeout(ctx, s.opTimeout)
	defer cancel()
	lease, err := op(octx)
	if err != nil && ctx.Err() == nil && octx.Err() != nil && !isLockError(err) {
		return lock.Lease{}, fmt.Errorf("%w: backend did not answer within %s: %w", lock.ErrUnavailable, s.opTimeout, err)
	}
	return lease, err
}

func isLockError(err error) bool {
	for _, target := range []error{lock.ErrHeld, lock.ErrLeaseLost, lock.ErrInvalidArgument, lock.ErrUnavailable, lock.ErrThrottled} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// sleepOrWake sleeps for d, or until woken or ctx ends.
func sleepOrWake(ctx context.Context, d time.Duration, woken <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-woken:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitQueue is a FIFO of local waiters per lock name.
type waitQueue struct {
	mu sync.Mutex
	q  map[string][]chan struct{}
}

func (w *waitQueue) add(name string) chan struct{} {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.q == nil {
		w.q = map[string][]chan struct{}{}
	}
	w.q[name] = append(w.q[name], ch)
	return ch
}

func (w *waitQueue) remove(name string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.q[name]
	for i, c := range q {
		if c == ch {
			q = append(q[:i], q[i+1:]...)
			break
		}
	}
	if len(q) == 0 {
		delete(w.q, name)
	} else {
		w.q[name] = q
	}
}

// turnstile queues a service's waiters by name: one at a time is first.
type turnstile struct {
	mu sync.Mutex
	q  map[string][]chan struct{}
}

// enter queues the caller for name and returns once it is first in line
// (queued says whether it had to wait for that), or with ctx's error (the
// caller then never was first). leave, to be called exactly once when the
// first waiter is done, lets the next one in.
func (t *turnstile) enter(ctx context.Context, name string) (leave func(), queued bool, err error) {
	ch := make(chan struct{})
	t.mu.Lock()
	if t.q == nil {
		t.q = map[string][]chan struct{}{}
	}
	t.q[name] = append(t.q[name], ch)
	first := len(t.q[name]) == 1
	t.mu.Unlock()
	leave = func() { t.leave(name, ch) }
	if first {
		return leave, false, nil
	}
	select {
	case <-ch:
		return leave, true, nil
	case <-ctx.Done():
		leave()
		return nil, true, ctx.Err()
	}
}

// leave takes ch out of name's line; if it was first, the next one is.
func (t *turnstile) leave(name string, ch chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	q := t.q[name]
	for i, c := range q {
		if c != ch {
			continue
		}
		q = append(q[:i], q[i+1:]...)
		if len(q) == 0 {
			delete(t.q, name)
			return
		}
		t.q[name] = q
		if i == 0 {
			close(q[0])
		}
		return
	}
}

// wakeOne wakes the longest waiting local acquire of name, if any. It
// only hastens a retry; the provider still decides who gets the lock.
func (w *waitQueue) wakeOne(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.q[name]
	if len(q) == 0 {
		return
	}
	q[0] <- struct{}{}
	if len(q) == 1 {
		delete(w.q, name)
	} else {
		w.q[name] = q[1:]
	}
}
