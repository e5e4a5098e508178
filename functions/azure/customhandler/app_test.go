package customhandler_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/api"
	"github.com/hasplock/hasp/providers/memory"
	"github.com/hasplock/hasp/service"
)

// appDir is the function app's folder: host.json and one folder per
// function, copied into dist/azure by `make build-azure`.
const appDir = "../app"

type hostJSON struct {
	Version       string `json:"version"`
	CustomHandler struct {
		Description struct {
			DefaultExecutablePath string `json:"defaultExecutablePath"`
		} `json:"description"`
		EnableProxyingHTTPRequest   bool  `json:"enableProxyingHttpRequest"`
		EnableForwardingHTTPRequest *bool `json:"enableForwardingHttpRequest"`
	} `json:"customHandler"`
	Extensions struct {
		HTTP struct {
			RoutePrefix *string `json:"routePrefix"`
		} `json:"http"`
	} `json:"extensions"`
}

type binding struct {
	Type      string   `json:"type"`
	Direction string   `json:"direction"`
	Name      string   `json:"name"`
	AuthLevel string   `json:"authLevel"`
	Route     string   `json:"route"`
	Methods   []string `json:"methods"`
}

// function is one function of the app: its name (folder) and HTTP
// trigger, methods in upper case.
type function struct {
	name    string
	trigger binding
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(v), path)
}

// appFunctions reads every function.json of the app.
func appFunctions(t *testing.T) []function {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(appDir, "*", "function.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var out []function
	for _, f := range files {
		var def struct{ Bindings []binding }
		readJSON(t, f, &def)
		name := filepath.Base(filepath.Dir(f))
		// HTTP only: one trigger in, one response out, nothing else; the
		// host proxies such functions' requests as they came.
		require.Len(t, def.Bindings, 2, "%s: bindings", name)
		in, res := def.Bindings[0], def.Bindings[1]
		assert.Equal(t, "httpTrigger", in.Type, name)
		assert.Equal(t, "in", in.Direction, name)
		assert.Equal(t, "http", res.Type, name)
		assert.Equal(t, "out", res.Direction, name)
		assert.Contains(t, []string{"anonymous", "function"}, in.AuthLevel, "%s: authLevel", name)
		for i, m := range in.Methods {
			in.Methods[i] = strings.ToUpper(m)
		}
		out = append(out, function{name: name, trigger: in})
	}
	return out
}

// routeMatch reports whether an Azure Functions route template (literal
// segments, {param} and a final {*catchall}) matches path, and how
// specific the match is: routes with more literal segments win, as in
// ASP.NET Core routing, and a catch-all loses to any other route.
func routeMatch(template, path string) (ok bool, literals int) {
	tsegs := strings.Split(template, "/")
	psegs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i, ts := range tsegs {
		if strings.HasPrefix(ts, "{*") {
			return i == len(tsegs)-1, literals - 1000
		}
		if i >= len(psegs) {
			return false, 0
		}
		if strings.HasPrefix(ts, "{") {
			if psegs[i] == "" {
				return false, 0
			}
			continue
		}
		if !strings.EqualFold(ts, psegs[i]) {
			return false, 0
		}
		literals++
	}
	return len(tsegs) == len(psegs), literals
}

// route returns the function the host sends path to.
func route(fns []function, path string) (function, bool) {
	var best function
	bestScore, found := 0, false
	for _, f := range fns {
		if ok, score := routeMatch(f.trigger.Route, path); ok && (!found || score > bestScore) {
			best, bestScore, found = f, score, true
		}
	}
	return best, found
}

// apiMethods returns, for each route of API v1, the methods the handler
// serves there (anything but 405), found by asking the handler itself.
func apiMethods(t *testing.T) map[string][]string {
	h := api.New(service.New(memory.New()))
	out := map[string][]string{}
	for _, path := range []string{api.PathAcquire, api.PathRenew, api.PathRelease, api.PathStatus, api.PathHealth} {
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(m, path, strings.NewReader("{}")))
			if rec.Code != http.StatusMethodNotAllowed {
				out[path] = append(out[path], m)
			}
		}
		require.NotEmpty(t, out[path], path)
	}
	return out
}

