package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/hasplock/hasp/infra/metrics"
)

func TestMain(m *testing.M) {
	code := m.Run()
	jsii.Close() // once per test binary
	os.Exit(code)
}

// synth returns the CloudFormation template of env's stack, built from a
// stand-in asset (the real bootstrap is make build-lambda's).
func synth(t *testing.T, env string) map[string]any {
	t.Helper()
	return synthTable(t, env, "")
}

// synthTable is synth with StackProps.Table set to table.
func synthTable(t *testing.T, env, table string) map[string]any {
	t.Helper()
	e, err := LookupEnv(env)
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bootstrap"), []byte("stand-in"), 0o755))
	app := awscdk.NewApp(nil)
	stack := NewHaspStack(app, "hasp-"+env, StackProps{Env: e, AssetDir: dir, Table: table})
	tpl := assertions.Template_FromStack(stack, nil)
	return *tpl.ToJSON()
}

// resources returns the template's resources of one type, by logical id.
func resources(tpl map[string]any, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range tpl["Resources"].(map[string]any) {
		r := r.(map[string]any)
		if r["Type"] == typ {
			out[id] = r
		}
	}
	return out
}

func one(t *testing.T, tpl map[string]any, typ string) map[string]any {
	t.Helper()
	rs := resources(tpl, typ)
	require.Len(t, rs, 1, typ)
	for _, r := range rs {
		return r
	}
	return nil
}

func props(r map[string]any) map[string]any { return r["Properties"].(map[string]any) }

func TestUnknownEnv(t *testing.T) {
	_, err := LookupEnv("qa")
	assert.ErrorContains(t, err, `unknown environment "qa": pass -c env=dev|prod|staging`)
}

func TestTable(t *testing.T) {
	for env, want := range map[string]struct {
		policy string
		pitr   bool
	}{"dev": {"Delete", false}, "staging": {"Delete", true}, "prod": {"Retain", true}} {
		t.Run(env, func(t *testing.T) {
			tbl := one(t, synth(t, env), "AWS::DynamoDB::Table")
			assert.Equal(t, want.policy, tbl["DeletionPolicy"], "prod retains the table; dev is destroyable")
			p := props(tbl)
			assert.Equal(t, "PAY_PER_REQUEST", p["BillingMode"])
			assert.Equal(t, []any{map[string]any{"AttributeName": "pk", "KeyType": "HASH"}}, p["KeySchema"])
			assert.Equal(t, map[string]any{"SSEEnabled": true}, p["SSESpecification"], "encrypted")
			assert.Equal(t, map[string]any{"AttributeName": "gc", "Enabled": true}, p["TimeToLiveSpecification"])
			assert.Equal(t, map[string]any{"PointInTimeRecoveryEnabled": want.pitr}, p["PointInTimeRecoverySpecification"])
		})
	}
}

func TestFunction(t *testing.T) {
	tpl := synth(t, "prod")
	var fn map[string]any
	for _, r := range resources(tpl, "AWS::Lambda::Function") {
		if props(r)["Handler"] == "bootstrap" {
			fn = props(r)
		}
	}
	require.NotNil(t, fn)
	assert.Equal(t, "provided.al2023", fn["Runtime"])
	assert.Equal(t, []any{"arm64"}, fn["Architectures"])
	assert.Equal(t, float64(512), fn["MemorySize"])
	assert.Equal(t, float64(200), fn["ReservedConcurrentExecutions"])
	assert.Contains(t, fn["Environment"].(map[string]any)["Variables"].(map[string]any), "HASP_STORE")
	logs := resources(tpl, "AWS::Logs::LogGroup")
	assert.Len(t, logs, 2, "function logs and API access logs")
	for _, l := range logs {
		assert.Equal(t, float64(90), props(l)["RetentionInDays"])
		assert.Equal(t, "Retain", l["DeletionPolicy"], "prod keeps its logs")
	}
}

// lambdaStatements returns the IAM statements of the function's role.
func lambdaStatements(t *testing.T, tpl map[string]any) []map[string]any {
	var out []map[string]any
	for _, pol := range resources(tpl, "AWS::IAM::Policy") {
		for _, s := range props(pol)["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			out = append(out, s.(map[string]any))
		}
	}
	return out
}

