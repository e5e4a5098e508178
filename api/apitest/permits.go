package apitest

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testPermits checks semaphores (permits) and lock-delay: the bodies of a
// permit, of the 409s (lock_held with permits and delayed_until,
// permits_mismatch) and of a semaphore's status. A store without them must
// answer 501 unsupported and change nothing.
func (tg *Target) testPermits(t *testing.T) {
	name := Name(t)
	first := tg.Post(t, "/v1/locks/acquire", map[string]any{"name": name, "permits": 2, "owner": "p1", "ttl_ms": 10000})
	if first.Status == http.StatusNotImplemented {
		checkError(t, first, http.StatusNotImplemented, "unsupported")
		checkError(t, tg.Post(t, "/v1/locks/acquire", map[string]any{"name": name, "lock_delay_ms": 1000}), http.StatusNotImplemented, "unsupported")
		s := tg.Do(t, http.MethodGet, "/v1/locks?name="+name, nil)
		assert.Equal(t, map[string]any{"name": name, "held": false}, s.Body, "a refused acquire leaves nothing")
		t.Logf("the store has no semaphores or lock-delay (501 unsupported)")
		return
	}
	a := checkLease(t, first, name)
	assert.Equal(t, float64(2), a["permits"])
	b := checkLease(t, tg.Post(t, "/v1/locks/acquire", map[string]any{"name": name, "permits": 2, "owner": "p2", "ttl_ms": 10000}), name)
	assert.Greater(t, num(b["fencing_token"]), num(a["fencing_token"]))

	r := tg.Post(t, "/v1/locks/acquire", map[string]any{"name": name, "permits": 2})
	checkError(t, r, http.StatusConflict, "lock_held")
	assert.Equal(t, []string{"error", "holder", "permits", "retry_after_ms"}, keys(r.Body))
	assert.Equal(t, float64(2), r.Body["permits"])
	for _, body := range []map[string]any{{"name": name, "permits": 3}, {"name": name}} {
		r = tg.Post(t, "/v1/locks/acquire", body)
		checkError(t, r, http.StatusConflict, "permits_mismatch")
		assert.Equal(t, []string{"error", "permits"}, keys(r.Body))
		assert.Equal(t, float64(2), r.Body["permits"])
	}

	s := tg.Do(t, http.MethodGet, "/v1/locks?name="+name, nil)
	require.Equal(t, http.StatusOK, s.Status)
	assert.Equal(t, true, s.Body["held"])
	assert.Equal(t, float64(2), s.Body["permits"])
	assert.Equal(t, float64(2), s.Body["held_count"])
	assert.Equal(t, b["fencing_token"], s.Body["fencing_token"], "the top-level holder is the newest")
	holders, _ := s.Body["holders"].([]any)
	require.Len(t, holders, 2, "%s", s.Raw)
	assert.Equal(t, map[string]any{"owner": "p1", "fencing_token": a["fencing_token"], "expires_at": a["expires_at"]}, holders[0])
	assert.NotContains(t, string(s.Raw), str(a["lease_id"]))
	assert.NotContains(t, string(s.Raw), str(b["lease_id"]))

	rn := checkLease(t, tg.Post(t, "/v1/locks/renew", map[string]any{"name": name, "lease_id": a["lease_id"], "ttl_ms": 20000}), name)
	assert.Equal(t, a["fencing_token"], rn["fencing_token"])
	assert.Equal(t, float64(20000), rn["ttl_ms"])
	for _, l := range []map[string]any{a, b} {
		require.Equal(t, http.StatusOK, tg.Post(t, "/v1/locks/release", map[string]any{"name": name, "lease_id": l["lease_id"]}).Status)
	}
	checkError(t, tg.Post(t, "/v1/locks/release", map[string]any{"name": name, "lease_id": a["lease_id"]}), http.StatusConflict, "lease_lost")
	s = tg.Do(t, http.MethodGet, "/v1/locks?name="+name, nil)
	assert.Equal(t, map[string]any{"name": name, "held": false}, s.Body, "every permit released: a free name")

	// Lock-delay: a lease that expires unreleased keeps the name until
	// expires_at + lock_delay_ms.
	d := checkLease(t, tg.Post(t, "/v1/locks/acquire", map[string]any{"name": name, "ttl_ms": 1000, "lock_delay_ms": 1000}), name)
	assert.Equal(t, float64(1000), d["lock_delay_ms"])
	_, hasPermits := d["permits"]
	assert.False(t, hasPermits, "a mutex's lease shows no permits")
	exp := parseTime(t, d["expires_at"])
	time.Sleep(time.Until(exp) + 100*time.Millisecond)
	r = tg.Post(t, "/v1/locks/acquire", map[string]any{"name": name})
	checkError(t, r, http.StatusConflict, "lock_held")
	assert.Equal(t, exp.Add(time.Second).Format("2006-01-02T15:04:05.000Z"), r.Body["delayed_until"], "%s", r.Raw)
	ra := num(r.Body["retry_after_ms"])
	assert.Positive(t, ra)
	assert.LessOrEqual(t, ra, int64(1000))
	s = tg.Do(t, http.MethodGet, "/v1/locks?name="+name, nil)
	assert.Equal(t, false, s.Body["held"], "%s", s.Raw)
	delayed, _ := s.Body["delayed"].([]any)
	require.Len(t, delayed, 1, "%s", s.Raw)
	assert.Equal(t, r.Body["delayed_until"], delayed[0].(map[string]any)["available_at"])
	e := checkLease(t, tg.Post(t, "/v1/locks/acquire", map[string]any{"name": name, "wait_ms": 3000}), name)
	assert.False(t, time.Now().Before(exp.Add(time.Second)), "granted only after the lock-delay")
	assert.Greater(t, num(e["fencing_token"]), num(d["fencing_token"]))
	tg.Post(t, "/v1/locks/release", map[string]any{"name": name, "lease_id": e["lease_id"]})
}
