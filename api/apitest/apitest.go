// Package apitest is a black-box check of HTTP API v1 against any running
// front end: `hasp serve` on each store, and the Lambda, Cloud Function and
// Azure entry points. It speaks only HTTP to the address it is given.
package apitest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/providers/providertest"
)

// Target is the front end under test.
type Target struct {
	// BaseURL is where API v1 is served, e.g. "http://127.0.0.1:8080".
	BaseURL string
	// Header is added to every request but health checks (credentials).
	Header http.Header
	// Client sends the requests; nil means a client with a 30 s timeout.
	Client *http.Client
	// Provider is the name /v1/health must report; empty accepts any (and
	// skips the Guarantee check).
	Provider string
	// Guarantee is the "guarantee" /v1/health must report for Provider
	// (see providers.Guarantor); empty means the field must be absent.
	Guarantee string
	// Contenders is the number of concurrent clients in the contention
	// check (default 12), each doing Rounds acquires (default 15).
	Contenders, Rounds int
	// Serial marks a target that serves one request at a time (the Lambda
	// Runtime Interface Emulator): the checks that need a second request
	// while one waits are skipped.
	Serial bool
}

// Response is a decoded HTTP response.
type Response struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any
}

func (tg *Target) client() *http.Client {
	if tg.Client != nil {
		return tg.Client
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// Do sends a request with a raw body and decodes the JSON response.
func (tg *Target) Do(t *testing.T, method, path string, body []byte) Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, tg.BaseURL+path, rd)
	require.NoError(t, err)
	for k, v := range tg.Header {
		req.Header[k] = v
	}
	resp, err := tg.client().Do(req)
	require.NoError(t, err, "%s %s", method, path)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := Response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if method != http.MethodHead {
		assert.Equal(t, "application/json", mediaType(resp.Header.Get("Content-Type")), "%s %s: Content-Type", method, path)
		if len(raw) > 0 {
			require.NoError(t, json.Unmarshal(raw, &r.Body), "%s %s: response is not a JSON object: %q", method, path, raw)
		}
		checkSpec(t, method, path, r)
	}
	return r
}

// Post sends a JSON body built from v (a string is sent as is).
func (tg *Target) Post(t *testing.T, path string, v any) Response {
	t.Helper()
	if s, ok := v.(string); ok {
		return tg.Do(t, http.MethodPost, path, []byte(s))
	}
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return tg.Do(t, http.MethodPost, path, b)
}

func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.TrimSpace(strings.ToLower(mt))
}

var timestamp = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

// Name returns a lock name unique to the test.
func Name(t *testing.T) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "apitest." + strings.NewReplacer("/", ".", " ", "_", "#", "_").Replace(t.Name()) + "." + hex.EncodeToString(b[:])
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Run runs every check against the target.
func Run(t *testing.T, tg Target) {
	t.Run("Health", tg.testHealth)
	t.Run("AcquireRenewReleaseStatus", tg.testHappyPath)
	t.Run("Held", tg.testHeld)
	t.Run("LeaseLost", tg.testLost)
	t.Run("Expiry", tg.testExpiry)
	t.Run("Wait", tg.testWait)
	t.Run("Boundaries", tg.testBoundaries)
	t.Run("HostileBodies", tg.testHostile)
	t.Run("StatusQuery", tg.testStatusQuery)
	t.Run("BodyLimit", tg.testBodyLimit)
	t.Run("Routing", tg.testRouting)
	t.Run("Watch", tg.testWatch)
	t.Run("List", tg.testList)
	t.Run("Permits", tg.testPermits)
	t.Run("Contention", tg.testContention)
}

func (tg *Target) testHealth(t *testing.T) {
	r := tg.Do(t, http.MethodGet, "/v1/health", nil)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	assert.Equal(t, "ok", r.Body["status"])
	if tg.Provider != "" {
		assert.Equal(t, tg.Provider, r.Body["provider"])
		g, present := r.Body["guarantee"]
		assert.Equal(t, tg.Guarantee != "", present, "guarantee present: %v", g)
		assert.Equal(t, tg.Guarantee, str(g))
	}
	if tg.Guarantee != "" {
		assert.Equal(t, tg.Guarantee, r.Body["guarantee"])
	}
	h := tg.Do(t, http.MethodHead, "/v1/health", nil)
	assert.Equal(t, http.StatusOK, h.Status)
	assert.Empty(t, h.Raw)
}

