//go:build !hasp_lambda || hasp_tracing

package tracing

import (
	"context"
	"fmt"
	"os"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Tracing is an installed OpenTelemetry tracer provider.
type Tracing struct {
	tp *sdktrace.TracerProvider
}

// Flush exports the spans ended so far (a Lambda calls it before its
// invocation ends, since the environment may freeze after).
func (t *Tracing) Flush(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.ForceFlush(ctx)
}

// Shutdown flushes and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// Setup installs a tracer provider as OpenTelemetry's global one
// when the standard variables ask for it (see Exporter), and the
// W3C trace-context propagator. It returns nil when tracing is off. The
// exporter reads the rest of its configuration from the standard
// variables itself (OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS, _TIMEOUT,
// _CERTIFICATE, _PROTOCOL: http/protobuf by default, grpc where built in),
// and the SDK its sampler (OTEL_TRACES_SAMPLER) and resource
// (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES). service names the
// service when OTEL_SERVICE_NAME does not.
func Setup(ctx context.Context, service string) (*Tracing, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	kind, err := Exporter()
	if err != nil || kind == "" {
		return nil, err
	}
	var exp sdktrace.SpanExporter
	if kind == "console" {
		exp, err = stdouttrace.New(stdouttrace.WithWriter(os.Stderr))
	} else {
		exp, err = otlpExporter(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return &Tracing{tp: tp}, nil
}

func otlpHTTP(ctx context.Context) (sdktrace.SpanExporter, error) {
	return otlptracehttp.New(ctx)
}
