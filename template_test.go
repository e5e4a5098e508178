package hasp_test

import (
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/hasplock/hasp/local/testbed/launch"
)

// TestTemplateLint runs cfn-lint (on the machine image) over template.yaml.
func TestTemplateLint(t *testing.T) {
	bin, err := exec.LookPath("cfn-lint")
	launch.Require(t, err == nil, "cfn-lint", "it comes with the machine image")
	out, err := exec.Command(bin, "template.yaml").CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// node finds a child of a YAML mapping by key path.
func node(n *yaml.Node, path ...string) *yaml.Node {
	for _, k := range path {
		if n.Kind == yaml.DocumentNode {
			n = n.Content[0]
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

func values(n *yaml.Node) []string {
	var out []string
	for _, c := range n.Content {
		out = append(out, c.Value)
	}
	sort.Strings(out)
	return out
}

// TestTemplate pins what matters in template.yaml: routes and their
// authorization, key schema, runtime and architecture, least-privilege
// IAM, and the SAM build hook.
func TestTemplate(t *testing.T) {
	b, err := os.ReadFile("template.yaml")
	require.NoError(t, err)
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal(b, &doc))
	res := node(&doc, "Resources")
	require.NotNil(t, res)

	table := node(res, "LocksTable", "Properties")
	assert.Equal(t, "pk", node(table, "KeySchema").Content[0].Content[1].Value)
	assert.Equal(t, "HASH", node(table, "KeySchema").Content[0].Content[3].Value)
	assert.Equal(t, "PAY_PER_REQUEST", node(table, "BillingMode").Value)
	assert.Equal(t, "true", node(table, "SSESpecification", "SSEEnabled").Value)
	assert.Equal(t, "gc", node(table, "TimeToLiveSpecification", "AttributeName").Value)
	assert.Equal(t, "!If", node(res, "LocksTable", "DeletionPolicy").Tag, "prod retains the table, dev does not")

	api := node(res, "HaspApi", "Properties")
	assert.Equal(t, "$default", node(api, "StageName").Value)
	assert.Equal(t, "AWS_IAM", node(api, "Auth", "DefaultAuthorizer").Value)

	fn := node(res, "HaspFunction")
	assert.Equal(t, "makefile", node(fn, "Metadata", "BuildMethod").Value)
	props := node(fn, "Properties")
	assert.Equal(t, "provided.al2023", node(props, "Runtime").Value)
	assert.Equal(t, []string{"arm64"}, values(node(props, "Architectures")))
	assert.Equal(t, "bootstrap", node(props, "Handler").Value)
	assert.Contains(t, node(props, "Environment", "Variables", "HASP_STORE").Value, "dynamodb://${LocksTable}")
	pol := node(props, "Policies").Content
	require.Len(t, pol, 1)
	stmts := node(pol[0], "Statement").Content
	require.Len(t, stmts, 1, "one statement")
	assert.Equal(t, []string{"dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Scan", "dynamodb:UpdateItem"}, values(node(stmts[0], "Action")), "only the item actions the provider uses")
	assert.Equal(t, "LocksTable.Arn", node(stmts[0], "Resource").Value, "on the lock table only")

	routes := map[string]string{} // "METHOD path" -> authorizer
	ev := node(props, "Events")
	for i := 0; i+1 < len(ev.Content); i += 2 {
		p := node(ev.Content[i+1], "Properties")
		auth := "default (AWS_IAM)"
		if a := node(p, "Auth", "Authorizer"); a != nil {
			auth = a.Value
		}
		routes[node(p, "Method").Value+" "+node(p, "Path").Value] = auth
	}
	assert.Equal(t, map[string]string{
		"POST /v1/locks/acquire": "default (AWS_IAM)",
		"POST /v1/locks/renew":   "default (AWS_IAM)",
		"POST /v1/locks/release": "default (AWS_IAM)",
		"GET /v1/locks":          "default (AWS_IAM)",
		"GET /v1/locks/watch":    "default (AWS_IAM)",
		"ANY $default":           "default (AWS_IAM)",
		"GET /v1/health":         "NONE",
	}, routes, "every lock route requires IAM; health is open")

	mk, err := os.ReadFile("Makefile")
	require.NoError(t, err)
	assert.True(t, strings.Contains(string(mk), "\nbuild-HaspFunction:"), "sam build calls make build-HaspFunction")
}