// checkLease checks a 200 lease body and returns it.
func checkLease(t *testing.T, r Response, name string) map[string]any {
	t.Helper()
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Raw)
	b := r.Body
	want := []string{"expires_at", "fencing_token", "lease_id", "name", "owner", "ttl_ms"}
	for _, optional := range []string{"metadata", "permits", "lock_delay_ms"} {
		if _, ok := b[optional]; ok {
			want = append(want, optional)
		}
	}
	sort.Strings(want)
	assert.Equal(t, want, keys(b), "lease body keys")
	assert.Equal(t, name, b["name"])
	assert.IsType(t, "", b["owner"])
	id, _ := b["lease_id"].(string)
	assert.GreaterOrEqual(t, len(id), 22, "lease_id carries ≥128 random bits")
	assert.LessOrEqual(t, len(id), 128)
	tok, _ := b["fencing_token"].(float64)
	assert.GreaterOrEqual(t, tok, 1.0)
	assert.Less(t, tok, float64(1<<53))
	assert.Equal(t, tok, float64(int64(tok)), "fencing_token is an integer")
	exp, _ := b["expires_at"].(string)
	assert.Regexp(t, timestamp, exp)
	return b
}

func num(v any) int64 { f, _ := v.(float64); return int64(f) }

func str(v any) string { s, _ := v.(string); return s }

func parseTime(t *testing.T, v any) time.Time {
	t.Helper()
	tm, err := time.Parse("2006-01-02T15:04:05.000Z", str(v))
	require.NoError(t, err)
	return tm
}

func (tg *Target) testHappyPath(t *testing.T) {
	name := Name(t)
	before := time.Now()
	a := checkLease(t, tg.Post(t, "/v1/locks/acquire", map[string]any{"name": name, "owner": "worker-7", "ttl_ms": 20000, "metadata": "job=42"}), name)
	assert.Equal(t, "worker-7", a["owner"])
	assert.Equal(t, "job=42", a["metadata"])
	assert.GreaterOrEqual(t, num(a["ttl_ms"]), int64(20000))
	exp := parseTime(t, a["expires_at"])
	assert.WithinDuration(t, before.Add(time.Duration(num(a["ttl_ms"]))*time.Millisecond), exp, 5*time.Second)

	// Defaults: owner "" is always present, metadata absent, ttl 30 s.
	other := Name(t)
	d := checkLease(t, tg.Post(t, "/v1/locks/acquire", map[string]any{"name": other}), other)
	assert.Equal(t, "", d["owner"])
	assert.NotContains(t, d, "metadata")
	assert.GreaterOrEqual(t, num(d["ttl_ms"]), int64(30000))

	s := tg.Do(t, http.MethodGet, "/v1/locks?name="+url.QueryEscape(name), nil)
	require.Equal(t, http.StatusOK, s.Status, "%s", s.Raw)
	assert.Equal(t, []string{"expires_at", "fencing_token", "held", "metadata", "name", "owner"}, keys(s.Body))
	assert.Equal(t, true, s.Body["held"])
	assert.Equal(t, "worker-7", s.Body["owner"])
	assert.Equal(t, a["fencing_token"], s.Body["fencing_token"])
	assert.Equal(t, a["expires_at"], s.Body["expires_at"])
	assert.NotContains(t, string(s.Raw), str(a["lease_id"]), "status never shows a lease_id")

	time.Sleep(10 * time.Millisecond)
	r := checkLease(t, tg.Post(t, "/v1/locks/renew", map[string]any{"name": name, "lease_id": a["lease_id"]}), name)
	assert.Equal(t, a["lease_id"], r["lease_id"])
	assert.Equal(t, a["fencing_token"], r["fencing_token"])
	assert.Equal(t, a["owner"], r["owner"])
	assert.Equal(t, a["metadata"], r["metadata"])
	assert.Equal(t, a["ttl_ms"], r["ttl_ms"], "renew without ttl_ms keeps the granted ttl")
	assert.False(t, parseTime(t, r["expires_at"]).Before(exp), "renew moves expiry forward")

	r2 := checkLease(t, tg.Post(t, "/v1/locks/renew", map[string]any{"name": name, "lease_id": a["lease_id"], "ttl_ms": 60000}), name)
	assert.GreaterOrEqual(t, num(r2["ttl_ms"]), int64(60000))
	assert.Equal(t, a["fencing_token"], r2["fencing_token"])

	rel := tg.Post(t, "/v1/locks/release", map[string]any{"name": name, "lease_id": a["lease_id"]})
	require.Equal(t, http.StatusOK, rel.Status, "%s", rel.Raw)
	assert.Equal(t, map[string]any{"name": name, "released": true}, rel.Body)

	s = tg.Do(t, http.MethodGet, "/v1/locks?name="+url.QueryEscape(name), nil)
	require.Equal(t, http.StatusOK, s.Status)
	assert.Equal(t, map[string]any{"name": name, "held": false}, s.Body)

	again := checkLease(t, tg.Post(t, "/v1/locks/acquire", map[string]any{"name": name}), name)
	assert.Greater(t, num(again["fencing_token"]), num(a["fencing_token"]), "token increases across release")
	tg.Post(t, "/v1/locks/release", map[string]any{"name": name, "lease_id": again["lease_id"]})
	tg.Post(t, "/v1/locks/release", map[string]any{"name": other, "lease_id": d["lease_id"]})
}

