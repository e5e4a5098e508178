package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/api/apitest"
	"github.com/hasplock/hasp/local/testbed/launch"
)

func startServe(t *testing.T, env []string, args ...string) *launch.Server {
	return launch.Hasp(t, env, args...)
}

func TestServeMemory(t *testing.T) {
	s := startServe(t, nil, "--store", "memory:")
	apitest.Run(t, apitest.Target{BaseURL: s.URL, Provider: "memory"})
}

func TestServeEmbedded(t *testing.T) {
	s := startServe(t, nil, "--store", "embedded:"+t.TempDir())
	apitest.Run(t, apitest.Target{BaseURL: s.URL, Provider: "etcd"})
}

func post(t *testing.T, url string, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	return resp.StatusCode, m
}

// TestServeEmbeddedRestart: a valid lease survives a restart with its
// token, and the next acquire's token is greater.
func TestServeEmbeddedRestart(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, nil, "--store", "embedded:"+dir)
	code, a := post(t, s.URL+"/v1/locks/acquire", `{"name":"nightly","ttl_ms":60000,"owner":"cron"}`)
	require.Equal(t, 200, code, "%v", a)
	code, b := post(t, s.URL+"/v1/locks/acquire", `{"name":"other","ttl_ms":60000}`)
	require.Equal(t, 200, code)
	code, _ = post(t, s.URL+"/v1/locks/release", fmt.Sprintf(`{"name":"other","lease_id":%q}`, b["lease_id"]))
	require.Equal(t, 200, code)
	require.NoError(t, s.Stop())

	s = startServe(t, nil, "--store", "embedded:"+dir)
	resp, err := http.Get(s.URL + "/v1/locks?name=nightly")
	require.NoError(t, err)
	var st map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	resp.Body.Close()
	assert.Equal(t, true, st["held"])
	assert.Equal(t, a["fencing_token"], st["fencing_token"])
	assert.Equal(t, "cron", st["owner"])
	code, r := post(t, s.URL+"/v1/locks/renew", fmt.Sprintf(`{"name":"nightly","lease_id":%q}`, a["lease_id"]))
	require.Equal(t, 200, code, "%v", r)
	assert.Equal(t, a["fencing_token"], r["fencing_token"])
	code, _ = post(t, s.URL+"/v1/locks/release", fmt.Sprintf(`{"name":"nightly","lease_id":%q}`, a["lease_id"]))
	require.Equal(t, 200, code)
	code, a2 := post(t, s.URL+"/v1/locks/acquire", `{"name":"nightly"}`)
	require.Equal(t, 200, code)
	assert.Greater(t, a2["fencing_token"], a["fencing_token"])
	code, b2 := post(t, s.URL+"/v1/locks/acquire", `{"name":"other"}`)
	require.Equal(t, 200, code)
	assert.Greater(t, b2["fencing_token"], b["fencing_token"])
}

func TestServeAuth(t *testing.T) {
	f := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(f, []byte("# ops\nfrom-file\n"), 0o600))
	s := startServe(t, []string{"HASP_AUTH_TOKENS=from-env"}, "--store", "memory:", "--auth-token-file", f)
	code, _ := post(t, s.URL+"/v1/locks/acquire", `{"name":"a"}`)
	assert.Equal(t, http.StatusUnauthorized, code)
	for _, tok := range []string{"from-file", "from-env"} {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, s.URL+"/v1/locks?name=a", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, tok)
	}
	apitest.Run(t, apitest.Target{BaseURL: s.URL, Header: http.Header{"Authorization": {"Bearer from-file"}}, Contenders: 4, Rounds: 5})
}

func TestServeLogsNoLeaseID(t *testing.T) {
	s := startServe(t, nil, "--store", "memory:")
	code, a := post(t, s.URL+"/v1/locks/acquire", `{"name":"secret-check"}`)
	require.Equal(t, 200, code)
	post(t, s.URL+"/v1/locks/renew", fmt.Sprintf(`{"name":"secret-check","lease_id":%q}`, a["lease_id"]))
	post(t, s.URL+"/v1/locks/release", fmt.Sprintf(`{"name":"secret-check","lease_id":%q}`, a["lease_id"]))
	require.NoError(t, s.Stop())
	logs := s.Logs()
	assert.Contains(t, logs, `"path":"/v1/locks/renew"`, "requests are logged")
	assert.NotContains(t, logs, a["lease_id"].(string), "logs never contain a lease_id")
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if strings.HasPrefix(line, "{") {
			assert.True(t, json.Valid([]byte(line)), "log line is JSON: %s", line)
		}
	}
}

