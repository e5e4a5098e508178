package service

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/hasplock/hasp/telemetry"
)

// tracer makes the spans lock.acquire, lock.renew and lock.release. It is
// the global provider's: a no-op unless the program installs an SDK (see
// package telemetry).
var tracer = otel.Tracer("github.com/hasplock/hasp/service")

// Span attributes. The lease id is never recorded.
const (
	AttrName         = attribute.Key("lock.name")
	AttrSuccess      = attribute.Key("lock.success")
	AttrFencingToken = attribute.Key("lock.fencing_token")
	AttrResult       = attribute.Key("lock.result")
	AttrContended    = attribute.Key("lock.contended")
	AttrTTLMs        = attribute.Key("lock.ttl_ms")
	AttrWaitMs       = attribute.Key("lock.wait_ms")
)

// endSpan records the outcome on span and ends it.
func endSpan(span trace.Span, op string, token int64, err error) {
	res := telemetry.Result(op, err)
	span.SetAttributes(AttrSuccess.Bool(err == nil), AttrResult.String(res))
	if token > 0 {
		span.SetAttributes(AttrFencingToken.Int64(token))
	}
	if res == "error" {
		span.RecordError(err)
		span.SetStatus(codes.Error, res)
	}
	span.End()
}