func checkError(t *testing.T, r Response, status int, code string) {
	t.Helper()
	require.Equal(t, status, r.Status, "body %s", r.Raw)
	e, ok := r.Body["error"].(map[string]any)
	require.True(t, ok, "error body: %s", r.Raw)
	assert.Equal(t, code, e["code"], "%s", r.Raw)
	assert.NotEmpty(t, e["message"])
	for k := range e {
		assert.Contains(t, []string{"code", "message", "field"}, k, "unexpected key in error")
	}
}

func (tg *Target) testHeld(t *testing.T) {
	name := Name(t)
	a := checkLease(t, tg.Post(t, "/v1/locks/acquire", map[string]any{"name": name, "owner": "first", "ttl_ms": 10000}), name)
	r := tg.Post(t, "/v1/locks/acquire", map[string]any{"name": name, "owner": "second"})
	checkError(t, r, http.StatusConflict, "lock_held")
	assert.Equal(t, []string{"error", "holder", "retry_after_ms"}, keys(r.Body))
	h, _ := r.Body["holder"].(map[string]any)
	assert.Equal(t, map[string]any{"owner": "first", "fencing_token": a["fencing_token"], "expires_at": a["expires_at"]}, h)
	ra := num(r.Body["retry_after_ms"])
	assert.Equal(t, r.Body["retry_after_ms"], float64(ra), "retry_after_ms is an integer")
	assert.GreaterOrEqual(t, ra, int64(0))
	assert.LessOrEqual(t, ra, int64(10000), "retry hint at most the time to expiry")
	assert.NotContains(t, string(r.Raw), str(a["lease_id"]), "a 409 never shows the holder's lease_id")
	tg.Post(t, "/v1/locks/release", map[string]any{"name": name, "lease_id": a["lease_id"]})
}

