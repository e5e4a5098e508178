package redis_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/providers/redis"
	"github.com/hasplock/hasp/service"
)

func open(t *testing.T, store string) providers.Provider {
	t.Helper()
	p, err := providers.Open(context.Background(), store)
	require.NoError(t, err, store)
	return p
}

// TestConformance runs the suite against a real redis-server, restarting
// it from its append-only file. Expiry is judged by the server's clock, so
// the service-clock takeover test does not apply (OpenWithClock is nil).
func TestConformance(t *testing.T) {
	srv := launch.Redis(t)
	providertest.Run(t, providertest.Harness{
		Open:    func(t *testing.T) providers.Provider { return open(t, "redis://"+srv.Addr) },
		Restart: func(t *testing.T) { srv.Restart(t) },
	})
}

// TestConformanceRedlock runs the suite against three independent
// redis-servers, restarting all of them from their append-only files.
func TestConformanceRedlock(t *testing.T) {
	var srvs []*launch.RedisServer
	var addrs []string
	for range 3 {
		s := launch.Redis(t)
		srvs, addrs = append(srvs, s), append(addrs, s.Addr)
	}
	store := "redlock://" + strings.Join(addrs, ",")
	providertest.Run(t, providertest.Harness{
		Open: func(t *testing.T) providers.Provider { return open(t, store) },
		Restart: func(t *testing.T) {
			for _, s := range srvs {
				s.Restart(t)
			}
		},
	})
}

// wire counts the requests a client writes to its connections, and can
// lose the answer of the first request whose text contains drop: the
// request reaches the server and is applied, its answer is read and
// thrown away, and the connection is reset, so that the client retries.
type wire struct {
	writes  atomic.Int64
	drop    atomic.Value // string
	dropped atomic.Int64
	// meanwhile, if set, runs after a lost answer, before the client
	// learns of the loss and retries.
	meanwhile func()
}

func (w *wire) dialer(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &wireConn{Conn: c, w: w}, nil
}

func (w *wire) dropNext(s string) { w.drop.Store(s) }

type wireConn struct {
	net.Conn
	w       *wire
	dropped bool // this connection's next answer is to be lost
}

func (c *wireConn) Write(b []byte) (int, error) {
	if !strings.HasPrefix(string(b), "*2\r\n$5\r\nhello\r\n") { // a new connection's handshake is not a request
		c.w.writes.Add(1)
	}
	if d, _ := c.w.drop.Load().(string); d != "" && strings.Contains(string(b), d) && c.w.drop.CompareAndSwap(d, "") {
		c.dropped = true
	}
	return c.Conn.Write(b)
}

func (c *wireConn) Read(b []byte) (int, error) {
	if c.dropped {
		// Wait for the server's answer, so the request was applied, then
		// lose it.
		_, _ = c.Conn.Read(b)
		c.w.dropped.Add(1)
		if c.w.meanwhile != nil {
			c.w.meanwhile()
		}
		_ = c.Conn.Close()
		return 0, io.EOF // the connection closed under the answer: go-redis retries
	}
	return c.Conn.Read(b)
}

func client(addr string, w *wire) *goredis.Client {
	o := redis.ClientOptions(addr)
	if w != nil {
		o.Dialer = w.dialer
	}
	c := goredis.NewClient(o)
	return c
}

// TestRequestCounts: one round trip per acquire, renew, release, held
// acquire and status, counted on the wire and by BackendRequests; after a
// restart that emptied the server's script cache, the first call of a
// script costs one more (EVALSHA answered NOSCRIPT, then EVAL).
func TestRequestCounts(t *testing.T) {
	srv := launch.Redis(t)
	w := &wire{}
	o := redis.ClientOptions(srv.Addr)
	o.Dialer = w.dialer
	// One connection: after the restart below, the first call reconnects
	// exactly once, whichever pooled connection it would have picked.
	o.PoolSize, o.MinIdleConns = 1, 0
	rdb := goredis.NewClient(o)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	p, err := redis.New(ctx, rdb)
	require.NoError(t, err)
	s := service.New(p)
	count := func(f func()) (wire, backend int64) {
		w0, b0 := w.writes.Load(), p.BackendRequests()
		f()
		return w.writes.Load() - w0, p.BackendRequests() - b0
	}
	var l lock.Lease
	tests := []struct {
		op string
		f  func()
	}{
		{"acquire", func() { l, err = s.Acquire(ctx, lock.AcquireRequest{Name: "n"}); require.NoError(t, err) }},
		{"renew", func() {
			_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID})
			require.NoError(t, err)
		}},
		{"renew with a new ttl", func() {
			_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID, TTL: 5 * time.Second})
			require.NoError(t, err)
		}},
		{"held acquire", func() {
			_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
			require.ErrorIs(t, err, lock.ErrHeld)
		}},
		{"status", func() { _, err = s.Status(ctx, "n"); require.NoError(t, err) }},
		{"release", func() { require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID})) }},
		{"lost release", func() {
			require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}), lock.ErrLeaseLost)
		}},
	}
	for _, tt := range tests {
		onWire, backend := count(tt.f)
		assert.Equal(t, int64(1), onWire, "%s: requests on the wire", tt.op)
		assert.Equal(t, int64(1), backend, "%s: BackendRequests", tt.op)
	}

	srv.Restart(t)
	_ = p.Ping(ctx) // the pooled connection died with the server: the client reconnects
	onWire, backend := count(tests[0].f)
	assert.Equal(t, int64(2), onWire, "first acquire after the server lost its script cache: EVALSHA, then EVAL")
	assert.Equal(t, int64(2), backend)
	onWire, _ = count(tests[5].f)
	assert.Equal(t, int64(2), onWire, "first release after the restart, likewise")
	onWire, _ = count(tests[0].f)
	assert.Equal(t, int64(1), onWire, "then one round trip again")
}

