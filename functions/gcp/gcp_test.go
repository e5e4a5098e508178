package gcp_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/api/apitest"
	"github.com/hasplock/hasp/functions/gcp"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/local/testbed/spanneremu"
)

// TestLocal runs the function as `make run-gcp` does: hasp-gcp-local
// starts the Spanner emulator, creates the schema and serves every path
// through the Functions Framework; the black-box API v1 check runs
// against it.
func TestLocal(t *testing.T) {
	_, err := spanneremu.Find()
	launch.Require(t, err == nil, "the Cloud Spanner emulator", "Debian package google-cloud-cli-spanner-emulator, on the machine image")
	bin := filepath.Join(t.TempDir(), "hasp-gcp-local")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/hasp-gcp-local").CombinedOutput()
	require.NoError(t, err, "%s", out)
	port := launch.FreePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	otlp := launch.NewOTLPReceiver(t)
	p := launch.StartProc(t, "hasp-gcp-local", []string{fmt.Sprintf("PORT=%d", port), "HASP_STORE=",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + otlp.URL, "OTEL_BSP_SCHEDULE_DELAY=50", "OTEL_METRIC_EXPORT_INTERVAL=200"},
		launch.HTTPReady(url+"/v1/health"), bin)
	apitest.Run(t, apitest.Target{BaseURL: url, Provider: "spanner", Contenders: 8, Rounds: 6})
	assert.Contains(t, p.Logs(), "listening on "+url)
	assert.Contains(t, p.Logs(), `"severity":"INFO"`, "Cloud Logging's structured fields")

	// With an OTLP endpoint, the function's spans and metrics arrive.
	require.Eventually(t, func() bool {
		return len(otlp.Spans("lock.acquire")) > 0 && otlp.Metric("lock_acquire_total") != nil
	}, 10*time.Second, 50*time.Millisecond)
	var token bool
	for _, sp := range otlp.Spans("lock.acquire") {
		token = token || launch.SpanAttr(sp, "lock.fencing_token").GetIntValue() > 0
	}
	assert.True(t, token, "granted acquires carry their fencing token")
	var acquired float64
	for _, dp := range otlp.Metric("lock_acquire_total").GetSum().GetDataPoints() {
		for _, a := range dp.Attributes {
			if a.Key == "result" && a.Value.GetStringValue() == "acquired" {
				acquired += dp.GetAsDouble()
			}
		}
	}
	assert.Positive(t, acquired)
}

// TestStoreMissing: without a store the function answers the API's 503
// JSON error, and keeps trying on later requests.
func TestStoreMissing(t *testing.T) {
	t.Setenv("HASP_STORE", "")
	for range 2 {
		w := httptest.NewRecorder()
		gcp.Handle(w, httptest.NewRequest(http.MethodGet, "/v1/health", nil))
		assert.Equal(t, http.StatusServiceUnavailable, w.Code)
		assert.Equal(t, "1", w.Header().Get("Retry-After"))
		var body struct {
			Error struct{ Code, Message string }
		}
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body))
		assert.Equal(t, "unavailable", body.Error.Code)
	}
}

// TestBuildGCP: scripts/build-gcp.sh (make build-gcp) produces a source
// folder whose root package registers the function, with every dependency
// vendored; the script builds it as the cloud will.
func TestBuildGCP(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command(filepath.Join(launch.ModuleRoot(t), "scripts", "build-gcp.sh"), out)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	fn, err := os.ReadFile(filepath.Join(out, "function.go"))
	require.NoError(t, err)
	assert.Contains(t, string(fn), `import _ "github.com/hasplock/hasp/functions/gcp"`)
	mods, err := os.ReadFile(filepath.Join(out, "vendor", "modules.txt"))
	require.NoError(t, err)
	for _, m := range []string{"# github.com/GoogleCloudPlatform/functions-framework-go v1.9.2", "# cloud.google.com/go/spanner v1.87.0", "# github.com/hasplock/hasp v0.0.0-00010101000000-000000000000 => ./hasp"} {
		assert.Contains(t, string(mods), m)
	}
	assert.NotContains(t, string(mods), "aws-sdk-go-v2", "the function carries only what it uses")
	_, err = os.Stat(filepath.Join(out, "hasp", "openapi.yaml"))
	require.NoError(t, err)
}
