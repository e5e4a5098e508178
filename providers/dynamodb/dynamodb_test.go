package dynamodb_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsdb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/dynamodb"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/service"
)

// counter counts HTTP requests to DynamoDB by their X-Amz-Target.
type counter struct {
	mu  sync.Mutex
	ops map[string]int
	n   atomic.Int64
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	c.mu.Lock()
	c.ops[r.Header.Get("X-Amz-Target")]++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *counter) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.ops
	c.ops = map[string]int{}
	c.n.Store(0)
	return old
}

func client(url string, hc aws.HTTPClient) *awsdb.Client {
	return awsdb.New(awsdb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:   hc,
	})
}

func harness(t *testing.T, url func() string, restart func(t *testing.T)) providertest.Harness {
	const table = "hasp-locks"
	require.NoError(t, dynamodb.CreateTable(context.Background(), client(url(), nil), table, false))
	open := func(t *testing.T, opts ...dynamodb.Option) providers.Provider {
		p, err := dynamodb.New(client(url(), nil), table, opts...)
		require.NoError(t, err)
		return p
	}
	return providertest.Harness{
		Open: func(t *testing.T) providers.Provider { return open(t) },
		OpenWithClock: func(t *testing.T, c lock.Clock) providers.Provider {
			return open(t, dynamodb.WithClock(c))
		},
		Restart:    restart,
		Contention: providertest.ContentionConfig{Goroutines: 8, Names: 3, Acquires: 2000},
	}
}

func TestConformanceMoto(t *testing.T) {
	url := launch.Moto(t)
	providertest.Run(t, harness(t, func() string { return url }, nil))
}

func TestConformanceDynalite(t *testing.T) {
	url, proc := launch.Dynalite(t, t.TempDir())
	providertest.Run(t, harness(t, func() string { return url }, func(t *testing.T) {
		proc.Restart(t, launch.HTTPReady(url))
	}))
}

// TestRequestCounts: exactly one DynamoDB request per acquire, renew and
// release when uncontended, so 2 per acquire+release; a held acquire costs
// one request on a server that returns the old item (moto).
func TestRequestCounts(t *testing.T) {
	url := launch.Moto(t)
	cnt := &counter{ops: map[string]int{}}
	db := client(url, &http.Client{Transport: cnt})
	require.NoError(t, dynamodb.CreateTable(context.Background(), db, "counted", false))
	p, err := dynamodb.New(db, "counted")
	require.NoError(t, err)
	s := service.New(p)
	ctx := context.Background()
	for i := range 5 {
		cnt.reset()
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
		require.NoError(t, err)
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}))
		assert.Equal(t, map[string]int{"DynamoDB_20120810.UpdateItem": 2}, cnt.reset(), "cycle %d", i)
	}
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
	require.NoError(t, err)
	cnt.reset()
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID})
	require.NoError(t, err)
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID, TTL: 5 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"DynamoDB_20120810.UpdateItem": 2}, cnt.reset(), "one request per renew")
	_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
	require.ErrorIs(t, err, lock.ErrHeld)
	assert.Equal(t, map[string]int{"DynamoDB_20120810.UpdateItem": 1}, cnt.reset(), "the holder comes back with the failed condition")
}

// TestHolderFallback: on dynalite, which returns no old item, a held
// acquire reads the holder with one consistent GetItem.
func TestHolderFallback(t *testing.T) {
	url, _ := launch.Dynalite(t, "")
	cnt := &counter{ops: map[string]int{}}
	db := client(url, &http.Client{Transport: cnt})
	require.NoError(t, dynamodb.CreateTable(context.Background(), db, "fallback", false))
	p, err := dynamodb.New(db, "fallback")
	require.NoError(t, err)
	s := service.New(p)
	l, err := s.Acquire(context.Background(), lock.AcquireRequest{Name: "n", Owner: "o"})
	require.NoError(t, err)
	cnt.reset()
	_, err = s.TryAcquire(context.Background(), lock.AcquireRequest{Name: "n"})
	var held *lock.HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, "o", held.Holder.Owner)
	assert.Equal(t, l.FencingToken, held.Holder.FencingToken)
	assert.Equal(t, map[string]int{"DynamoDB_20120810.UpdateItem": 1, "DynamoDB_20120810.GetItem": 1}, cnt.reset())
}

func TestCleanupOption(t *testing.T) {
	_, err := dynamodb.New(nil, "t", dynamodb.WithCleanup(time.Hour))
	assert.Error(t, err, "clean-up shorter than a day could delete live items")
	url := launch.Moto(t)
	db := client(url, nil)
	require.NoError(t, dynamodb.CreateTable(context.Background(), db, "gc", true))
	p, err := dynamodb.New(db, "gc", dynamodb.WithCleanup(30*24*time.Hour))
	require.NoError(t, err)
	s := service.New(p)
	l, err := s.Acquire(context.Background(), lock.AcquireRequest{Name: "n"})
	require.NoError(t, err)
	assert.Greater(t, l.FencingToken, time.Now().Add(-time.Minute).UnixMilli()*1000, "a new item's tokens start at its creation time ×1000")
	assert.Less(t, l.FencingToken, lock.MaxFencingToken)
}

