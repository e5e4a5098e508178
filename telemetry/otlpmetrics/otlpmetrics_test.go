package otlpmetrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers/memory"
	"github.com/hasplock/hasp/service"
	"github.com/hasplock/hasp/telemetry"
	"github.com/hasplock/hasp/telemetry/catalog"
	"github.com/hasplock/hasp/telemetry/otlpmetrics"
)

func TestSink(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	sink, err := otlpmetrics.New(context.Background(), reader, "hasp")
	require.NoError(t, err)
	rec := telemetry.NewRecorder(sink)
	s := service.New(rec.Provider(memory.New()), service.WithObserver(rec))
	ctx := context.Background()
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n", TTL: time.Minute})
	require.NoError(t, err)
	_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
	require.ErrorIs(t, err, lock.ErrHeld)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}))

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(ctx, &rm))
	got := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = m.Data
		}
	}
	sum := func(name, result string) float64 {
		s, ok := got[name].(metricdata.Sum[float64])
		require.True(t, ok, name)
		var v float64
		for _, dp := range s.DataPoints {
			if r, _ := dp.Attributes.Value("result"); result == "" || r.AsString() == result {
				v += dp.Value
			}
		}
		return v
	}
	assert.Equal(t, 1.0, sum("lock_acquire_total", "acquired"))
	assert.Equal(t, 1.0, sum("lock_acquire_total", "held"))
	assert.Equal(t, 1.0, sum("lock_contended_acquire_total", ""))
	assert.Equal(t, 1.0, sum("lock_release_total", "released"))
	assert.Equal(t, 3.0, sum("lock_backend_requests_total", "ok"))
	h, ok := got["lock_hold_duration_seconds"].(metricdata.Histogram[float64])
	require.True(t, ok)
	require.Len(t, h.DataPoints, 1)
	assert.Equal(t, uint64(1), h.DataPoints[0].Count)
	assert.Equal(t, catalog.DurationBuckets, h.DataPoints[0].Bounds)
	g, ok := got["lock_active_count"].(metricdata.Gauge[float64])
	require.True(t, ok)
	assert.Equal(t, 0.0, g.DataPoints[0].Value)
	require.NoError(t, sink.Shutdown(ctx))
}

func TestEnabled(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		want bool
		err  bool
	}{
		{nil, false, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, true, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://x"}, true, false},
		{map[string]string{"OTEL_METRICS_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, false, false},
		{map[string]string{"OTEL_METRICS_EXPORTER": "otlp"}, true, false},
		{map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_METRICS_EXPORTER": "otlp"}, false, false},
		{map[string]string{"OTEL_METRICS_EXPORTER": "prometheus"}, false, true},
	} {
		for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"} {
			t.Setenv(k, tt.env[k])
		}
		got, err := otlpmetrics.Enabled()
		if tt.err {
			assert.Error(t, err, "%v", tt.env)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tt.want, got, "%v", tt.env)
	}
}

func TestSetupProtocols(t *testing.T) {
	t.Setenv("OTEL_METRICS_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	for proto, ok := range map[string]bool{"": true, "http/protobuf": true, "grpc": true, "http/json": false} {
		t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", proto)
		s, err := otlpmetrics.Setup(context.Background(), "hasp")
		if !ok {
			assert.Error(t, err, proto)
			continue
		}
		require.NoError(t, err, proto)
		require.NotNil(t, s)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = s.Shutdown(ctx)
	}
}