func TestLeastPrivilege(t *testing.T) {
	tpl := synth(t, "dev")
	stmts := lambdaStatements(t, tpl)
	require.Len(t, stmts, 1, "one statement: nothing but the table")
	acts := []string{}
	for _, a := range stmts[0]["Action"].([]any) {
		acts = append(acts, a.(string))
	}
	sort.Strings(acts)
	want := append([]string(nil), LambdaActions...)
	sort.Strings(want)
	assert.Equal(t, want, acts)
	res := stmts[0]["Resource"].(map[string]any)["Fn::GetAtt"].([]any)
	assert.Equal(t, "Arn", res[1])
	assert.Contains(t, res[0], "LocksTable", "on the lock table only")
}

// routes returns "METHOD path" -> authorization type of the HTTP API.
func routes(t *testing.T, tpl map[string]any) map[string]string {
	out := map[string]string{}
	for _, r := range resources(tpl, "AWS::ApiGatewayV2::Route") {
		p := props(r)
		auth, _ := p["AuthorizationType"].(string)
		out[p["RouteKey"].(string)] = auth
	}
	return out
}

func TestRoutesAndStage(t *testing.T) {
	tpl := synth(t, "staging")
	assert.Equal(t, map[string]string{
		"POST /v1/locks/acquire": "AWS_IAM",
		"POST /v1/locks/renew":   "AWS_IAM",
		"POST /v1/locks/release": "AWS_IAM",
		"GET /v1/locks":          "AWS_IAM",
		"GET /v1/locks/watch":    "AWS_IAM",
		"$default":               "AWS_IAM",
		"GET /v1/health":         "NONE",
	}, routes(t, tpl), "every lock route requires IAM; health is open")
	st := props(one(t, tpl, "AWS::ApiGatewayV2::Stage"))
	assert.Equal(t, "$default", st["StageName"])
	assert.Equal(t, true, st["AutoDeploy"])
	assert.Equal(t, map[string]any{"ThrottlingRateLimit": float64(200), "ThrottlingBurstLimit": float64(400)}, st["DefaultRouteSettings"])
	assert.Equal(t, map[string]any{"GET /v1/health": map[string]any{"ThrottlingRateLimit": float64(HealthRateLimit), "ThrottlingBurstLimit": float64(HealthBurstLimit)}},
		st["RouteSettings"], "the open health route has its own throttle")
	assert.Contains(t, st, "AccessLogSettings")
	var stage map[string]any
	for _, r := range resources(tpl, "AWS::ApiGatewayV2::Stage") {
		stage = r
	}
	assert.NotEmpty(t, stage["DependsOn"], "the stage is created after the routes its settings name")
}

func TestAlarmsDashboardOutputs(t *testing.T) {
	tpl := synth(t, "prod")
	names := []string{}
	for _, a := range resources(tpl, "AWS::CloudWatch::Alarm") {
		names = append(names, props(a)["AlarmName"].(string))
	}
	sort.Strings(names)
	assert.Equal(t, []string{"hasp-prod-Api5xx", "hasp-prod-ApiLatencyP99", "hasp-prod-LambdaErrors", "hasp-prod-LambdaThrottles"}, names)
	one(t, tpl, "AWS::CloudWatch::Dashboard")
	out := tpl["Outputs"].(map[string]any)
	assert.Contains(t, out, "ApiUrl")
	assert.Contains(t, out, "TableName")
}

// TestCfnLint: the synthesized template of every environment passes
// cfn-lint (on the machine image).
func TestCfnLint(t *testing.T) {
	bin, err := exec.LookPath("cfn-lint")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("cfn-lint is not installed (it comes with the machine image)")
		}
		t.Skip("cfn-lint is not installed")
	}
	for _, env := range []string{"dev", "staging", "prod"} {
		b, err := json.Marshal(synth(t, env))
		require.NoError(t, err)
		f := filepath.Join(t.TempDir(), "hasp-"+env+".template.json")
		require.NoError(t, os.WriteFile(f, b, 0o644))
		out, err := exec.Command(bin, f).CombinedOutput()
		assert.NoError(t, err, "%s: %s", env, out)
	}
}

func TestTags(t *testing.T) {
	p := props(one(t, synth(t, "staging"), "AWS::DynamoDB::Table"))
	assert.Contains(t, p["Tags"], map[string]any{"Key": "env", "Value": "staging"})
	assert.Contains(t, p["Tags"], map[string]any{"Key": "app", "Value": "hasp"})
}

