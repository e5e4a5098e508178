// Package telemetry is hasp's metrics and traces: one table of metric
// names (package catalog), shared by every front end (Prometheus on hasp serve, CloudWatch
// Embedded Metric Format on the Lambda), a Recorder that turns the
// service's operations, the provider's backend calls and the HTTP requests
// into those metrics, and the OpenTelemetry tracing set-up driven by the
// standard OTEL_* variables.
package telemetry

import "github.com/hasplock/hasp/telemetry/catalog"

// Sink receives metric observations. labels are the values of m.Labels,
// in order.
type Sink interface {
	// Add adds v to a counter.
	Add(m catalog.Metric, v float64, labels ...string)
	// Observe records v in a histogram.
	Observe(m catalog.Metric, v float64, labels ...string)
	// Set sets a gauge.
	Set(m catalog.Metric, v float64)
}
