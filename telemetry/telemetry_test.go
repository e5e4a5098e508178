package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers/memory"
	"github.com/hasplock/hasp/service"
	"github.com/hasplock/hasp/telemetry"
	"github.com/hasplock/hasp/telemetry/catalog"
	"github.com/hasplock/hasp/telemetry/prom"
)

// workload runs a fixed mix of operations through a service that reports
// to rec: 2 acquired, 1 held (contended), 1 renewed, 1 renew lost, 1
// released, 1 release lost.
func workload(t *testing.T, rec *telemetry.Recorder) {
	t.Helper()
	p := memory.New()
	s := service.New(rec.Provider(p), service.WithObserver(rec))
	ctx := context.Background()
	a, err := s.Acquire(ctx, lock.AcquireRequest{Name: "a", TTL: time.Minute})
	require.NoError(t, err)
	_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "a"})
	require.ErrorIs(t, err, lock.ErrHeld)
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "a", LeaseID: a.LeaseID})
	require.NoError(t, err)
	b, err := s.Acquire(ctx, lock.AcquireRequest{Name: "b", TTL: time.Minute})
	require.NoError(t, err)
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "a", LeaseID: a.LeaseID}))
	require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: "a", LeaseID: a.LeaseID}), lock.ErrLeaseLost)
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "a", LeaseID: a.LeaseID})
	require.ErrorIs(t, err, lock.ErrLeaseLost)
	_, err = s.Status(ctx, "b")
	require.NoError(t, err)
	_ = b
	_, changed, err := s.Watch(ctx, "b", 0, 0)
	require.NoError(t, err)
	require.True(t, changed)
	_, changed, err = s.Watch(ctx, "c", 0, 0)
	require.NoError(t, err)
	require.False(t, changed)
	items, _, err := s.List(ctx, "", 10, "")
	require.NoError(t, err)
	require.Len(t, items, 1)
	rec.HTTP("acquire", 200, time.Millisecond)
	rec.HTTP("other", 404, time.Millisecond)
}

func TestPrometheus(t *testing.T) {
	sink := prom.New()
	rec := telemetry.NewRecorder(sink)
	workload(t, rec)
	reg := sink.Registry()
	for _, tt := range []struct {
		metric string
		labels []string
		want   float64
	}{
		{"lock_acquire_total", []string{"acquired"}, 2},
		{"lock_acquire_total", []string{"held"}, 1},
		{"lock_acquire_total", []string{"error"}, 0},
		{"lock_contended_acquire_total", nil, 1},
		{"lock_renew_total", []string{"renewed"}, 1},
		{"lock_renew_total", []string{"lost"}, 1},
		{"lock_release_total", []string{"released"}, 1},
		{"lock_release_total", []string{"lost"}, 1},
		{"lock_lost_total", nil, 2},
		{"lock_active_count", nil, 1},
		{"lock_watch_changes_total", nil, 1},
		{"lock_watches_open", nil, 0},
	} {
		got, err := testutil.GatherAndCount(reg, tt.metric)
		require.NoError(t, err)
		require.Positive(t, got, tt.metric)
		assert.Equal(t, tt.want, value(t, sink, tt.metric, tt.labels...), "%s%v", tt.metric, tt.labels)
	}
	// The backend saw 11 calls: 3 acquires, 2 renews, 2 releases, 3
	// statuses (one, and one per watch), 1 list;
	// held and lost are answers, not errors.
	out := gather(t, sink)
	assert.Contains(t, out, `lock_backend_requests_total{op="acquire",provider="memory",result="ok"} 3`)
	assert.Contains(t, out, `lock_backend_requests_total{op="release",provider="memory",result="ok"} 2`)
	assert.Contains(t, out, `lock_backend_requests_total{op="status",provider="memory",result="ok"} 3`)
	assert.Contains(t, out, `lock_backend_requests_total{op="list",provider="memory",result="ok"} 1`)
	assert.Contains(t, out, `lock_backend_request_duration_seconds_count{op="renew",provider="memory"} 2`)
	assert.Contains(t, out, `lock_hold_duration_seconds_count 1`)
	assert.Contains(t, out, `lock_http_requests_total{code="404",route="other"} 1`)
	assert.Contains(t, out, `lock_acquire_duration_seconds_count{result="acquired"} 2`)
	assert.NotContains(t, out, "lease_id")
	for _, m := range catalog.Metrics {
		assert.Contains(t, out, "# TYPE "+m.Name+" ", "every metric is exported")
	}
}

