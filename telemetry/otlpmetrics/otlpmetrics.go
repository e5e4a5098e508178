// Package otlpmetrics exports hasp's metrics (package telemetry) with the
// OpenTelemetry metrics SDK over OTLP/HTTP, for the front ends that no
// Prometheus scrapes and that do not run on AWS: the Cloud Function and the
// Azure Functions handler. It is off unless the standard OTEL_* variables
// ask for it, like tracing.
package otlpmetrics

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/hasplock/hasp/telemetry/catalog"
)

// Enabled reports whether the standard variables ask for OTLP metrics:
// OTEL_METRICS_EXPORTER=otlp, or an OTLP endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)
// without OTEL_METRICS_EXPORTER=none; never with OTEL_SDK_DISABLED=true.
func Enabled() (bool, error) {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return false, nil
	}
	switch e := strings.TrimSpace(os.Getenv("OTEL_METRICS_EXPORTER")); e {
	case "none":
		return false, nil
	case "otlp":
		return true, nil
	case "":
		return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != "", nil
	default:
		return false, fmt.Errorf("otlpmetrics: OTEL_METRICS_EXPORTER=%q is not supported (otlp or none)", e)
	}
}

// Sink is a telemetry.Sink on OpenTelemetry instruments.
type Sink struct {
	mp         *sdkmetric.MeterProvider
	counters   map[string]metric.Float64Counter
	histograms map[string]metric.Float64Histogram

	mu     sync.Mutex
	gauges map[string]float64
}

// Setup returns a Sink exporting over OTLP (http/protobuf by default, or
// grpc by OTEL_EXPORTER_OTLP_PROTOCOL; endpoint, headers and interval from
// the standard variables: OTEL_EXPORTER_OTLP_*, OTEL_METRIC_EXPORT_INTERVAL),
// or nil when Enabled says no.
func Setup(ctx context.Context, service string) (*Sink, error) {
	on, err := Enabled()
	if err != nil || !on {
		return nil, err
	}
	var exp sdkmetric.Exporter
	switch proto := protocol(); proto {
	case "http/protobuf":
		exp, err = otlpmetrichttp.New(ctx)
	case "grpc":
		exp, err = otlpmetricgrpc.New(ctx)
	default:
		err = fmt.Errorf("OTLP protocol %q is not supported (http/protobuf or grpc)", proto)
	}
	if err != nil {
		return nil, fmt.Errorf("otlpmetrics: exporter: %w", err)
	}
	return New(ctx, sdkmetric.NewPeriodicReader(exp), service)
}

// protocol is the OTLP protocol the variables ask for (default
// http/protobuf).
func protocol() string {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := os.Getenv(k); p != "" {
			return p
		}
	}
	return "http/protobuf"
}

// New returns a Sink whose metrics reader is r (a periodic OTLP reader, or
// a manual reader in tests).
func New(ctx context.Context, r sdkmetric.Reader, service string) (*Sink, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("otlpmetrics: resource: %w", err)
	}
	var views []sdkmetric.View
	for _, m := range catalog.Metrics {
		if m.Kind == catalog.Histogram {
			views = append(views, sdkmetric.NewView(sdkmetric.Instrument{Name: m.Name},
				sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: catalog.DurationBuckets}}))
		}
	}
	s := &Sink{
		mp:         sdkmetric.NewMeterProvider(sdkmetric.WithReader(r), sdkmetric.WithResource(res), sdkmetric.WithView(views...)),
		counters:   map[string]metric.Float64Counter{},
		histograms: map[string]metric.Float64Histogram{},
		gauges:     map[string]float64{},
	}
	meter := s.mp.Meter("github.com/hasplock/hasp/telemetry")
	for _, m := range catalog.Metrics {
		switch m.Kind {
		case catalog.Counter:
			c, err := meter.Float64Counter(m.Name, metric.WithDescription(m.Help))
			if err != nil {
				return nil, err
			}
			s.counters[m.Name] = c
		case catalog.Histogram:
			h, err := meter.Float64Histogram(m.Name, metric.WithDescription(m.Help), metric.WithUnit("s"))
			if err != nil {
				return nil, err
			}
			s.histograms[m.Name] = h
		case catalog.Gauge:
			name := m.Name
			if _, err := meter.Float64ObservableGauge(name, metric.WithDescription(m.Help),
				metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
					s.mu.Lock()
					v, ok := s.gauges[name]
					s.mu.Unlock()
					if ok {
						o.Observe(v)
					}
					return nil
				})); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

func attrs(m catalog.Metric, labels []string) metric.MeasurementOption {
	kv := make([]attribute.KeyValue, 0, len(labels))
	for i, l := range labels {
		if i < len(m.Labels) {
			kv = append(kv, attribute.String(m.Labels[i], l))
		}
	}
	return metric.WithAttributes(kv...)
}

// Add implements telemetry.Sink.
func (s *Sink) Add(m catalog.Metric, v float64, labels ...string) {
	if c := s.counters[m.Name]; c != nil {
		c.Add(context.Background(), v, attrs(m, labels))
	}
}

// Observe implements telemetry.Sink.
func (s *Sink) Observe(m catalog.Metric, v float64, labels ...string) {
	if h := s.histograms[m.Name]; h != nil {
		h.Record(context.Background(), v, attrs(m, labels))
	}
}

// Set implements telemetry.Sink.
func (s *Sink) Set(m catalog.Metric, v float64) {
	s.mu.Lock()
	s.gauges[m.Name] = v
	s.mu.Unlock()
}

// Flush exports what was recorded so far (a function calls it while it
// still has CPU, since the platform may throttle it after the response).
func (s *Sink) Flush(ctx context.Context) error {
	if s == nil {
		return nil
	}
	return s.mp.ForceFlush(ctx)
}

// Shutdown flushes and stops the exporter.
func (s *Sink) Shutdown(ctx context.Context) error {
	if s == nil {
		return nil
	}
	return s.mp.Shutdown(ctx)
}
