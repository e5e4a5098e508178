package apitest

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkField checks a 400 that names field.
func checkField(t *testing.T, r Response, field string) {
	t.Helper()
	checkError(t, r, http.StatusBadRequest, "invalid_argument")
	e, _ := r.Body["error"].(map[string]any)
	assert.Equal(t, field, e["field"], "%s", r.Raw)
}

func (tg *Target) watch(t *testing.T, name string, after int64, waitMs int) Response {
	t.Helper()
	return tg.Do(t, http.MethodGet, fmt.Sprintf("/v1/locks/watch?name=%s&after_token=%d&wait_ms=%d", url.QueryEscape(name), after, waitMs), nil)
}

// testWatch: GET /v1/locks/watch answers at once when the holder differs
// from after_token, waits wait_ms otherwise (changed false), wakes on a
// release, and validates its parameters.
func (tg *Target) testWatch(t *testing.T) {
	name := Name(t)
	r := tg.Do(t, http.MethodGet, "/v1/locks/watch?name="+url.QueryEscape(name), nil)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	assert.Equal(t, map[string]any{"name": name, "held": false, "changed": false}, r.Body, "no after_token, no wait: the current state at once")

	a := checkLease(t, tg.Post(t, "/v1/locks/acquire", map[string]any{"name": name, "owner": "o", "metadata": "10.0.0.7:8080", "ttl_ms": 30000}), name)
	r = tg.watch(t, name, 0, 5000)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	assert.Equal(t, map[string]any{"name": name, "held": true, "owner": "o", "metadata": "10.0.0.7:8080",
		"fencing_token": a["fencing_token"], "expires_at": a["expires_at"], "changed": true}, r.Body)
	assert.NotContains(t, string(r.Raw), str(a["lease_id"]))

	start := time.Now()
	r = tg.watch(t, name, num(a["fencing_token"]), 300)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	assert.Equal(t, false, r.Body["changed"])
	assert.Equal(t, a["fencing_token"], r.Body["fencing_token"])
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "waits wait_ms when nothing changes")

	if !tg.Serial {
		done := make(chan Response, 1)
		go func() { done <- tg.watch(t, name, num(a["fencing_token"]), 10000) }()
		time.Sleep(200 * time.Millisecond)
		released := time.Now()
		require.Equal(t, http.StatusOK, tg.Post(t, "/v1/locks/release", map[string]any{"name": name, "lease_id": a["lease_id"]}).Status)
		r = <-done
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
		assert.Equal(t, map[string]any{"name": name, "held": false, "changed": true}, r.Body)
		assert.Less(t, time.Since(released), 2*time.Second, "a release is reported promptly")
	} else {
		tg.Post(t, "/v1/locks/release", map[string]any{"name": name, "lease_id": a["lease_id"]})
	}

	h := tg.Do(t, http.MethodHead, "/v1/locks/watch?name="+url.QueryEscape(name), nil)
	assert.Equal(t, http.StatusOK, h.Status)

	for _, c := range []struct{ q, field string }{
		{"", "name"},
		{"?after_token=1", "name"},
		{"?name=a&name=b", "name"},
		{"?name=has%20space", "name"},
		{"?name=a&after_token=-1", "after_token"},
		{"?name=a&after_token=01", "after_token"},
		{"?name=a&after_token=1.5", "after_token"},
		{"?name=a&after_token=9007199254740992", "after_token"},
		{"?name=a&wait_ms=20001", "wait_ms"},
		{"?name=a&wait_ms=x", "wait_ms"},
		{"?name=a&prefix=b", "prefix"},
		{"?name=a&Wait_ms=1", "Wait_ms"},
	} {
		checkField(t, tg.Do(t, http.MethodGet, "/v1/locks/watch"+c.q, nil), c.field)
	}
	r = tg.Do(t, http.MethodPost, "/v1/locks/watch", []byte(`{}`))
	checkError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
	assert.Equal(t, "GET, HEAD", r.Header.Get("Allow"))
}

// testList: GET /v1/locks?prefix= lists the held locks under the prefix,
// page by page, never with a lease id, and validates its parameters; the
// ?name= form is unchanged.
func (tg *Target) testList(t *testing.T) {
	prefix := Name(t) + "/"
	leases := map[string]map[string]any{}
	for _, n := range []string{"a", "b", "c"} {
		leases[prefix+n] = checkLease(t, tg.Post(t, "/v1/locks/acquire", map[string]any{"name": prefix + n, "owner": "o-" + n, "ttl_ms": 30000}), prefix+n)
	}
	free := prefix + "free"
	f := checkLease(t, tg.Post(t, "/v1/locks/acquire", map[string]any{"name": free}), free)
	tg.Post(t, "/v1/locks/release", map[string]any{"name": free, "lease_id": f["lease_id"]})

	seen := map[string]bool{}
	page := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 50, "the listing ends")
		q := "/v1/locks?prefix=" + url.QueryEscape(prefix) + "&limit=2"
		if page != "" {
			q += "&page_token=" + url.QueryEscape(page)
		}
		r := tg.Do(t, http.MethodGet, q, nil)
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
		locks, _ := r.Body["locks"].([]any)
		assert.LessOrEqual(t, len(locks), 2)
		for _, x := range locks {
			m, _ := x.(map[string]any)
			n := str(m["name"])
			l, ok := leases[n]
			require.True(t, ok, "listed %q, which is not held under the prefix", n)
			assert.False(t, seen[n], "%s listed twice", n)
			seen[n] = true
			assert.Equal(t, map[string]any{"name": n, "held": true, "owner": l["owner"], "fencing_token": l["fencing_token"], "expires_at": l["expires_at"]}, m)
			assert.NotContains(t, string(r.Raw), str(l["lease_id"]), "a listing never shows a lease_id")
		}
		next, has := r.Body["next_page_token"]
		if !has {
			break
		}
		page = str(next)
		require.NotEmpty(t, page)
	}
	assert.Len(t, seen, 3)

	for _, c := range []struct{ q, field string }{
		{"?name=a&prefix=a", "prefix"},
		{"?prefix=a&name=a", "prefix"},
		{"?name=a&limit=1", "limit"},
		{"?name=a&page_token=YQ", "page_token"},
		{"?prefix=a&prefix=b", "prefix"},
		{"?prefix=has%20space", "prefix"},
		{"?prefix=" + strings.Repeat("p", 256), "prefix"},
		{"?prefix=a&limit=0", "limit"},
		{"?prefix=a&limit=1001", "limit"},
		{"?prefix=a&limit=abc", "limit"},
		{"?prefix=a&limit=-1", "limit"},
		{"?prefix=a&page_token=not%20base64", "page_token"},
		{"?prefix=a&Limit=1", "Limit"},
	} {
		checkField(t, tg.Do(t, http.MethodGet, "/v1/locks"+c.q, nil), c.field)
	}
	r := tg.Do(t, http.MethodGet, "/v1/locks?prefix="+url.QueryEscape(prefix+"nothing/")+"&limit=1000", nil)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	assert.Equal(t, []any{}, r.Body["locks"])

	for n, l := range leases {
		tg.Post(t, "/v1/locks/release", map[string]any{"name": n, "lease_id": l["lease_id"]})
	}
}
