package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hasplock/hasp/providers"
)

func init() {
	providers.Register("zk", Open)
}

// Open opens the provider for
// "zk://HOST:PORT[,HOST:PORT...][/PREFIX][?session_timeout=DURATION&max_skew=DURATION]":
// the ensemble's servers (port 2181 when omitted), the znode under which
// locks live (DefaultPrefix when omitted), the session timeout (default
// DefaultSessionTimeout; the server clamps it to between 2 and 20 of its
// ticks) and the maximum clock skew (default DefaultMaxClockSkew, 0 turns
// the check off). Unknown parameters and credentials are refused. It
// returns at once: the client connects in the background, and Ping tells
// whether it has.
func Open(ctx context.Context, u *url.URL) (providers.Provider, error) {
	if err := providers.CheckParams(u, "session_timeout", "max_skew"); err != nil {
		return nil, err
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, fmt.Errorf("zk: store URL %q names no server (zk://host:2181[,host:2181...][/prefix])", u.Redacted())
	}
	if u.User != nil {
		return nil, fmt.Errorf("zk: store URL %q: credentials are not supported (znodes get the open ACL; keep the ensemble on a private network)", u.Redacted())
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("zk: store URL %q: a fragment means nothing here", u.Redacted())
	}
	servers := strings.Split(u.Host, ",")
	for _, s := range servers {
		if s == "" || strings.HasPrefix(s, ":") {
			return nil, fmt.Errorf("zk: store URL %q: empty server in %q", u.Redacted(), u.Host)
		}
	}
	prefix, err := parsePrefix(u.Path)
	if err != nil {
		return nil, fmt.Errorf("zk: store URL %q: %w", u.Redacted(), err)
	}
	duration := func(name string, def, least time.Duration) (time.Duration, error) {
		v := u.Query().Get(name)
		if v == "" {
			return def, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < least {
			return 0, fmt.Errorf("zk: store URL %q: %s=%q is not a duration of at least %s", u.Redacted(), name, v, least)
		}
		return d, nil
	}
	timeout, err := duration("session_timeout", DefaultSessionTimeout, time.Second)
	if err != nil {
		return nil, err
	}
	skew, err := duration("max_skew", DefaultMaxClockSkew, 0)
	if err != nil {
		return nil, err
	}
	return New(servers, WithPrefix(prefix), WithSessionTimeout(timeout), WithMaxClockSkew(skew))
}

// parsePrefix checks a store URL's path as a znode path: "" or "/" mean
// DefaultPrefix; otherwise absolute, without a trailing slash, empty, "."
// or ".." components, or ZooKeeper's reserved /zookeeper tree.
func parsePrefix(path string) (string, error) {
	if path == "" || path == "/" {
		return DefaultPrefix, nil
	}
	for _, part := range strings.Split(path[1:], "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("prefix %q is not a znode path (no empty, \".\" or \"..\" components, no trailing slash)", path)
		}
		for _, r := range part {
			if r < 0x20 || (r >= 0x7f && r <= 0x9f) || (r >= 0xd800 && r <= 0xf8ff) || r >= 0xfff0 {
				return "", fmt.Errorf("prefix %q has a character ZooKeeper refuses (%U)", path, r)
			}
		}
	}
	if path == "/zookeeper" || strings.HasPrefix(path, "/zookeeper/") {
		return "", fmt.Errorf("prefix %q is inside ZooKeeper's reserved /zookeeper tree", path)
	}
	return path, nil
}

// dial connects to a ZooKeeper ensemble with the given session timeout.
// It returns at once: the client connects, and reconnects, in the
// background, and requests wait for a connection. Unlike the client's
// default, it dials every server (including the one it just lost) before
// it pauses a second, so that a dropped connection costs one dial, not a
// second; it resolves host names at each dial, so that servers that move
// (pods) are found again; and it logs through log/slog at debug level.
// With once, it dials until one connection succeeds and never again.
// onEvent, if set, hears of the session's events.
func dial(servers []string, sessionTimeout time.Duration, once bool, onEvent func(zk.Event)) (*zk.Conn, error) {
	var connected atomic.Bool
	dialer := func(network, address string, timeout time.Duration) (net.Conn, error) {
		if once && connected.Load() {
			return nil, errOnce
		}
		c, err := net.DialTimeout(network, address, timeout)
		if err == nil {
			connected.Store(true)
		}
		return c, err
	}
	callback := func(ev zk.Event) {
		if onEvent != nil {
			onEvent(ev)
		}
	}
	conn, _, err := zk.Connect(servers, sessionTimeout, zk.WithHostProvider(&hostProvider{}), zk.WithDialer(dialer),
		zk.WithEventCallback(callback), zk.WithLogger(slogLogger{}), zk.WithLogInfo(false))
	return conn, err
}

// errOnce is what a watch connection's dialer answers once it has dialled.
var errOnce = errors.New("zookeeper: a watch connection does not reconnect")

// hostProvider hands the client its servers in turn and asks for the
// client's one-second pause only after a whole round of failed dials.
type hostProvider struct {
	mu      sync.Mutex
	servers []string
	next    int
	tries   int // dials since the last connection
}

// Init implements zk.HostProvider.
func (h *hostProvider) Init(servers []string) error {
	if len(servers) == 0 {
		return errors.New("zk: no servers")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.servers = servers
	return nil
}

// Len implements zk.HostProvider.
func (h *hostProvider) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.servers)
}

// Next implements zk.HostProvider: retryStart is true once every server
// was dialled since the last connection, and once a round after that.
func (h *hostProvider) Next() (server string, retryStart bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.servers)
	server = h.servers[h.next%n]
	h.next = (h.next + 1) % n
	h.tries++
	return server, h.tries > n && (h.tries-1)%n == 0
}

// Connected implements zk.HostProvider.
func (h *hostProvider) Connected() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tries = 0
}

// slogLogger sends the client's log lines to log/slog at debug level.
type slogLogger struct{}

// Printf implements zk.Logger.
func (slogLogger) Printf(format string, args ...any) {
	slog.Debug(fmt.Sprintf(format, args...), "component", "zookeeper-client")
}
