package launch

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ZooKeeperOptions configures a test ZooKeeper server.
type ZooKeeperOptions struct {
	// Fsync makes the server fsync its transaction log before it answers
	// a write, as a production server does. Off by default: a test server
	// killed with SIGKILL loses nothing the kernel already holds, and
	// fsync on a shared disk makes every write cost milliseconds.
	Fsync bool
}

// ZooKeeperServer is a standalone ZooKeeper server (Debian package
// zookeeper, 3.8) started for tests on a free loopback port, with its data
// in a temporary directory.
type ZooKeeperServer struct {
	// Addr is where it listens for clients, "127.0.0.1:PORT".
	Addr string
	// Dir holds zoo.cfg and the data directory.
	Dir string
	// Proc is the server process.
	Proc *Proc

	removeDir bool
}

// zookeeperJars are the jars the standalone server needs (Debian puts them
// in /usr/share/java; HASP_ZOOKEEPER_JARS names another directory). The
// NOP binding keeps its logging quiet; the logs of a failed start are in
// the error all the same, since it prints them to stdout.
var zookeeperJars = []string{"zookeeper.jar", "zookeeper-jute.jar", "slf4j-api.jar"}

// findZooKeeper returns the java binary and the server's classpath, or
// why they cannot be found.
func findZooKeeper() (java, classpath string, err error) {
	java, err = exec.LookPath("java")
	if home := os.Getenv("JAVA_HOME"); home != "" {
		java, err = filepath.Join(home, "bin", "java"), nil
	}
	if err != nil {
		return "", "", errors.New("java is not on PATH")
	}
	dir := os.Getenv("HASP_ZOOKEEPER_JARS")
	if dir == "" {
		dir = "/usr/share/java"
	}
	var cp []string
	for _, j := range zookeeperJars {
		p := filepath.Join(dir, j)
		if _, err := os.Stat(p); err != nil {
			return "", "", fmt.Errorf("%s is missing", p)
		}
		cp = append(cp, p)
	}
	if p := filepath.Join(dir, "slf4j-nop.jar"); fileExists(p) {
		cp = append(cp, p)
	}
	return java, strings.Join(cp, string(os.PathListSeparator)), nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

const zookeeperHow = "Debian package zookeeper: `make deps`, or apt-get install --no-install-recommends zookeeper"

// ZooKeeper starts a standalone ZooKeeper server for t and stops it when
// t ends. Without ZooKeeper installed the test is skipped, or fails under
// CI=true. Starting a JVM costs a second or so of CPU: a package's tests
// should share one server (SharedZooKeeper) and keep apart by prefix.
func ZooKeeper(t testing.TB, opts ZooKeeperOptions) *ZooKeeperServer {
	t.Helper()
	_, _, err := findZooKeeper()
	Require(t, err == nil, "ZooKeeper", fmt.Sprintf("%v; %s", err, zookeeperHow))
	s, err := StartZooKeeper(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

var shared struct {
	sync.Mutex
	zk  *ZooKeeperServer
	err error
}

// SharedZooKeeper returns this test process's one ZooKeeper server,
// started on first use. It outlives the test that started it: the
// package's TestMain must call StopSharedZooKeeper after m.Run. Tests that
// share it keep apart by using distinct prefixes; a test that restarts it
// (Restart) must not run in parallel with others.
func SharedZooKeeper(t testing.TB) *ZooKeeperServer {
	t.Helper()
	_, _, err := findZooKeeper()
	Require(t, err == nil, "ZooKeeper", fmt.Sprintf("%v; %s", err, zookeeperHow))
	shared.Lock()
	defer shared.Unlock()
	if shared.zk == nil && shared.err == nil {
		dir, err := os.MkdirTemp("", "hasp-zookeeper")
		if err == nil {
			shared.zk, err = StartZooKeeper(dir, ZooKeeperOptions{})
			if err != nil {
				_ = os.RemoveAll(dir)
			} else {
				shared.zk.removeDir = true
			}
		}
		shared.err = err
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.zk
}

// StopSharedZooKeeper stops the server SharedZooKeeper started, if any,
// and removes its data. Call it from TestMain after m.Run.
func StopSharedZooKeeper() {
	shared.Lock()
	defer shared.Unlock()
	if shared.zk != nil {
		shared.zk.Stop()
		shared.zk = nil
	}
}

// StartZooKeeper starts a standalone ZooKeeper server on a free loopback
// port, with zoo.cfg and the data directory under dir, and waits until it
// serves requests. The caller stops it with Stop.
func StartZooKeeper(dir string, opts ZooKeeperOptions) (*ZooKeeperServer, error) {
	java, cp, err := findZooKeeper()
	if err != nil {
		return nil, fmt.Errorf("ZooKeeper is not installed (%v; %s)", err, zookeeperHow)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	// tickTime 500 ms lets clients ask for sessions of 1 to 10 s;
	// maxClientCnxns=0 lifts the limit of 60 connections per address that
	// parallel tests on loopback would reach.
	cfg := fmt.Sprintf(`tickTime=500
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok
maxClientCnxns=0
forceSync=%s
`, data, port, map[bool]string{true: "yes", false: "no"}[opts.Fsync])
	conf := filepath.Join(dir, "zoo.cfg")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	s := &ZooKeeperServer{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir}
	s.Proc = &Proc{name: "zookeeper", dieWithParent: true, argv: []string{
		java, "-Xms32m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.net.preferIPv4Stack=true",
		"-cp", cp, "org.apache.zookeeper.server.ZooKeeperServerMain", conf,
	}}
	if err := s.Proc.start(s.serving); err != nil {
		return nil, err
	}
	return s, nil
}

// serving reports whether the server answers the srvr command with its
// mode: "ruok" answers imok before the server has loaded its data.
func (s *ZooKeeperServer) serving() bool {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return false
	}
	var b strings.Builder
	buf := make([]byte, 1024)
	for {
		n, err := c.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return strings.Contains(b.String(), "\nMode: ")
}

// Restart kills the server (SIGKILL, as a crash would) and starts it again
// on the same port from the same data directory, waiting until it serves.
// It may be called from any goroutine.
func (s *ZooKeeperServer) Restart() error {
	s.Proc.Stop()
	return s.Proc.start(s.serving)
}

// Stop kills the server and waits for it to exit.
func (s *ZooKeeperServer) Stop() {
	s.Proc.Stop()
	if s.removeDir {
		_ = os.RemoveAll(s.Dir)
	}
}