func (tg *Target) testLost(t *testing.T) {
	name := Name(t)
	a := checkLease(t, tg.Post(t, "/v1/locks/acquire", map[string]any{"name": name}), name)
	checkError(t, tg.Post(t, "/v1/locks/renew", map[string]any{"name": name, "lease_id": "not-" + str(a["lease_id"])}), http.StatusConflict, "lease_lost")
	checkError(t, tg.Post(t, "/v1/locks/release", map[string]any{"name": name, "lease_id": "nope"}), http.StatusConflict, "lease_lost")
	checkError(t, tg.Post(t, "/v1/locks/renew", map[string]any{"name": name + ".x", "lease_id": a["lease_id"]}), http.StatusConflict, "lease_lost")
	require.Equal(t, http.StatusOK, tg.Post(t, "/v1/locks/release", map[string]any{"name": name, "lease_id": a["lease_id"]}).Status)
	checkError(t, tg.Post(t, "/v1/locks/release", map[string]any{"name": name, "lease_id": a["lease_id"]}), http.StatusConflict, "lease_lost")
	checkError(t, tg.Post(t, "/v1/locks/renew", map[string]any{"name": name, "lease_id": a["lease_id"]}), http.StatusConflict, "lease_lost")
}

func (tg *Target) testExpiry(t *testing.T) {
	name := Name(t)
	a := checkLease(t, tg.Post(t, "/v1/locks/acquire", map[string]any{"name": name, "ttl_ms": 1000}), name)
	exp := parseTime(t, a["expires_at"])
	time.Sleep(time.Until(exp) + 100*time.Millisecond)
	checkError(t, tg.Post(t, "/v1/locks/renew", map[string]any{"name": name, "lease_id": a["lease_id"]}), http.StatusConflict, "lease_lost")
	s := tg.Do(t, http.MethodGet, "/v1/locks?name="+name, nil)
	assert.Equal(t, false, s.Body["held"], "status after expires_at: %s", s.Raw)
	b := checkLease(t, tg.Post(t, "/v1/locks/acquire", map[string]any{"name": name, "wait_ms": 3000}), name)
	assert.Greater(t, num(b["fencing_token"]), num(a["fencing_token"]), "token increases across expiry")
	checkError(t, tg.Post(t, "/v1/locks/release", map[string]any{"name": name, "lease_id": a["lease_id"]}), http.StatusConflict, "lease_lost")
	tg.Post(t, "/v1/locks/release", map[string]any{"name": name, "lease_id": b["lease_id"]})
}

func (tg *Target) testWait(t *testing.T) {
	name := Name(t)
	a := checkLease(t, tg.Post(t, "/v1/locks/acquire", map[string]any{"name": name, "ttl_ms": 30000}), name)
	start := time.Now()
	r := tg.Post(t, "/v1/locks/acquire", map[string]any{"name": name, "wait_ms": 400})
	checkError(t, r, http.StatusConflict, "lock_held")
	assert.GreaterOrEqual(t, time.Since(start), 400*time.Millisecond, "waits wait_ms before answering 409")
	if tg.Serial {
		tg.Post(t, "/v1/locks/release", map[string]any{"name": name, "lease_id": a["lease_id"]})
		t.Skip("the target serves one request at a time: no release can arrive during a wait")
	}

	done := make(chan Response, 1)
	go func() {
		done <- tg.Post(t, "/v1/locks/acquire", map[string]any{"name": name, "wait_ms": 10000})
	}()
	time.Sleep(300 * time.Millisecond)
	released := time.Now()
	require.Equal(t, http.StatusOK, tg.Post(t, "/v1/locks/release", map[string]any{"name": name, "lease_id": a["lease_id"]}).Status)
	b := checkLease(t, <-done, name)
	assert.Less(t, time.Since(released), 3*time.Second, "a waiter gets the lock soon after the release")
	assert.Greater(t, num(b["fencing_token"]), num(a["fencing_token"]))
	tg.Post(t, "/v1/locks/release", map[string]any{"name": name, "lease_id": b["lease_id"]})
}

