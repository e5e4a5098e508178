// Command bootstrap is hasp's AWS Lambda function: API Gateway HTTP API
// (payload 2.0) events go through a thin adapter to the one API v1 handler,
// over the store named by HASP_STORE (dynamodb://TABLE). Build it with
// `make build-lambda` (provided.al2023, arm64 by default).
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/hasplock/hasp/app"
	"github.com/hasplock/hasp/functions/aws/lambdafn"
)

func main() {
	// Everything that talks to AWS is created once per cold start.
	cfg, err := app.ConfigFromEnv()
	var fn *lambdafn.Function
	if err == nil {
		fn, err = lambdafn.New(context.Background(), cfg)
	}
	if err != nil {
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Error("hasp: cold start failed", "error", err.Error())
		os.Exit(1)
	}
	// No SIGTERM hook (lambda.WithEnableSIGTERM): every invocation flushes
	// its metrics and spans before it returns, and the DynamoDB provider
	// holds nothing to close, so a hook would have nothing left to do,
	// while enabling it registers an internal extension with the runtime
	// API, one more round trip on every cold start.
	lambda.Start(fn.Handle)
}
