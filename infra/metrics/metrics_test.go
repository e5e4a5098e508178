package metrics

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNamesAccepts(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum(rate(lock_contended_acquire_total[5m])) / sum(rate(lock_acquire_total[5m]))`: {"lock_contended_acquire_total", "lock_acquire_total"},
		`histogram_quantile(0.99, sum by (le, op) (rate(lock_backend_request_duration_seconds_bucket{op!="ping"}[5m])))`: {
			"lock_backend_request_duration_seconds"},
		`rate(lock_hold_duration_seconds_sum[5m]) / rate(lock_hold_duration_seconds_count[5m])`: {"lock_hold_duration_seconds"},
		`sum(rate(lock_renew_total{result=~"lost|error", namespace="hasp"}[5m]))`:               {"lock_renew_total"},
		`sum(rate(lock_http_requests_total{code=~"5.."}[5m]))`:                                  {"lock_http_requests_total"},
		`absent(lock_active_count{job="hasp"})`:                                                 {"lock_active_count"},
	} {
		got, err := Names(expr)
		require.NoError(t, err, expr)
		assert.Equal(t, want, got, expr)
	}
}

func TestNamesRejects(t *testing.T) {
	for expr, why := range map[string]string{
		`rate(lock_acquires_total[5m])`:                                 `unknown metric "lock_acquires_total"`,
		`up{job="hasp"} == 0`:                                           `unknown metric "up"`,
		`rate(lock_lost_total_bucket[5m])`:                              `unknown metric "lock_lost_total_bucket"`,
		`rate(lock_acquire_total{result="ok"}[5m])`:                     `label result is never "ok"`,
		`rate(lock_renew_total{result=~"lost|expired"}[5m])`:            `label result is never "expired"`,
		`rate(lock_acquire_total{op="acquire"}[5m])`:                    `has no label "op"`,
		`rate(lock_acquire_duration_seconds{le="0.1"}[5m])`:             `has no label "le"`,
		`rate({__name__=~"lock_.*"}[5m])`:                               `has no metric name`,
		`sum(rate(lock_acquire_total[5m])`:                              `unclosed left parenthesis`,
		`vector(1)`:                                                     `selects no hasp metric`,
		`rate(lock_backend_requests_total{result="ok",op="watch"}[1m])`: `label op is never "watch"`,
	} {
		_, err := Names(expr)
		assert.ErrorContains(t, err, why, expr)
	}
}

func TestCatalog(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range All {
		assert.False(t, seen[m.Name], "duplicate %s", m.Name)
		seen[m.Name] = true
		for _, d := range m.Dimensions {
			assert.Contains(t, m.Labels, d, "%s: a CloudWatch dimension is one of its labels", m.Name)
		}
		got, ok := Lookup(m.Name)
		assert.True(t, ok)
		assert.Equal(t, m.Name, got.Name)
	}
	_, ok := Lookup("lock_active_count_bucket")
	assert.False(t, ok, "a gauge has no buckets")
}
