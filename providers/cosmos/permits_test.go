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

	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/cosmos"
	"github.com/hasplock/hasp/service"
)

// TestPermitRequestCounts pins the requests of a semaphore's acquire,
// renew and release: one read and one conditional write each (a create
// for a new name, else a replace with If-Match), with the version cache
// on or off, since LoadPermits never starts from a remembered version. A
// permit acquire that finds every permit taken is one read; so is a plain
// acquire of a busy table (a permits mismatch); a plain acquire of an
// idle table starts from the remembered version: one replace.
func TestPermitRequestCounts(t *testing.T) {
	for _, cache := range []int{cosmos.DefaultVersionCache, 0} {
		t.Run(fmt.Sprintf("cache=%d", cache), func(t *testing.T) {
			b := newBackend(t, fmt.Sprintf("permit-counts-%d", cache))
			p, cnt := b.counted(t, cosmos.WithVersionCache(cache))
			q, qcnt := b.counted(t, cosmos.WithVersionCache(cache)) // another service instance
			s, sq := service.New(p), service.New(q)
			ctx := context.Background()
			step := func(t *testing.T, what string, want map[string]int, c *counter, prov *cosmos.Provider, before int64) {
				t.Helper()
				n := 0
				for _, v := range want {
					n += v
				}
				assert.Equal(t, want, c.reset(), what)
				assert.Equal(t, int64(n), prov.BackendRequests()-before, "%s: the provider counts the same requests", what)
			}
			sem := lock.AcquireRequest{Name: "sem", Permits: 3, TTL: 10 * time.Second}

			n := p.BackendRequests()
			a, err := s.Acquire(ctx, sem)
			require.NoError(t, err)
			step(t, "first acquire of a new name", map[string]int{read: 1, create: 1}, cnt, p, n)

			n = p.BackendRequests()
			bl, err := s.Acquire(ctx, sem)
			require.NoError(t, err)
			assert.Greater(t, bl.FencingToken, a.FencingToken)
			step(t, "acquire", map[string]int{read: 1, replace: 1}, cnt, p, n)

			n = p.BackendRequests()
			_, err = s.Renew(ctx, lock.RenewRequest{Name: "sem", LeaseID: a.LeaseID})
			require.NoError(t, err)
			step(t, "renew", map[string]int{read: 1, replace: 1}, cnt, p, n)

			// Another instance changes the table; this one's next renew
			// still costs a read and a replace (no stale remembered version,
			// no 412).
			n = q.BackendRequests()
			c, err := sq.Acquire(ctx, sem)
			require.NoError(t, err)
			step(t, "acquire through another instance", map[string]int{read: 1, replace: 1}, qcnt, q, n)
			n = p.BackendRequests()
			_, err = s.Renew(ctx, lock.RenewRequest{Name: "sem", LeaseID: bl.LeaseID, TTL: 20 * time.Second})
			require.NoError(t, err)
			step(t, "renew after another instance wrote", map[string]int{read: 1, replace: 1}, cnt, p, n)

			n = p.BackendRequests()
			_, err = s.TryAcquire(ctx, sem)
			var held *lock.HeldError
			require.ErrorAs(t, err, &held)
			step(t, "acquire of a full semaphore", map[string]int{read: 1}, cnt, p, n)

			n = p.BackendRequests()
			_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "sem"})
			require.ErrorIs(t, err, lock.ErrPermitsMismatch)
			step(t, "plain acquire of a busy table", map[string]int{read: 1}, cnt, p, n)

			// lease_lost is confirmed before it is answered (the read may be
			// stale): a replace of the document by itself, If-Match.
			n = p.BackendRequests()
			_, err = s.Renew(ctx, lock.RenewRequest{Name: "sem", LeaseID: providers.PermitLeaseID()})
			require.ErrorIs(t, err, lock.ErrLeaseLost)
			step(t, "renew of a permit not in the table", map[string]int{read: 1, replace: 1}, cnt, p, n)
			n = p.BackendRequests()
			require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: "sem", LeaseID: providers.PermitLeaseID()}), lock.ErrLeaseLost)
			step(t, "release of a permit not in the table", map[string]int{read: 1, replace: 1}, cnt, p, n)
			// No document: a patch whose condition is false, which the
			// primary answers 404 and which creates nothing.
			n = p.BackendRequests()
			_, err = s.Renew(ctx, lock.RenewRequest{Name: "none", LeaseID: providers.PermitLeaseID()})
			require.ErrorIs(t, err, lock.ErrLeaseLost)
			step(t, "renew of a permit of a name without a document", map[string]int{read: 1, patch: 1}, cnt, p, n)
			rec, err := p.LoadPermits(ctx, "none")
			require.NoError(t, err)
			assert.Nil(t, rec.Version, "still no document")
			cnt.reset()

			for _, l := range []lock.Lease{a, bl, c} {
				n = p.BackendRequests()
				require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "sem", LeaseID: l.LeaseID}))
				step(t, "release", map[string]int{read: 1, replace: 1}, cnt, p, n)
			}

			n = p.BackendRequests()
			m, err := s.Acquire(ctx, lock.AcquireRequest{Name: "sem"})
			require.NoError(t, err)
			assert.Greater(t, m.FencingToken, c.FencingToken, "one counter for both kinds")
			want := map[string]int{replace: 1} // from the version the release wrote
			if cache == 0 {
				want[read] = 1
			}
			step(t, "plain acquire of an idle table", want, cnt, p, n)
		})
	}
}

