package api_test

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/api"
	"github.com/hasplock/hasp/api/apitest"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/providers/memory"
	"github.com/hasplock/hasp/service"
)

// TestOpenAPIValid runs openapi-spec-validator (on the machine image) over
// openapi.yaml. Under CI=true a missing validator fails the test.
func TestOpenAPIValid(t *testing.T) {
	bin, err := exec.LookPath("openapi-spec-validator")
	launch.Require(t, err == nil, "openapi-spec-validator", "it comes with the machine image")
	out, err := exec.Command(bin, "../openapi.yaml").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "OK")
}

// TestOpenAPIMatchesRoutes: every documented operation is served, and every
// served route is documented.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	spec, err := apitest.LoadSpec()
	require.NoError(t, err)
	ops := spec.Operations()
	sort.Strings(ops)
	assert.Equal(t, []string{"GET /v1/health", "GET /v1/locks", "GET /v1/locks/watch", "POST /v1/locks/acquire", "POST /v1/locks/release", "POST /v1/locks/renew"}, ops)
	h := api.New(service.New(memory.New()))
	for _, op := range ops {
		method, path, _ := strings.Cut(op, " ")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader("{}")))
		assert.NotContains(t, []int{http.StatusNotFound, http.StatusMethodNotAllowed}, w.Code, op)
	}
}

// TestSpecCheckerRejects shows the response checker used by the contract
// suite can fail.
func TestSpecCheckerRejects(t *testing.T) {
	spec, err := apitest.LoadSpec()
	require.NoError(t, err)
	good := `{"name":"a","owner":"","lease_id":"abcdefghijklmnopqrstuvwx","fencing_token":3,"ttl_ms":30000,"expires_at":"2026-11-25T22:43:28.123Z"}`
	require.NoError(t, spec.Check("POST", "/v1/locks/acquire", 200, []byte(good)))
	for _, bad := range []string{
		`{"name":"a","lease_id":"abcdefghijklmnopqrstuvwx","fencing_token":3,"ttl_ms":30000,"expires_at":"2026-11-25T22:43:28.123Z"}`,
		`{"name":"a","owner":"","lease_id":"abcdefghijklmnopqrstuvwx","fencing_token":0,"ttl_ms":30000,"expires_at":"2026-11-25T22:43:28.123Z"}`,
		`{"name":"a","owner":"","lease_id":"abcdefghijklmnopqrstuvwx","fencing_token":3,"ttl_ms":30000,"expires_at":"2026-11-25T22:43:28Z"}`,
		`{"name":"a","owner":"","lease_id":"abcdefghijklmnopqrstuvwx","fencing_token":3,"ttl_ms":30000,"expires_at":"2026-11-25T22:43:28.123Z","extra":1}`,
	} {
		assert.Error(t, spec.Check("POST", "/v1/locks/acquire", 200, []byte(bad)), bad)
	}
	assert.Error(t, spec.Check("GET", "/v1/locks", 200, []byte(`{"name":"a","held":false,"lease_id":"x"}`)))
	assert.Error(t, spec.Check("POST", "/v1/locks/acquire", 418, []byte(`{}`)), "undocumented status")
	assert.NoError(t, spec.Check("GET", "/v1/locks", 200, []byte(`{"locks":[{"name":"a","held":true,"owner":"","fencing_token":3,"expires_at":"2026-11-25T22:43:28.123Z"}],"next_page_token":"YQ"}`)))
	assert.Error(t, spec.Check("GET", "/v1/locks", 200, []byte(`{"locks":[{"name":"a","held":false}]}`)), "only held locks are listed")
	assert.Error(t, spec.Check("GET", "/v1/locks", 200, []byte(`{"locks":[{"name":"a","held":true,"owner":"","fencing_token":3,"expires_at":"2026-11-25T22:43:28.123Z","lease_id":"x"}]}`)))
	assert.NoError(t, spec.Check("GET", "/v1/locks/watch", 200, []byte(`{"name":"a","held":false,"changed":true}`)))
	assert.Error(t, spec.Check("GET", "/v1/locks/watch", 200, []byte(`{"name":"a","held":false}`)), "changed is required")
}
