package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/redis"
	"github.com/hasplock/hasp/service"
)

// listAll follows a listing to its end and returns the names listed, in
// order, and the pages it took.
func listAll(t *testing.T, l providers.Lister, prefix string, limit int) (names []string, pages int) {
	t.Helper()
	after := ""
	for {
		pages++
		require.Less(t, pages, 100, "the listing ends")
		items, next, err := l.List(context.Background(), prefix, limit, after)
		require.NoError(t, err)
		require.LessOrEqual(t, len(items), limit)
		for _, st := range items {
			require.True(t, st.Held, st.Name)
			names = append(names, st.Name)
		}
		if next == "" {
			return names, pages
		}
		after = next
	}
}

// TestList: one server lists the held names under the prefix in byte
// order, by the server's clock; the key prefix's glob characters match
// only themselves; keys under the prefix that are not locks (release
// marks, another program's keys) are skipped; a page is one SCAN and one
// script on a small keyspace; a malformed continuation is refused.
func TestList(t *testing.T) {
	srv := launch.Redis(t)
	w := &wire{}
	rdb := client(srv.Addr, w)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	p, err := redis.New(ctx, rdb, redis.WithPrefix(`l*[?]\:`))
	require.NoError(t, err)
	s := service.New(p)

	for _, n := range []string{"jobs/b", "jobs/a", "jobs/c", "jobsx", "other/a"} {
		_, err := s.Acquire(ctx, lock.AcquireRequest{Name: n, Owner: "o-" + n, Metadata: "m"})
		require.NoError(t, err)
	}
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "jobs/released"})
	require.NoError(t, err)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "jobs/released", LeaseID: l.LeaseID})) // writes a mark key
	_, err = s.Acquire(ctx, lock.AcquireRequest{Name: "jobs/expired", TTL: time.Second})
	require.NoError(t, err)
	// Keys a glob prefix would match, and a foreign key under the prefix.
	require.NoError(t, rdb.HSet(ctx, `lXY?]\:jobs/fake`, "lh", "x", "exp", "99999999999999", "tok", "1", "rep", "1", "ttl", "1").Err())
	require.NoError(t, rdb.HSet(ctx, `l*[?]\:jobs/not-a-lock`, "lh", "x").Err())
	require.NoError(t, rdb.Set(ctx, `l*[?]\:jobs/string`, "v", 0).Err())
	time.Sleep(1100 * time.Millisecond)

	names, pages := listAll(t, p, "jobs/", 2)
	assert.Equal(t, []string{"jobs/a", "jobs/b", "jobs/c"}, names)
	assert.Equal(t, 2, pages)
	names, _ = listAll(t, p, "", 10)
	assert.Equal(t, []string{"jobs/a", "jobs/b", "jobs/c", "jobsx", "other/a"}, names)

	items, next, err := p.List(ctx, "jobs/", 10, "")
	require.NoError(t, err)
	assert.Empty(t, next)
	require.Len(t, items, 3)
	st, err := p.Status(ctx, "jobs/a")
	require.NoError(t, err)
	assert.Equal(t, st, items[0], "the same holder as status")

	w0, b0 := w.writes.Load(), p.BackendRequests()
	_, _, err = p.List(ctx, "jobs/", 10, "")
	require.NoError(t, err)
	assert.Equal(t, int64(2), w.writes.Load()-w0, "one SCAN, one script")
	assert.Equal(t, int64(2), p.BackendRequests()-b0)

	for _, after := range []string{"other/a", "jobs/#rel:x", "jobs/ space"} {
		_, _, err = p.List(ctx, "jobs/", 10, after)
		var inv *lock.InvalidArgumentError
		require.ErrorAs(t, err, &inv, after)
		assert.Equal(t, "page_token", inv.Field)
	}
}