// TestPermitDocument: a document holding a permit table looks held to
// the mutex path until the table's last permit is free (lease "permits",
// start_ms + ttl_ms the table's BusyUntil), keeps one token counter, and
// loses its table to the plain acquire that takes it over once idle.
func TestPermitDocument(t *testing.T) {
	b := newBackend(t, "permit-docs")
	s := service.New(b.open(t))
	client, err := cosmos.NewClient(b.config(nil), nil)
	require.NoError(t, err)
	defer client.Close()
	c, err := client.NewContainer(b.db, b.c)
	require.NoError(t, err)
	ctx := context.Background()
	const name = "jobs/sem"
	id := base64.RawURLEncoding.EncodeToString([]byte(name))
	doc := func() map[string]any {
		resp, err := c.ReadItem(ctx, azcosmos.NewPartitionKeyString(id), id, nil)
		require.NoError(t, err)
		var d map[string]any
		require.NoError(t, json.Unmarshal(resp.Value, &d))
		return d
	}

	m, err := s.Acquire(ctx, lock.AcquireRequest{Name: name})
	require.NoError(t, err)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: m.LeaseID}))
	a, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Permits: 2, TTL: 10 * time.Second, Owner: "a", LockDelay: time.Second})
	require.NoError(t, err)
	bl, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Permits: 2, TTL: 5 * time.Second, Owner: "b"})
	require.NoError(t, err)
	assert.Equal(t, m.FencingToken+1, a.FencingToken)
	assert.Equal(t, a.FencingToken+1, bl.FencingToken)

	d := doc()
	assert.Equal(t, "permits", d["lease"], "a lease id that matches no lease")
	assert.Equal(t, float64(bl.FencingToken), d["token"], "the counter")
	assert.Equal(t, float64(a.ExpiresAt.Add(time.Second).UnixMilli()), d["start_ms"].(float64)+d["ttl_ms"].(float64), "held until the last permit is free")
	assert.Equal(t, float64(-1), d["ttl"])
	table, err := providers.DecodePermitTable(d["permits"].(string), 0)
	require.NoError(t, err)
	assert.Equal(t, 2, table.Permits)
	require.Len(t, table.Holders, 2)
	assert.NotContains(t, d["permits"], a.LeaseID, "never a lease id")

	for _, l := range []lock.Lease{a, bl} {
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))
	}
	d = doc()
	assert.Equal(t, float64(0), d["start_ms"].(float64)+d["ttl_ms"].(float64), "idle: free to the mutex path")
	assert.Contains(t, d, "permits", "an idle table keeps its release marks")

	m2, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Owner: "m"})
	require.NoError(t, err)
	assert.Equal(t, bl.FencingToken+1, m2.FencingToken)
	d = doc()
	assert.NotContains(t, d, "permits", "a plain acquire removes the table")
	assert.Regexp(t, `^[0-9a-f]{64}$`, d["lease"])
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: m2.LeaseID}))
}

