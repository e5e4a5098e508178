// Package app assembles hasp from one typed Config: it opens the store,
// builds the lock service and the one API v1 handler over it, and wires
// telemetry (metrics on the front end's sink, OpenTelemetry traces from
// the standard OTEL_* variables). Every front end is a thin main over it:
// `hasp serve`, the Lambda function, the Cloud Function and the Azure
// Functions custom handler build an App, serve its Handler, and Close it.
//
// Stores register themselves: a main imports the provider packages it
// offers (blank imports), and Config.Store picks one by its URL scheme.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/hasplock/hasp/api"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/service"
	"github.com/hasplock/hasp/telemetry"
	"github.com/hasplock/hasp/telemetry/tracing"
)

// ShutdownGrace is how long requests in flight may finish when a server
// front end is stopped (SIGINT/SIGTERM): longer than the longest wait
// (20 s) plus a backend call.
const ShutdownGrace = 25 * time.Second

// Metrics says where a front end's metrics go.
type Metrics int

// The metrics sinks. Each front end has its natural one; the Lambda build
// (tag hasp_lambda) carries only MetricsEMF.
const (
	// MetricsOff records no metrics.
	MetricsOff Metrics = iota
	// MetricsPrometheus serves Prometheus metrics at /metrics (hasp serve).
	MetricsPrometheus
	// MetricsEMF writes CloudWatch Embedded Metric Format lines to
	// Config.MetricsOut (the Lambda function: no network call).
	MetricsEMF
	// MetricsOTLP exports over OTLP when the OTEL_* variables ask for it,
	// and records nothing otherwise (the Cloud Function, the Azure handler).
	MetricsOTLP
)

// Config is everything a front end decides about the app. Environment
// variables and flags map onto it once (ConfigFromEnv, `hasp serve`'s
// flags).
type Config struct {
	// Store is the store URL (HASP_STORE), e.g. "embedded:./.hasp-data",
	// "dynamodb://hasp-locks"; its scheme must be registered.
	Store string
	// Logger logs each request; nil logs JSON lines to standard error at
	// LogLevel.
	Logger *slog.Logger
	// LogLevel is the minimum level of the default logger (HASP_LOG_LEVEL;
	// default info).
	LogLevel slog.Level
	// AuthTokens, when set, are the bearer tokens the lock routes require
	// (hasp serve; the clouds authenticate in front of the function).
	AuthTokens []string
	// Metrics picks the metrics sink (default MetricsOff).
	Metrics Metrics
	// MetricsOut is where MetricsEMF writes (default standard output).
	MetricsOut io.Writer
	// PingCache lets /v1/health answer from a success this recent (see
	// service.WithPingCache): for front ends whose health route is open.
	PingCache time.Duration
	// ServiceName names the service in traces and OTLP metrics when
	// OTEL_SERVICE_NAME does not (default "hasp").
	ServiceName string
}

// ConfigFromEnv reads the settings every front end shares from the
// environment: HASP_STORE and HASP_LOG_LEVEL. A front end then sets what
// is its own (metrics sink, logger, ping cache).
func ConfigFromEnv() (Config, error) {
	c := Config{Store: os.Getenv("HASP_STORE")}
	if v := os.Getenv("HASP_LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			return c, fmt.Errorf("HASP_LOG_LEVEL=%q: %w", v, err)
		}
	}
	return c, nil
}

// App is an assembled hasp: the API handler over the lock service over the
// store, with its telemetry.
type App struct {
	handler  http.Handler
	svc      *service.Service
	provider string
	tracing  *tracing.Tracing
	sink     sink
	log      *slog.Logger
}

// sink is a metrics sink with its life cycle.
type sink interface {
	telemetry.Sink
	// flush exports what was recorded so far (serverless front ends call
	// it before an invocation returns).
	flush(ctx context.Context) error
	// shutdown flushes and stops the exporter.
	shutdown(ctx context.Context) error
	// handler serves the metrics, or is nil when they are pushed.
	handler() http.Handler
}

