package launch

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Require fails the test (under CI=true) or skips it (elsewhere) when a
// server it needs is not installed, saying how to install it.
func Require(t testing.TB, ok bool, what, how string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (%s); under CI=true a missing server fails the run", what, how)
	}
	t.Skipf("%s is not installed (%s)", what, how)
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ModuleRoot returns the directory of the hasp module's go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" || strings.TrimSpace(string(out)) == os.DevNull {
		t.Fatalf("cannot find the module root: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// NodeModule returns the path of file inside the project's node_modules
// (installed by `make deps`), and whether it exists.
func NodeModule(t testing.TB, file string) (string, bool) {
	p := filepath.Join(ModuleRoot(t), "node_modules", file)
	_, err := os.Stat(p)
	return p, err == nil
}

// Proc is a server process started for a test.
type Proc struct {
	name string
	argv []string
	env  []string

	// dieWithParent has the kernel kill the process when the test process
	// dies, even by a timeout's panic that skips every cleanup.
	dieWithParent bool

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	logs    *syncWriter
	stopped bool // Stop killed it: an exit before that is a crash
}

// StartProc starts argv, waits until ready() reports true (polling for up
// to 60 s), and stops the process when the test ends.
func StartProc(t testing.TB, name string, env []string, ready func() bool, argv ...string) *Proc {
	t.Helper()
	p := &Proc{name: name, argv: argv, env: env}
	if err := p.start(ready); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if crash := p.crashed(); crash != "" {
			t.Errorf("%s", crash)
		}
		p.Stop()
	})
	return p
}

// crashed describes how the process ended, with what it printed, when it
// exited while the test still needed it; "" while it runs or after Stop.
// Without it a server that dies mid-test shows only as "connection
// refused" in whatever test came next.
func (p *Proc) crashed() string {
	p.mu.Lock()
	cmd, done, stopped, logs := p.cmd, p.done, p.stopped, p.logs
	p.mu.Unlock()
	if cmd == nil || stopped {
		return ""
	}
	select {
	case <-done:
	default:
		return ""
	}
	out := logs.String()
	if len(out) > 8<<10 {
		out = "…" + out[len(out)-8<<10:]
	}
	return fmt.Sprintf("%s (pid %d) exited during the test: %v; its output:\n%s", p.name, cmd.Process.Pid, cmd.ProcessState, out)
}

func (p *Proc) start(ready func() bool) error {
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	logs := &syncWriter{b: &strings.Builder{}}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // stop its children too
	done := make(chan struct{})
	if p.dieWithParent {
		// The death signal follows the thread that started the process,
		// not the process: start it from a goroutine locked to its thread
		// and keep that thread until the process exits.
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
		started := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if err := cmd.Start(); err != nil {
				started <- err
				return
			}
			started <- nil
			_ = cmd.Wait()
			close(done)
		}()
		if err := <-started; err != nil {
			return fmt.Errorf("starting %s: %w", p.name, err)
		}
	} else {
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting %s: %w", p.name, err)
		}
		go func() { _ = cmd.Wait(); close(done) }()
	}
	p.mu.Lock()
	p.cmd, p.done, p.logs, p.stopped = cmd, done, logs, false
	p.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for !ready() {
		select {
		case <-done:
			return fmt.Errorf("%s exited before it was ready:\n%s", p.name, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			p.Stop()
			return fmt.Errorf("%s not ready after 60s:\n%s", p.name, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// Logs returns what the process wrote to stdout and stderr so far.
func (p *Proc) Logs() string {
	p.mu.Lock()
	logs := p.logs
	p.mu.Unlock()
	if logs == nil {
		return ""
	}
	return logs.String()
}

// Stop kills the process (and its process group) and waits for it.
// Stopping a process that has already exited, or stopping twice, sends no
// signal: once reaped, its pid (and so its group id) may belong to another
// test's server (pid_max is 32768 on the CI machines) and a stale kill would
// take that server down.
func (p *Proc) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
	if p.cmd == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Restart stops the process and starts it again with the same arguments.
func (p *Proc) Restart(t testing.TB, ready func() bool) {
	t.Helper()
	p.Stop()
	if err := p.start(ready); err != nil {
		t.Fatal(err)
	}
}

type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func (w *syncWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.b.Len() < 1<<20 {
		w.b.Write(b)
	}
	return len(b), nil
}

// HTTPReady returns a readiness check that succeeds once url answers any
// HTTP status.
func HTTPReady(url string) func() bool {
	c := &http.Client{Timeout: time.Second}
	return func() bool {
		resp, err := c.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}
}
