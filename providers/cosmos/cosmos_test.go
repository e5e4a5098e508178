package cosmos_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/cosmos"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/service"
)

// backend is one emulator with one lock container, and the HTTP transport
// that trusts it (shared, so providers reuse connections).
type backend struct {
	e  *launch.CosmosEmulator
	rt http.RoundTripper
	db string
	c  string
}

func newBackend(t *testing.T, container string) *backend {
	e := launch.Cosmos(t)
	b := &backend{e: e, rt: e.Transport(), db: "hasp", c: container}
	require.NoError(t, cosmos.CreateContainer(context.Background(), b.config(nil)))
	return b
}

// config returns the configuration of the container, sending through rt
// if given.
func (b *backend) config(rt http.RoundTripper) cosmos.Config {
	if rt == nil {
		rt = b.rt
	}
	return cosmos.Config{
		Endpoint: b.e.Endpoint, Key: launch.CosmosKey, Database: b.db, Container: b.c,
		ClientOptions: &azcosmos.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: &http.Client{Transport: rt}}},
	}
}

func (b *backend) open(t *testing.T, opts ...cosmos.Option) *cosmos.Provider {
	p, err := cosmos.New(b.config(nil), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// TestConformance runs the conformance and contention suite on the
// emulator. Contention: 8 goroutines, 3 names, 2,000 acquires (the
// suite's default size; a renew every fourth): 3 to 10 s of a 9 to 15 s
// test with -race on two shared cores. The emulator restarts empty, so
// the suite's restart test does not apply (Restart is nil).
func TestConformance(t *testing.T) {
	b := newBackend(t, "conformance")
	providertest.Run(t, providertest.Harness{
		Open: func(t *testing.T) providers.Provider { return b.open(t) },
		OpenWithClock: func(t *testing.T, c lock.Clock) providers.Provider {
			return b.open(t, cosmos.WithClock(c))
		},
		Contention: providertest.ContentionConfig{Goroutines: 8, Names: 3, Acquires: 2000},
	})
}

// TestConformanceNoCache runs the suite with the version cache off, so
// every acquire decides on a fresh read: the cache is an optimisation,
// never needed for correctness (contention: 500 acquires).
func TestConformanceNoCache(t *testing.T) {
	b := newBackend(t, "nocache")
	providertest.Run(t, providertest.Harness{
		Open: func(t *testing.T) providers.Provider { return b.open(t, cosmos.WithVersionCache(0)) },
		OpenWithClock: func(t *testing.T, c lock.Clock) providers.Provider {
			return b.open(t, cosmos.WithClock(c), cosmos.WithVersionCache(0))
		},
		Contention: providertest.ContentionConfig{Goroutines: 8, Names: 3, Acquires: 500},
	})
}

// counter counts the requests to Cosmos DB by method and resource.
type counter struct {
	base http.RoundTripper
	mu   sync.Mutex
	ops  map[string]int
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	kind := "other"
	switch parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/"); {
	case len(parts) == 6 && parts[4] == "docs":
		kind = "doc"
	case len(parts) == 5 && parts[4] == "docs":
		kind = "docs"
	}
	c.mu.Lock()
	c.ops[r.Method+" "+kind]++
	c.mu.Unlock()
	return c.base.RoundTrip(r)
}

func (c *counter) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.ops
	c.ops = map[string]int{}
	return old
}

