package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/hasplock/hasp/client"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/lock"
)

// endpoint is a `hasp serve --store memory:` started by TestMain, shared
// by the tests and the examples.
var endpoint string

func TestMain(m *testing.M) {
	t := &mainT{}
	srv := launch.Hasp(t, nil, "--store", "memory:")
	endpoint = srv.URL
	code := m.Run()
	_ = srv.Stop()
	os.Exit(code)
}

// mainT lets TestMain use launch.Hasp.
type mainT struct{ testing.TB }

func (*mainT) Helper()                      {}
func (*mainT) Cleanup(func())               {}
func (*mainT) Fatal(args ...any)            { panic(fmt.Sprint(args...)) }
func (*mainT) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
func (*mainT) Error(args ...any)            { fmt.Fprintln(os.Stderr, args...) }

// newClient returns a client with its own transport, closed (with a
// goroutine leak check) when the test ends.
func newClient(t *testing.T, url string, opts ...client.Option) *client.Client {
	t.Helper()
	tr := &http.Transport{}
	c, err := client.New(url, append([]client.Option{client.WithHTTPClient(&http.Client{Transport: tr})}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(tr.CloseIdleConnections)
	return c
}

// leakCheck fails the test if it leaves goroutines behind. Call it first,
// so that its check runs after every other clean-up.
func leakCheck(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

func name(t *testing.T) string { return "client." + strings.ReplaceAll(t.Name(), "/", ".") }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestAcquireRenewRelease(t *testing.T) {
	leakCheck(t)
	c := newClient(t, endpoint)
	l, err := c.Acquire(ctx(t), name(t), client.WithOwner("me"), client.WithMetadata("m"), client.WithTTL(5*time.Second))
	require.NoError(t, err)
	assert.Positive(t, l.Token())
	assert.Equal(t, "me", l.Owner())
	assert.Equal(t, 5*time.Second, l.TTL())
	assert.NoError(t, l.Err())
	assert.True(t, l.Deadline().Before(l.ExpiresAt()), "the client's deadline comes before the service's expiry")
	before := l.ExpiresAt()
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, l.Renew(ctx(t)))
	assert.True(t, l.ExpiresAt().After(before))
	st, err := c.Status(ctx(t), name(t))
	require.NoError(t, err)
	assert.Equal(t, lock.Holder{Owner: "me", FencingToken: l.Token(), ExpiresAt: l.ExpiresAt(), Metadata: "m"}, st.Holder)
	require.NoError(t, l.Release(ctx(t)))
	<-l.Done()
	assert.ErrorIs(t, l.Err(), client.ErrReleased)
	assert.NoError(t, l.Release(ctx(t)), "a second Release is a no-op")
	st, err = c.Status(ctx(t), name(t))
	require.NoError(t, err)
	assert.False(t, st.Held)
}

func TestAutoRenewPastSeveralTTLs(t *testing.T) {
	leakCheck(t)
	c := newClient(t, endpoint)
	l, err := c.Acquire(ctx(t), name(t), client.WithTTL(time.Second))
	require.NoError(t, err)
	first := l.ExpiresAt()
	time.Sleep(3500 * time.Millisecond)
	require.NoError(t, l.Err(), "auto-renew keeps the lease")
	st, err := c.Status(ctx(t), name(t))
	require.NoError(t, err)
	assert.True(t, st.Held)
	assert.Equal(t, l.Token(), st.Holder.FencingToken)
	assert.True(t, st.Holder.ExpiresAt.After(first.Add(2*time.Second)))
	require.NoError(t, l.Release(ctx(t)))
}

func TestHeld(t *testing.T) {
	leakCheck(t)
	c := newClient(t, endpoint)
	l, err := c.Acquire(ctx(t), name(t), client.WithOwner("first"))
	require.NoError(t, err)
	defer l.Release(ctx(t))
	_, err = c.TryAcquire(ctx(t), name(t))
	require.ErrorIs(t, err, lock.ErrHeld)
	var held *lock.HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, name(t), held.Name)
	assert.Equal(t, "first", held.Holder.Owner)
	assert.Equal(t, l.Token(), held.Holder.FencingToken)
	assert.Positive(t, held.RetryAfter)

	start := time.Now()
	_, err = c.Acquire(ctx(t), name(t), client.WithWait(700*time.Millisecond))
	assert.ErrorIs(t, err, lock.ErrHeld)
	assert.GreaterOrEqual(t, time.Since(start), 700*time.Millisecond)
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestAcquireWaitsForRelease(t *testing.T) {
	leakCheck(t)
	c := newClient(t, endpoint)
	l, err := c.Acquire(ctx(t), name(t))
	require.NoError(t, err)
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = l.Release(context.Background())
	}()
	start := time.Now()
	l2, err := c.Acquire(ctx(t), name(t), client.WithWait(10*time.Second))
	require.NoError(t, err)
	assert.Greater(t, l2.Token(), l.Token())
	assert.Less(t, time.Since(start), 3*time.Second)
	require.NoError(t, l2.Release(ctx(t)))
}

func TestInvalidArgument(t *testing.T) {
	leakCheck(t)
	c := newClient(t, endpoint)
	_, err := c.Acquire(ctx(t), "bad name")
	var inv *lock.InvalidArgumentError
	require.ErrorAs(t, err, &inv)
	assert.Equal(t, "name", inv.Field)
	err = c.ReleaseLease(ctx(t), "x", strings.Repeat("x", 200))
	require.ErrorAs(t, err, &inv)
	assert.Equal(t, "lease_id", inv.Field, "the server's field comes through")
	assert.ErrorIs(t, c.ReleaseLease(ctx(t), name(t), "nope"), lock.ErrLeaseLost)
}

// faults is a proxy in front of hasp serve that can break chosen routes.
type faults struct {
	srv   *httptest.Server
	mode  atomic.Value // func(w, r) bool: true when it handled the request
	calls atomic.Int64
}

func newFaults(t *testing.T, target string) *faults {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	tr := &http.Transport{}
	rp.Transport = tr
	t.Cleanup(tr.CloseIdleConnections)
	f := &faults{}
	f.mode.Store(func(http.ResponseWriter, *http.Request) bool { return false })
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		if !f.mode.Load().(func(http.ResponseWriter, *http.Request) bool)(w, r) {
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *faults) set(fn func(w http.ResponseWriter, r *http.Request) bool) { f.mode.Store(fn) }

func unavailable(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", "0")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, `{"error":{"code":"unavailable","message":"injected"}}`)
}

// TestLossSignalledBeforeAnotherHolder: renewals stop getting through;
// the lease's Context ends before a competitor is granted the lock.
func TestLossSignalledBeforeAnotherHolder(t *testing.T) {
	leakCheck(t)
	f := newFaults(t, endpoint)
	c := newClient(t, f.srv.URL)
	other := newClient(t, endpoint)
	l, err := c.Acquire(ctx(t), name(t), client.WithTTL(2*time.Second))
	require.NoError(t, err)
	f.set(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/v1/locks/renew" {
			unavailable(w)
			return true
		}
		return false
	})
	var lostAt atomic.Int64
	go func() { <-l.Done(); lostAt.Store(time.Now().UnixNano()) }()
	l2, err := other.Acquire(ctx(t), name(t), client.WithWait(10*time.Second))
	require.NoError(t, err)
	granted := time.Now()
	require.NotZero(t, lostAt.Load(), "Done must fire before another holder is granted")
	assert.True(t, time.Unix(0, lostAt.Load()).Before(granted))
	assert.ErrorIs(t, l.Err(), lock.ErrLeaseLost)
	assert.ErrorIs(t, l.Err(), client.ErrExpiring)
	assert.ErrorIs(t, context.Cause(l.Context()), lock.ErrLeaseLost)
	f.set(func(http.ResponseWriter, *http.Request) bool { return false })
	assert.ErrorIs(t, l.Release(ctx(t)), lock.ErrLeaseLost, "release of a lost lease is never success")
	require.NoError(t, l2.Release(ctx(t)))
}