// TestSAMEquivalent keeps ../template.yaml equivalent to the CDK stack on
// the points that matter: routes and their authorization, key schema,
// runtime and architecture, and the function's IAM actions.
func TestSAMEquivalent(t *testing.T) {
	b, err := os.ReadFile("../template.yaml")
	require.NoError(t, err)
	var sam struct {
		Resources map[string]struct {
			Type       string         `yaml:"Type"`
			Properties map[string]any `yaml:"Properties"`
		} `yaml:"Resources"`
	}
	require.NoError(t, yaml.Unmarshal(b, &sam))
	cdk := synth(t, "dev")

	samRoutes := map[string]string{}
	fn := sam.Resources["HaspFunction"].Properties
	for _, ev := range fn["Events"].(map[string]any) {
		p := ev.(map[string]any)["Properties"].(map[string]any)
		key := p["Method"].(string) + " " + p["Path"].(string)
		if key == "ANY $default" {
			key = "$default"
		}
		auth := "AWS_IAM" // the API's DefaultAuthorizer
		if a, ok := p["Auth"].(map[string]any); ok && a["Authorizer"] == "NONE" {
			auth = "NONE"
		}
		samRoutes[key] = auth
	}
	assert.Equal(t, routes(t, cdk), samRoutes, "routes and authorization")
	cdkStage := props(one(t, cdk, "AWS::ApiGatewayV2::Stage"))
	assert.Equal(t, jsonValue(t, cdkStage["RouteSettings"]), jsonValue(t, sam.Resources["HaspApi"].Properties["RouteSettings"]), "per-route throttles")

	cdkFn := map[string]any{}
	for _, r := range resources(cdk, "AWS::Lambda::Function") {
		if props(r)["Handler"] == "bootstrap" {
			cdkFn = props(r)
		}
	}
	assert.Equal(t, cdkFn["Runtime"], fn["Runtime"])
	assert.Equal(t, cdkFn["Architectures"], fn["Architectures"])

	samTable := sam.Resources["LocksTable"].Properties
	cdkTable := props(one(t, cdk, "AWS::DynamoDB::Table"))
	assert.Equal(t, cdkTable["KeySchema"], samTable["KeySchema"])
	assert.Equal(t, cdkTable["AttributeDefinitions"], samTable["AttributeDefinitions"])
	assert.Equal(t, cdkTable["BillingMode"], samTable["BillingMode"])

	var samActions []string
	for _, pol := range fn["Policies"].([]any) {
		for _, st := range pol.(map[string]any)["Statement"].([]any) {
			for _, a := range st.(map[string]any)["Action"].([]any) {
				samActions = append(samActions, a.(string))
			}
		}
	}
	sort.Strings(samActions)
	want := append([]string(nil), LambdaActions...)
	sort.Strings(want)
	assert.Equal(t, want, samActions, "IAM actions")
}

// jsonValue returns v as encoding/json would decode it (numbers as
// float64), to compare YAML with JSON.
func jsonValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	var out any
	require.NoError(t, json.Unmarshal(b, &out))
	return out
}

// dashboardBody returns the dashboard's JSON body, with CloudFormation
// intrinsics (region, alarm ARNs) replaced by a placeholder.
func dashboardBody(t *testing.T, tpl map[string]any) map[string]any {
	t.Helper()
	body := props(one(t, tpl, "AWS::CloudWatch::Dashboard"))["DashboardBody"]
	var b strings.Builder
	switch v := body.(type) {
	case string:
		b.WriteString(v)
	case map[string]any:
		parts := v["Fn::Join"].([]any)[1].([]any)
		for _, p := range parts {
			if s, ok := p.(string); ok {
				b.WriteString(s)
			} else {
				b.WriteString("INTRINSIC")
			}
		}
	}
	var out map[string]any
	require.NoError(t, json.Unmarshal([]byte(b.String()), &out), b.String())
	return out
}