func (tg *Target) testBoundaries(t *testing.T) {
	allowed := "AZaz09._-:/@=+~"
	long := strings.Repeat("n", 255-len(allowed)) + allowed
	for _, body := range []map[string]any{
		{"name": long},
		{"name": Name(t) + ".a", "ttl_ms": 1000},
		{"name": Name(t) + ".b", "ttl_ms": 3600000},
		{"name": Name(t) + ".c", "wait_ms": 0},
		{"name": Name(t) + ".d", "owner": strings.Repeat("é", 127) + "x"},
		{"name": Name(t) + ".e", "metadata": strings.Repeat("m", 1024)},
		{"name": Name(t) + ".f", "owner": "", "metadata": ""},
		{"name": Name(t) + ".g", "owner": "émoji 🔒 ok"},
	} {
		r := tg.Post(t, "/v1/locks/acquire", body)
		l := checkLease(t, r, str(body["name"]))
		if ttl, ok := body["ttl_ms"].(int); ok {
			assert.GreaterOrEqual(t, num(l["ttl_ms"]), int64(ttl))
		}
		if o, ok := body["owner"].(string); ok {
			assert.Equal(t, o, l["owner"])
		}
		tg.Post(t, "/v1/locks/release", map[string]any{"name": body["name"], "lease_id": l["lease_id"]})
	}
}

// Hostile is one hostile request body and the field the 400 must name
// ("" when none).
type Hostile struct {
	Path, Body, Field string
}

// HostileBodies lists request bodies every front end must reject with 400.
func HostileBodies(name string) []Hostile {
	acq, ren, rel := "/v1/locks/acquire", "/v1/locks/renew", "/v1/locks/release"
	n := `"name":"` + name + `"`
	return []Hostile{
		{acq, ``, ""},
		{acq, `   `, ""},
		{acq, `null`, ""},
		{acq, `[]`, ""},
		{acq, `"name"`, ""},
		{acq, `42`, ""},
		{acq, `{`, ""},
		{acq, `{` + n, ""},
		{acq, `{` + n + `,}`, ""},
		{acq, `{` + n + `} x`, ""},
		{acq, `{` + n + `}{}`, ""},
		{acq, `{` + n + `}]`, ""},
		{acq, `{'name':'x'}`, ""},
		{acq, `{}`, "name"},
		{acq, `{"name":null}`, "name"},
		{acq, `{"name":1}`, "name"},
		{acq, `{"name":["a"]}`, "name"},
		{acq, `{"name":""}`, "name"},
		{acq, `{"name":"has space"}`, "name"},
		{acq, `{"name":"ümlaut"}`, "name"},
		{acq, `{"name":"` + strings.Repeat("a", 256) + `"}`, "name"},
		{acq, `{"name":"a\u0000b"}`, "name"},
		{acq, `{"NAME":"x"}`, "NAME"},
		{acq, `{"Name":"x"}`, "Name"},
		{acq, `{` + n + `,"name":"other"}`, "name"},
		{acq, `{` + n + `,"TTL_MS":1000}`, "TTL_MS"},
		{acq, `{` + n + `,"lease_id":"x"}`, "lease_id"},
		{acq, `{` + n + `,"extra":true}`, "extra"},
		{acq, `{` + n + `,"ttl_ms":"1000"}`, "ttl_ms"},
		{acq, `{` + n + `,"ttl_ms":1000.0}`, "ttl_ms"},
		{acq, `{` + n + `,"ttl_ms":1e3}`, "ttl_ms"},
		{acq, `{` + n + `,"ttl_ms":null}`, "ttl_ms"},
		{acq, `{` + n + `,"ttl_ms":true}`, "ttl_ms"},
		{acq, `{` + n + `,"ttl_ms":0}`, "ttl_ms"},
		{acq, `{` + n + `,"ttl_ms":999}`, "ttl_ms"},
		{acq, `{` + n + `,"ttl_ms":3600001}`, "ttl_ms"},
		{acq, `{` + n + `,"ttl_ms":-1000}`, "ttl_ms"},
		{acq, `{` + n + `,"ttl_ms":99999999999999999999999999}`, "ttl_ms"},
		{acq, `{` + n + `,"wait_ms":-1}`, "wait_ms"},
		{acq, `{` + n + `,"wait_ms":20001}`, "wait_ms"},
		{acq, `{` + n + `,"wait_ms":1.5}`, "wait_ms"},
		{acq, `{` + n + `,"owner":7}`, "owner"},
		{acq, `{` + n + `,"owner":"` + strings.Repeat("o", 256) + `"}`, "owner"},
		{acq, `{` + n + `,"owner":"tab\there"}`, "owner"},
		{acq, `{` + n + `,"owner":"nl\nhere"}`, "owner"},
		{acq, `{` + n + `,"owner":"\u007f"}`, "owner"},
		{acq, `{` + n + `,"owner":"\ud800"}`, "owner"},
		{acq, `{` + n + `,"owner":"\udc00x"}`, "owner"},
		{acq, `{` + n + `,"metadata":"` + strings.Repeat("m", 1025) + `"}`, "metadata"},
		{acq, `{` + n + `,"metadata":{"a":1}}`, "metadata"},
		{acq, "{\"name\":\"a\xff\"}", ""},
		{acq, "{" + n + ",\"owner\":\"\xc3\x28\"}", ""},
		{ren, `{` + n + `}`, "lease_id"},
		{ren, `{"lease_id":"abc"}`, "name"},
		{ren, `{` + n + `,"lease_id":""}`, "lease_id"},
		{ren, `{` + n + `,"lease_id":"` + strings.Repeat("x", 129) + `"}`, "lease_id"},
		{ren, `{` + n + `,"lease_id":"abc","wait_ms":10}`, "wait_ms"},
		{ren, `{` + n + `,"lease_id":"abc","owner":"x"}`, "owner"},
		{ren, `{` + n + `,"lease_id":"abc","ttl_ms":0}`, "ttl_ms"},
		{ren, `{` + n + `,"lease_id":"abc","ttl_ms":500}`, "ttl_ms"},
		{ren, `{` + n + `,"lease_id":123}`, "lease_id"},
		{rel, `{` + n + `}`, "lease_id"},
		{rel, `{` + n + `,"lease_id":"abc","ttl_ms":1000}`, "ttl_ms"},
		{rel, `{` + n + `,"lease_id":"abc"} trailing`, ""},
	}
}