// counted opens a provider whose requests cnt counts.
func (b *backend) counted(t *testing.T, opts ...cosmos.Option) (*cosmos.Provider, *counter) {
	cnt := &counter{base: b.rt, ops: map[string]int{}}
	p, err := cosmos.New(b.config(cnt), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	require.NoError(t, p.Ping(context.Background()), "warm-up: the SDK reads the account once")
	cnt.reset()
	return p, cnt
}

const (
	read    = "GET doc"
	create  = "POST docs"
	replace = "PUT doc"
	patch   = "PATCH doc"
)

// TestRequestCounts pins the number of requests per operation, each
// counted at the HTTP transport and by the provider's own counter.
func TestRequestCounts(t *testing.T) {
	b := newBackend(t, "counts")
	p, cnt := b.counted(t)
	q, qcnt := b.counted(t) // another service instance, on the same container
	s, sq := service.New(p), service.New(q)
	ctx := context.Background()
	step := func(t *testing.T, want map[string]int, c *counter, prov *cosmos.Provider, before int64) {
		t.Helper()
		n := 0
		for _, v := range want {
			n += v
		}
		assert.Equal(t, want, c.reset())
		assert.Equal(t, int64(n), prov.BackendRequests()-before, "the provider counts the same requests")
	}

	n := p.BackendRequests()
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
	require.NoError(t, err)
	step(t, map[string]int{read: 1, create: 1}, cnt, p, n)

	for i := range 5 {
		n = p.BackendRequests()
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}))
		l, err = s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
		require.NoError(t, err)
		step(t, map[string]int{patch: 1, replace: 1}, cnt, p, n)
		_ = i
	}

	n = p.BackendRequests()
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID})
	require.NoError(t, err)
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID, TTL: 5 * time.Second})
	require.NoError(t, err)
	step(t, map[string]int{patch: 2}, cnt, p, n)

	// A renew through another instance is one patch too: it needs no
	// version of the document.
	n = q.BackendRequests()
	_, err = sq.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID})
	require.NoError(t, err)
	step(t, map[string]int{patch: 1}, qcnt, q, n)

	n = q.BackendRequests()
	_, err = sq.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
	require.ErrorIs(t, err, lock.ErrHeld)
	step(t, map[string]int{read: 1}, qcnt, q, n)
	_, err = sq.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
	require.ErrorIs(t, err, lock.ErrHeld)
	step(t, map[string]int{read: 1}, qcnt, q, n+1)

	// Another instance takes over a released lock: it starts from the
	// version it read, one replace.
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}))
	cnt.reset()
	n = q.BackendRequests()
	lq, err := sq.Acquire(ctx, lock.AcquireRequest{Name: "n"})
	require.NoError(t, err)
	assert.Greater(t, lq.FencingToken, l.FencingToken)
	step(t, map[string]int{read: 1, replace: 1}, qcnt, q, n)

	n = p.BackendRequests()
	st, err := s.Status(ctx, "n")
	require.NoError(t, err)
	assert.True(t, st.Held)
	step(t, map[string]int{read: 1}, cnt, p, n)
}

// TestRequestCountsNoCache: without the version cache an acquire reads
// first; renew and release need no version.
func TestRequestCountsNoCache(t *testing.T) {
	b := newBackend(t, "counts-nocache")
	p, cnt := b.counted(t, cosmos.WithVersionCache(0))
	s := service.New(p)
	ctx := context.Background()
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
	require.NoError(t, err)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}))
	cnt.reset()
	for range 3 {
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
		require.NoError(t, err)
		_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID})
		require.NoError(t, err)
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}))
		assert.Equal(t, map[string]int{read: 1, replace: 1, patch: 2}, cnt.reset())
	}
}

// TestAuthoritativeWrites: what one instance remembers or reads never
// decides an answer another instance's write has overtaken. A renew of a
// lease renewed elsewhere succeeds, one of a lease taken over elsewhere is
// lost, each in one patch whose condition the database evaluates; an
// acquire from a remembered free version of a lock taken meanwhile gets a
// 412, reads, and reports it held.
func TestAuthoritativeWrites(t *testing.T) {
	b := newBackend(t, "stale")
	p, cnt := b.counted(t)
	clock := &providertest.OffsetClock{}
	q := b.open(t, cosmos.WithClock(clock))
	s, sq := service.New(p), service.New(q)
	ctx := context.Background()

	t.Run("RenewedElsewhere", func(t *testing.T) {
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "renew", TTL: 10 * time.Second})
		require.NoError(t, err)
		_, err = sq.Renew(ctx, lock.RenewRequest{Name: "renew", LeaseID: l.LeaseID, TTL: 20 * time.Second})
		require.NoError(t, err)
		cnt.reset()
		r, err := s.Renew(ctx, lock.RenewRequest{Name: "renew", LeaseID: l.LeaseID})
		require.NoError(t, err)
		assert.Equal(t, l.FencingToken, r.FencingToken)
		assert.Equal(t, 20*time.Second, r.TTL, "the TTL granted elsewhere is kept")
		assert.Equal(t, map[string]int{patch: 1}, cnt.reset())
	})
	t.Run("TakenOverElsewhere", func(t *testing.T) {
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "lost", TTL: time.Second})
		require.NoError(t, err)
		clock.Set(2 * time.Second) // past the lease's expiry by q's clock
		t.Cleanup(func() { clock.Set(0) })
		l2, err := sq.TryAcquire(ctx, lock.AcquireRequest{Name: "lost"})
		require.NoError(t, err)
		assert.Greater(t, l2.FencingToken, l.FencingToken)
		cnt.reset()
		_, err = s.Renew(ctx, lock.RenewRequest{Name: "lost", LeaseID: l.LeaseID})
		require.ErrorIs(t, err, lock.ErrLeaseLost, "412: the lease no longer holds the document")
		require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: "lost", LeaseID: l.LeaseID}), lock.ErrLeaseLost)
		// A lost release reads the document once, to tell a release of its
		// own that was applied and sent again from a lease that ended.
		assert.Equal(t, map[string]int{patch: 2, "GET doc": 1}, cnt.reset())
		_, err = sq.Renew(ctx, lock.RenewRequest{Name: "lost", LeaseID: l2.LeaseID})
		assert.NoError(t, err, "the new holder is untouched")
	})
	t.Run("AcquireTakenMeanwhile", func(t *testing.T) {
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "taken"})
		require.NoError(t, err)
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "taken", LeaseID: l.LeaseID}))
		l2, err := sq.Acquire(ctx, lock.AcquireRequest{Name: "taken", Owner: "q"})
		require.NoError(t, err)
		cnt.reset()
		_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "taken"})
		var held *lock.HeldError
		require.ErrorAs(t, err, &held, "a 412 reads again: held by q")
		assert.Equal(t, "q", held.Holder.Owner)
		assert.Equal(t, l2.FencingToken, held.Holder.FencingToken)
		assert.Equal(t, map[string]int{replace: 1, read: 1}, cnt.reset())
	})
	t.Run("ReleasedElsewhere", func(t *testing.T) {
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "freed"})
		require.NoError(t, err)
		require.NoError(t, sq.Release(ctx, lock.ReleaseRequest{Name: "freed", LeaseID: l.LeaseID}))
		cnt.reset()
		l2, err := s.TryAcquire(ctx, lock.AcquireRequest{Name: "freed"})
		require.NoError(t, err, "remembered as held, read again: free")
		assert.Greater(t, l2.FencingToken, l.FencingToken)
		assert.Equal(t, map[string]int{read: 1, replace: 1}, cnt.reset())
	})
}

