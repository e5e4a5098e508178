//go:build !hasp_lambda

package tracing

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// otlpExporter makes the OTLP exporter of the protocol the variables ask
// for: http/protobuf or grpc.
func otlpExporter(ctx context.Context) (sdktrace.SpanExporter, error) {
	switch p := otlpProtocol(); p {
	case "http/protobuf":
		return otlpHTTP(ctx)
	case "grpc":
		return otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("OTLP protocol %q is not supported (http/protobuf or grpc)", p)
	}
}