// TestTakenOverAfterExpiry: without renewals the lease's Context ends at
// its safety deadline; once another holder has it, renew and release
// report the loss.
func TestTakenOverAfterExpiry(t *testing.T) {
	leakCheck(t)
	c := newClient(t, endpoint)
	l, err := c.Acquire(ctx(t), name(t), client.WithTTL(time.Second), client.WithAutoRenew(false))
	require.NoError(t, err)
	select {
	case <-l.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("Done did not fire")
	}
	assert.True(t, time.Now().Before(l.ExpiresAt()), "signalled before the service's expiry")
	l2, err := c.Acquire(ctx(t), name(t), client.WithWait(5*time.Second))
	require.NoError(t, err)
	assert.ErrorIs(t, l.Renew(ctx(t)), lock.ErrLeaseLost)
	assert.ErrorIs(t, l.Release(ctx(t)), lock.ErrLeaseLost)
	require.NoError(t, l2.Release(ctx(t)))
}

// TestRenewLostIsFinal: a renew answered lease_lost ends the lease at once.
func TestRenewLostIsFinal(t *testing.T) {
	leakCheck(t)
	c := newClient(t, endpoint)
	l, err := c.Acquire(ctx(t), name(t), client.WithTTL(3*time.Second))
	require.NoError(t, err)
	require.NoError(t, c.ReleaseLease(ctx(t), name(t), l.ID())) // someone releases it by id
	err = l.Renew(ctx(t))
	assert.ErrorIs(t, err, lock.ErrLeaseLost)
	<-l.Done()
	assert.ErrorIs(t, l.Err(), lock.ErrLeaseLost)
	assert.ErrorIs(t, l.Release(ctx(t)), lock.ErrLeaseLost)
}

