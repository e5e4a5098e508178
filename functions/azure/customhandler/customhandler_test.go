package customhandler_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/api/apitest"
	"github.com/hasplock/hasp/app"
	"github.com/hasplock/hasp/functions/azure/customhandler"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/providers/cosmos"
)

// buildApp runs `make build-azure` into a temporary folder, for this
// machine's architecture, and returns the folder.
func buildApp(t *testing.T) string {
	t.Helper()
	dist := filepath.Join(t.TempDir(), "azure")
	cmd := exec.Command("make", "-s", "-C", launch.ModuleRoot(t), "build-azure", "AZURE_DIST="+dist, "AZURE_ARCH="+runtime.GOARCH)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "make build-azure:\n%s", out)
	return dist
}

// TestCustomHandler builds the function app with `make build-azure`,
// starts its handler the way the Functions host does (the app's settings
// in the environment, FUNCTIONS_CUSTOMHANDLER_PORT) on the Cosmos DB
// emulator, and runs the black-box API v1 check against it.
func TestCustomHandler(t *testing.T) {
	e := launch.Cosmos(t)
	cfg := cosmos.Config{Endpoint: e.Endpoint, Key: launch.CosmosKey, Database: "hasp", Container: "locks"}
	t.Setenv("SSL_CERT_FILE", e.CertFile) // for this process's SDK client, as for the handler's
	require.NoError(t, cosmos.CreateContainer(context.Background(), cfg))

	dist := buildApp(t)
	for _, f := range []string{"handler", "host.json", "locks/function.json", "health/function.json"} {
		_, err := os.Stat(filepath.Join(dist, f))
		assert.NoError(t, err, "the deployable folder holds %s", f)
	}
	port := launch.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	otlp := launch.NewOTLPReceiver(t)
	env := append([]string{"FUNCTIONS_CUSTOMHANDLER_PORT=" + strconv.Itoa(port), "HASP_STORE=cosmos://hasp/locks",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + otlp.URL, "OTEL_BSP_SCHEDULE_DELAY=50", "OTEL_METRIC_EXPORT_INTERVAL=200"}, e.Env()...)
	proc := launch.StartProc(t, "custom handler", env, launch.HTTPReady(base+"/v1/health"), filepath.Join(dist, "handler"))

	tg := apitest.Target{BaseURL: base, Provider: "cosmos", Contenders: 12, Rounds: 8}
	apitest.Run(t, tg)

	t.Run("FunctionKeyInTheQuery", func(t *testing.T) {
		name := apitest.Name(t)
		r := tg.Post(t, "/v1/locks/acquire?code=s3cret", map[string]any{"name": name})
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
		r = tg.Do(t, http.MethodGet, "/v1/locks?code=s3cret&name="+name, nil)
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
		assert.Equal(t, true, r.Body["held"])
		r = tg.Do(t, http.MethodGet, "/v1/locks?name="+name+"&other=1", nil)
		assert.Equal(t, http.StatusBadRequest, r.Status, "only the function key is removed")
	})
	t.Run("TracesAndMetricsOverOTLP", func(t *testing.T) {
		require.Eventually(t, func() bool {
			return len(otlp.Spans("lock.acquire")) > 0 && otlp.Metric("lock_acquire_total") != nil && otlp.Metric("lock_backend_requests_total") != nil
		}, 10*time.Second, 50*time.Millisecond)
		var token bool
		for _, sp := range otlp.Spans("lock.acquire") {
			token = token || launch.SpanAttr(sp, "lock.fencing_token").GetIntValue() > 0
		}
		assert.True(t, token, "granted acquires carry their fencing token")
	})
	t.Run("ListensOnLoopback", func(t *testing.T) {
		assert.Contains(t, proc.Logs(), `"url":"http://127.0.0.1:`+strconv.Itoa(port)+`"`)
		for _, line := range strings.Split(strings.TrimSpace(proc.Logs()), "\n") {
			assert.True(t, strings.HasPrefix(line, "{"), "logs are JSON lines: %s", line)
		}
	})
}

// TestConfig: the handler refuses to start without the settings it needs.
func TestConfig(t *testing.T) {
	tests := []struct {
		cfg  customhandler.Config
		want string
	}{
		{customhandler.Config{Config: app.Config{Store: "memory:"}}, "FUNCTIONS_CUSTOMHANDLER_PORT is not set"},
		{customhandler.Config{Port: "0"}, "HASP_STORE is not set"},
		{customhandler.Config{Port: "0", Config: app.Config{Store: "nosuch://x"}}, "unknown store scheme"},
		{customhandler.Config{Port: "0", Config: app.Config{Store: "cosmos://hasp/locks"}}, "COSMOS_ENDPOINT is not set"},
	}
	t.Setenv(cosmos.EnvEndpoint, "")
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			err := customhandler.Run(context.Background(), tt.cfg, &strings.Builder{})
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

// TestWithoutFunctionKey: only "code" parameters are removed, and the rest
// of the raw query reaches the API byte for byte.
func TestWithoutFunctionKey(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"name=a", "name=a"},
		{"code=k", ""},
		{"code=k&name=a+b", "name=a+b"},
		{"name=a%2Fb&code=k", "name=a%2Fb"},
		{"name=a&code=k&code=j", "name=a"},
		{"name=a&code", "name=a"},
		{"name=code", "name=code"},
		{"codes=1&name=a", "codes=1&name=a"},
		{"name=a&name=b", "name=a&name=b"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var got string
			h := customhandler.WithoutFunctionKey(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = r.URL.RawQuery }))
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/locks?"+tt.in, nil))
			assert.Equal(t, tt.want, got)
		})
	}
}
