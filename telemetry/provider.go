package telemetry

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

var tracer = otel.Tracer("github.com/hasplock/hasp/telemetry")

// Provider wraps p so that every call to it is counted and timed
// (lock_backend_requests_total, lock_backend_request_duration_seconds) and
// traced as a span "backend.OP". The wrapper keeps p's optional
// capabilities (providers.Watcher, providers.RequestCounter).
func (r *Recorder) Provider(p providers.Provider) providers.Provider {
	ip := &instrumented{Provider: p, r: r, name: p.Name()}
	w, watches := p.(providers.Watcher)
	c, counts := p.(providers.RequestCounter)
	switch {
	case watches && counts:
		return struct {
			*instrumented
			providers.Watcher
			providers.RequestCounter
		}{ip, w, c}
	case watches:
		return struct {
			*instrumented
			providers.Watcher
		}{ip, w}
	case counts:
		return struct {
			*instrumented
			providers.RequestCounter
		}{ip, c}
	}
	return ip
}

type instrumented struct {
	providers.Provider
	r    *Recorder
	name string
}

// Unwrap implements providers.Unwrapper, so that capabilities such as
// providers.Guarantor are found through the wrapper.
func (p *instrumented) Unwrap() providers.Provider { return p.Provider }

// observe records one backend call. Lock outcomes (held, lost, invalid)
// are answers, not backend failures: only the rest count as errors.
func (p *instrumented) observe(ctx context.Context, op string, f func(ctx context.Context) error) error {
	ctx, span := tracer.Start(ctx, "backend."+op, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("lock.provider", p.name)))
	start := time.Now()
	err := f(ctx)
	result := "ok"
	if err != nil && !errors.Is(err, lock.ErrHeld) && !errors.Is(err, lock.ErrLeaseLost) && !errors.Is(err, lock.ErrInvalidArgument) {
		result = "error"
		span.RecordError(err)
		span.SetStatus(codes.Error, "backend error")
	}
	span.End()
	p.r.sink.Add(BackendRequestsTotal, 1, p.name, op, result)
	p.r.sink.Observe(BackendRequestDuration, time.Since(start).Seconds(), p.name, op)
	return err
}

func (p *instrumented) Acquire(ctx context.Context, req lock.AcquireRequest) (l lock.Lease, err error) {
	err = p.observe(ctx, "acquire", func(ctx context.Context) error { l, err = p.Provider.Acquire(ctx, req); return err })
	return l, err
}

func (p *instrumented) Renew(ctx context.Context, req lock.RenewRequest) (l lock.Lease, err error) {
	err = p.observe(ctx, "renew", func(ctx context.Context) error { l, err = p.Provider.Renew(ctx, req); return err })
	return l, err
}

func (p *instrumented) Release(ctx context.Context, req lock.ReleaseRequest) error {
	return p.observe(ctx, "release", func(ctx context.Context) error { return p.Provider.Release(ctx, req) })
}

func (p *instrumented) Status(ctx context.Context, name string) (st lock.Status, err error) {
	err = p.observe(ctx, "status", func(ctx context.Context) error { st, err = p.Provider.Status(ctx, name); return err })
	return st, err
}

func (p *instrumented) Ping(ctx context.Context) error {
	return p.observe(ctx, "ping", p.Provider.Ping)
}