// TestRetries: 503s on acquire, a renew whose answer is lost after it was
// applied, and a 503 on release are all retried to success.
func TestRetries(t *testing.T) {
	leakCheck(t)
	f := newFaults(t, endpoint)
	c := newClient(t, f.srv.URL)
	var acquireFails, renewDrops, releaseFails atomic.Int64
	acquireFails.Store(2)
	renewDrops.Store(1)
	releaseFails.Store(1)
	u, _ := url.Parse(endpoint)
	rp := httputil.NewSingleHostReverseProxy(u)
	tr := &http.Transport{}
	rp.Transport = tr
	t.Cleanup(tr.CloseIdleConnections)
	f.set(func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case r.URL.Path == "/v1/locks/acquire" && acquireFails.Add(-1) >= 0:
			unavailable(w)
			return true
		case r.URL.Path == "/v1/locks/renew" && renewDrops.Add(-1) >= 0:
			// Apply the renew, then lose its answer.
			rp.ServeHTTP(httptest.NewRecorder(), r)
			w.WriteHeader(http.StatusBadGateway)
			return true
		case r.URL.Path == "/v1/locks/release" && releaseFails.Add(-1) >= 0:
			unavailable(w)
			return true
		}
		return false
	})
	l, err := c.Acquire(ctx(t), name(t), client.WithTTL(time.Second))
	require.NoError(t, err)
	time.Sleep(1500 * time.Millisecond)
	require.NoError(t, l.Err(), "a renew whose answer was lost is retried")
	assert.Less(t, renewDrops.Load(), int64(0))
	require.NoError(t, l.Release(ctx(t)))
	assert.Less(t, releaseFails.Load(), int64(0))
	st, err := c.Status(ctx(t), name(t))
	require.NoError(t, err)
	assert.False(t, st.Held)
}

func TestDeadlineCap(t *testing.T) {
	leakCheck(t)
	c := newClient(t, endpoint)
	dctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	l, err := c.Acquire(dctx, name(t), client.WithTTL(time.Minute), client.WithDeadlineCap())
	require.NoError(t, err)
	dl, _ := dctx.Deadline()
	assert.LessOrEqual(t, l.TTL(), 2500*time.Millisecond)
	assert.False(t, l.ExpiresAt().After(dl.Add(time.Millisecond)), "the lease ends by the function's deadline")
	assert.False(t, l.Deadline().After(dl))
	<-l.Done()
	assert.ErrorIs(t, l.Err(), lock.ErrLeaseLost)
	assert.False(t, time.Now().After(dl.Add(100*time.Millisecond)))
	_ = l.Release(context.Background())

	short, cancel2 := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel2()
	_, err = c.Acquire(short, name(t)+".short", client.WithDeadlineCap())
	assert.ErrorIs(t, err, lock.ErrInvalidArgument)
}