func (tg *Target) testHostile(t *testing.T) {
	name := Name(t)
	for i, h := range HostileBodies(name) {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			r := tg.Do(t, http.MethodPost, h.Path, []byte(h.Body))
			checkError(t, r, http.StatusBadRequest, "invalid_argument")
			e, _ := r.Body["error"].(map[string]any)
			if h.Field != "" {
				assert.Equal(t, h.Field, e["field"], "body %q", h.Body)
			}
		})
	}
	// No hostile request may have taken the lock.
	s := tg.Do(t, http.MethodGet, "/v1/locks?name="+name, nil)
	assert.Equal(t, false, s.Body["held"], "a rejected request must not write")
}

func (tg *Target) testStatusQuery(t *testing.T) {
	for _, q := range []string{"", "?", "?name=", "?name=a&name=b", "?name=a&x=1", "?nam=a", "?name=has%20space", "?name=%zz", "?name=" + strings.Repeat("a", 256)} {
		checkError(t, tg.Do(t, http.MethodGet, "/v1/locks"+q, nil), http.StatusBadRequest, "invalid_argument")
	}
	name := Name(t)
	s := tg.Do(t, http.MethodGet, "/v1/locks?name="+url.QueryEscape(name), nil)
	require.Equal(t, http.StatusOK, s.Status)
	assert.Equal(t, map[string]any{"name": name, "held": false}, s.Body)
	odd := "a/b:c@d=e+f~g"
	s = tg.Do(t, http.MethodGet, "/v1/locks?name="+url.QueryEscape(odd), nil)
	require.Equal(t, http.StatusOK, s.Status, "%s", s.Raw)
	assert.Equal(t, odd, s.Body["name"])
	// A literal "+" is a "+" (RFC 3986), not a space.
	s = tg.Do(t, http.MethodGet, "/v1/locks?name=a+b", nil)
	require.Equal(t, http.StatusOK, s.Status, "%s", s.Raw)
	assert.Equal(t, "a+b", s.Body["name"])
}

