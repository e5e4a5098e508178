package app

import (
	"context"
	"net/http"
	"os"

	"github.com/hasplock/hasp/telemetry"
	"github.com/hasplock/hasp/telemetry/catalog"
)

// emfSink writes CloudWatch Embedded Metric Format lines.
type emfSink struct{ *telemetry.EMF }

func newEMF(cfg Config) sink {
	out := cfg.MetricsOut
	if out == nil {
		out = os.Stdout
	}
	return emfSink{telemetry.NewEMF(out, catalog.CloudWatchNamespace)}
}

func (s emfSink) flush(context.Context) error    { return s.Flush() }
func (s emfSink) shutdown(context.Context) error { return s.Flush() }
func (s emfSink) handler() http.Handler          { return nil }
