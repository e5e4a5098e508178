// Package gcp is hasp's Google Cloud Function (Cloud Run functions, Go
// runtime): the one API v1 handler registered with the Functions Framework
// under the entry point "Hasp", over the store named by HASP_STORE
// (spanner://projects/P/instances/I/databases/D).
//
// Deploy it with `make build-gcp` (dist/gcp: a source folder whose root
// package imports this one, as the Go runtime requires) and `gcloud
// functions deploy` (see the README). Callers authenticate with Cloud Run's
// IAM invoker check (an ID token in the Authorization header), so hasp's
// own bearer tokens are not used here. `make run-gcp` runs it locally on
// the Spanner emulator.
//
// Traces and metrics go over OTLP when the standard OTEL_* variables ask
// (package app, MetricsOTLP); logs are JSON lines for Cloud Logging.
//
// Every path is served by the one handler: with FUNCTION_TARGET=Hasp (set
// by the runtime, and by cmd/hasp-gcp-local) the Functions Framework
// routes all paths to it.
package gcp

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/hasplock/hasp/api"
	"github.com/hasplock/hasp/app"
	_ "github.com/hasplock/hasp/providers/spanner" // spanner://projects/P/instances/I/databases/D
)

// EntryPoint is the function's entry point (gcloud --entry-point).
const EntryPoint = "Hasp"

func init() {
	functions.HTTP(EntryPoint, Handle)
}

var fn struct {
	mu      sync.Mutex
	app     *app.App
	err     error // the last failure to build app, until errTill
	errTill time.Time
}

// retryInit is how long a failure to open the store is answered from
// memory before the next request tries again.
const retryInit = 2 * time.Second

// Handle serves one request. The handler is built on the first request of
// an instance (and again after a failure, at most every retryInit), so
// that a store that is not reachable yet is a 503 rather than a crashed
// instance. With telemetry on, the request's spans and metrics are
// exported before Handle returns: Cloud Run may take the CPU away between
// requests.
func Handle(w http.ResponseWriter, r *http.Request) {
	a, err := instance(r.Context())
	if err != nil {
		logger(slog.LevelInfo).Error("hasp: the function could not start", "error", err.Error())
		w.Header().Set("Retry-After", "1")
		api.WriteError(w, http.StatusServiceUnavailable, "unavailable", "the lock store is not available")
		return
	}
	a.Handler().ServeHTTP(w, r)
	if a.Exports() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush() // the caller has its answer before the export
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 2*time.Second)
		defer cancel()
		if err := a.Flush(ctx); err != nil {
			a.Logger().Warn("hasp: exporting telemetry", "error", err.Error())
		}
	}
}

// instance returns the instance's app, built on first use.
func instance(ctx context.Context) (*app.App, error) {
	fn.mu.Lock()
	defer fn.mu.Unlock()
	if fn.app != nil {
		return fn.app, nil
	}
	if fn.err != nil && time.Now().Before(fn.errTill) {
		return nil, fn.err
	}
	a, err := build(ctx)
	if err != nil {
		fn.err, fn.errTill = err, time.Now().Add(retryInit)
		return nil, err
	}
	fn.app = a
	return a, nil
}

// build assembles the app from the environment (app.ConfigFromEnv) with
// what is the Cloud Function's own: Cloud Logging's JSON, OTLP metrics.
func build(ctx context.Context) (*app.App, error) {
	cfg, err := app.ConfigFromEnv()
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	if cfg.Store == "" {
		return nil, fmt.Errorf("configuration: HASP_STORE is not set (e.g. spanner://projects/P/instances/I/databases/D)")
	}
	cfg.Logger, cfg.Metrics = logger(cfg.LogLevel), app.MetricsOTLP
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	return app.New(ctx, cfg)
}

// logger writes JSON lines that Cloud Logging reads as structured entries:
// "severity" and "message" in place of slog's "level" and "msg".
func logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.LevelKey:
				a.Key = "severity"
				if l, ok := a.Value.Any().(slog.Level); ok {
					a.Value = slog.StringValue(severity(l))
				}
			case slog.MessageKey:
				a.Key = "message"
			}
			return a
		},
	}))
}

// severity maps slog levels to Cloud Logging's severities.
func severity(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	default:
		return "DEBUG"
	}
}
