package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/lock"
)

// hasp runs the CLI with args against endpoint and returns its exit code,
// stdout and stderr.
func hasp(t *testing.T, endpoint string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(launch.HaspBinary(t), args...)
	cmd.Env = append(cmd.Environ(), "HASP_ENDPOINT="+endpoint)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	require.NoError(t, err)
	return 0, stdout.String(), stderr.String()
}

func TestCLICommands(t *testing.T) {
	s := launch.Hasp(t, nil, "--store", "memory:")
	code, out, errOut := hasp(t, s.URL, "acquire", "cli-a", "--ttl", "30s", "--owner", "me", "--metadata", "m", "--json")
	require.Equal(t, 0, code, errOut)
	var l map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &l))
	assert.Equal(t, "me", l["owner"])
	assert.Equal(t, float64(30000), l["ttl_ms"])
	id := l["lease_id"].(string)

	code, out, _ = hasp(t, s.URL, "status", "cli-a")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, `held by owner "me"`)

	code, _, errOut = hasp(t, s.URL, "acquire", "cli-a", "--wait", "300ms")
	assert.Equal(t, exitHeld, code, "a held lock exits 75")
	assert.Contains(t, errOut, `held by owner "me"`)

	code, out, _ = hasp(t, s.URL, "renew", "cli-a", id, "--ttl", "1m", "--json")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, `"ttl_ms":60000`)
	code, _, _ = hasp(t, s.URL, "release", "cli-a", id)
	assert.Equal(t, 0, code)
	code, _, _ = hasp(t, s.URL, "release", "cli-a", id)
	assert.Equal(t, exitLost, code, "releasing a lost lease exits 76")
	code, _, _ = hasp(t, s.URL, "renew", "cli-a", id)
	assert.Equal(t, exitLost, code)
	code, out, _ = hasp(t, s.URL, "status", "cli-a", "--json")
	assert.Equal(t, 0, code)
	assert.JSONEq(t, `{"name":"cli-a","held":false}`, out)

	code, _, _ = hasp(t, s.URL, "acquire", "bad name")
	assert.Equal(t, exitUsage, code)
	code, _, _ = hasp(t, s.URL, "acquire")
	assert.Equal(t, exitUsage, code, "missing argument")
	code, _, _ = hasp(t, s.URL, "acquire", "x", "--no-such-flag")
	assert.Equal(t, exitUsage, code)
	code, _, _ = hasp(t, "http://127.0.0.1:1", "status", "x", "--timeout", "2s")
	assert.Equal(t, exitUnavailable, code)
	code, out, _ = hasp(t, s.URL, "run", "--help")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "HASP_FENCING_TOKEN")
	assert.Contains(t, out, "75  lock held")
}

func TestCLIAuth(t *testing.T) {
	s := launch.Hasp(t, []string{"HASP_AUTH_TOKENS=tok"}, "--store", "memory:")
	code, _, _ := hasp(t, s.URL, "status", "x")
	assert.Equal(t, exitAuth, code)
	code, _, _ = hasp(t, s.URL, "status", "x", "--token", "tok")
	assert.Equal(t, 0, code)
}

func TestRun(t *testing.T) {
	s := launch.Hasp(t, nil, "--store", "memory:")
	code, out, errOut := hasp(t, s.URL, "run", "nightly", "--", "sh", "-c", `echo "name=$HASP_LOCK_NAME token=$HASP_FENCING_TOKEN id=$HASP_LEASE_ID"; exit 3`)
	assert.Equal(t, 3, code, "run exits with the command's code: %s", errOut)
	assert.Regexp(t, `name=nightly token=[1-9][0-9]* id=[A-Za-z0-9_-]{22,}`, out)
	code, out, _ = hasp(t, s.URL, "status", "nightly")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "is free", "run releases when the command exits")

	code, _, _ = hasp(t, s.URL, "run", "nightly", "--", "true")
	assert.Equal(t, 0, code)
	code, _, _ = hasp(t, s.URL, "run", "nightly", "--", "sh", "-c", "kill -TERM $$")
	assert.Equal(t, 128+15, code, "a command killed by a signal exits 128+signal")
	code, _, _ = hasp(t, s.URL, "run", "nightly", "--", "/no/such/command")
	assert.Equal(t, exitError, code)
	code, _, _ = hasp(t, s.URL, "run", "nightly", "true")
	assert.Equal(t, exitUsage, code, "run needs --")
}

