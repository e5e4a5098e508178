package apitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"

	"github.com/hasplock/hasp"
)

// Spec checks responses against the schemas of openapi.yaml.
type Spec struct {
	doc map[string]any
	c   *jsonschema.Compiler

	mu    sync.Mutex
	cache map[string]*jsonschema.Schema
}

const specURL = "file:///openapi.json"

// LoadSpec loads the module's openapi.yaml.
func LoadSpec() (*Spec, error) {
	js, err := yaml.YAMLToJSON(hasp.OpenAPI)
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(specURL, doc); err != nil {
		return nil, err
	}
	var m map[string]any
	_ = json.Unmarshal(js, &m)
	return &Spec{doc: m, c: c, cache: map[string]*jsonschema.Schema{}}, nil
}

func esc(s string) string { return strings.NewReplacer("~", "~0", "/", "~1").Replace(s) }

func get(m any, keys ...string) any {
	for _, k := range keys {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[k]
	}
	return m
}

// pointer returns the JSON pointer of the response schema the spec gives
// for method, path and status, or an error if the spec documents none.
func (s *Spec) pointer(method, path string, status int) (string, error) {
	op := get(s.doc, "paths", path, strings.ToLower(method))
	if op == nil {
		if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
			return "#/components/responses/" + map[int]string{404: "NotFound", 405: "MethodNotAllowed"}[status] + "/content/application~1json/schema", nil
		}
		return "", fmt.Errorf("openapi.yaml documents no %s %s", method, path)
	}
	code := strconv.Itoa(status)
	resp := get(op, "responses", code)
	if resp == nil {
		return "", fmt.Errorf("openapi.yaml documents no %d for %s %s", status, method, path)
	}
	if ref, ok := get(resp, "$ref").(string); ok {
		return ref + "/content/application~1json/schema", nil
	}
	return "#/paths/" + esc(path) + "/" + strings.ToLower(method) + "/responses/" + code + "/content/application~1json/schema", nil
}

// Check validates one response body against the spec.
func (s *Spec) Check(method, path string, status int, body []byte) error {
	if method == http.MethodHead {
		method = http.MethodGet
	}
	path, _, _ = strings.Cut(path, "?")
	ptr, err := s.pointer(method, path, status)
	if err != nil {
		return err
	}
	s.mu.Lock()
	sch := s.cache[ptr]
	if sch == nil {
		sch, err = s.c.Compile(specURL + ptr)
		if err != nil {
			s.mu.Unlock()
			return fmt.Errorf("compiling %s: %w", ptr, err)
		}
		s.cache[ptr] = sch
	}
	s.mu.Unlock()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s: %d body is not JSON: %w", method, path, status, err)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("%s %s: %d body %s does not match openapi.yaml: %w", method, path, status, body, err)
	}
	return nil
}

// Operations lists the documented "METHOD path" pairs.
func (s *Spec) Operations() []string {
	var out []string
	paths, _ := s.doc["paths"].(map[string]any)
	for p, v := range paths {
		ops, _ := v.(map[string]any)
		for m := range ops {
			out = append(out, strings.ToUpper(m)+" "+p)
		}
	}
	return out
}

var (
	specOnce sync.Once
	spec     *Spec
	specErr  error
)

func checkSpec(t *testing.T, method, path string, r Response) {
	t.Helper()
	specOnce.Do(func() { spec, specErr = LoadSpec() })
	if specErr != nil {
		t.Fatalf("loading openapi.yaml: %v", specErr)
	}
	if method == http.MethodHead {
		return
	}
	if err := spec.Check(method, path, r.Status, r.Raw); err != nil {
		t.Error(err)
	}
}
