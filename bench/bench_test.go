// Package bench measures hasp against baselines in the same run. Results
// are ratios, never asserted by timed unit tests: see BENCHMARKS.md.
//
//	go test -run '^$' -bench . ./bench/          # standard Go benchmarks
//	HASP_BENCH=1 go test -run TestReport -v ./bench/   # the BENCHMARKS.md table (make bench)
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/hasplock/hasp/api"
	"github.com/hasplock/hasp/local"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/etcd"
	"github.com/hasplock/hasp/service"
)

// stack is one embedded etcd (fsync on, as `make run` uses it) with hasp
// serve's handler in front of it on a loopback HTTP server.
type stack struct {
	e   *local.Embedded
	srv *httptest.Server
	hc  *http.Client
}

func newStack(tb testing.TB) *stack { return newStackWith(tb, local.EmbeddedOptions{}) }

// newStackWith is newStack with the embedded etcd's options.
func newStackWith(tb testing.TB, opts local.EmbeddedOptions) *stack {
	e, err := local.StartEmbedded(context.Background(), tb.TempDir(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(api.New(service.New(etcd.New(e.Client))))
	tb.Cleanup(func() { srv.Close(); _ = e.Close() })
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	return &stack{e: e, srv: srv, hc: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (s *stack) post(path string, body any, out any) (int, error) {
	b, _ := json.Marshal(body)
	resp, err := s.hc.Post(s.srv.URL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	defer io.Copy(io.Discard, resp.Body) // read to EOF so the connection is reused
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.StatusCode, err
		}
	}
	return resp.StatusCode, nil
}

type lease struct {
	LeaseID string `json:"lease_id"`
	Token   int64  `json:"fencing_token"`
}

// haspCycle is one uncontended acquire+release through HTTP.
func (s *stack) haspCycle(name string) error {
	var l lease
	if code, err := s.post("/v1/locks/acquire", map[string]any{"name": name}, &l); err != nil || code != 200 {
		return fmt.Errorf("acquire: %d %v", code, err)
	}
	if code, err := s.post("/v1/locks/release", map[string]any{"name": name, "lease_id": l.LeaseID}, nil); err != nil || code != 200 {
		return fmt.Errorf("release: %d %v", code, err)
	}
	return nil
}

func benchHaspCycle(s *stack) func(b *testing.B) {
	return func(b *testing.B) {
		for b.Loop() {
			if err := s.haspCycle("bench-cycle"); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func benchMutexCycle(s *stack) func(b *testing.B) { return benchMutexCycleOn(s.e.Client) }

// benchMutexCycleOn measures concurrency.Mutex Lock+Unlock through cli.
func benchMutexCycleOn(cli *clientv3.Client) func(b *testing.B) {
	return func(b *testing.B) {
		sess, err := concurrency.NewSession(cli, concurrency.WithTTL(30))
		if err != nil {
			b.Fatal(err)
		}
		defer sess.Close()
		m := concurrency.NewMutex(sess, "/bench/mutex-cycle")
		ctx := context.Background()
		for b.Loop() {
			if err := m.Lock(ctx); err != nil {
				b.Fatal(err)
			}
			if err := m.Unlock(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkCycle compares uncontended acquire+release through hasp serve
// with etcd's own concurrency.Mutex on the same embedded etcd.
func BenchmarkCycle(b *testing.B) {
	s := newStack(b)
	b.Run("etcd-mutex", benchMutexCycle(s))
	b.Run("hasp-serve", benchHaspCycle(s))
}

// handoffs runs contenders that take one lock in turn, each holding it for
// hold, until n grants; it returns the handoff latencies: from the moment
// a holder started its release to the moment another contender's acquire
// returned (a contender that takes the lock straight back is not a
// handoff).
func handoffs(contenders, n int, hold, think time.Duration, lockFn func(ctx context.Context, c int) (unlock func() error, err error)) ([]time.Duration, error) {
	var (
		mu       sync.Mutex
		lastRel  time.Time
		lastC    = -1
		out      []time.Duration
		granted  atomic.Int64
		firstErr error
		wg       sync.WaitGroup
	)
	ctx := context.Background()
	for c := range contenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for granted.Load() < int64(n) {
				unlock, err := lockFn(ctx, c)
				now := time.Now()
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					granted.Store(int64(n))
					return
				}
				mu.Lock()
				if !lastRel.IsZero() && lastC != c {
					out = append(out, now.Sub(lastRel))
				}
				mu.Unlock()
				granted.Add(1)
				time.Sleep(hold)
				mu.Lock()
				lastRel, lastC = time.Now(), c
				mu.Unlock()
				if err := unlock(); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					granted.Store(int64(n))
					return
				}
				time.Sleep(think)
			}
		}()
	}
	wg.Wait()
	return out, firstErr
}

func (s *stack) haspLocker(name string) func(ctx context.Context, c int) (func() error, error) {
	return func(ctx context.Context, c int) (func() error, error) {
		var l lease
		code, err := s.post("/v1/locks/acquire", map[string]any{"name": name, "wait_ms": 20000, "ttl_ms": 30000}, &l)
		if err != nil || code != 200 {
			return nil, fmt.Errorf("acquire: %d %v", code, err)
		}
		return func() error {
			code, err := s.post("/v1/locks/release", map[string]any{"name": name, "lease_id": l.LeaseID}, nil)
			if err != nil || code != 200 {
				return fmt.Errorf("release: %d %v", code, err)
			}
			return nil
		}, nil
	}
}

func mutexLocker(cli *clientv3.Client, contenders int, key string) (func(ctx context.Context, c int) (func() error, error), func(), error) {
	var muts []*concurrency.Mutex
	var sessions []*concurrency.Session
	for range contenders {
		sess, err := concurrency.NewSession(cli, concurrency.WithTTL(30))
		if err != nil {
			return nil, nil, err
		}
		sessions = append(sessions, sess)
		muts = append(muts, concurrency.NewMutex(sess, key))
	}
	closeAll := func() {
		for _, s := range sessions {
			_ = s.Close()
		}
	}
	return func(ctx context.Context, c int) (func() error, error) {
		m := muts[c]
		if err := m.Lock(ctx); err != nil {
			return nil, err
		}
		return func() error { return m.Unlock(ctx) }, nil
	}, closeAll, nil
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(float64(len(s)-1)*p)]
}

// BenchmarkHandoff reports handoff latency with 4 contenders on one name.
func BenchmarkHandoff(b *testing.B) {
	s := newStack(b)
	b.Run("hasp-serve", func(b *testing.B) {
		d, err := handoffs(4, b.N+1, time.Millisecond, 0, s.haspLocker("bench-handoff"))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(pct(d, 0.5).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(pct(d, 0.99).Microseconds())/1000, "p99-ms")
	})
}

// TestReport prints the table of BENCHMARKS.md: every figure and its
// baseline measured in this one run. It runs only with HASP_BENCH=1
// (make bench).
func TestReport(t *testing.T) {
	if os.Getenv("HASP_BENCH") == "" {
		t.Skip("set HASP_BENCH=1 (make bench) to run the benchmark report")
	}
	// etcd also serves its client API on loopback TCP, for the Mutex as a
	// program outside etcd's process uses it.
	addr := freeAddr(t)
	s := newStackWith(t, local.EmbeddedOptions{ClientURL: "http://" + addr})
	netCli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer netCli.Close()
	// Warm up both paths.
	for range 50 {
		if err := s.haspCycle("warm"); err != nil {
			t.Fatal(err)
		}
	}
	mutex := testing.Benchmark(benchMutexCycle(s))
	hasp := testing.Benchmark(benchHaspCycle(s))
	netMutex := testing.Benchmark(benchMutexCycleOn(netCli))
	mps := float64(mutex.N) / mutex.T.Seconds()
	hps := float64(hasp.N) / hasp.T.Seconds()
	nps := float64(netMutex.N) / netMutex.T.Seconds()

	const contenders, n = 4, 1000
	hd, err := handoffs(contenders, n, time.Millisecond, 0, s.haspLocker("report-handoff"))
	if err != nil {
		t.Fatal(err)
	}
	lockFn, closeAll, err := mutexLocker(s.e.Client, contenders, "/bench/report-handoff")
	if err != nil {
		t.Fatal(err)
	}
	md, err := handoffs(contenders, n, time.Millisecond, 0, lockFn)
	closeAll()
	if err != nil {
		t.Fatal(err)
	}
	printTable("hasp serve (HTTP, embedded etcd)", "etcd concurrency.Mutex (same etcd, in-process client)", hps, mps, contenders, hd, md,
		fmt.Sprintf("| uncontended acquire+release cycles/s; in this row the baseline is the Mutex through a gRPC client on loopback TCP (same etcd, as a program outside etcd's process uses it) | %.0f | %.0f | %.2f× |", hps, nps, hps/nps))

	// Cosmos DB on its emulator, in the same run, against the hasp
	// figures above.
	t.Run("Cosmos", func(t *testing.T) { reportCosmos(t, hps, hd) })
	// ZooKeeper (a real server), likewise.
	t.Run("ZooKeeper", func(t *testing.T) { reportZooKeeper(t, hps, hd) })
}

// printTable prints a BENCHMARKS.md table comparing a stack (a) with its
// baseline (b) measured in the same run: uncontended cycles per second and
// handoff latencies with contenders on one name, then any extra rows.
func printTable(a, b string, aCycles, bCycles float64, contenders int, ad, bd []time.Duration, extra ...string) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
	fmt.Printf("\n| measure | %s | %s | ratio |\n|---|---|---|---|\n", a, b)
	fmt.Printf("| uncontended acquire+release cycles/s | %.0f | %.0f | %.2f× |\n", aCycles, bCycles, aCycles/bCycles)
	for _, p := range []float64{0.5, 0.99} {
		fmt.Printf("| handoff p%g, %d contenders, 1 name | %s | %s | %.2f× |\n", p*100, contenders, ms(pct(ad, p)), ms(pct(bd, p)), float64(pct(ad, p))/float64(pct(bd, p)))
	}
	for _, row := range extra {
		fmt.Println(row)
	}
	fmt.Printf("| handoffs measured | %d | %d | |\n\n", len(ad), len(bd))
}

// instancesHandoffGrants is how many grants instancesHandoff measures.
const instancesHandoffGrants = 300

// instancesHandoff runs the 4-instance handoff of the provider tables:
// one service instance per contender, each over its own provider from open
// (closed when the test ends), each client holding 5 ms and thinking 5 ms,
// until instancesHandoffGrants grants. It returns the handoffs and the
// backend requests the providers sent meanwhile (acquires and releases).
func instancesHandoff[P interface {
	providers.Provider
	providers.RequestCounter
}](t *testing.T, contenders int, open func() P) ([]time.Duration, int64) {
	t.Helper()
	var (
		svcs  []*service.Service
		provs []P
	)
	for range contenders {
		q := open()
		t.Cleanup(func() { _ = q.Close() })
		provs, svcs = append(provs, q), append(svcs, service.New(q))
	}
	count := func() (n int64) {
		for _, q := range provs {
			n += q.BackendRequests()
		}
		return n
	}
	before := count()
	fd, err := handoffs(contenders, instancesHandoffGrants, 5*time.Millisecond, 5*time.Millisecond, func(ctx context.Context, c int) (func() error, error) {
		l, err := svcs[c].Acquire(ctx, lock.AcquireRequest{Name: "report-handoff-4", Wait: 20 * time.Second})
		if err != nil {
			return nil, err
		}
		return func() error {
			return svcs[c].Release(ctx, lock.ReleaseRequest{Name: "report-handoff-4", LeaseID: l.LeaseID})
		}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fd, count() - before
}

// freeAddr returns a loopback address with a port free at the time of the
// call.
func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
