package hasp_test

import (
	"os/exec"
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/hasplock/hasp"

// layers says which of the module's packages each package may import
// (docs/architecture.md explains why). A key or an entry ending in "/..."
// matches a folder and everything under it; a package's own key applies,
// else the longest matching folder key. Test files are not checked: tests may import anything.
var layers = map[string][]string{
	"lock":                       {},
	"api/wire":                   {"lock"},
	"telemetry/catalog/...":      {"telemetry/catalog"},
	"providers":                  {"lock"},
	"providers/...":              {"lock", "providers", "providers/internal/..."},
	"providers/internal/...":     {},
	"telemetry":                  {"lock", "providers", "telemetry/catalog"},
	"telemetry/...":              {"lock", "providers", "telemetry", "telemetry/catalog"},
	"service":                    {"lock", "providers", "telemetry"},
	"api":                        {"lock", "api/wire", "service"},
	"client":                     {"lock", "api/wire"},
	"app":                        {"lock", "providers", "service", "api", "telemetry/..."},
	"local":                      {"providers", "providers/etcd"},
	"functions/...":              {"app", "api", "providers", "providers/...", "functions/..."},
	"functions/gcp/cmd/...":      {"functions/gcp", "providers", "providers/...", "local/testbed/spanneremu"}, // make run-gcp: a local tool
	"cmd/...":                    {"app", "api/wire", "bench/loadgen", "client", "local", "lock", "providers", "providers/...", "service"},
	"bench/loadgen":              {"lock", "api/wire", "client", "providers", "service"},
	"providers/providertest/...": {"..."}, // test harnesses
	"local/testbed/...":          {"..."},
	"api/apitest":                {"..."},
	"bench/...":                  {"..."},
	"":                           {"..."}, // the module root: the OpenAPI file
}

// testOnly are the packages no production package may import.
var testOnly = []string{"local/testbed/...", "providers/providertest/...", "api/apitest", "bench"}

func match(pattern, pkg string) bool {
	if pattern == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

// rule returns the layer rule for pkg: its own key, or the longest
// matching folder key.
func rule(pkg string) (string, []string, bool) {
	if allowed, ok := layers[pkg]; ok {
		return pkg, allowed, true
	}
	best, found := "", false
	for k := range layers {
		if match(k, pkg) && (!found || len(k) > len(best)) {
			best, found = k, true
		}
	}
	return best, layers[best], found
}

// TestArchitecture fails on an import that crosses a layer the wrong way:
// telemetry importing the API, a provider importing the service, the thin
// client importing a provider, production code importing a test harness.
func TestArchitecture(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...").Output()
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Greater(t, len(lines), 20, "go list found the packages")
	for _, line := range lines {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(f[0], module), "/")
		key, allowed, ok := rule(pkg)
		if !assert.True(t, ok, "package %q has no layer: add it to layers and docs/architecture.md", pkg) {
			continue
		}
		harness := len(allowed) == 1 && allowed[0] == "..."
		for _, imp := range f[1:] {
			if imp != module && !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
			if !harness && pkg != "functions/gcp/cmd/hasp-gcp-local" {
				for _, to := range testOnly {
					assert.False(t, match(to, dep), "%s imports the test harness %s", pkg, dep)
				}
			}
			ok := false
			for _, a := range allowed {
				ok = ok || match(a, dep)
			}
			assert.True(t, ok, "%s (layer %q) may not import %s", pkg, key, dep)
		}
	}
}

// TestArchitectureRules: the checker itself tells forbidden imports from
// allowed ones.
func TestArchitectureRules(t *testing.T) {
	for _, tc := range []struct {
		pkg, dep string
		ok       bool
	}{
		{"telemetry", "api", false},
		{"telemetry", "service", false},
		{"providers", "providers/etcd", false},
		{"telemetry/tracing", "api", false},
		{"telemetry/prom", "telemetry/catalog", true},
		{"providers/redis", "service", false},
		{"providers/redis", "providers", true},
		{"client", "providers", false},
		{"service", "telemetry", true},
		{"app", "telemetry/tracing", true},
		{"local", "local/testbed/launch", false},
		{"local/testbed/launch", "providers/etcd", true},
	} {
		_, allowed, found := rule(tc.pkg)
		require.True(t, found, tc.pkg)
		ok := false
		for _, a := range allowed {
			ok = ok || match(a, tc.dep)
		}
		assert.Equal(t, tc.ok, ok, "%s -> %s", tc.pkg, tc.dep)
	}
	assert.Equal(t, "providers/...", func() string { k, _, _ := rule(path.Join("providers", "zookeeper")); return k }())
}