// TestHostJSON: the host starts ./handler, proxies HTTP requests to it as
// they came, and adds no route prefix, so paths stay /v1/....
func TestHostJSON(t *testing.T) {
	var h hostJSON
	b, err := os.ReadFile(filepath.Join(appDir, "host.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &h))
	assert.Equal(t, "2.0", h.Version)
	assert.Equal(t, "handler", h.CustomHandler.Description.DefaultExecutablePath, "the binary `make build-azure` puts next to host.json")
	assert.True(t, h.CustomHandler.EnableProxyingHTTPRequest, "HTTP requests are proxied to the handler as they came")
	// The legacy forwarding rebuilds the query string from a dictionary:
	// repeated keys merge and "+" turns into a space, which would change
	// GET /v1/locks?name=a+b. It must not be on beside proxying.
	assert.Nil(t, h.CustomHandler.EnableForwardingHTTPRequest, "enableForwardingHttpRequest must not be set")
	require.NotNil(t, h.Extensions.HTTP.RoutePrefix, "extensions.http.routePrefix must be set")
	assert.Equal(t, "", *h.Extensions.HTTP.RoutePrefix, `routePrefix "" keeps paths at /v1/...`)
}

// TestFunctionsCoverTheAPI: every route and method of API v1 reaches the
// handler through some function, with a function key required on every
// lock route and none on /v1/health; paths outside the API reach the
// handler too, so that it answers them with its JSON 404.
func TestFunctionsCoverTheAPI(t *testing.T) {
	fns := appFunctions(t)
	for path, methods := range apiMethods(t) {
		f, ok := route(fns, path)
		require.True(t, ok, "no function serves %s", path)
		for _, m := range methods {
			assert.Contains(t, f.trigger.Methods, m, "function %s must accept %s %s", f.name, m, path)
		}
		want := "function"
		if path == api.PathHealth {
			want = "anonymous"
		}
		assert.Equal(t, want, f.trigger.AuthLevel, "%s (function %s)", path, f.name)
	}
	for _, path := range []string{"/", "/v1", "/v1/locks/", "/v2/locks/acquire", "/v1/locks/steal", "/V1/HEALTH/x"} {
		f, ok := route(fns, path)
		if assert.True(t, ok, "%s reaches no function (the host would answer it, not in JSON)", path) {
			assert.Equal(t, "function", f.trigger.AuthLevel, "%s", path)
			assert.Subset(t, f.trigger.Methods, []string{"GET", "POST", "PUT", "DELETE"}, "so the handler can answer 404 or 405 itself")
		}
	}
	// Methods a route does not serve still reach the handler, which
	// answers 405 with an Allow header.
	f, _ := route(fns, api.PathAcquire)
	assert.True(t, slices.Contains(f.trigger.Methods, http.MethodDelete))
}

func TestRouteMatch(t *testing.T) {
	tests := []struct {
		template, path string
		ok             bool
	}{
		{"{*path}", "/", true},
		{"{*path}", "/v1/locks/acquire", true},
		{"v1/health", "/v1/health", true},
		{"v1/health", "/v1/health/x", false},
		{"v1/health", "/v1", false},
		{"v1/{*rest}", "/v1/locks", true},
		{"v1/{*rest}", "/v2/locks", false},
		{"v1/{name}", "/v1/locks", true},
		{"v1/{name}", "/v1/locks/acquire", false},
	}
	for _, tt := range tests {
		ok, _ := routeMatch(tt.template, tt.path)
		assert.Equal(t, tt.ok, ok, "%s ~ %s", tt.template, tt.path)
	}
	_, literal := routeMatch("v1/health", "/v1/health")
	_, catchAll := routeMatch("{*path}", "/v1/health")
	assert.Greater(t, literal, catchAll, "a literal route beats a catch-all")
}
