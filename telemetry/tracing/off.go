//go:build hasp_lambda && !hasp_tracing

package tracing

import (
	"context"
	"net/http"
)

// Tracing stands for a tracer provider; this build has none.
type Tracing struct{}

// Flush does nothing: this build exports no spans.
func (t *Tracing) Flush(context.Context) error { return nil }

// Shutdown does nothing: this build exports no spans.
func (t *Tracing) Shutdown(context.Context) error { return nil }

// Setup returns nil, or ErrNotBuiltIn when the variables ask for traces.
func Setup(context.Context, string) (*Tracing, error) {
	kind, err := Exporter()
	if err != nil {
		return nil, err
	}
	if kind != "" {
		return nil, ErrNotBuiltIn
	}
	return nil, nil
}

// Handler returns h: this build traces nothing.
func Handler(h http.Handler, _ func(string) string) http.Handler { return h }