// TestRunHeld: the first run holds the lock; a second one with --wait 1s
// gives up with the documented exit code and never runs its command.
func TestRunHeld(t *testing.T) {
	s := launch.Hasp(t, nil, "--store", "memory:")
	first := exec.Command(launch.HaspBinary(t), "run", "nightly", "--", "sh", "-c", "echo started; sleep 5")
	first.Env = append(first.Environ(), "HASP_ENDPOINT="+s.URL)
	stdout, err := first.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, first.Start())
	buf := make([]byte, 8)
	_, err = io.ReadFull(stdout, buf)
	require.NoError(t, err)
	start := time.Now()
	code, out, _ := hasp(t, s.URL, "run", "nightly", "--wait", "1s", "--", "echo", "second-ran")
	assert.Equal(t, exitHeld, code)
	assert.NotContains(t, out, "second-ran")
	assert.GreaterOrEqual(t, time.Since(start), time.Second)
	require.NoError(t, first.Wait())
}

// TestRunPermits: `hasp run --permits 2` lets two commands hold the name
// at once and keeps a third out; `hasp status` lists the holders; another
// permit count exits 75 at once; `hasp acquire --lock-delay` leaves a
// delay that status and a later acquire show.
func TestRunPermits(t *testing.T) {
	s := launch.Hasp(t, nil, "--store", "memory:")
	var running []*exec.Cmd
	for i := range 2 {
		c := exec.Command(launch.HaspBinary(t), "run", "pool", "--permits", "2", "--owner", fmt.Sprintf("worker-%d", i), "--", "sh", "-c", "echo started; sleep 5")
		c.Env = append(c.Environ(), "HASP_ENDPOINT="+s.URL)
		stdout, err := c.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, c.Start())
		buf := make([]byte, 8)
		_, err = io.ReadFull(stdout, buf)
		require.NoError(t, err)
		running = append(running, c)
	}
	code, out, _ := hasp(t, s.URL, "status", "pool")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "pool: 2 of 2 permits held")
	assert.Contains(t, out, `held by owner "worker-0"`)
	assert.Contains(t, out, `held by owner "worker-1"`)
	code, out, _ = hasp(t, s.URL, "status", "pool", "--json")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, `"permits":2,"held_count":2`)

	code, out, errOut := hasp(t, s.URL, "run", "pool", "--permits", "2", "--wait", "500ms", "--", "echo", "third-ran")
	assert.Equal(t, exitHeld, code)
	assert.NotContains(t, out, "third-ran")
	assert.Contains(t, errOut, "every one of the 2 permits")
	start := time.Now()
	code, _, errOut = hasp(t, s.URL, "run", "pool", "--wait", "5s", "--", "echo", "mutex-ran")
	assert.Equal(t, exitHeld, code, "a mutex on a semaphore's name")
	assert.Contains(t, errOut, "--permits 2, not 1")
	assert.Less(t, time.Since(start), 3*time.Second, "a mismatch does not wait")
	for _, c := range running {
		require.NoError(t, c.Wait())
	}

	code, out, errOut = hasp(t, s.URL, "acquire", "delayed", "--ttl", "1s", "--lock-delay", "2s")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "lock_delay:    2s")
	time.Sleep(1200 * time.Millisecond)
	code, _, errOut = hasp(t, s.URL, "acquire", "delayed")
	assert.Equal(t, exitHeld, code)
	assert.Contains(t, errOut, "lock-delay runs until")
	code, out, _ = hasp(t, s.URL, "status", "delayed")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "expired without a release (lock-delay 2s)")
}

