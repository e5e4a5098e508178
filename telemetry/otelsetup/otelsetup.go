// Package otelsetup gives a serverless front end (the Cloud Function, the
// Azure Functions handler) its OpenTelemetry traces and metrics, both from
// the standard OTEL_* variables and both off by default, and builds its
// instrumented API handler over a provider.
package otelsetup

import (
	"context"
	"errors"
	"net/http"

	"github.com/hasplock/hasp/api"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/telemetry"
	"github.com/hasplock/hasp/telemetry/otlpmetrics"
	"github.com/hasplock/hasp/telemetry/tracing"
)

// Telemetry is a front end's tracing and OTLP metrics; either may be off
// (nil).
type Telemetry struct {
	tracing *tracing.Tracing
	metrics *otlpmetrics.Sink
}

// Setup sets up tracing (tracing.Setup) and OTLP metrics
// (otlpmetrics.Setup) as the variables ask. service names the service
// when OTEL_SERVICE_NAME does not.
func Setup(ctx context.Context, service string) (*Telemetry, error) {
	tr, err := tracing.Setup(ctx, service)
	if err != nil {
		return nil, err
	}
	m, err := otlpmetrics.Setup(ctx, service)
	if err != nil {
		return nil, errors.Join(err, tr.Shutdown(ctx))
	}
	return &Telemetry{tracing: tr, metrics: m}, nil
}

// Handler returns the one API handler over p, reporting metrics when they
// are on and traced when tracing is on.
func (t *Telemetry) Handler(p providers.Provider, opts ...api.Option) http.Handler {
	var sink telemetry.Sink
	if t.metrics != nil {
		sink = t.metrics
	}
	_, h := telemetry.Instrument(p, sink, nil, opts...)
	if t.tracing != nil {
		h = tracing.Handler(h)
	}
	return h
}

// Enabled reports whether traces or metrics are exported (false for nil).
func (t *Telemetry) Enabled() bool { return t != nil && (t.tracing != nil || t.metrics != nil) }

// Flush exports the spans and metrics recorded so far.
func (t *Telemetry) Flush(ctx context.Context) error {
	return errors.Join(t.tracing.Flush(ctx), t.metrics.Flush(ctx))
}

// Shutdown flushes and stops the exporters.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	return errors.Join(t.tracing.Shutdown(ctx), t.metrics.Shutdown(ctx))
}
