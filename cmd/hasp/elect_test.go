package main

import (
	"bufio"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/launch"
)

// TestElect: the command runs while leader with the leader's value in its
// environment, the leadership ends (and the lock is free) when it exits,
// and elect exits with its code.
func TestElect(t *testing.T) {
	s := launch.Hasp(t, nil, "--store", "memory:")
	code, out, errOut := hasp(t, s.URL, "elect", "sched", "--value", "a:8080", "--", "sh", "-c", `echo "value=$HASP_LEADER_VALUE token=$HASP_FENCING_TOKEN"; exit 4`)
	assert.Equal(t, 4, code, errOut)
	assert.Regexp(t, `value=a:8080 token=[1-9][0-9]*`, out)
	code, out, _ = hasp(t, s.URL, "status", "sched")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "is free", "elect resigns when the command exits")
	code, _, _ = hasp(t, s.URL, "elect", "sched", "--", "true")
	assert.Equal(t, exitUsage, code, "--value is required")
	code, _, _ = hasp(t, s.URL, "elect", "sched", "--value", "v", "true")
	assert.Equal(t, exitUsage, code, "elect needs --")
}

// TestElectLostKillsBeforeLeaseEnds: a command that ignores SIGTERM is
// killed before the lease can end, whatever --grace says.
func TestElectLostKillsBeforeLeaseEnds(t *testing.T) {
	s := launch.Hasp(t, nil, "--store", "memory:")
	proxy := renewBreaker(t, s.URL)
	end := leaseEnd(t, s.URL, "stubborn")
	pid, died := commandDeath(t)
	code, _, errOut := hasp(t, proxy, "elect", "stubborn", "--value", "v", "--ttl", "2s", "--grace", "1m", "--", "sh", "-c", pid+`trap '' TERM; exec sleep 30`)
	diedBefore(t, died, end, "killed before the 2 s lease could end")
	assert.Equal(t, exitLost, code, errOut)
}

// TestObserveAndList: observe prints the current leader and each change
// as JSON lines; list prints the held locks under a prefix.
func TestObserveAndList(t *testing.T) {
	s := launch.Hasp(t, nil, "--store", "memory:")
	obs := exec.Command(launch.HaspBinary(t), "observe", "jobs/leader")
	obs.Env = append(obs.Environ(), "HASP_ENDPOINT="+s.URL)
	stdout, err := obs.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, obs.Start())
	t.Cleanup(func() { _ = obs.Process.Kill(); _ = obs.Wait() })
	lines := bufio.NewScanner(stdout)
	next := func() map[string]any {
		t.Helper()
		got := make(chan map[string]any, 1)
		go func() {
			var m map[string]any
			if lines.Scan() {
				_ = json.Unmarshal(lines.Bytes(), &m)
			}
			got <- m
		}()
		select {
		case m := <-got:
			require.NotNil(t, m, "a JSON line")
			return m
		case <-time.After(10 * time.Second):
			t.Fatal("no line from hasp observe")
			return nil
		}
	}
	assert.Equal(t, map[string]any{"name": "jobs/leader", "held": false}, next())

	code, _, errOut := hasp(t, s.URL, "acquire", "jobs/leader", "--metadata", "host-1", "--owner", "o1")
	require.Equal(t, 0, code, errOut)
	m := next()
	assert.Equal(t, true, m["held"])
	assert.Equal(t, "host-1", m["value"])
	assert.Equal(t, "o1", m["owner"])
	assert.Positive(t, m["fencing_token"])

	code, _, errOut = hasp(t, s.URL, "acquire", "jobs/other", "--owner", "o2")
	require.Equal(t, 0, code, errOut)
	code, out, errOut := hasp(t, s.URL, "list", "--prefix", "jobs/", "--limit", "1", "--json")
	require.Equal(t, 0, code, errOut)
	rows := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, rows, 2, out)
	assert.Contains(t, rows[0], `"name":"jobs/leader"`)
	assert.Contains(t, rows[1], `"name":"jobs/other"`)
	code, out, _ = hasp(t, s.URL, "list", "--prefix", "nothing/")
	assert.Equal(t, 0, code)
	assert.Empty(t, out)
	code, _, _ = hasp(t, s.URL, "list", "--prefix", "bad prefix")
	assert.Equal(t, exitUsage, code, "an invalid prefix is a usage error")
}