func gather(t *testing.T, sink *prom.Prometheus) string {
	t.Helper()
	w := httptest.NewRecorder()
	sink.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, w.Code)
	return w.Body.String()
}

func value(t *testing.T, sink *prom.Prometheus, name string, labels ...string) float64 {
	t.Helper()
	for _, line := range strings.Split(gather(t, sink), "\n") {
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		if len(labels) > 0 && !strings.Contains(rest, `="`+labels[0]+`"`) {
			continue
		}
		if len(labels) == 0 && strings.HasPrefix(rest, "{") {
			continue
		}
		var v float64
		_, err := fmt.Sscan(rest[strings.LastIndex(rest, " ")+1:], &v)
		require.NoError(t, err)
		return v
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// TestEMF: the Lambda's metrics are Embedded Metric Format lines with the
// same names, under the namespace and dimensions CloudWatch is told.
func TestEMF(t *testing.T) {
	var buf bytes.Buffer
	sink := telemetry.NewEMF(&buf, catalog.CloudWatchNamespace)
	workload(t, telemetry.NewRecorder(sink))
	require.NoError(t, sink.Flush())
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	seen := map[string]bool{}
	byKey := map[string]map[string]any{}
	for _, l := range lines {
		var doc map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &doc), l)
		aws := doc["_aws"].(map[string]any)
		assert.Positive(t, aws["Timestamp"].(float64))
		directives := aws["CloudWatchMetrics"].([]any)
		require.Len(t, directives, 1)
		d := directives[0].(map[string]any)
		assert.Equal(t, "hasp", d["Namespace"])
		dimSets := d["Dimensions"].([]any)
		require.Len(t, dimSets, 1)
		var dims []string
		for _, x := range dimSets[0].([]any) {
			dims = append(dims, x.(string))
			assert.Contains(t, doc, x.(string), "each dimension has its value in the line")
		}
		for _, m := range d["Metrics"].([]any) {
			name := m.(map[string]any)["Name"].(string)
			seen[name] = true
			assert.Contains(t, doc, name, "each metric has its value in the line")
			want := metricByName(t, name)
			assert.Equal(t, want.Dimensions, dims, name)
			key := name
			for _, dn := range dims {
				key += "," + doc[dn].(string)
			}
			byKey[key] = doc
		}
	}
	for _, m := range catalog.Metrics {
		assert.True(t, seen[m.Name], "%s is written", m.Name)
	}
	assert.Equal(t, 2.0, byKey["lock_acquire_total,acquired"]["lock_acquire_total"])
	assert.Equal(t, 1.0, byKey["lock_acquire_total,held"]["lock_acquire_total"])
	assert.Len(t, byKey["lock_acquire_duration_seconds,acquired"]["lock_acquire_duration_seconds"], 2, "histogram values are kept")
	assert.Equal(t, 2.0, byKey["lock_lost_total"]["lock_lost_total"])
	assert.Equal(t, 3.0, byKey["lock_backend_requests_total,acquire,ok"]["lock_backend_requests_total"])
	assert.NotContains(t, buf.String(), "lease_id")
	buf.Reset()
	require.NoError(t, sink.Flush())
	assert.Empty(t, buf.String(), "Flush empties the buffer")
}

func metricByName(t *testing.T, name string) catalog.Metric {
	for _, m := range catalog.Metrics {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("unknown metric %s", name)
	return catalog.Metric{}
}