func TestDo(t *testing.T) {
	leakCheck(t)
	c := newClient(t, endpoint)
	var token string
	err := c.Do(ctx(t), name(t), func(ctx context.Context) error {
		token = "ran"
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, "ran", token)
	st, _ := c.Status(ctx(t), name(t))
	assert.False(t, st.Held, "Do releases")

	boom := errors.New("boom")
	assert.ErrorIs(t, c.Do(ctx(t), name(t), func(context.Context) error { return boom }), boom)

	// Loss while fn runs cancels fn's context and is reported.
	err = c.Do(ctx(t), name(t), func(ctx context.Context) error {
		<-ctx.Done()
		return nil
	}, client.WithTTL(time.Second), client.WithAutoRenew(false))
	assert.ErrorIs(t, err, lock.ErrLeaseLost)
}

func TestSigV4(t *testing.T) {
	leakCheck(t)
	var checked atomic.Int64
	srv := httptest.NewServer(sigv4Verifier(t, &checked))
	defer srv.Close()
	c := newClient(t, srv.URL, client.WithSigV4(staticCreds, "eu-west-1"))
	l, err := c.TryAcquire(ctx(t), "signed/name@1")
	require.NoError(t, err)
	l.Detach()
	_, err = c.Status(ctx(t), "signed/name@1")
	require.NoError(t, err)
	assert.Equal(t, int64(2), checked.Load())
}

func TestHeadersAndHook(t *testing.T) {
	leakCheck(t)
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("x-functions-key") == "fk" && r.Header.Get("Authorization") == "Bearer idtoken-1" {
			seen.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok","provider":"test"}`)
	}))
	defer srv.Close()
	n := 0
	c := newClient(t, srv.URL, client.WithHeader("x-functions-key", "fk"), client.WithRequestHook(func(r *http.Request) error {
		n++
		r.Header.Set("Authorization", fmt.Sprintf("Bearer idtoken-%d", n))
		return nil
	}))
	p, err := c.Health(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, "test", p)
	assert.Equal(t, int64(1), seen.Load())
}

func TestUnauthenticated(t *testing.T) {
	leakCheck(t)
	srv := launch.Hasp(t, []string{"HASP_AUTH_TOKENS=good"}, "--store", "memory:")
	_, err := newClient(t, srv.URL, client.WithBearerToken("bad")).TryAcquire(ctx(t), "a")
	assert.ErrorIs(t, err, lock.ErrUnauthenticated)
	l, err := newClient(t, srv.URL, client.WithBearerToken("good")).TryAcquire(ctx(t), "a")
	require.NoError(t, err)
	require.NoError(t, l.Release(ctx(t)))
}

func TestUnreachable(t *testing.T) {
	leakCheck(t)
	c := newClient(t, "http://127.0.0.1:1")
	_, err := c.TryAcquire(ctx(t), "a")
	assert.ErrorIs(t, err, lock.ErrUnavailable)
}

// TestThin: the SDK pulls in nothing of the server side.
func TestThin(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	require.NoError(t, err)
	for _, dep := range strings.Fields(string(out)) {
		std := !strings.Contains(strings.SplitN(dep, "/", 2)[0], ".")
		ok := std ||
			dep == "github.com/hasplock/hasp/client" || dep == "github.com/hasplock/hasp/lock" || dep == "github.com/hasplock/hasp/api/wire" ||
			strings.HasPrefix(dep, "github.com/aws/aws-sdk-go-v2/aws") || strings.HasPrefix(dep, "github.com/aws/aws-sdk-go-v2/internal/") ||
			strings.HasPrefix(dep, "github.com/aws/smithy-go")
		assert.True(t, ok, "client depends on %s", dep)
	}
}

// TestNoSpinNearDeadline: with less than a second left on ctx, a held
// lock is retried with backoff, not in a tight loop.
func TestNoSpinNearDeadline(t *testing.T) {
	leakCheck(t)
	var n atomic.Int64
	c := newClient(t, endpoint, client.WithRequestHook(func(*http.Request) error { n.Add(1); return nil }))
	l, err := c.Acquire(ctx(t), name(t))
	require.NoError(t, err)
	defer l.Release(ctx(t))
	short, cancel := context.WithTimeout(context.Background(), 900*time.Millisecond)
	defer cancel()
	n.Store(0)
	_, err = c.Acquire(short, name(t))
	assert.ErrorIs(t, err, lock.ErrHeld)
	assert.Less(t, n.Load(), int64(50), "requests in the last 900 ms")
}

// TestReleaseFailureEndsContext: a release that fails still ends the
// lease's Context (its renewals are stopped).
func TestReleaseFailureEndsContext(t *testing.T) {
	leakCheck(t)
	c := newClient(t, endpoint)
	l, err := c.Acquire(ctx(t), name(t), client.WithTTL(time.Second))
	require.NoError(t, err)
	expired, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	require.Error(t, l.Release(expired))
	select {
	case <-l.Done():
	case <-time.After(time.Second):
		t.Fatal("Context still live after a failed release")
	}
	require.NoError(t, l.Release(ctx(t)), "a later release still works")
}

