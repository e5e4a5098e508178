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
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/awslabs/aws-lambda-go-api-proxy/core"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/hasplock/hasp/app"
	_ "github.com/hasplock/hasp/providers/dynamodb" // dynamodb://TABLE
)

// Function is the Lambda handler over the assembled app, created once per
// cold start.
type Function struct {
	app     *app.App
	adapter *httpadapter.HandlerAdapterV2
}

// New assembles the app from cfg (app.ConfigFromEnv: HASP_STORE,
// HASP_LOG_LEVEL) with what is the Lambda's own: JSON logs on standard
// output carrying the Lambda and API Gateway request ids, metrics as
// CloudWatch Embedded Metric Format lines (no network call from the
// function), and a health check remembered for 5 s, since /v1/health is
// open and each check would otherwise cost a DescribeTable.
func New(ctx context.Context, cfg app.Config) (*Function, error) {
	if cfg.Store == "" {
		return nil, fmt.Errorf("HASP_STORE is not set (e.g. dynamodb://hasp-locks)")
	}
	cfg.Logger = slog.New(requestIDs{slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: cfg.LogLevel})})
	cfg.Metrics = app.MetricsEMF
	cfg.PingCache = 5 * time.Second
	a, err := app.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Function{app: a, adapter: httpadapter.NewV2(a.Handler())}, nil
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
	if ferr := f.app.Flush(ctx); ferr != nil {
		f.app.Logger().ErrorContext(ctx, "exporting telemetry", "error", ferr.Error())
	}
	return resp, err
}

// Close flushes telemetry and closes the provider. The bootstrap does not
// need it (Handle flushes before each invocation returns); it is for
// programs that embed a Function and end it themselves.
func (f *Function) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return f.app.Close(ctx)
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