// TestServeBadStore: a store URL that cannot be opened, including a
// misspelt parameter of any store, stops hasp serve with a clear message.
func TestServeBadStore(t *testing.T) {
	for store, want := range map[string]string{
		"nosuch://x":                    "unknown store scheme",
		"dynamodb://locks?clenaup=720h": `unknown parameter "clenaup" (allowed: cleanup)`,
		"spanner://projects/p/instances/i/databases/d?tabel=t": `unknown parameter "tabel" (allowed: table)`,
		"cosmos://hasp/locks?x=1":                              `unknown parameter "x" (allowed: none)`,
		"etcd://127.0.0.1:1?prefx=a":                           `unknown parameter "prefx"`,
		"memory:?x=1":                                          `unknown parameter "x"`,
		"embedded:./d?fsync=off":                               `unknown parameter "fsync"`,
	} {
		t.Run(store, func(t *testing.T) {
			out, err := exec.Command(launch.HaspBinary(t), "serve", "--store", store, "--listen", "127.0.0.1:0").CombinedOutput()
			require.Error(t, err)
			assert.Contains(t, string(out), want)
		})
	}
}

// TestServeDynamoDB: hasp serve --store dynamodb://locks against moto passes
// the same black-box check as the embedded default.
func TestServeDynamoDB(t *testing.T) {
	moto := launch.Moto(t)
	env := []string{"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_ENDPOINT_URL_DYNAMODB=" + moto}
	for _, args := range [][]string{{"store", "init", "--store", "dynamodb://locks"}, {"dynamodb", "create-table", "locks"}} {
		cmd := exec.Command(launch.HaspBinary(t), args...)
		cmd.Env = append(cmd.Environ(), env...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Contains(t, string(out), "store dynamodb://locks (dynamodb) is ready", "the old command is an alias")
	}
	s := startServe(t, env, "--store", "dynamodb://locks")
	apitest.Run(t, apitest.Target{BaseURL: s.URL, Provider: "dynamodb", Contenders: 12, Rounds: 8})
}

// TestServeSSM: hasp serve --store ssm:///hasp/locks against moto passes
// the same black-box check as the embedded default, and /v1/health states
// the store's guarantee.
func TestServeSSM(t *testing.T) {
	moto := launch.Moto(t)
	env := []string{"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_ENDPOINT_URL_SSM=" + moto}
	s := startServe(t, env, "--store", "ssm:///hasp/locks")
	apitest.Run(t, apitest.Target{BaseURL: s.URL, Provider: "ssm", Guarantee: "exclusive-stale-reads", Contenders: 12, Rounds: 8})
}

// TestServeSpanner: `hasp spanner create-schema` then hasp serve --store
// spanner://… against the Spanner emulator passes the same black-box check
// as the embedded default.
func TestServeSpanner(t *testing.T) {
	e := launch.Spanner(t)
	env := []string{"SPANNER_EMULATOR_HOST=" + e.Addr}
	store := "spanner://projects/local/instances/hasp/databases/locks"
	// Twice: what exists is left as it is. The old command is an alias.
	for _, args := range [][]string{{"store", "init", "--store", store}, {"spanner", "create-schema", store}} {
		cmd := exec.Command(launch.HaspBinary(t), args...)
		cmd.Env = append(cmd.Environ(), env...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Contains(t, string(out), "store "+store+" (spanner) is ready")
	}
	s := startServe(t, env, "--store", store)
	apitest.Run(t, apitest.Target{BaseURL: s.URL, Provider: "spanner", Contenders: 12, Rounds: 8})
}

// TestServeCosmos: hasp cosmos create-container, then hasp serve --store
// cosmos://hasp/locks against the Cosmos DB emulator, passes the same
// black-box check as the embedded default.
func TestServeCosmos(t *testing.T) {
	e := launch.Cosmos(t)
	for _, args := range [][]string{{"cosmos", "create-container", "hasp", "locks"}, {"store", "init", "--store", "cosmos://hasp/locks"}} {
		cmd := exec.Command(launch.HaspBinary(t), args...)
		cmd.Env = append(cmd.Environ(), e.Env()...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Contains(t, string(out), "store cosmos://hasp/locks (cosmos) is ready")
	}
	s := startServe(t, e.Env(), "--store", "cosmos://hasp/locks")
	apitest.Run(t, apitest.Target{BaseURL: s.URL, Provider: "cosmos", Contenders: 12, Rounds: 8})
}

// TestServeZooKeeper: hasp serve --store zk://… against a real ZooKeeper
// server (standalone, loopback) passes the same black-box check as the
// embedded default; the prefix is created on first use.
func TestServeZooKeeper(t *testing.T) {
	zk := launch.ZooKeeper(t, launch.ZooKeeperOptions{})
	s := startServe(t, nil, "--store", "zk://"+zk.Addr+"/hasp/serve-test?session_timeout=5s")
	apitest.Run(t, apitest.Target{BaseURL: s.URL, Provider: "zookeeper", Contenders: 12, Rounds: 8})
}

// TestServeRedis: hasp serve --store redis://… on a redis-server with its
// append-only file passes the same black-box check as every other store,
// and /v1/health says what it guarantees.
func TestServeRedis(t *testing.T) {
	r := launch.Redis(t)
	s := startServe(t, nil, "--store", "redis://"+r.Addr)
	apitest.Run(t, apitest.Target{BaseURL: s.URL, Provider: "redis", Guarantee: "durable: AOF appendfsync everysec", Contenders: 12, Rounds: 8})
}

// TestServeRedlock: hasp serve --store redlock://a,b,c on three
// independent redis-servers passes the same black-box check.
func TestServeRedlock(t *testing.T) {
	var addrs []string
	for range 3 {
		addrs = append(addrs, launch.Redis(t).Addr)
	}
	s := startServe(t, nil, "--store", "redlock://"+strings.Join(addrs, ","))
	apitest.Run(t, apitest.Target{BaseURL: s.URL, Provider: "redlock",
		Guarantee: "durable: AOF appendfsync everysec on every node, majority 2 of 3", Contenders: 12, Rounds: 8})
}

// TestServeRedisDurability: hasp serve refuses to start on a Redis server
// without persistence, and says why; with ?durability=none it starts and
// /v1/health says "best effort".
func TestServeRedisDurability(t *testing.T) {
	r := launch.Redis(t, "--appendonly", "no")
	cmd := exec.Command(launch.HaspBinary(t), "serve", "--listen", "127.0.0.1:0", "--store", "redis://"+r.Addr)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "%s", out)
	assert.Contains(t, string(out), `appendonly "no"`)
	assert.Contains(t, string(out), "durability=none")

	s := startServe(t, nil, "--store", "redis://"+r.Addr+"?durability=none")
	resp, err := http.Get(s.URL + "/v1/health")
	require.NoError(t, err)
	var h map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&h))
	resp.Body.Close()
	assert.Equal(t, map[string]any{"status": "ok", "provider": "redis", "guarantee": "best effort"}, h)
}