// TestRetriedAfterApplied: a request applied by the server whose answer
// was lost is retried by the client with the same effect as once.
func TestRetriedAfterApplied(t *testing.T) {
	srv := launch.Redis(t)
	w := &wire{}
	rdb := client(srv.Addr, w)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	p, err := redis.New(ctx, rdb)
	require.NoError(t, err)
	s := service.New(p)
	plain := client(srv.Addr, nil)
	t.Cleanup(func() { _ = plain.Close() })
	counter := func(name string) int64 {
		v, err := plain.HGet(ctx, redis.DefaultPrefix+name, "tok").Int64()
		require.NoError(t, err)
		return v
	}
	// Every script is sent with EVALSHA and its hash; the owner marks the
	// acquire.
	w.dropNext("owner-marker")
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "a", Owner: "owner-marker"})
	require.NoError(t, err, "the retried acquire finds its own lease")
	require.Equal(t, int64(1), w.dropped.Load(), "the first answer was lost")
	assert.Equal(t, counter("a"), l.FencingToken, "the retry issued no second token")
	st, err := s.Status(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, l.FencingToken, st.Holder.FencingToken)

	w.dropNext(providers.HashLeaseID(l.LeaseID))
	r, err := s.Renew(ctx, lock.RenewRequest{Name: "a", LeaseID: l.LeaseID, TTL: 7 * time.Second})
	require.NoError(t, err, "the retried renew renews")
	require.Equal(t, int64(2), w.dropped.Load())
	assert.Equal(t, l.FencingToken, r.FencingToken)

	// Before the release's retry, another client takes the lock and
	// releases it: the retry still answers released.
	other, err := redis.New(ctx, plain)
	require.NoError(t, err)
	var between lock.Lease
	w.meanwhile = func() {
		o := service.New(other)
		between, err = o.Acquire(ctx, lock.AcquireRequest{Name: "a"})
		require.NoError(t, err)
		require.NoError(t, o.Release(ctx, lock.ReleaseRequest{Name: "a", LeaseID: between.LeaseID}))
	}
	w.dropNext(providers.HashLeaseID(l.LeaseID))
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "a", LeaseID: l.LeaseID}), "a release retried after it was applied answers released")
	require.Equal(t, int64(3), w.dropped.Load())
	assert.Greater(t, between.FencingToken, l.FencingToken, "another holder came and went before the retry")
	require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: "a", LeaseID: l.LeaseID}), lock.ErrLeaseLost, "another release of the same lease is lost")
	l2, err := s.Acquire(ctx, lock.AcquireRequest{Name: "a"})
	require.NoError(t, err)
	assert.Greater(t, l2.FencingToken, between.FencingToken)
}