// TestPermitWriteRetriedAfterApplied: a table write is sent again after it
// was applied (its first answer lost), while another instance takes a
// permit or not. The second send fails its condition (412 for a replace,
// 409 for a create), StorePermits answers ErrConflict, and the service
// reads again and finds its own write: a release answers released (its
// mark is in the table) and leaves the others alone, an acquire answers
// the permit it was granted.
func TestPermitWriteRetriedAfterApplied(t *testing.T) {
	for _, take := range []bool{false, true} {
		t.Run(fmt.Sprintf("release/taken=%v", take), func(t *testing.T) {
			b := newBackend(t, "permit-retried")
			ctx := context.Background()
			other := service.New(b.open(t))
			sem := lock.AcquireRequest{Name: "n", Permits: 2, TTL: 10 * time.Second}
			a, err := other.Acquire(ctx, sem)
			require.NoError(t, err)
			bl, err := other.Acquire(ctx, sem)
			require.NoError(t, err)
			var next lock.Lease
			drop := &resendFirstPatch{base: b.rt, method: http.MethodPut, between: func() {
				if take {
					next, err = other.TryAcquire(ctx, sem)
					require.NoError(t, err, "the release was applied: a permit is free")
				}
			}}
			p, err := cosmos.New(b.config(drop))
			require.NoError(t, err)
			defer p.Close()
			s := service.New(p)
			err = s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: a.LeaseID})
			require.True(t, drop.done.Load(), "the release was sent twice")
			require.NoError(t, err, "the release went through")
			st, err := s.Status(ctx, "n")
			require.NoError(t, err)
			want := []int64{bl.FencingToken}
			if take {
				want = append(want, next.FencingToken)
			}
			var got []int64
			for _, h := range st.Holders {
				got = append(got, h.FencingToken)
			}
			assert.Equal(t, want, got, "the other permits are untouched")
			// Another release of the same lease answers lease_lost.
			require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: a.LeaseID}), lock.ErrLeaseLost)
		})
	}
	for _, method := range []string{http.MethodPost, http.MethodPut} {
		t.Run("acquire/"+method, func(t *testing.T) {
			b := newBackend(t, "permit-retried-acquire")
			ctx := context.Background()
			other := service.New(b.open(t))
			sem := lock.AcquireRequest{Name: "n", Permits: 2, TTL: 10 * time.Second}
			var first lock.Lease
			if method == http.MethodPut { // the document exists: a replace
				var err error
				first, err = other.Acquire(ctx, sem)
				require.NoError(t, err)
			}
			drop := &resendFirstPatch{base: b.rt, method: method}
			p, err := cosmos.New(b.config(drop))
			require.NoError(t, err)
			defer p.Close()
			s := service.New(p)
			l, err := s.Acquire(ctx, sem)
			require.True(t, drop.done.Load(), "the write was sent twice")
			require.NoError(t, err)
			assert.Greater(t, l.FencingToken, first.FencingToken)
			st, err := s.Status(ctx, "n")
			require.NoError(t, err)
			require.NotEmpty(t, st.Holders)
			assert.Equal(t, l.FencingToken, st.Holder.FencingToken, "the permit the write granted, once")
			want := 1
			if method == http.MethodPut {
				want = 2
			}
			assert.Len(t, st.Holders, want)
			_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID})
			assert.NoError(t, err)
		})
	}
}

