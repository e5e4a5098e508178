package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/app"
	_ "github.com/hasplock/hasp/providers/memory"
)

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  app.Config
		want string
	}{
		{app.Config{}, "no store URL"},
		{app.Config{Store: "nosuch://x"}, "unknown store scheme"},
		{app.Config{Store: "memory:?x=1"}, `unknown parameter "x"`},
		{app.Config{Store: "memory:", Metrics: app.Metrics(99)}, "unknown metrics sink"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := app.New(context.Background(), tc.cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func call(t *testing.T, h http.Handler, method, path, body string) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
	return w.Code, w.Body.String()
}

// TestMetricsSinks: each front end's sink records the same operations:
// Prometheus is served at /metrics, EMF lines are written on Flush.
func TestMetricsSinks(t *testing.T) {
	ctx := context.Background()
	t.Run("prometheus", func(t *testing.T) {
		a, err := app.New(ctx, app.Config{Store: "memory:", Metrics: app.MetricsPrometheus})
		require.NoError(t, err)
		defer a.Close(ctx)
		code, _ := call(t, a.Handler(), "POST", "/v1/locks/acquire", `{"name":"n"}`)
		require.Equal(t, 200, code)
		code, body := call(t, a.Handler(), "GET", "/metrics", "")
		require.Equal(t, 200, code)
		assert.Contains(t, body, `lock_acquire_total{result="acquired"} 1`)
		assert.False(t, a.Exports(), "Prometheus is scraped, not pushed")
	})
	t.Run("emf", func(t *testing.T) {
		var out bytes.Buffer
		a, err := app.New(ctx, app.Config{Store: "memory:", Metrics: app.MetricsEMF, MetricsOut: &out})
		require.NoError(t, err)
		defer a.Close(ctx)
		code, _ := call(t, a.Handler(), "POST", "/v1/locks/acquire", `{"name":"n"}`)
		require.Equal(t, 200, code)
		code, _ = call(t, a.Handler(), "GET", "/metrics", "")
		assert.Equal(t, 404, code, "EMF serves no /metrics")
		assert.True(t, a.Exports())
		require.NoError(t, a.Flush(ctx))
		var line map[string]any
		require.NoError(t, json.Unmarshal(bytes.SplitN(out.Bytes(), []byte("\n"), 2)[0], &line))
		assert.Contains(t, line, "_aws", "an EMF line")
	})
	t.Run("off", func(t *testing.T) {
		a, err := app.New(ctx, app.Config{Store: "memory:"})
		require.NoError(t, err)
		defer a.Close(ctx)
		code, _ := call(t, a.Handler(), "GET", "/metrics", "")
		assert.Equal(t, 404, code)
		assert.False(t, a.Exports())
	})
}

// TestAuthTokens: with tokens, lock routes need one; health stays open.
func TestAuthTokens(t *testing.T) {
	ctx := context.Background()
	a, err := app.New(ctx, app.Config{Store: "memory:", AuthTokens: []string{"s3cret"}, Logger: nil})
	require.NoError(t, err)
	defer a.Close(ctx)
	code, _ := call(t, a.Handler(), "POST", "/v1/locks/acquire", `{"name":"n"}`)
	assert.Equal(t, 401, code)
	code, _ = call(t, a.Handler(), "GET", "/v1/health", "")
	assert.Equal(t, 200, code)
	assert.Equal(t, "memory", a.Provider())
}

func ExampleNew() {
	ctx := context.Background()
	a, err := app.New(ctx, app.Config{Store: "memory:", Logger: slogDiscard()})
	if err != nil {
		panic(err)
	}
	defer a.Close(ctx)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/health")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, strings.TrimSpace(string(body)))
	// Output: 200 {"status":"ok","provider":"memory"}
}

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
