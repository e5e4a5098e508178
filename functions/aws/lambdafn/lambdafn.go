// Package lambdafn adapts hasp's API v1 handler to AWS Lambda behind an API
// Gateway HTTP API (payload format 2.0).
//
// The adapter is aws-lambda-go-api-proxy's httpadapter, the maintained
// translation between API Gateway events and net/http: it rebuilds the
// request (method, raw path, query, headers, base64 bodies) and the
// response, so this package adds only configuration and logging. Notes from
// using it: it routes on the event's raw path, so the API must use the
// $default stage (no stage prefix in paths), and it splits request header
// values on commas, which no header of API v1 depends on.
package lambdafn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/awslabs/aws-lambda-go-api-proxy/core"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/hasplock/hasp/api"
	"github.com/hasplock/hasp/providers"
	_ "github.com/hasplock/hasp/providers/dynamodb" // dynamodb://TABLE
	"github.com/hasplock/hasp/service"
	"github.com/hasplock/hasp/telemetry"
	"github.com/hasplock/hasp/telemetry/tracing"
)

// Config is the function's configuration.
type Config struct {
	// Store is the store URL, from HASP_STORE (e.g. dynamodb://hasp-locks).
	Store string
	// LogLevel is the minimum level logged, from HASP_LOG_LEVEL (default
	// info).
	LogLevel slog.Level
}

// ConfigFromEnv reads the configuration from the environment.
func ConfigFromEnv() Config {
	c := Config{Store: os.Getenv("HASP_STORE")}
	_ = c.LogLevel.UnmarshalText([]byte(os.Getenv("HASP_LOG_LEVEL")))
	return c
}

// Function is the Lambda handler with its provider, created once per cold
// start.
type Function struct {
	svc     *service.Service
	adapter *httpadapter.HandlerAdapterV2
	metrics *telemetry.EMF
	tracing *tracing.Tracing
	log     *slog.Logger
}

// New opens the store and builds the handler.
func New(ctx context.Context, cfg Config) (*Function, error) {
	if cfg.Store == "" {
		return nil, fmt.Errorf("HASP_STORE is not set (e.g. dynamodb://hasp-locks)")
	}
	p, err := providers.Open(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	log := slog.New(requestIDs{slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel})})
	tr, err := tracing.Setup(ctx, "hasp")
	if errors.Is(err, tracing.ErrNotBuiltIn) {
		log.Warn("OTEL_* variables ask for traces, but this build has no exporter: rebuild with make build-lambda LAMBDA_TRACING=1")
	} else if err != nil {
		return nil, err
	}
	// Metrics go to CloudWatch as Embedded Metric Format log lines: no
	// network call from the function.
	emf := telemetry.NewEMF(os.Stdout, telemetry.CloudWatchNamespace)
	// /v1/health is open: a success is remembered for a few seconds, so
	// probes do not each cost a DescribeTable.
	svc, h := telemetry.Instrument(p, emf, []service.Option{service.WithPingCache(5 * time.Second)}, api.WithLogger(log))
	if tr != nil {
		h = tracing.Handler(h)
	}
	return &Function{svc: svc, adapter: httpadapter.NewV2(h), metrics: emf, tracing: tr, log: log}, nil
}

// Handle serves one API Gateway HTTP API event.
// The request's context ends a second before the function's deadline, so a
// long wait or a slow backend still gets an API v1 answer (503) rather
// than the function being cut off.
func (f *Function) Handle(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-time.Second))
		defer cancel()
	}
	resp, err := f.adapter.ProxyWithContext(ctx, ev)
	// The environment may freeze once the invocation returns: write this
	// invocation's metrics and export its spans now.
	if ferr := f.metrics.Flush(); ferr != nil {
		f.log.ErrorContext(ctx, "writing metrics", "error", ferr.Error())
	}
	if ferr := f.tracing.Flush(ctx); ferr != nil {
		f.log.ErrorContext(ctx, "exporting spans", "error", ferr.Error())
	}
	return resp, err
}

// Close flushes telemetry and closes the provider.
func (f *Function) Close() error {
	_ = f.metrics.Flush()
	_ = f.tracing.Shutdown(context.Background())
	return f.svc.Close()
}

// requestIDs adds the Lambda and API Gateway request ids to every record
// logged with a request's context.
type requestIDs struct{ slog.Handler }

func (h requestIDs) Handle(ctx context.Context, r slog.Record) error {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		r.AddAttrs(slog.String("aws_request_id", lc.AwsRequestID))
	}
	if rc, ok := core.GetAPIGatewayV2ContextFromContext(ctx); ok {
		r.AddAttrs(slog.String("apigw_request_id", rc.RequestID))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDs) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDs{h.Handler.WithAttrs(as)}
}

func (h requestIDs) WithGroup(name string) slog.Handler { return requestIDs{h.Handler.WithGroup(name)} }
