package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/api/apitest"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers/memory"
	"github.com/hasplock/hasp/service"
)

func TestDecodeAcquire(t *testing.T) {
	tests := []struct {
		body string
		want lock.AcquireRequest
	}{
		{`{"name":"a"}`, lock.AcquireRequest{Name: "a", TTL: lock.DefaultTTL, Permits: 1}},
		{` {"name":"a","owner":"o","ttl_ms":1000,"wait_ms":20000,"metadata":"m"} `, lock.AcquireRequest{Name: "a", Owner: "o", TTL: time.Second, Wait: 20 * time.Second, Metadata: "m", Permits: 1}},
		{`{"ttl_ms":3600000,"name":"b","wait_ms":0}`, lock.AcquireRequest{Name: "b", TTL: time.Hour, Permits: 1}},
		{`{"name":"a","owner":"\ud83d\udd12"}`, lock.AcquireRequest{Name: "a", Owner: "🔒", TTL: lock.DefaultTTL, Permits: 1}},
		{`{"name":"a","metadata":"\\ud800"}`, lock.AcquireRequest{Name: "a", Metadata: `\ud800`, TTL: lock.DefaultTTL, Permits: 1}},
		{`{"name":"a","ttl_ms":-0}`, lock.AcquireRequest{}},
		{`{"name":"s","permits":5,"lock_delay_ms":60000}`, lock.AcquireRequest{Name: "s", TTL: lock.DefaultTTL, Permits: 5, LockDelay: time.Minute}},
		{`{"name":"s","permits":1000}`, lock.AcquireRequest{Name: "s", TTL: lock.DefaultTTL, Permits: 1000}},
		{`{"name":"s","permits":1,"lock_delay_ms":0}`, lock.AcquireRequest{Name: "s", TTL: lock.DefaultTTL, Permits: 1}},
	}
	for _, tt := range tests {
		got, err := DecodeAcquire([]byte(tt.body))
		if tt.want.Name == "" {
			assert.ErrorIs(t, err, lock.ErrInvalidArgument, tt.body)
			continue
		}
		require.NoError(t, err, tt.body)
		assert.Equal(t, tt.want, got, tt.body)
	}
}

func TestDecodeAcquirePermitsRejected(t *testing.T) {
	for _, tt := range []struct{ body, field string }{
		{`{"name":"s","permits":0}`, "permits"},
		{`{"name":"s","permits":-1}`, "permits"},
		{`{"name":"s","permits":1001}`, "permits"},
		{`{"name":"s","permits":99999999999999999999999}`, "permits"},
		{`{"name":"s","permits":2.5}`, "permits"},
		{`{"name":"s","permits":"3"}`, "permits"},
		{`{"name":"s","permits":null}`, "permits"},
		{`{"name":"s","lock_delay_ms":-1}`, "lock_delay_ms"},
		{`{"name":"s","lock_delay_ms":60001}`, "lock_delay_ms"},
		{`{"name":"s","lock_delay_ms":1e3}`, "lock_delay_ms"},
	} {
		_, err := DecodeAcquire([]byte(tt.body))
		var inv *lock.InvalidArgumentError
		require.ErrorAs(t, err, &inv, tt.body)
		assert.Equal(t, tt.field, inv.Field, tt.body)
	}
}

func TestHostileBodiesNameTheField(t *testing.T) {
	for _, h := range apitest.HostileBodies("n") {
		var err error
		switch h.Path {
		case PathAcquire:
			_, err = DecodeAcquire([]byte(h.Body))
		case PathRenew:
			_, err = DecodeRenew([]byte(h.Body))
		case PathRelease:
			_, err = DecodeRelease([]byte(h.Body))
		}
		var inv *lock.InvalidArgumentError
		require.True(t, errors.As(err, &inv), "%s %q: %v", h.Path, h.Body, err)
		assert.Equal(t, h.Field, inv.Field, "%s %q", h.Path, h.Body)
	}
}

func TestLoneSurrogate(t *testing.T) {
	for raw, want := range map[string]bool{
		`"plain"`:               false,
		`"\ud83d\udd12"`:        false,
		`"\ud800"`:              true,
		`"\udc00"`:              true,
		`"\ud800\u0041"`:        true,
		`"\\ud800"`:             false,
		`"\\\ud800"`:            true,
		`"a\u00e9\ud83d\udd12"`: false,
	} {
		assert.Equal(t, want, loneSurrogate([]byte(raw)), raw)
	}
}

// FuzzDecode feeds arbitrary bodies to the three decoders: they must never
// panic, and either accept a request that passes validation and survives a
// JSON round trip, or reject it as an invalid argument.
func FuzzDecode(f *testing.F) {
	for _, h := range apitest.HostileBodies("seed") {
		f.Add(h.Body)
	}
	f.Add(`{"name":"a","owner":"o","ttl_ms":1000,"wait_ms":5,"metadata":"m"}`)
	f.Add(`{"name":"a","lease_id":"x","ttl_ms":2000}`)
	f.Fuzz(func(t *testing.T, body string) {
		check := func(err error) {
			if err != nil && !errors.Is(err, lock.ErrInvalidArgument) {
				t.Fatalf("%q: error %v is not an invalid argument", body, err)
			}
		}
		a, err := DecodeAcquire([]byte(body))
		check(err)
		if err == nil {
			if err := a.Validate(); err != nil {
				t.Fatalf("%q: accepted but invalid: %v", body, err)
			}
			b, _ := json.Marshal(map[string]any{"name": a.Name, "owner": a.Owner, "ttl_ms": a.TTL.Milliseconds(), "wait_ms": a.Wait.Milliseconds(), "metadata": a.Metadata})
			again, err := DecodeAcquire(b)
			if err != nil || again != a {
				t.Fatalf("%q: round trip %s gave %+v, %v; want %+v", body, b, again, err, a)
			}
		}
		_, err = DecodeRenew([]byte(body))
		check(err)
		_, err = DecodeRelease([]byte(body))
		check(err)
	})
}

// FuzzHandler sends arbitrary requests through the whole handler: every
// answer is JSON with a status the contract allows, never a 500.
func FuzzHandler(f *testing.F) {
	h := New(service.New(memory.New()))
	for _, x := range apitest.HostileBodies("seed") {
		f.Add("POST", x.Path, x.Body)
	}
	f.Add("GET", "/v1/locks?name=a", "")
	f.Add("GET", "/v1/health", "")
	f.Add("POST", "/v1/locks/acquire", `{"name":"a"}`)
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if !validMethod(method) || !strings.HasPrefix(path, "/") {
			return
		}
		req, err := http.NewRequest(method, "http://x"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case 200, 400, 404, 405, 409, 413:
		default:
			t.Fatalf("%s %s %q: status %d: %s", method, path, body, w.Code, w.Body)
		}
		if w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("Content-Type %q", w.Header().Get("Content-Type"))
		}
		var v map[string]any
		if method != http.MethodHead && json.Unmarshal(w.Body.Bytes(), &v) != nil {
			t.Fatalf("%s %s %q: body is not JSON: %s", method, path, body, w.Body)
		}
	})
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}
