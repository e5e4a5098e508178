package tracing_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/telemetry/tracing"
)

func TestExporter(t *testing.T) {
	vars := []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"}
	for _, tt := range []struct {
		name string
		env  map[string]string
		want string
		err  bool
	}{
		{"off by default", nil, "", false},
		{"an OTLP endpoint turns it on", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "otlp", false},
		{"a traces endpoint too", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, "otlp", false},
		{"none wins over an endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, "", false},
		{"console", map[string]string{"OTEL_TRACES_EXPORTER": "console"}, "console", false},
		{"SDK disabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, "", false},
		{"unknown exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range vars {
				t.Setenv(k, tt.env[k])
			}
			got, err := tracing.Exporter()
			if tt.err {
				require.Error(t, err)
				_, err = tracing.Setup(context.Background(), "hasp")
				require.Error(t, err, "Setup refuses it too")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestSetupOff: without the variables, Setup installs nothing.
func TestSetupOff(t *testing.T) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		t.Setenv(k, "")
	}
	tr, err := tracing.Setup(context.Background(), "hasp")
	require.NoError(t, err)
	assert.Nil(t, tr)
	assert.NoError(t, tr.Flush(context.Background()), "a nil Tracing is safe to use")
	assert.NoError(t, tr.Shutdown(context.Background()))
}

func TestSetupGRPCProtocol(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	tr, err := tracing.Setup(context.Background(), "hasp")
	require.NoError(t, err)
	require.NotNil(t, tr)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
	_, err = tracing.Setup(context.Background(), "hasp")
	require.Error(t, err, "http/json is not an exporter Go ships")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = tr.Shutdown(ctx)
}
