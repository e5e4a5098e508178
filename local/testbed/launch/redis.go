package launch

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RedisServer is a redis-server process started for a test.
type RedisServer struct {
	// Addr is its address, "127.0.0.1:PORT".
	Addr string
	// Dir is its working directory, where it keeps its append-only file.
	Dir string
	// Proc is the process; Restart and Kill act on it.
	Proc *Proc
}

// Redis starts redis-server (Debian package redis-server, installed by
// `make deps`) on a free loopback port with its data in a temporary
// directory: the append-only file on with `appendfsync everysec`, no RDB
// snapshots. extra arguments are appended to the command line (for
// example "--appendonly", "no"). It polls until the server answers PING
// and stops it by PID when the test ends. Without redis-server the test is
// skipped, or fails under CI=true.
func Redis(t testing.TB, extra ...string) *RedisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	Require(t, err == nil, "redis-server", "Debian package redis-server: run `make deps`")
	r := &RedisServer{Addr: "127.0.0.1:" + strconv.Itoa(FreePort(t)), Dir: t.TempDir()}
	_, port, _ := net.SplitHostPort(r.Addr)
	argv := append([]string{bin,
		"--port", port, "--bind", "127.0.0.1", "--dir", r.Dir,
		"--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
		"--daemonize", "no", "--logfile", "",
	}, extra...)
	r.Proc = StartProc(t, "redis-server", nil, RedisReady(r.Addr), argv...)
	return r
}

// Restart kills the server (SIGKILL: no shutdown save) and starts it again
// on the same port and directory, so that it reloads its append-only file.
func (r *RedisServer) Restart(t testing.TB) {
	t.Helper()
	r.Proc.Restart(t, RedisReady(r.Addr))
}

// Kill stops the server (SIGKILL) and leaves it stopped.
func (r *RedisServer) Kill() { r.Proc.Stop() }

// RedisReady returns a readiness check that succeeds once the server at
// addr answers PING with PONG, or asks for a password (NOAUTH), rather
// than LOADING.
func RedisReady(addr string) func() bool {
	return func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := fmt.Fprint(c, "PING\r\n"); err != nil {
			return false
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		return err == nil && (strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH"))
	}
}