// TestStoreInitErrors: wrong arguments are a usage error; a missing
// endpoint says which variable to set; a store with nothing to create says so.
func TestStoreInitErrors(t *testing.T) {
	tests := []struct {
		args []string
		env  []string
		code int
		want string
	}{
		{[]string{"cosmos", "create-container", "hasp"}, nil, exitUsage, "accepts 2 arg(s)"},
		{[]string{"cosmos", "create-container", "hasp", "locks", "extra"}, nil, exitUsage, "accepts 2 arg(s)"},
		{[]string{"cosmos", "create-container", "hasp", "locks"}, []string{"COSMOS_ENDPOINT="}, exitError, "COSMOS_ENDPOINT is not set"},
		{[]string{"store", "init", "--store", "cosmos://hasp/locks"}, []string{"COSMOS_ENDPOINT="}, exitError, "COSMOS_ENDPOINT is not set"},
		{[]string{"store", "init"}, []string{"HASP_STORE="}, exitUsage, "--store (or HASP_STORE) is required"},
		{[]string{"store", "init", "--store", "memory:"}, nil, -1, "store memory: (memory) needs no set-up"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cmd := exec.Command(launch.HaspBinary(t), tt.args...)
			cmd.Env = append(cmd.Environ(), tt.env...)
			out, err := cmd.CombinedOutput()
			assert.Contains(t, string(out), tt.want)
			if tt.code < 0 {
				require.NoError(t, err)
				return
			}
			var ee *exec.ExitError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, tt.code, ee.ExitCode())
		})
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"etcd://user:p@ss@h1:2379,h2:2379?prefix=x": "etcd://user:xxxxx@h1:2379,h2:2379?prefix=x",
		"etcd://h1:2379":                       "etcd://h1:2379",
		"embedded:./.hasp-data":                "embedded:./.hasp-data",
		"dynamodb://locks":                     "dynamodb://locks",
		"ssm:///hasp/locks":                    "ssm:///hasp/locks",
		"redis://:p@ss@h:6379/0?insecure=true": "redis://:xxxxx@h:6379/0?insecure=true",
	} {
		got := redact(in)
		assert.Equal(t, want, got, in)
		assert.NotContains(t, got, "ss@", in)
	}
}
