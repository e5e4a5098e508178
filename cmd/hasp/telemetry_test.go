package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/launch"
)

// TestServeTelemetry: after a few operations against hasp serve, /metrics
// shows the lock counters moving, and with an OTLP endpoint configured the
// spans arrive, continuing the caller's trace, with the resource and the
// fencing token and never the lease id.
func TestServeTelemetry(t *testing.T) {
	rcv := launch.NewOTLPReceiver(t)
	s := startServe(t, []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + rcv.URL, "OTEL_BSP_SCHEDULE_DELAY=50", "OTEL_SERVICE_NAME=hasp-test",
	}, "--store", "memory:")

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, err := http.NewRequest(http.MethodPost, s.URL+"/v1/locks/acquire", strings.NewReader(`{"name":"reports","ttl_ms":60000}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var lease struct {
		LeaseID string `json:"lease_id"`
		Token   int64  `json:"fencing_token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&lease))
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	code, _ := post(t, s.URL+"/v1/locks/acquire", `{"name":"reports"}`)
	require.Equal(t, 409, code)
	code, _ = post(t, s.URL+"/v1/locks/renew", fmt.Sprintf(`{"name":"reports","lease_id":%q}`, lease.LeaseID))
	require.Equal(t, 200, code)
	code, _ = post(t, s.URL+"/v1/locks/release", fmt.Sprintf(`{"name":"reports","lease_id":%q}`, lease.LeaseID))
	require.Equal(t, 200, code)
	code, _ = post(t, s.URL+"/v1/locks/release", fmt.Sprintf(`{"name":"reports","lease_id":%q}`, lease.LeaseID))
	require.Equal(t, 409, code)

	// Metrics.
	mresp, err := http.Get(s.URL + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, 200, mresp.StatusCode)
	metrics := string(body)
	for _, want := range []string{
		`lock_acquire_total{result="acquired"} 1`,
		`lock_acquire_total{result="held"} 1`,
		`lock_contended_acquire_total 1`,
		`lock_renew_total{result="renewed"} 1`,
		`lock_release_total{result="released"} 1`,
		`lock_release_total{result="lost"} 1`,
		`lock_lost_total 1`,
		`lock_active_count 0`,
		`lock_hold_duration_seconds_count 1`,
		`lock_acquire_duration_seconds_count{result="acquired"} 1`,
		`lock_backend_requests_total{op="acquire",provider="memory",result="ok"} 2`,
		`lock_http_requests_total{code="409",route="acquire"} 1`,
	} {
		assert.Contains(t, metrics, want)
	}
	assert.NotContains(t, metrics, lease.LeaseID)

	// Traces.
	require.Eventually(t, func() bool { return len(rcv.Spans("lock.release")) == 2 }, 10*time.Second, 20*time.Millisecond, "spans arrive")
	acq := rcv.Spans("lock.acquire")
	require.Len(t, acq, 2)
	granted := acq[0]
	if v := launch.SpanAttr(granted, "lock.success"); v == nil || !v.GetBoolValue() {
		granted = acq[1]
	}
	require.True(t, launch.SpanAttr(granted, "lock.success").GetBoolValue())
	assert.Equal(t, "reports", launch.SpanAttr(granted, "lock.name").GetStringValue())
	assert.Equal(t, lease.Token, launch.SpanAttr(granted, "lock.fencing_token").GetIntValue())
	assert.Equal(t, traceID, fmt.Sprintf("%x", granted.TraceId), "the caller's trace continues")
	assert.Len(t, rcv.Spans("lock.renew"), 1)
	assert.NotEmpty(t, rcv.Spans("backend.acquire"))
	assert.NotEmpty(t, rcv.Spans("POST acquire"), "the HTTP server span")
	for _, sp := range rcv.Spans("") {
		for _, a := range sp.Attributes {
			assert.NotContains(t, a.Value.String(), lease.LeaseID, "span %s attribute %s", sp.Name, a.Key)
		}
	}
	assert.Equal(t, "hasp-test", rcv.ResourceAttr("service.name"))
}