// TestConcurrentCreates: service instances that find no document for a
// new name all try to create it; the one create that succeeds holds the
// lock, the others get 409, read the document and report it held.
func TestConcurrentCreates(t *testing.T) {
	b := newBackend(t, "creates")
	var (
		svcs []*service.Service
		cnts []*counter
	)
	for range 6 {
		p, cnt := b.counted(t)
		svcs, cnts = append(svcs, service.New(p)), append(cnts, cnt)
	}
	conflicts := 0
	for round := 0; round < 50 && conflicts == 0; round++ {
		name := fmt.Sprintf("new-%d", round)
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			won   []lock.Lease
			held  []*lock.HeldError
			start = make(chan struct{})
		)
		for _, s := range svcs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				l, err := s.TryAcquire(context.Background(), lock.AcquireRequest{Name: name})
				mu.Lock()
				defer mu.Unlock()
				var h *lock.HeldError
				switch {
				case err == nil:
					won = append(won, l)
				case assert.ErrorAs(t, err, &h):
					held = append(held, h)
				}
			}()
		}
		close(start)
		wg.Wait()
		require.Len(t, won, 1, "exactly one instance gets a new name")
		for _, h := range held {
			assert.Equal(t, won[0].FencingToken, h.Holder.FencingToken)
		}
		creates := 0
		for _, c := range cnts {
			creates += c.reset()[create]
		}
		conflicts += creates - 1
	}
	assert.Positive(t, conflicts, "some creates raced (409) and were reported held")
}

