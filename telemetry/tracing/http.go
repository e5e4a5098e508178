//go:build !hasp_lambda || hasp_tracing

package tracing

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// Handler wraps h with OpenTelemetry's HTTP server instrumentation: a
// server span per request named by its method and route ("POST acquire",
// route names the escaped path), parent of the lock.* spans, continuing
// the caller's trace from its traceparent header.
func Handler(h http.Handler, route func(escapedPath string) string) http.Handler {
	return otelhttp.NewHandler(h, "hasp", otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
		return r.Method + " " + route(r.URL.EscapedPath())
	}))
}