// TestDoPanics: a panicking fn still releases the lock.
func TestDoPanics(t *testing.T) {
	leakCheck(t)
	c := newClient(t, endpoint)
	func() {
		defer func() { assert.Equal(t, "boom", recover()) }()
		_ = c.Do(ctx(t), name(t), func(context.Context) error { panic("boom") })
	}()
	st, err := c.Status(ctx(t), name(t))
	require.NoError(t, err)
	assert.False(t, st.Held)
}

// TestReleaseAnswerLost: a release applied but whose answer was lost is
// retried; the retry's lease_lost is recognised as the release having
// worked.
func TestReleaseAnswerLost(t *testing.T) {
	leakCheck(t)
	f := newFaults(t, endpoint)
	u, _ := url.Parse(endpoint)
	rp := httputil.NewSingleHostReverseProxy(u)
	tr := &http.Transport{}
	rp.Transport = tr
	t.Cleanup(tr.CloseIdleConnections)
	var drops atomic.Int64
	drops.Store(1)
	f.set(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/v1/locks/release" && drops.Add(-1) >= 0 {
			rp.ServeHTTP(httptest.NewRecorder(), r)
			w.WriteHeader(http.StatusBadGateway)
			return true
		}
		return false
	})
	c := newClient(t, f.srv.URL)
	require.NoError(t, c.Do(ctx(t), name(t), func(context.Context) error { return nil }))
}

// TestPermitsAndLockDelay: WithPermits takes one of n permits; another
// count fails at once with ErrPermitsMismatch (not retried); a lease with
// WithLockDelay that expires unreleased keeps the name until its expiry
// plus the delay, and Status shows it.
func TestPermitsAndLockDelay(t *testing.T) {
	leakCheck(t)
	c := newClient(t, endpoint)
	n := name(t)
	a, err := c.Acquire(ctx(t), n, client.WithPermits(2), client.WithTTL(5*time.Second))
	require.NoError(t, err)
	b, err := c.Acquire(ctx(t), n, client.WithPermits(2), client.WithTTL(5*time.Second))
	require.NoError(t, err)
	assert.Equal(t, 2, a.Permits())
	assert.Greater(t, b.Token(), a.Token())
	start := time.Now()
	_, err = c.Acquire(ctx(t), n, client.WithPermits(3))
	var mm *lock.PermitsMismatchError
	require.ErrorAs(t, err, &mm)
	assert.Equal(t, 2, mm.Permits)
	assert.Equal(t, 3, mm.Requested)
	assert.Less(t, time.Since(start), time.Second, "a mismatch is not retried")
	_, err = c.TryAcquire(ctx(t), n, client.WithPermits(2))
	var held *lock.HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, 2, held.Permits)
	st, err := c.Status(ctx(t), n)
	require.NoError(t, err)
	assert.Equal(t, 2, st.Permits)
	require.Len(t, st.Holders, 2)
	assert.Equal(t, []int64{a.Token(), b.Token()}, []int64{st.Holders[0].FencingToken, st.Holders[1].FencingToken})
	require.NoError(t, a.Release(ctx(t)))
	require.NoError(t, b.Release(ctx(t)))

	d, err := c.Acquire(ctx(t), n+".delay", client.WithLockDelay(time.Second), client.WithTTL(time.Second), client.WithAutoRenew(false))
	require.NoError(t, err)
	d.Detach()
	time.Sleep(time.Until(d.ExpiresAt()) + 100*time.Millisecond)
	_, err = c.TryAcquire(ctx(t), n+".delay")
	require.ErrorAs(t, err, &held)
	assert.Equal(t, d.ExpiresAt().Add(time.Second), held.DelayedUntil)
	st, err = c.Status(ctx(t), n+".delay")
	require.NoError(t, err)
	require.Len(t, st.Delayed, 1)
	e, err := c.Acquire(ctx(t), n+".delay", client.WithWait(5*time.Second))
	require.NoError(t, err)
	assert.False(t, time.Now().Before(d.ExpiresAt().Add(time.Second)))
	require.NoError(t, e.Release(ctx(t)))
}