func (tg *Target) testBodyLimit(t *testing.T) {
	name := Name(t)
	obj := `{"name":"` + name + `"}`
	exact := obj + strings.Repeat(" ", 65536-len(obj))
	r := tg.Do(t, http.MethodPost, "/v1/locks/acquire", []byte(exact))
	l := checkLease(t, r, name)
	tg.Post(t, "/v1/locks/release", map[string]any{"name": name, "lease_id": l["lease_id"]})
	checkError(t, tg.Do(t, http.MethodPost, "/v1/locks/acquire", []byte(exact+" ")), http.StatusRequestEntityTooLarge, "payload_too_large")
	big := `{"name":"` + name + `","metadata":"` + strings.Repeat("x", 70000) + `"}`
	checkError(t, tg.Do(t, http.MethodPost, "/v1/locks/acquire", []byte(big)), http.StatusRequestEntityTooLarge, "payload_too_large")
	s := tg.Do(t, http.MethodGet, "/v1/locks?name="+name, nil)
	assert.Equal(t, false, s.Body["held"], "a rejected request must not write")
}

func (tg *Target) testRouting(t *testing.T) {
	for _, p := range []string{"/", "/v1", "/v1/", "/v1/locks/", "/v1/locks/acquire/", "/v1/lock", "/v2/locks/acquire", "/V1/HEALTH", "/v1/locks/steal"} {
		checkError(t, tg.Do(t, http.MethodGet, p, nil), http.StatusNotFound, "not_found")
	}
	// Paths match as sent: an encoded slash is not a route.
	checkError(t, tg.Do(t, http.MethodPost, "/v1/locks%2Facquire", []byte(`{"name":"`+Name(t)+`"}`)), http.StatusNotFound, "not_found")
	for _, c := range []struct{ method, path, allow string }{
		{http.MethodGet, "/v1/locks/acquire", "POST"},
		{http.MethodPut, "/v1/locks/renew", "POST"},
		{http.MethodDelete, "/v1/locks/release", "POST"},
		{http.MethodPost, "/v1/locks", "GET"},
		{http.MethodDelete, "/v1/locks", "GET"},
		{http.MethodPost, "/v1/health", "GET"},
	} {
		r := tg.Do(t, c.method, c.path, nil)
		checkError(t, r, http.StatusMethodNotAllowed, "method_not_allowed")
		assert.Contains(t, r.Header.Get("Allow"), c.allow, "%s %s: Allow", c.method, c.path)
	}
}

func (tg *Target) testContention(t *testing.T) {
	if tg.Serial {
		t.Skip("the target serves one request at a time")
	}
	n, rounds := tg.Contenders, tg.Rounds
	if n == 0 {
		n = 12
	}
	if rounds == 0 {
		rounds = 15
	}
	names := []string{Name(t) + ".0", Name(t) + ".1"}
	var (
		hist providertest.History
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		errs = append(errs, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	for c := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				name := names[(c+i)%len(names)]
				code, body, err := tg.rawPost("/v1/locks/acquire", map[string]any{"name": name, "ttl_ms": 30000, "wait_ms": 20000})
				start := time.Now()
				if err != nil || code != http.StatusOK {
					fail("client %d acquire: %d %v %s", c, code, err, body)
					return
				}
				time.Sleep(time.Millisecond)
				end := time.Now()
				hist.Add(providertest.Hold{Name: name, Token: num(body["fencing_token"]), Start: start, End: end, Client: c})
				code, b2, err := tg.rawPost("/v1/locks/release", map[string]any{"name": name, "lease_id": body["lease_id"]})
				if err != nil || code != http.StatusOK {
					fail("client %d release: %d %v %s", c, code, err, b2)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
	require.NoError(t, hist.Check())
	assert.Equal(t, n*rounds, hist.Len())
}

// rawPost is Post for goroutines: it reports errors instead of failing.
func (tg *Target) rawPost(path string, v any) (int, map[string]any, error) {
	b, _ := json.Marshal(v)
	req, err := http.NewRequest(http.MethodPost, tg.BaseURL+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	for k, vs := range tg.Header {
		req.Header[k] = vs
	}
	resp, err := tg.client().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	defer io.Copy(io.Discard, resp.Body) // read to EOF so the connection is reused
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return resp.StatusCode, nil, err
	}
	return resp.StatusCode, body, nil
}
