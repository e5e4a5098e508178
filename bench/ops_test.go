package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hasplock/hasp/local"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers/etcd"
	"github.com/hasplock/hasp/service"
)

func BenchmarkEtcdOps(b *testing.B) {
	s := newStack(b)
	cli := s.e.Client
	ctx := context.Background()
	b.Run("grant", func(b *testing.B) {
		for b.Loop() {
			cli.Grant(ctx, 30)
		}
	})
	b.Run("grant+revoke", func(b *testing.B) {
		for b.Loop() {
			g, _ := cli.Grant(ctx, 30)
			cli.Revoke(ctx, g.ID)
		}
	})
	b.Run("keepaliveonce", func(b *testing.B) {
		g, _ := cli.Grant(ctx, 30)
		for b.Loop() {
			if _, err := cli.KeepAliveOnce(ctx, g.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("delete-prevkv", func(b *testing.B) {
		for b.Loop() {
			cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("k"), ">", "a")).Then(clientv3.OpDelete("k", clientv3.WithPrevKV())).Commit()
		}
	})
	b.Run("put", func(b *testing.B) {
		for b.Loop() {
			cli.Put(ctx, "k", "v")
		}
	})
	b.Run("get", func(b *testing.B) {
		for b.Loop() {
			cli.Get(ctx, "k")
		}
	})
	b.Run("txn", func(b *testing.B) {
		for b.Loop() {
			cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision("x"), "=", 0)).Then(clientv3.OpPut("y", "v")).Else(clientv3.OpGet("x")).Commit()
		}
	})
	b.Run("http-health", func(b *testing.B) {
		for b.Loop() {
			r, _ := s.hc.Get(s.srv.URL + "/v1/health")
			r.Body.Close()
		}
	})
}

func BenchmarkServiceCycle(b *testing.B) {
	s := newStack(b)
	svc := service.New(etcd.New(s.e.Client))
	ctx := context.Background()
	for b.Loop() {
		l, err := svc.Acquire(ctx, lock.AcquireRequest{Name: "svc-cycle"})
		if err != nil {
			b.Fatal(err)
		}
		if err := svc.Release(ctx, lock.ReleaseRequest{Name: "svc-cycle", LeaseID: l.LeaseID}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHTTPPost400(b *testing.B) {
	s := newStack(b)
	for b.Loop() {
		code, _ := s.post("/v1/locks/acquire", map[string]any{"name": ""}, nil)
		if code != 400 {
			b.Fatal(code)
		}
	}
}

// BenchmarkHTTPStatus is one status request over HTTP on a kept
// connection: a GET of a name nobody holds, one etcd read.
func BenchmarkHTTPStatus(b *testing.B) {
	s := newStack(b)
	for b.Loop() {
		r, err := s.hc.Get(s.srv.URL + "/v1/locks?name=x")
		if err != nil {
			b.Fatal(err)
		}
		// Read to the end, so the connection is kept and reused: a body
		// closed unread costs a new connection per request.
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			b.Fatal(r.Status)
		}
	}
}

// BenchmarkCycleFloor is the least an acquire+release over HTTP can cost on
// this stack: two loopback round trips to handlers that each send one etcd
// transaction (the create of acquire, the delete of release) and answer a
// constant, with no decoding, validation, lease pool or hasp code at all.
// Its ratio to the Mutex bounds what hasp serve can reach in TestReport.
// etcd-mutex-tcp is the Mutex through a gRPC client on loopback TCP, as a
// program outside etcd's process uses it.
func BenchmarkCycleFloor(b *testing.B) {
	addr := freeAddr(b)
	s := newStackWith(b, local.EmbeddedOptions{ClientURL: "http://" + addr})
	cli := s.e.Client
	netCli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = netCli.Close() })
	g, err := cli.Grant(context.Background(), 600)
	if err != nil {
		b.Fatal(err)
	}
	const key = "/bench/floor"
	mux := http.NewServeMux()
	mux.HandleFunc("POST /acquire", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if _, err := cli.Txn(r.Context()).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, "v", clientv3.WithLease(g.ID))).Else(clientv3.OpGet(key)).Commit(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = io.WriteString(w, `{"lease_id":"x"}`)
	})
	mux.HandleFunc("POST /release", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if _, err := cli.Txn(r.Context()).If(clientv3.Compare(clientv3.Value(key), "=", "v")).
			Then(clientv3.OpDelete(key)).Commit(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = io.WriteString(w, `{}`)
	})
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	post := func(path string) {
		resp, err := s.hc.Post(srv.URL+path, "application/json", strings.NewReader(`{"name":"floor"}`))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatal(resp.Status)
		}
	}
	b.Run("etcd-mutex", benchMutexCycle(s))
	b.Run("etcd-mutex-tcp", benchMutexCycleOn(netCli))
	b.Run("http-floor", func(b *testing.B) {
		for b.Loop() {
			post("/acquire")
			post("/release")
		}
	})
	b.Run("hasp-serve", benchHaspCycle(s))
}
