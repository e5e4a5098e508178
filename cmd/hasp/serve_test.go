package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/api/apitest"
)

var haspBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hasp-bin")
	if err != nil {
		panic(err)
	}
	haspBin = filepath.Join(dir, "hasp")
	out, err := exec.Command("go", "build", "-o", haspBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building hasp: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a running `hasp serve` process.
type server struct {
	cmd  *exec.Cmd
	url  string
	done chan error
	logs *strings.Builder
}

var listening = regexp.MustCompile(`listening on (http://\S+)`)

// startServe runs the hasp binary with args and waits until it says where
// it listens.
func startServe(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(haspBin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	s := &server{cmd: cmd, done: make(chan error, 1), logs: &strings.Builder{}}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.logs.WriteString(line + "\n")
			if m := listening.FindStringSubmatch(line); m != nil {
				urlc <- m[1]
			}
		}
		s.done <- cmd.Wait()
	}()
	select {
	case s.url = <-urlc:
	case err := <-s.done:
		t.Fatalf("hasp serve exited: %v\n%s", err, s.logs)
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("hasp serve did not say where it listens")
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	if s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		assert.NoError(t, err, "hasp serve exits 0 on SIGTERM")
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Error("hasp serve did not stop on SIGTERM")
	}
}

func TestServeMemory(t *testing.T) {
	s := startServe(t, nil, "--store", "memory:")
	apitest.Run(t, apitest.Target{BaseURL: s.url, Provider: "memory"})
}

func TestServeEmbedded(t *testing.T) {
	s := startServe(t, nil, "--store", "embedded:"+t.TempDir())
	apitest.Run(t, apitest.Target{BaseURL: s.url, Provider: "etcd"})
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
	code, a := post(t, s.url+"/v1/locks/acquire", `{"name":"nightly","ttl_ms":60000,"owner":"cron"}`)
	require.Equal(t, 200, code, "%v", a)
	code, b := post(t, s.url+"/v1/locks/acquire", `{"name":"other","ttl_ms":60000}`)
	require.Equal(t, 200, code)
	code, _ = post(t, s.url+"/v1/locks/release", fmt.Sprintf(`{"name":"other","lease_id":%q}`, b["lease_id"]))
	require.Equal(t, 200, code)
	s.stop(t)

	s = startServe(t, nil, "--store", "embedded:"+dir)
	resp, err := http.Get(s.url + "/v1/locks?name=nightly")
	require.NoError(t, err)
	var st map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	resp.Body.Close()
	assert.Equal(t, true, st["held"])
	assert.Equal(t, a["fencing_token"], st["fencing_token"])
	assert.Equal(t, "cron", st["owner"])
	code, r := post(t, s.url+"/v1/locks/renew", fmt.Sprintf(`{"name":"nightly","lease_id":%q}`, a["lease_id"]))
	require.Equal(t, 200, code, "%v", r)
	assert.Equal(t, a["fencing_token"], r["fencing_token"])
	code, _ = post(t, s.url+"/v1/locks/release", fmt.Sprintf(`{"name":"nightly","lease_id":%q}`, a["lease_id"]))
	require.Equal(t, 200, code)
	code, a2 := post(t, s.url+"/v1/locks/acquire", `{"name":"nightly"}`)
	require.Equal(t, 200, code)
	assert.Greater(t, a2["fencing_token"], a["fencing_token"])
	code, b2 := post(t, s.url+"/v1/locks/acquire", `{"name":"other"}`)
	require.Equal(t, 200, code)
	assert.Greater(t, b2["fencing_token"], b["fencing_token"])
}

func TestServeAuth(t *testing.T) {
	f := filepath.Join(t.TempDir(), "tokens")
	require.NoError(t, os.WriteFile(f, []byte("# ops\nfrom-file\n"), 0o600))
	s := startServe(t, []string{"HASP_AUTH_TOKENS=from-env"}, "--store", "memory:", "--auth-token-file", f)
	code, _ := post(t, s.url+"/v1/locks/acquire", `{"name":"a"}`)
	assert.Equal(t, http.StatusUnauthorized, code)
	for _, tok := range []string{"from-file", "from-env"} {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, s.url+"/v1/locks?name=a", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, tok)
	}
	apitest.Run(t, apitest.Target{BaseURL: s.url, Header: http.Header{"Authorization": {"Bearer from-file"}}, Contenders: 4, Rounds: 5})
}

func TestServeLogsNoLeaseID(t *testing.T) {
	s := startServe(t, nil, "--store", "memory:")
	code, a := post(t, s.url+"/v1/locks/acquire", `{"name":"secret-check"}`)
	require.Equal(t, 200, code)
	post(t, s.url+"/v1/locks/renew", fmt.Sprintf(`{"name":"secret-check","lease_id":%q}`, a["lease_id"]))
	post(t, s.url+"/v1/locks/release", fmt.Sprintf(`{"name":"secret-check","lease_id":%q}`, a["lease_id"]))
	s.stop(t)
	logs := s.logs.String()
	assert.Contains(t, logs, `"path":"/v1/locks/renew"`, "requests are logged")
	assert.NotContains(t, logs, a["lease_id"].(string), "logs never contain a lease_id")
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if strings.HasPrefix(line, "{") {
			assert.True(t, json.Valid([]byte(line)), "log line is JSON: %s", line)
		}
	}
}

func TestServeBadStore(t *testing.T) {
	out, err := exec.Command(haspBin, "serve", "--store", "nosuch://x").CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "unknown store scheme")
}
