package zookeeper_test

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/providers/zookeeper"
)

// TestMain stops the one ZooKeeper server the package's tests share.
func TestMain(m *testing.M) {
	code := m.Run()
	launch.StopSharedZooKeeper()
	os.Exit(code)
}

// prefix returns a prefix of the tree that only t uses.
func prefix(t *testing.T) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "/hasp-test/" + strings.NewReplacer("/", ".").Replace(t.Name()) + "." + hex.EncodeToString(b[:])
}

// dial connects a plain client to addr, to look at the tree, and closes
// it when t ends.
func dial(t *testing.T, addr string) *zk.Conn {
	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	require.NoError(t, err)
	t.Cleanup(conn.Close)
	return conn
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}

// open returns a provider on its own sessions with addr, under pfx.
func open(t *testing.T, addr, pfx string, opts ...zookeeper.Option) *zookeeper.Provider {
	p, err := zookeeper.New([]string{addr}, append([]zookeeper.Option{zookeeper.WithPrefix(pfx)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// ZooKeeper request opcodes (the jute protocol's OpCode), by name.
var opNames = map[int32]string{
	1: "create", 2: "delete", 3: "exists", 4: "get", 5: "set", 8: "children", 9: "sync",
	12: "children2", 13: "check", 14: "multi", 15: "create2", 100: "auth", 101: "setWatches",
}

// wireProxy forwards ZooKeeper client connections to a server and reads
// the requests on the way: it counts them by opcode (pings and session
// close aside), and can drop the answer to a request it is told to, after
// the server received it, by closing the connection before any byte of
// the answer passes.
type wireProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	counts map[string]int
	drop   func(op string) bool // consulted for each request while set
	before func(op string)      // called for each request while set, before it is passed on
	conns  []net.Conn
	wg     sync.WaitGroup

	dropped atomic.Int64
	blocked atomic.Bool
}

// block cuts every connection and refuses new ones while on.
func (p *wireProxy) block(on bool) {
	p.blocked.Store(on)
	if on {
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.conns = nil
		p.mu.Unlock()
	}
}

func newWireProxy(t *testing.T, target string) *wireProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &wireProxy{ln: ln, target: target, counts: map[string]int{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *wireProxy) addr() string { return p.ln.Addr().String() }

// reset returns the counts so far and starts again from zero.
func (p *wireProxy) reset() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.counts
	p.counts = map[string]int{}
	return c
}

// dropAnswer makes the proxy drop the answer to the next request whose
// opcode is op.
func (p *wireProxy) dropAnswer(op string) { p.dropAnswerThen(op, func() {}) }

// dropAnswerThen is dropAnswer, calling fn when the request is seen,
// before it is passed on.
func (p *wireProxy) dropAnswerThen(op string, fn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var once atomic.Bool
	p.drop = func(o string) bool {
		if o == op && once.CompareAndSwap(false, true) {
			fn()
			return true
		}
		return false
	}
}

// onRequest makes the proxy call fn with the opcode of each request it
// sees, before it passes the request on (with the proxy's lock held: fn
// must not use the proxy); nil stops it.
func (p *wireProxy) onRequest(fn func(op string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.before = fn
}

func (p *wireProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.blocked.Load() {
			_ = c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		var dropping atomic.Bool
		closeBoth := sync.OnceFunc(func() { _ = c.Close(); _ = s.Close() })
		p.wg.Add(2)
		go func() { // requests, frame by frame
			defer p.wg.Done()
			defer closeBoth()
			first := true
			for {
				var n [4]byte
				if _, err := io.ReadFull(c, n[:]); err != nil {
					return
				}
				body := make([]byte, binary.BigEndian.Uint32(n[:]))
				if _, err := io.ReadFull(c, body); err != nil {
					return
				}
				if !first && len(body) >= 8 {
					// requestHeader: xid, opcode. The first frame of a
					// connection is the session handshake.
					if name, ok := opNames[int32(binary.BigEndian.Uint32(body[4:8]))]; ok {
						p.mu.Lock()
						p.counts[name]++
						if p.drop != nil && p.drop(name) {
							dropping.Store(true)
							p.dropped.Add(1)
						}
						if p.before != nil {
							p.before(name)
						}
						p.mu.Unlock()
					}
				}
				first = false
				if _, err := s.Write(append(n[:], body...)); err != nil {
					return
				}
			}
		}()
		go func() { // answers
			defer p.wg.Done()
			defer closeBoth()
			buf := make([]byte, 32<<10)
			for {
				n, err := s.Read(buf)
				if dropping.Load() {
					return // the request went through; its answer never arrives
				}
				if n > 0 {
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}
