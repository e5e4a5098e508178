//go:build hasp_lambda

package app

import (
	"context"
	"fmt"
)

// newSink makes cfg's metrics sink, or nil for none. The Lambda build
// carries EMF only: Prometheus and the OTLP metrics SDK would double the
// function's size.
func newSink(_ context.Context, cfg Config) (sink, error) {
	switch cfg.Metrics {
	case MetricsOff:
		return nil, nil
	case MetricsEMF:
		return newEMF(cfg), nil
	}
	return nil, fmt.Errorf("metrics sink %d is not built into the Lambda function (EMF only)", cfg.Metrics)
}