// TestDurabilityCheck: Open refuses a server that would lose acknowledged
// writes, unless the URL says durability=none, and labels the store.
func TestDurabilityCheck(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		query string
		label string // "" means refused with ErrNotDurable
		why   string
	}{
		{"aof everysec", nil, "", "durable: AOF appendfsync everysec", ""},
		{"aof always", []string{"--appendfsync", "always"}, "", "durable: AOF appendfsync always", ""},
		{"aof off", []string{"--appendonly", "no"}, "", "", `appendonly "no"`},
		{"fsync no", []string{"--appendfsync", "no"}, "", "", `appendfsync "no"`},
		{"allkeys eviction", []string{"--maxmemory-policy", "allkeys-lru"}, "", "", `allkeys-lru`},
		{"volatile eviction", []string{"--maxmemory-policy", "volatile-lru"}, "", "durable: AOF appendfsync everysec", ""},
		{"config renamed away", []string{"--rename-command", "CONFIG", ""}, "", "", "CONFIG GET refused"},
		{"aof off, durability=none", []string{"--appendonly", "no"}, "?durability=none", "best effort", ""},
		{"config renamed away, durability=none", []string{"--rename-command", "CONFIG", ""}, "?durability=none", "best effort", ""},
		{"aof explicit", nil, "?durability=aof", "durable: AOF appendfsync everysec", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := launch.Redis(t, tt.args...)
			p, err := providers.Open(context.Background(), "redis://"+srv.Addr+tt.query)
			if tt.label == "" {
				require.ErrorIs(t, err, redis.ErrNotDurable)
				assert.Contains(t, err.Error(), tt.why)
				return
			}
			require.NoError(t, err)
			t.Cleanup(func() { _ = p.Close() })
			assert.Equal(t, tt.label, providers.GuaranteeOf(p))
			// Whatever the label, the store works.
			s := service.New(p)
			l, err := s.Acquire(context.Background(), lock.AcquireRequest{Name: "d"})
			require.NoError(t, err)
			require.NoError(t, s.Release(context.Background(), lock.ReleaseRequest{Name: "d", LeaseID: l.LeaseID}))
		})
	}
}

// TestOpenRefuses: malformed or unsafe store URLs are refused before any
// server is contacted.
func TestOpenRefuses(t *testing.T) {
	for store, want := range map[string]string{
		"redis://127.0.0.1:1?durabilty=none":              `unknown parameter "durabilty"`,
		"redis://127.0.0.1:1?durability=fsync":            `durability="fsync"`,
		"redis://127.0.0.1:1,127.0.0.1:2":                 "use redlock://",
		"redlock://127.0.0.1:1,127.0.0.1:2":               "at least 3",
		"redlock://127.0.0.1:1,127.0.0.1:1,127.0.0.1:2":   "given twice",
		"redis://user:secret@127.0.0.1:1":                 "clear text",
		"redis://127.0.0.1:1/x":                           "database number",
		"redis://127.0.0.1:1?prefix=":                     "empty prefix",
		"redis://127.0.0.1:1?insecure=maybe":              "not a boolean",
		"redis:///0":                                      "names no server",
		"redlock://127.0.0.1:1,127.0.0.1:2,127.0.0.1:3?x": `unknown parameter "x"`,
	} {
		_, err := providers.Open(context.Background(), store)
		if assert.Error(t, err, store) {
			assert.Contains(t, err.Error(), want, store)
			assert.NotContains(t, err.Error(), "secret", "the password is never shown")
		}
	}
}

// TestOpenOptions: the URL's password, database and prefix reach the
// server.
func TestOpenOptions(t *testing.T) {
	srv := launch.Redis(t, "--requirepass", "pw")
	p := open(t, "redis://:pw@"+srv.Addr+"/3?prefix=app:&insecure=true")
	t.Cleanup(func() { _ = p.Close() })
	_, err := service.New(p).Acquire(context.Background(), lock.AcquireRequest{Name: "n"})
	require.NoError(t, err)
	rdb := goredis.NewClient(&goredis.Options{Addr: srv.Addr, Password: "pw", DB: 3, Protocol: 2})
	t.Cleanup(func() { _ = rdb.Close() })
	n, err := rdb.Exists(context.Background(), "app:n").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1), n, "the lock lives at prefix+name in database 3")
	_, err = providers.Open(context.Background(), "redis://:wrong@"+srv.Addr+"?insecure=true")
	assert.Error(t, err, "a wrong password is refused at start")
}

// TestLostDataWithoutPersistence says exactly what a restart of a server
// without persistence does: the lease is gone, so a second client gets
// the lock while the first still believes it holds it (mutual exclusion
// is lost), but the new counter is seeded from the server's clock, so the
// second token is still the greater and fencing refuses the first
// holder's writes.
func TestLostDataWithoutPersistence(t *testing.T) {
	srv := launch.Redis(t, "--appendonly", "no")
	ctx := context.Background()
	p := open(t, "redis://"+srv.Addr+"?durability=none")
	t.Cleanup(func() { _ = p.Close() })
	s := service.New(p)
	var tokens []int64
	for range 5 {
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
		require.NoError(t, err)
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}))
		tokens = append(tokens, l.FencingToken)
	}
	a, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n", TTL: time.Minute})
	require.NoError(t, err)
	assert.Greater(t, a.FencingToken, tokens[len(tokens)-1])
	assert.GreaterOrEqual(t, a.FencingToken, providers.TokenBase(time.Now().Add(-time.Minute)), "tokens are seeded from the server's clock")

	srv.Restart(t) // no append-only file: every key is gone
	b, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
	require.NoError(t, err, "the lease was lost with the data: another client is granted the lock")
	assert.Greater(t, b.FencingToken, a.FencingToken, "but its token is greater, so fencing still protects the resource")
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: a.LeaseID})
	assert.ErrorIs(t, err, lock.ErrLeaseLost, "the first holder learns at its next renew")
}