// renewBreaker is a proxy in front of hasp serve that answers 503 to
// every renew, so leases behind it cannot be kept.
func renewBreaker(t *testing.T, target string) string {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/locks/renew" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":{"code":"unavailable","message":"injected"}}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// leaseEnd polls name's status on url until a holder shows, and sends that
// holder's expires_at: with renewals broken, the end of the lease a
// command runs under. Measuring against it leaves out the time the hasp
// process took to start and acquire.
func leaseEnd(t *testing.T, url, name string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		for ctx.Err() == nil {
			var st struct {
				Held      bool   `json:"held"`
				ExpiresAt string `json:"expires_at"`
			}
			if resp, err := http.Get(url + "/v1/locks?name=" + name); err == nil {
				_ = json.NewDecoder(resp.Body).Decode(&st)
				resp.Body.Close()
				if exp, err := lock.ParseTime(st.ExpiresAt); err == nil && st.Held {
					ch <- exp
					return
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return ch
}

// commandDeath returns a shell prefix that makes a command write its pid
// to a file, and a channel that sends the moment that process is first
// seen dead (gone, or a zombie not yet reaped), polled every 2 ms.
func commandDeath(t *testing.T) (prefix string, died <-chan time.Time) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	ch := make(chan time.Time, 1)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		stat := ""
		for ctx.Err() == nil {
			if stat == "" {
				if b, err := os.ReadFile(pidfile); err == nil && strings.HasSuffix(string(b), "\n") {
					stat = "/proc/" + strings.TrimSpace(string(b)) + "/stat"
				}
			} else if b, err := os.ReadFile(stat); err != nil || strings.Contains(string(b), ") Z ") {
				ch <- time.Now()
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return "echo $$ > " + pidfile + "; ", ch
}

// diedBefore asserts that the command seen by commandDeath died before the
// lease seen by leaseEnd ended.
func diedBefore(t *testing.T, died, end <-chan time.Time, msg string) {
	t.Helper()
	var at, exp time.Time
	select {
	case at = <-died:
	case <-time.After(5 * time.Second):
		t.Fatal("the command was never seen dead")
	}
	select {
	case exp = <-end:
	default:
		t.Fatal("the lease was never seen held")
	}
	t.Logf("the command died %s before the lease ended", exp.Sub(at))
	assert.True(t, at.Before(exp), "%s: died at %s, the lease ended at %s", msg, at.Format(time.StampMilli), exp.Format(time.StampMilli))
}

// TestRunLost: when the lease cannot be renewed, the command gets SIGTERM
// before the lease expires, and run exits 76.
func TestRunLost(t *testing.T) {
	s := launch.Hasp(t, nil, "--store", "memory:")
	proxy := renewBreaker(t, s.URL)
	end := leaseEnd(t, s.URL, "lost")
	pid, died := commandDeath(t)
	code, out, errOut := hasp(t, proxy, "run", "lost", "--ttl", "2s", "--", "sh", "-c", pid+`sleep 30 & trap 'echo got-term; kill $!; exit 0' TERM; wait`)
	diedBefore(t, died, end, "terminated before the 2 s lease could expire")
	assert.Equal(t, exitLost, code, errOut)
	assert.Contains(t, out, "got-term")
	assert.Contains(t, errOut, "lost")
}

// TestRunLostKill: a command that ignores SIGTERM is killed after --grace.
func TestRunLostKill(t *testing.T) {
	s := launch.Hasp(t, nil, "--store", "memory:")
	proxy := renewBreaker(t, s.URL)
	start := time.Now()
	code, _, errOut := hasp(t, proxy, "run", "stubborn", "--ttl", "1s", "--grace", "300ms", "--", "sh", "-c", `trap '' TERM; exec sleep 30`)
	assert.Equal(t, exitLost, code, errOut)
	assert.Less(t, time.Since(start), 5*time.Second, "killed after the grace period")
}

func TestBench(t *testing.T) {
	s := launch.Hasp(t, nil, "--store", "memory:")
	for _, args := range [][]string{
		{"bench", "--store", "memory:", "--workers", "4", "--names", "1", "--hold", "1ms", "--duration", "1s", "--json"},
		{"bench", "--workers", "2", "--names", "2", "--hold", "0", "--duration", "1s", "--json"},
	} {
		code, out, errOut := hasp(t, s.URL, args...)
		require.Equal(t, 0, code, errOut)
		var r struct {
			Cycles  int64   `json:"cycles"`
			Rate    float64 `json:"cycles_per_second"`
			Errors  int64   `json:"errors"`
			Acquire struct {
				Count int     `json:"count"`
				P99   float64 `json:"p99_ms"`
			} `json:"acquire"`
			Requests float64 `json:"backend_requests_per_cycle"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &r), out)
		assert.Positive(t, r.Cycles)
		assert.Positive(t, r.Rate)
		assert.Zero(t, r.Errors)
		assert.Equal(t, int(r.Cycles), r.Acquire.Count)
		assert.Positive(t, r.Acquire.P99)
		if args[1] == "--store" {
			assert.Zero(t, r.Requests, "memory: has no backend requests")
		} else {
			assert.Equal(t, float64(-1), r.Requests, "not countable through HTTP")
		}
	}
	code, out, _ := hasp(t, s.URL, "bench", "--workers", "1", "--duration", "1s")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "cycles:")
	assert.Contains(t, out, "acquire:")
}