// New opens cfg.Store and assembles the app. ctx bounds the set-up (the
// store's and the exporters'); the App lives until Close.
func New(ctx context.Context, cfg Config) (_ *App, err error) {
	if cfg.Store == "" {
		return nil, errors.New("configuration: no store URL (HASP_STORE, e.g. " + exampleStore + ")")
	}
	if cfg.ServiceName == "" {
		cfg.ServiceName = "hasp"
	}
	a := &App{log: cfg.Logger}
	if a.log == nil {
		a.log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	}
	defer func() {
		if err != nil {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = a.shutdownTelemetry(sctx)
		}
	}()
	a.tracing, err = tracing.Setup(ctx, cfg.ServiceName)
	if errors.Is(err, tracing.ErrNotBuiltIn) {
		a.log.Warn("OTEL_* variables ask for traces, but this build has no exporter: rebuild with make build-lambda LAMBDA_TRACING=1")
	} else if err != nil {
		return nil, fmt.Errorf("configuration: tracing: %w", err)
	}
	if a.sink, err = newSink(ctx, cfg); err != nil {
		return nil, fmt.Errorf("configuration: metrics: %w", err)
	}
	p, err := providers.Open(ctx, cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	a.provider = p.Name()
	var svcOpts []service.Option
	if cfg.PingCache > 0 {
		svcOpts = append(svcOpts, service.WithPingCache(cfg.PingCache))
	}
	apiOpts := []api.Option{api.WithLogger(a.log)}
	if len(cfg.AuthTokens) > 0 {
		apiOpts = append(apiOpts, api.WithBearerTokens(cfg.AuthTokens...))
	}
	if a.sink != nil {
		rec := telemetry.NewRecorder(a.sink)
		p = rec.Provider(p)
		svcOpts = append(svcOpts, service.WithObserver(rec))
		apiOpts = append(apiOpts, api.WithRequestObserver(rec.HTTP))
	}
	a.svc = service.New(p, svcOpts...)
	a.handler = api.New(a.svc, apiOpts...)
	if a.tracing != nil {
		a.handler = tracing.Handler(a.handler, api.RouteName)
	}
	if a.sink != nil && a.sink.handler() != nil {
		a.handler = withMetrics(a.handler, a.sink.handler())
	}
	return a, nil
}

const exampleStore = "embedded:./.hasp-data, dynamodb://hasp-locks, spanner://projects/P/instances/I/databases/D, cosmos://hasp/locks"

// Handler is the app's HTTP handler: API v1, and /metrics with
// MetricsPrometheus.
func (a *App) Handler() http.Handler { return a.handler }

// Service is the lock service behind the handler.
func (a *App) Service() *service.Service { return a.svc }

// Provider is the store's provider name ("etcd", "dynamodb", ...).
func (a *App) Provider() string { return a.provider }

// Logger is the app's logger.
func (a *App) Logger() *slog.Logger { return a.log }

// Exports reports whether the app pushes telemetry that Flush sends
// (traces, or EMF or OTLP metrics).
func (a *App) Exports() bool {
	return a.tracing != nil || (a.sink != nil && a.sink.handler() == nil)
}

// Flush exports the spans and metrics recorded so far: serverless front
// ends call it before an invocation returns, since the environment may be
// frozen afterwards.
func (a *App) Flush(ctx context.Context) error {
	var errs []error
	if a.sink != nil {
		errs = append(errs, a.sink.flush(ctx))
	}
	return errors.Join(append(errs, a.tracing.Flush(ctx))...)
}

// Close flushes and stops telemetry, then closes the store. ctx bounds
// the export.
func (a *App) Close(ctx context.Context) error {
	return errors.Join(a.shutdownTelemetry(ctx), a.svc.Close())
}

func (a *App) shutdownTelemetry(ctx context.Context) error {
	var errs []error
	if a.sink != nil {
		errs = append(errs, a.sink.shutdown(ctx))
	}
	return errors.Join(append(errs, a.tracing.Shutdown(ctx))...)
}

// Serve serves the app on ln until ctx ends, then lets requests in flight
// finish for up to grace.
func (a *App) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	return api.Serve(ctx, api.NewServer(a.handler), ln, grace)
}

// withMetrics serves metrics at exactly /metrics and everything else with
// h.
func withMetrics(h, metrics http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.EscapedPath() == "/metrics" {
			metrics.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