// TestDashboardLockMetrics: the dashboard keeps its alarm, request and
// DynamoDB widgets and graphs every lock metric the Lambda writes in EMF
// (namespace hasp), with exactly the dimensions the EMF records carry:
// result on the *_total and duration metrics that have a result, op on the
// backend metrics, none on the others.
func TestDashboardLockMetrics(t *testing.T) {
	want := map[string][]string{
		"lock_acquire_total":                    {"result"},
		"lock_acquire_duration_seconds":         {"result"},
		"lock_contended_acquire_total":          {},
		"lock_active_count":                     {},
		"lock_hold_duration_seconds":            {},
		"lock_renew_total":                      {"result"},
		"lock_release_total":                    {"result"},
		"lock_lost_total":                       {},
		"lock_backend_requests_total":           {"op", "result"},
		"lock_backend_request_duration_seconds": {"op"},
		"lock_watches_open":                     {},
		"lock_watch_changes_total":              {},
	}
	body := dashboardBody(t, synth(t, "prod"))
	var titles []string
	alarmWidgets := 0
	got := map[string]map[string][]string{} // metric -> dimension -> values seen
	for _, w := range body["widgets"].([]any) {
		p, _ := w.(map[string]any)["properties"].(map[string]any)
		if title, ok := p["title"].(string); ok {
			titles = append(titles, title)
		}
		if ann, ok := p["annotations"].(map[string]any); ok && ann["alarms"] != nil {
			alarmWidgets++
		}
		rows, _ := p["metrics"].([]any)
		for _, r := range rows {
			row := r.([]any)
			ns, ok := row[0].(string)
			if !ok || ns != metrics.CloudWatchNamespace {
				continue
			}
			name := row[1].(string)
			dims := map[string][]string{}
			for i := 2; i+1 < len(row); i += 2 {
				k, isKey := row[i].(string)
				v, isVal := row[i+1].(string)
				if !isKey || !isVal {
					break
				}
				dims[k] = append(dims[k], v)
			}
			var keys []string
			for k := range dims {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			exp, known := want[name]
			require.True(t, known, "the dashboard graphs %s, which the Lambda does not write", name)
			assert.Equal(t, exp, append([]string{}, keys...), "%s: dimensions", name)
			if got[name] == nil {
				got[name] = map[string][]string{}
			}
			for k, v := range dims {
				got[name][k] = append(got[name][k], v...)
			}
		}
	}
	assert.Equal(t, 4, alarmWidgets, "the alarm widgets stay")
	assert.Subset(t, titles, []string{"Requests", "DynamoDB"}, "the existing graphs stay")
	for name := range want {
		assert.Contains(t, got, name, "the dashboard graphs %s", name)
	}
	// Every value of a dimension is graphed, and no other.
	for _, m := range metrics.All {
		for d, vs := range got[m.Name] {
			seen := map[string]bool{}
			for _, v := range vs {
				seen[v] = true
			}
			var list []string
			for v := range seen {
				list = append(list, v)
			}
			sort.Strings(list)
			exp := append([]string{}, m.Labels[d]...)
			sort.Strings(exp)
			assert.Equal(t, exp, list, "%s: every %s value", m.Name, d)
		}
	}
}

// TestRunbookCoversAlarms: docs/runbook.md has a section for every alarm.
func TestRunbookCoversAlarms(t *testing.T) {
	b, err := os.ReadFile("../docs/runbook.md")
	require.NoError(t, err)
	tpl := synth(t, "dev")
	n := 0
	for _, a := range resources(tpl, "AWS::CloudWatch::Alarm") {
		id := strings.TrimPrefix(props(a)["AlarmName"].(string), "hasp-dev-")
		assert.Regexp(t, `(?m)^### `+id+`$`, string(b), "docs/runbook.md explains alarm %s", id)
		n++
	}
	assert.Equal(t, 4, n)
}

// TestRestoredTable: with Table set (-c table=NAME, after a point-in-time
// restore), the function stores in that table and may touch only it, and
// the stack keeps its own table.
func TestRestoredTable(t *testing.T) {
	tpl := synthTable(t, "prod", "hasp-prod-restored-20261125")
	one(t, tpl, "AWS::DynamoDB::Table") // still there, retained, unused
	var fn map[string]any
	for _, r := range resources(tpl, "AWS::Lambda::Function") {
		if props(r)["Handler"] == "bootstrap" {
			fn = props(r)
		}
	}
	require.NotNil(t, fn)
	store, err := json.Marshal(fn["Environment"].(map[string]any)["Variables"].(map[string]any)["HASP_STORE"])
	require.NoError(t, err)
	assert.Contains(t, string(store), "dynamodb://hasp-prod-restored-20261125?cleanup=720h")
	stmts := lambdaStatements(t, tpl)
	require.Len(t, stmts, 1)
	res, err := json.Marshal(stmts[0]["Resource"])
	require.NoError(t, err)
	assert.Contains(t, string(res), ":table/hasp-prod-restored-20261125")
	assert.NotContains(t, string(res), "LocksTable", "not the stack's own table")
	out, err := json.Marshal(tpl["Outputs"].(map[string]any)["TableName"])
	require.NoError(t, err)
	assert.Contains(t, string(out), "hasp-prod-restored-20261125")
}
