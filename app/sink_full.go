//go:build !hasp_lambda

package app

import (
	"context"
	"fmt"
	"net/http"

	"github.com/hasplock/hasp/telemetry/otlpmetrics"
	"github.com/hasplock/hasp/telemetry/prom"
)

// newSink makes cfg's metrics sink, or nil for none.
func newSink(ctx context.Context, cfg Config) (sink, error) {
	switch cfg.Metrics {
	case MetricsOff:
		return nil, nil
	case MetricsPrometheus:
		return promSink{prom.New()}, nil
	case MetricsEMF:
		return newEMF(cfg), nil
	case MetricsOTLP:
		s, err := otlpmetrics.Setup(ctx, cfg.ServiceName)
		if err != nil || s == nil {
			return nil, err
		}
		return otlpSink{s}, nil
	}
	return nil, fmt.Errorf("unknown metrics sink %d", cfg.Metrics)
}

// promSink is scraped at /metrics.
type promSink struct{ *prom.Prometheus }

func (s promSink) flush(context.Context) error    { return nil }
func (s promSink) shutdown(context.Context) error { return nil }
func (s promSink) handler() http.Handler          { return s.Handler() }

// otlpSink pushes over OTLP.
type otlpSink struct{ *otlpmetrics.Sink }

func (s otlpSink) flush(ctx context.Context) error    { return s.Flush(ctx) }
func (s otlpSink) shutdown(ctx context.Context) error { return s.Shutdown(ctx) }
func (s otlpSink) handler() http.Handler              { return nil }
