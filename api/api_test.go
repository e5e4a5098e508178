package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/hasplock/hasp/api"
	"github.com/hasplock/hasp/api/apitest"
	"github.com/hasplock/hasp/providers/memory"
	"github.com/hasplock/hasp/service"
)

func TestContractOnMemory(t *testing.T) {
	srv := httptest.NewServer(api.New(service.New(memory.New())))
	defer srv.Close()
	apitest.Run(t, apitest.Target{BaseURL: srv.URL, Provider: "memory"})
}

func TestBearerAuth(t *testing.T) {
	srv := httptest.NewServer(api.New(service.New(memory.New()), api.WithBearerTokens("s3cret", " other ")))
	defer srv.Close()
	tg := apitest.Target{BaseURL: srv.URL}
	for _, hdr := range []string{"", "Bearer", "Bearer ", "Bearer wrong", "Basic s3cret", "s3cret", "Bearer s3cre", "Bearer s3cretx"} {
		tg.Header = http.Header{}
		if hdr != "" {
			tg.Header.Set("Authorization", hdr)
		}
		r := tg.Post(t, "/v1/locks/acquire", `{"name":"a"}`)
		assert.Equal(t, http.StatusUnauthorized, r.Status, "Authorization %q", hdr)
		assert.Equal(t, "unauthenticated", r.Body["error"].(map[string]any)["code"])
		assert.Contains(t, r.Header.Get("WWW-Authenticate"), "Bearer")
		r = tg.Do(t, http.MethodGet, "/v1/locks?name=a", nil)
		assert.Equal(t, http.StatusUnauthorized, r.Status)
	}
	tg.Header = http.Header{}
	assert.Equal(t, http.StatusOK, tg.Do(t, http.MethodGet, "/v1/health", nil).Status, "health needs no credentials")
	for _, tok := range []string{"s3cret", "other"} {
		tg.Header.Set("Authorization", "Bearer "+tok)
		assert.Equal(t, http.StatusOK, tg.Post(t, "/v1/locks/acquire", `{"name":"tok-`+tok+`"}`).Status)
	}
	tg.Header.Set("Authorization", "bearer s3cret")
	assert.Equal(t, http.StatusOK, tg.Do(t, http.MethodGet, "/v1/locks?name=a", nil).Status, "the scheme is case-insensitive")
}

func TestHealthUnavailable(t *testing.T) {
	p := memory.New()
	_ = p.Close()
	srv := httptest.NewServer(api.New(service.New(p)))
	defer srv.Close()
	tg := apitest.Target{BaseURL: srv.URL}
	r := tg.Do(t, http.MethodGet, "/v1/health", nil)
	assert.Equal(t, http.StatusServiceUnavailable, r.Status)
	assert.Equal(t, "unavailable", r.Body["status"])
	r = tg.Post(t, "/v1/locks/acquire", `{"name":"a"}`)
	assert.Equal(t, http.StatusServiceUnavailable, r.Status)
	assert.Equal(t, "unavailable", r.Body["error"].(map[string]any)["code"])
	assert.NotEmpty(t, r.Header.Get("Retry-After"))
	assert.NotContains(t, string(r.Raw), "memory: provider closed", "backend error text never leaks")
}
