// Package launch starts the local servers that tests run against: the
// hasp binary itself (`hasp serve`), built once per test process, and the
// emulators of the cloud backends. Every server binds
// to 127.0.0.1 on a free port and is stopped when its test ends.
package launch

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	haspBin   string
	buildErr  error
)

// HaspBinary builds cmd/hasp once per process and returns its path.
func HaspBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hasp-bin")
		if err != nil {
			buildErr = err
			return
		}
		haspBin = filepath.Join(dir, "hasp")
		out, err := exec.Command("go", "build", "-o", haspBin, "github.com/hasplock/hasp/cmd/hasp").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("building hasp: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return haspBin
}

// Server is a running `hasp serve` process.
type Server struct {
	// URL is where it listens, e.g. "http://127.0.0.1:40123".
	URL  string
	cmd  *exec.Cmd
	done chan error

	mu   sync.Mutex
	logs strings.Builder
}

// Logs returns what the server wrote to stderr so far.
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

var listening = regexp.MustCompile(`listening on (http://\S+)`)

// Hasp starts `hasp serve --listen 127.0.0.1:0 ARGS...` with env added to
// the environment, waits until it says where it listens, and stops it when
// the test ends.
func Hasp(t testing.TB, env []string, args ...string) *Server {
	t.Helper()
	cmd := exec.Command(HaspBinary(t), append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Server{cmd: cmd, done: make(chan error, 1)}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.logs.WriteString(line + "\n")
			s.mu.Unlock()
			if m := listening.FindStringSubmatch(line); m != nil {
				urlc <- m[1]
			}
		}
		s.done <- cmd.Wait()
	}()
	select {
	case s.URL = <-urlc:
	case err := <-s.done:
		t.Fatalf("hasp serve exited: %v\n%s", err, s.Logs())
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("hasp serve did not say where it listens")
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// Stop sends SIGTERM and waits for the process to exit; it reports a
// non-zero exit. Stopping twice is harmless.
func (s *Server) Stop() error {
	if s.cmd.ProcessState != nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			return fmt.Errorf("hasp serve did not exit cleanly on SIGTERM: %v", err)
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		return fmt.Errorf("hasp serve did not stop on SIGTERM")
	}
}