// TestDocuments: every valid lock name maps to a document id Cosmos DB
// accepts, one-to-one (base64url), and the document keeps the name, the
// token and "ttl": -1.
func TestDocuments(t *testing.T) {
	b := newBackend(t, "docs")
	p := b.open(t)
	s := service.New(p)
	client, err := cosmos.NewClient(b.config(nil), nil)
	require.NoError(t, err)
	defer client.Close()
	c, err := client.NewContainer(b.db, b.c)
	require.NoError(t, err)
	ctx := context.Background()
	for _, name := range []string{
		"a", "jobs/nightly", "a/b/c//d", "AZaz09._-:/@=+~", "..", ".", "/",
		strings.Repeat("/", 255), strings.Repeat("~", 255), "A", "a=", "a==",
	} {
		t.Run(fmt.Sprintf("%.20q", name), func(t *testing.T) {
			before := time.Now()
			l, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Owner: "o"})
			require.NoError(t, err)
			id := base64.RawURLEncoding.EncodeToString([]byte(name))
			assert.NotContains(t, id, "/")
			assert.LessOrEqual(t, len(id), 340)
			resp, err := c.ReadItem(ctx, azcosmos.NewPartitionKeyString(id), id, nil)
			require.NoError(t, err)
			var doc map[string]any
			require.NoError(t, json.Unmarshal(resp.Value, &doc))
			assert.Equal(t, id, doc["id"])
			assert.Equal(t, name, doc["name"])
			assert.Equal(t, float64(-1), doc["ttl"], "documents never expire by Cosmos DB's TTL")
			assert.Equal(t, float64(l.FencingToken), doc["token"])
			assert.Regexp(t, `^[0-9a-f]{64}$`, doc["lease"], "the document holds a hash of the lease id")
			assert.NotContains(t, string(resp.Value), l.LeaseID, "never the lease id itself")
			assert.Equal(t, float64(l.ExpiresAt.UnixMilli()), doc["start_ms"].(float64)+doc["ttl_ms"].(float64))
			assert.GreaterOrEqual(t, l.FencingToken, before.UnixMilli()*1000+1, "a new document's tokens start at its creation time ×1000")
			assert.Less(t, l.FencingToken, lock.MaxFencingToken)
			st, err := s.Status(ctx, name)
			require.NoError(t, err)
			assert.Equal(t, l.FencingToken, st.Holder.FencingToken)
		})
	}
}

// TestCreateContainer: creating is idempotent; a container partitioned on
// anything but /id is refused by create-container and by Ping.
func TestCreateContainer(t *testing.T) {
	b := newBackend(t, "locks")
	require.NoError(t, cosmos.CreateContainer(context.Background(), b.config(nil)), "a second create leaves it as it is")
	require.NoError(t, b.open(t).Ping(context.Background()))

	client, err := cosmos.NewClient(b.config(nil), nil)
	require.NoError(t, err)
	defer client.Close()
	db, err := client.NewDatabase(b.db)
	require.NoError(t, err)
	_, err = db.CreateContainer(context.Background(), azcosmos.ContainerProperties{
		ID: "wrong-key", PartitionKeyDefinition: azcosmos.PartitionKeyDefinition{Paths: []string{"/pk"}},
	}, nil)
	require.NoError(t, err)
	wrong := *b
	wrong.c = "wrong-key"
	assert.ErrorContains(t, cosmos.CreateContainer(context.Background(), wrong.config(nil)), "hasp needs /id")
	assert.ErrorContains(t, wrong.open(t).Ping(context.Background()), "hasp needs /id")

	missing := *b
	missing.c = "missing"
	err = missing.open(t).Ping(context.Background())
	require.Error(t, err)
	assert.NotErrorIs(t, err, lock.ErrUnavailable, "a missing container is a configuration error, not an outage")
}

// TestOpen: the store URL and the environment.
func TestOpen(t *testing.T) {
	tests := []struct {
		store, endpoint, key string
		err                  string
	}{
		{"cosmos://hasp/locks", "https://acct.documents.azure.com:443/", "a2V5", ""},
		{"cosmos://hasp/locks", "https://acct.documents.azure.com:443/", "", ""}, // Entra ID
		{"cosmos://hasp/locks", "", "a2V5", "COSMOS_ENDPOINT is not set"},
		{"cosmos://hasp", "https://acct.documents.azure.com:443/", "a2V5", "want cosmos://DATABASE/CONTAINER"},
		{"cosmos:///locks", "https://acct.documents.azure.com:443/", "a2V5", "want cosmos://DATABASE/CONTAINER"},
		{"cosmos://hasp/locks/x", "https://acct.documents.azure.com:443/", "a2V5", "want cosmos://DATABASE/CONTAINER"},
		{"cosmos://hasp/locks?x=1", "https://acct.documents.azure.com:443/", "a2V5", `unknown parameter "x" (allowed: none)`},
		{"cosmos://hasp/locks", "https://acct.documents.azure.com:443/", "not base64!", "account key"},
	}
	for _, tt := range tests {
		t.Run(tt.store+" "+tt.key, func(t *testing.T) {
			t.Setenv(cosmos.EnvEndpoint, tt.endpoint)
			t.Setenv(cosmos.EnvKey, tt.key)
			p, err := providers.Open(context.Background(), tt.store)
			if tt.err != "" {
				assert.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "cosmos", p.Name())
			assert.NoError(t, p.Close())
		})
	}
}