// staleRead plays a lagging replica: snap records the answer to the next
// read of a document (passing it on), and arm makes the next read of a
// document get that recorded answer instead of the current one, once, as
// a read served by a replica that has not yet applied the writes since
// would (Session consistency without a session token).
type staleRead struct {
	base   http.RoundTripper
	mu     sync.Mutex
	record bool
	serve  bool
	status int
	header http.Header
	body   []byte
	served atomic.Int32
}

func (s *staleRead) snap() { s.mu.Lock(); s.record = true; s.mu.Unlock() }
func (s *staleRead) arm()  { s.mu.Lock(); s.serve = true; s.mu.Unlock() }

func isDocRead(r *http.Request) bool {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	return r.Method == http.MethodGet && len(parts) == 6 && parts[4] == "docs"
}

func (s *staleRead) RoundTrip(r *http.Request) (*http.Response, error) {
	if !isDocRead(r) {
		return s.base.RoundTrip(r)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serve && s.header != nil {
		s.serve = false
		s.served.Add(1)
		return &http.Response{
			StatusCode: s.status, Status: http.StatusText(s.status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: s.header.Clone(), Body: io.NopCloser(bytes.NewReader(s.body)), ContentLength: int64(len(s.body)), Request: r,
		}, nil
	}
	resp, err := s.base.RoundTrip(r)
	if err != nil || !s.record {
		return resp, err
	}
	s.record = false
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	s.status, s.header, s.body = resp.StatusCode, resp.Header.Clone(), body
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// TestPermitStaleRead: a renew or release of a permit granted through
// another instance moments before, whose read is served a copy of the
// document from before that grant (the table without the permit, no
// document, or the mutex lease the table replaced), does not answer
// lease_lost: the provider marks its reads MayBeStale, the service
// confirms a lease_lost answer with a conditional write of the record
// unchanged (a replace with If-Match, or for no document a patch whose
// condition is false), the primary refuses it (412), and the service
// reads again and finds the permit. A renew of a permit that is really
// gone still answers lease_lost.
func TestPermitStaleRead(t *testing.T) {
	b := newBackend(t, "permit-stale")
	for _, before := range []string{"table", "none", "mutex"} {
		for _, op := range []string{"renew", "release"} {
			t.Run(before+"/"+op, func(t *testing.T) {
				ctx := context.Background()
				other := service.New(b.open(t)) // another service instance
				st := &staleRead{base: b.rt}
				p, err := cosmos.New(b.config(st))
				require.NoError(t, err)
				defer p.Close()
				s := service.New(p)
				name := "stale/" + before + "/" + op
				sem := lock.AcquireRequest{Name: name, Permits: 2, TTL: 10 * time.Second}
				var m lock.Lease
				switch before {
				case "table":
					_, err = other.Acquire(ctx, sem)
				case "mutex":
					m, err = other.Acquire(ctx, lock.AcquireRequest{Name: name, TTL: 30 * time.Second})
				}
				require.NoError(t, err)

				// The copy the lagging replica keeps: a table without the
				// permit, no document, or a live mutex lease.
				st.snap()
				_, err = s.Status(ctx, name)
				require.NoError(t, err)

				if before == "mutex" {
					require.NoError(t, other.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: m.LeaseID}))
				}
				a, err := other.Acquire(ctx, sem)
				require.NoError(t, err, "granted through the other instance")

				st.arm()
				switch op {
				case "renew":
					l, err := s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: a.LeaseID})
					require.NoError(t, err, "no false lease_lost")
					assert.Equal(t, a.FencingToken, l.FencingToken)
				case "release":
					require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: a.LeaseID}), "no false lease_lost")
					_, err := other.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: a.LeaseID})
					require.ErrorIs(t, err, lock.ErrLeaseLost, "released")
				}
				assert.Equal(t, int32(1), st.served.Load(), "the first read was served the old copy")

				// A permit that is not in the table: lease_lost, confirmed,
				// from an old copy too.
				st.arm()
				_, err = s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: providers.PermitLeaseID()})
				require.ErrorIs(t, err, lock.ErrLeaseLost)
				assert.Equal(t, int32(2), st.served.Load())
			})
		}
	}
}