// TestListReadBudget: a page reads the holders of at most ListReadBudget
// names, one script per 100, and then ends with a continuation, even when
// none of them is held; the listing goes on from there.
func TestListReadBudget(t *testing.T) {
	srv := launch.Redis(t)
	rdb := client(srv.Addr, nil)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	p, err := redis.New(ctx, rdb)
	require.NoError(t, err)
	pipe := rdb.Pipeline()
	for i := range 1500 {
		pipe.HSet(ctx, fmt.Sprintf("%sbulk/%04d", redis.DefaultPrefix, i), "tok", "1") // free names
	}
	_, err = pipe.Exec(ctx)
	require.NoError(t, err)
	s := service.New(p)
	for _, n := range []string{"bulk/0500", "bulk/1400", "bulk/1499"} {
		_, err := s.Acquire(ctx, lock.AcquireRequest{Name: n})
		require.NoError(t, err)
	}

	b0 := p.BackendRequests()
	items, next, err := p.List(ctx, "bulk/", 10, "")
	require.NoError(t, err)
	require.Len(t, items, 1)
	assert.Equal(t, "bulk/0500", items[0].Name)
	assert.Equal(t, fmt.Sprintf("bulk/%04d", redis.ListReadBudget-1), next, "the last name read")
	scans := int64(1500/redis.ListScanCount + 1)
	assert.LessOrEqual(t, p.BackendRequests()-b0, scans+3+redis.ListReadBudget/100, "the SCAN, then 10 scripts")

	names, _ := listAll(t, p, "bulk/", 1)
	assert.Equal(t, []string{"bulk/0500", "bulk/1400", "bulk/1499"}, names)
	items, next, err = p.List(ctx, "bulk/", 1, "bulk/1400")
	require.NoError(t, err)
	assert.Len(t, items, 1)
	assert.Empty(t, next, "the last held name is the last name: no next page")
}

// TestRedlockList: a name is listed only where a majority of nodes show
// the same lease; with one node of three down the listing still works,
// with two down it is unavailable; a page is one SCAN and one script on
// each node.
func TestRedlockList(t *testing.T) {
	rs := newRedlockSet(t, 3)
	ctx := context.Background()
	for _, n := range []string{"jobs/b", "jobs/a"} {
		_, err := rs.s.Acquire(ctx, lock.AcquireRequest{Name: n, Owner: "o"})
		require.NoError(t, err)
	}
	n0, n1 := rs.node(t, 0), rs.node(t, 1)
	one := lock.AcquireRequest{Name: "jobs/one-node", TTL: 30 * time.Second, LeaseID: providers.NewLeaseID()}
	_, err := n0.Acquire(ctx, one)
	require.NoError(t, err)
	for i, p := range []*redis.Provider{n0, n1} { // two nodes, two different leases
		_, err := p.Acquire(ctx, lock.AcquireRequest{Name: "jobs/split", TTL: 30 * time.Second, LeaseID: providers.NewLeaseID(), Owner: fmt.Sprint(i)})
		require.NoError(t, err)
	}
	two := lock.AcquireRequest{Name: "jobs/two-nodes", TTL: 30 * time.Second, LeaseID: providers.NewLeaseID(), Owner: "two"}
	for _, p := range []*redis.Provider{n0, n1} {
		_, err := p.Acquire(ctx, two)
		require.NoError(t, err)
	}

	names, _ := listAll(t, rs.p, "jobs/", 2)
	assert.Equal(t, []string{"jobs/a", "jobs/b", "jobs/two-nodes"}, names)
	items, _, err := rs.p.List(ctx, "jobs/", 10, "")
	require.NoError(t, err)
	for _, st := range items {
		want, err := rs.s.Status(ctx, st.Name)
		require.NoError(t, err)
		assert.Equal(t, want, st, "the same holder as status")
	}

	w0 := rs.wire.writes.Load()
	_, _, err = rs.p.List(ctx, "jobs/", 10, "")
	require.NoError(t, err)
	assert.Equal(t, int64(6), rs.wire.writes.Load()-w0, "one SCAN and one script on each of 3 nodes")

	rs.srvs[2].Kill()
	names, _ = listAll(t, rs.p, "jobs/", 10)
	assert.Equal(t, []string{"jobs/a", "jobs/b", "jobs/two-nodes"}, names, "a majority answers")
	rs.srvs[1].Kill()
	_, _, err = rs.p.List(ctx, "jobs/", 10, "")
	assert.ErrorIs(t, err, lock.ErrUnavailable, "one node of three lists nothing")
}