// TestRetryAfterFromService: a 429 from Cosmos DB reaches the caller as
// lock.ErrThrottled carrying x-ms-retry-after-ms (the SDK's own retries
// are off here, so the first 429 is the answer).
func TestRetryAfterFromService(t *testing.T) {
	b := newBackend(t, "throttled")
	throttle := &throttler{base: b.rt}
	cfg := b.config(throttle)
	cfg.ClientOptions.Retry = policy.RetryOptions{MaxRetries: -1}
	p, err := cosmos.New(cfg)
	require.NoError(t, err)
	defer p.Close()
	require.NoError(t, p.Ping(context.Background()))
	throttle.on.Store(true)
	_, err = service.New(p).Acquire(context.Background(), lock.AcquireRequest{Name: "t"})
	require.ErrorIs(t, err, lock.ErrThrottled)
	assert.Equal(t, 1500*time.Millisecond, lock.RetryAfter(err))
}

// throttler is a fault injector in the client: once on, it answers every
// request with the 429 Cosmos DB sends when a partition runs out of
// request units, without passing it on. (The emulator never throttles.)
type throttler struct {
	base http.RoundTripper
	on   atomic.Bool
}

func (th *throttler) RoundTrip(r *http.Request) (*http.Response, error) {
	if !th.on.Load() {
		return th.base.RoundTrip(r)
	}
	body := `{"code":"TooManyRequests","message":"Request rate is large."}`
	return &http.Response{
		StatusCode: http.StatusTooManyRequests, Status: "429 Too Many Requests", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}, "X-Ms-Retry-After-Ms": {"1500"}, "X-Ms-Substatus": {"3200"}},
		Body:   io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r,
	}, nil
}

// resendFirstPatch sends the first PATCH (or the first request of method,
// when set) twice and answers with the second answer, as a client that
// retried a write whose first answer was lost would see it (the SDK here
// retries neither a reset nor a 503 of a write, but a gateway or a future
// SDK might).
type resendFirstPatch struct {
	base    http.RoundTripper
	method  string // "" for PATCH
	done    atomic.Bool
	between func() // runs between the two sends: other clients at work
}

func (d *resendFirstPatch) RoundTrip(r *http.Request) (*http.Response, error) {
	method := d.method
	if method == "" {
		method = http.MethodPatch
	}
	if r.Method != method || d.done.Swap(true) {
		return d.base.RoundTrip(r)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	send := func() (*http.Response, error) {
		c := r.Clone(r.Context())
		c.Body, c.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		return d.base.RoundTrip(c)
	}
	first, err := send()
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, first.Body)
	_ = first.Body.Close()
	if d.between != nil {
		d.between()
	}
	return send()
}

// TestReleaseRetriedAfterApplied: a release is sent again after it was
// applied, while another instance takes the freed lock or not; the second
// condition fails because the release was applied, and the provider
// recognises its own release in the document rather than answering
// lease_lost, and leaves the new holder alone.
func TestReleaseRetriedAfterApplied(t *testing.T) {
	for _, take := range []bool{false, true} {
		t.Run(fmt.Sprintf("taken=%v", take), func(t *testing.T) {
			b := newBackend(t, "retried")
			ctx := context.Background()
			other := service.New(b.open(t))
			l, err := other.Acquire(ctx, lock.AcquireRequest{Name: "n"})
			require.NoError(t, err)
			var next lock.Lease
			drop := &resendFirstPatch{base: b.rt, between: func() {
				if take {
					next, err = other.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
					require.NoError(t, err, "the release was applied: the lock is free")
				}
			}}
			p, err := cosmos.New(b.config(drop))
			require.NoError(t, err)
			defer p.Close()
			err = p.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID})
			require.True(t, drop.done.Load(), "the release was sent twice")
			require.NoError(t, err, "the release went through")
			st, err := p.Status(ctx, "n")
			require.NoError(t, err)
			assert.Equal(t, take, st.Held)
			if take {
				assert.Equal(t, next.FencingToken, st.Holder.FencingToken, "the new holder keeps the lock")
			}
			// Another release of the same lease still answers lease_lost.
			require.ErrorIs(t, p.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}), lock.ErrLeaseLost)
		})
	}
}

// TestPingAfterCheck: the first health check reads the container's
// properties (and checks its partition key); later ones are one point read
// of a document that does not exist, not metadata requests, which Cosmos
// DB throttles on a budget of their own.
func TestPingAfterCheck(t *testing.T) {
	b := newBackend(t, "pinged")
	p, cnt := b.counted(t) // its warm-up Ping checked the container
	for range 3 {
		require.NoError(t, p.Ping(context.Background()))
	}
	assert.Equal(t, map[string]int{read: 3}, cnt.reset())
	st, err := p.Status(context.Background(), "hasp.ping")
	require.NoError(t, err)
	assert.False(t, st.Held, "the ping document is not a lock's")
}
