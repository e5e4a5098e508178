// Package tracing sets up OpenTelemetry tracing for hasp's front ends from
// the standard OTEL_* variables (off by default), and instruments their
// HTTP handler. The spans themselves (lock.acquire, lock.renew,
// lock.release, backend.OP) are made by packages service and telemetry
// through the OpenTelemetry API, which costs nothing while tracing is off.
//
// The Lambda build (tag hasp_lambda) leaves the SDK and exporters out
// unless built with the tag hasp_tracing too (make build-lambda
// LAMBDA_TRACING=1): they double the function's size.
package tracing

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrNotBuiltIn is returned by Setup when the variables ask for tracing
// but this build carries no exporter (a Lambda built without
// hasp_tracing). Callers log it and go on without traces.
var ErrNotBuiltIn = errors.New("tracing: this build has no trace exporter (build the Lambda with LAMBDA_TRACING=1)")

// Exporter says which span exporter the standard OpenTelemetry
// variables ask for: "" (tracing off, the default), "otlp" or "console".
// OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it off;
// OTEL_TRACES_EXPORTER=otlp|console picks one; without it, an OTLP
// endpoint (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) turns OTLP on.
func Exporter() (string, error) {
	if strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return "", nil
	}
	switch e := strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER")); e {
	case "none":
		return "", nil
	case "otlp", "console":
		return e, nil
	case "":
		if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
			return "otlp", nil
		}
		return "", nil
	default:
		return "", fmt.Errorf("tracing: OTEL_TRACES_EXPORTER=%q is not supported (otlp, console or none)", e)
	}
}

// otlpProtocol is the OTLP protocol the variables ask for.
func otlpProtocol() string {
	if p := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"); p != "" {
		return p
	}
	if p := os.Getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); p != "" {
		return p
	}
	return "http/protobuf"
}