// TestExpiryByServerClock: the reported expiry is never later than the
// server's own, and a service whose clock runs ahead cannot take a lease
// over early (the server's clock judges), while its renew and release of
// a lease whose reported expiry its clock has passed are lost.
func TestExpiryByServerClock(t *testing.T) {
	srv := launch.Redis(t)
	ctx := context.Background()
	rdb := client(srv.Addr, nil)
	t.Cleanup(func() { _ = rdb.Close() })
	normal, err := redis.New(ctx, rdb)
	require.NoError(t, err)
	ahead := &providertest.OffsetClock{}
	ahead.Set(10 * time.Second)
	fast, err := redis.New(ctx, rdb, redis.WithClock(ahead))
	require.NoError(t, err)

	l, err := service.New(normal).Acquire(ctx, lock.AcquireRequest{Name: "n", TTL: 5 * time.Second})
	require.NoError(t, err)
	exp, err := rdb.HGet(ctx, redis.DefaultPrefix+"n", "exp").Int64()
	require.NoError(t, err)
	assert.LessOrEqual(t, l.ExpiresAt.UnixMilli(), exp, "reported expiry is never later than the server's")
	_, err = service.New(fast).TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
	assert.ErrorIs(t, err, lock.ErrHeld, "a service clock ahead does not end the lease")
	_, err = service.New(fast).Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID})
	assert.ErrorIs(t, err, lock.ErrLeaseLost, "a service whose clock reads past expires_at finds the lease ended")
	_, err = service.New(normal).Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID})
	assert.NoError(t, err, "the holder's own service still renews it")

	// A service clock behind the server's: expires_at follows the server.
	behind := &providertest.OffsetClock{}
	behind.Set(-10 * time.Second)
	slow, err := redis.New(ctx, rdb, redis.WithClock(behind))
	require.NoError(t, err)
	before := time.Now()
	l2, err := service.New(slow).Acquire(ctx, lock.AcquireRequest{Name: "m", TTL: 5 * time.Second})
	require.NoError(t, err)
	assert.WithinDuration(t, before.Add(-10*time.Second+5*time.Second), l2.ExpiresAt, time.Second, "expires_at by the service's clock: the earlier of the two")
}

// TestMapErrors: a server that refuses work maps to the retryable
// sentinels, never to success, and a stopped server is unavailable.
func TestMapErrors(t *testing.T) {
	srv := launch.Redis(t)
	ctx := context.Background()
	p := open(t, "redis://"+srv.Addr)
	t.Cleanup(func() { _ = p.Close() })
	s := service.New(p, service.WithOpTimeout(3*time.Second))
	rdb := client(srv.Addr, nil)
	t.Cleanup(func() { _ = rdb.Close() })

	// Out of memory under noeviction: the script is refused, unavailable.
	require.NoError(t, rdb.ConfigSet(ctx, "maxmemory", "1").Err())
	_, err := s.Acquire(ctx, lock.AcquireRequest{Name: "oom"})
	assert.ErrorIs(t, err, lock.ErrUnavailable, "OOM")
	require.NoError(t, rdb.ConfigSet(ctx, "maxmemory", "0").Err())

	// A long script makes the server answer BUSY: throttled.
	require.NoError(t, rdb.ConfigSet(ctx, "busy-reply-threshold", "50").Err())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = rdb.Eval(ctx, "local t = redis.call('TIME'); local s = tonumber(t[1]); while tonumber(redis.call('TIME')[1]) < s + 2 do end return 1", nil).Err()
	}()
	time.Sleep(300 * time.Millisecond)
	_, err = s.Acquire(ctx, lock.AcquireRequest{Name: "busy"})
	assert.ErrorIs(t, err, lock.ErrThrottled, "BUSY")
	wg.Wait()

	srv.Kill()
	_, err = s.Acquire(ctx, lock.AcquireRequest{Name: "down"})
	assert.ErrorIs(t, err, lock.ErrUnavailable, "server down")
	assert.Error(t, s.Ping(ctx))
	assert.False(t, errors.Is(err, lock.ErrHeld))
}