// dropFirstWrite applies the first UpdateItem whose body contains match,
// runs between (other clients at work), then loses the answer (a reset
// connection), so that the SDK sends it again after between's changes.
type dropFirstWrite struct {
	match   []byte
	dropped atomic.Bool
	between func()
}

func (d *dropFirstWrite) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || r.Header.Get("X-Amz-Target") != updateItem || !bytes.Contains(body, d.match) || d.dropped.Swap(true) {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if d.between != nil {
		d.between()
	}
	return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
}

// TestReleaseRetriedAfterApplied: the SDK retries a release whose answer
// was lost after it was applied, while other service instances take the
// freed lock (and release it again). The retry's failed condition returns
// the item, whose marks show that this very call released the lease: the
// answer is released, never lease_lost. Only when more releases than the
// item keeps marks of came in between is the outcome unknown: unavailable.
func TestReleaseRetriedAfterApplied(t *testing.T) {
	servers := map[string]func(t *testing.T) string{
		"moto":     func(t *testing.T) string { return launch.Moto(t) },
		"dynalite": func(t *testing.T) string { u, _ := launch.Dynalite(t, ""); return u },
	}
	for _, tc := range []struct {
		name   string
		cycles int   // others' acquire+release cycles before the retry
		take   bool  // then another instance holds the lock
		want   error // nil: released
	}{
		{"nobody in between", 0, false, nil},
		{"another instance holds it", 0, true, nil},
		{"two releases, then a holder", 2, true, nil},
		{"three releases: the mark is gone", 3, true, lock.ErrUnavailable},
	} {
		for server, url := range servers {
			t.Run(server+"/"+tc.name, func(t *testing.T) {
				u := url(t)
				require.NoError(t, dynamodb.CreateTable(context.Background(), client(u, nil), "retried", false))
				other, err := dynamodb.New(client(u, nil), "retried")
				require.NoError(t, err)
				others := service.New(other)
				ctx := context.Background()
				var last lock.Lease
				drop := &dropFirstWrite{match: []byte(":rel"), between: func() {
					for range tc.cycles {
						l, err := others.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
						require.NoError(t, err)
						require.NoError(t, others.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}))
						last = l
					}
					if tc.take {
						l, err := others.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
						require.NoError(t, err, "the release was applied: the lock is free")
						last = l
					}
				}}
				p, err := dynamodb.New(client(u, &http.Client{Transport: drop}), "retried")
				require.NoError(t, err)
				s := service.New(p)
				l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
				require.NoError(t, err)
				err = s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID})
				require.True(t, drop.dropped.Load(), "the first answer was lost")
				if tc.want == nil {
					require.NoError(t, err, "the release went through")
				} else {
					require.ErrorIs(t, err, tc.want)
					require.NotErrorIs(t, err, lock.ErrLeaseLost, "never a false lease_lost")
				}
				require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}), lock.ErrLeaseLost, "a second release is lost")
				if tc.take {
					st, err := s.Status(ctx, "n")
					require.NoError(t, err)
					assert.Equal(t, last.FencingToken, st.Holder.FencingToken, "the retry left the new holder alone")
				}
				l2, err := others.Acquire(ctx, lock.AcquireRequest{Name: "n", Wait: 0})
				if tc.take {
					require.ErrorIs(t, err, lock.ErrHeld)
					return
				}
				require.NoError(t, err)
				assert.Greater(t, l2.FencingToken, l.FencingToken)
			})
		}
	}
}

// TestDeadlinesMidRequest: callers whose deadlines end while their requests
// are on the wire (at random points, from before the body is sent to after
// the answer) get an error that says the outcome is unknown or the deadline
// passed, never a false answer; and the store keeps serving. dynalite
// itself used to die of this (see scripts/dynalite_server.js).
func TestDeadlinesMidRequest(t *testing.T) {
	url, _ := launch.Dynalite(t, t.TempDir())
	db := client(url, nil)
	require.NoError(t, dynamodb.CreateTable(context.Background(), db, "deadlines", false))
	p, err := dynamodb.New(db, "deadlines")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var cut atomic.Int64
	end := time.Now().Add(4 * time.Second)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(end); i++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%40)*100*time.Microsecond)
				name := fmt.Sprintf("n%d", i%3)
				l, err := p.Acquire(ctx, lock.AcquireRequest{Name: name, LeaseID: fmt.Sprintf("lease-%d-%d", g, i), TTL: time.Second})
				if err == nil {
					err = p.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID})
				}
				cancel()
				var held *lock.HeldError
				switch {
				case err == nil, errors.As(err, &held), errors.Is(err, lock.ErrLeaseLost):
				case errors.Is(err, lock.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
					cut.Add(1)
				default:
					t.Errorf("acquire/release under a deadline: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	assert.Positive(t, cut.Load(), "some requests were cut off mid-flight")
	_, err = p.Status(context.Background(), "n0")
	require.NoError(t, err, "the store still serves")
}
