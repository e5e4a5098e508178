//go:build !hasp_lambda || hasp_tracing

package tracing

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/hasplock/hasp/api"
)

// Handler wraps h with OpenTelemetry's HTTP server instrumentation: a
// server span per request ("POST acquire"), parent of the lock.* spans,
// continuing the caller's trace from its traceparent header.
func Handler(h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, "hasp", otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
		return r.Method + " " + api.RouteName(r.URL.EscapedPath())
	}))
}
