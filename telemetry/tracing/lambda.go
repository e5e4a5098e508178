//go:build hasp_lambda && hasp_tracing

package tracing

import (
	"context"
	"fmt"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// otlpExporter makes the OTLP exporter. The Lambda build carries only
// http/protobuf (the protocol of the OpenTelemetry Lambda layers'
// collector on localhost:4318), to stay small.
func otlpExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	if p := otlpProtocol(); p != "http/protobuf" {
		return nil, fmt.Errorf("OTLP protocol %q is not built into the Lambda function (http/protobuf only)", p)
	}
	return otlpHTTP(ctx)
}
