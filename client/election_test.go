package client_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/client"
	"github.com/hasplock/hasp/lock"
)

// next reads the next change from an Observe channel, within 5 s.
func next(t *testing.T, ch <-chan client.LeaderChange) client.LeaderChange {
	t.Helper()
	select {
	case c, ok := <-ch:
		require.True(t, ok, "the channel closed early")
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no leader change within 5 s")
		return client.LeaderChange{}
	}
}

func TestCampaignObserveResign(t *testing.T) {
	leakCheck(t)
	c := newClient(t, endpoint)
	election := name(t)
	octx, stop := context.WithCancel(ctx(t))
	changes := c.Observe(octx, election)
	assert.Equal(t, client.LeaderChange{}, next(t, changes), "first the current state: nobody leads")

	a, err := c.Campaign(ctx(t), election, "a:8080", client.WithTTL(2*time.Second))
	require.NoError(t, err)
	assert.Equal(t, "a:8080", a.Value())
	got := next(t, changes)
	assert.True(t, got.Held)
	assert.Equal(t, "a:8080", got.Value)
	assert.Equal(t, a.Token(), got.Token)

	won := make(chan *client.Leadership, 1)
	go func() {
		b, err := c.Campaign(ctx(t), election, "b:8080", client.WithTTL(2*time.Second))
		assert.NoError(t, err)
		won <- b
	}()
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, a.Resign(ctx(t)))
	assert.ErrorIs(t, context.Cause(a.Context()), client.ErrReleased, "a resigned leader's context ends")
	b := <-won
	require.NotNil(t, b)
	assert.Greater(t, b.Token(), a.Token())
	// The release and b's grant may be seen as one change or as two.
	got = next(t, changes)
	if !got.Held {
		got = next(t, changes)
	}
	assert.Equal(t, "b:8080", got.Value)
	assert.Equal(t, b.Token(), got.Token)

	require.NoError(t, b.Resign(ctx(t)))
	assert.False(t, next(t, changes).Held, "nobody leads after the last resignation")
	stop()
	for range changes { // closed when ctx ends
	}
}

// TestLeadershipEndsBeforeAnotherWins: renewals stop getting through; the
// leader's Context ends before another candidate wins.
func TestLeadershipEndsBeforeAnotherWins(t *testing.T) {
	leakCheck(t)
	f := newFaults(t, endpoint)
	c := newClient(t, f.srv.URL)
	other := newClient(t, endpoint)
	election := name(t)
	a, err := c.Campaign(ctx(t), election, "a", client.WithTTL(2*time.Second))
	require.NoError(t, err)
	f.set(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/v1/locks/renew" {
			unavailable(w)
			return true
		}
		return false
	})
	var lostAt atomic.Int64
	go func() { <-a.Done(); lostAt.Store(time.Now().UnixNano()) }()
	b, err := other.Campaign(ctx(t), election, "b")
	require.NoError(t, err)
	won := time.Now()
	require.NotZero(t, lostAt.Load(), "the old leader's Context must end before another wins")
	assert.True(t, time.Unix(0, lostAt.Load()).Before(won))
	assert.ErrorIs(t, a.Err(), lock.ErrLeaseLost)
	f.set(func(http.ResponseWriter, *http.Request) bool { return false })
	assert.ErrorIs(t, a.Resign(ctx(t)), lock.ErrLeaseLost, "resigning a lost leadership is never success")
	require.NoError(t, b.Resign(ctx(t)))
}

// TestObserveRetriesUnavailable: 503s from the watch route are retried
// with backoff; changes still arrive.
func TestObserveRetriesUnavailable(t *testing.T) {
	leakCheck(t)
	f := newFaults(t, endpoint)
	var failed atomic.Int64
	f.set(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/v1/locks/watch" && failed.Add(1) <= 2 {
			unavailable(w)
			return true
		}
		return false
	})
	election := name(t)
	octx, stop := context.WithCancel(ctx(t))
	defer stop()
	changes := newClient(t, f.srv.URL).Observe(octx, election)
	l, err := newClient(t, endpoint).Campaign(ctx(t), election, "v")
	require.NoError(t, err)
	got := next(t, changes)
	if !got.Held { // the state before the campaign, if the watch got through first
		got = next(t, changes)
	}
	assert.Equal(t, "v", got.Value)
	assert.Equal(t, l.Token(), got.Token)
	assert.GreaterOrEqual(t, failed.Load(), int64(3), "two 503s, then a watch that got through")
	require.NoError(t, l.Resign(ctx(t)))
	stop()
	for range changes {
	}
}

func TestWatchAndList(t *testing.T) {
	leakCheck(t)
	c := newClient(t, endpoint)
	prefix := name(t) + "/"
	var leases []*client.Lease
	for _, n := range []string{"a", "b", "c"} {
		l, err := c.TryAcquire(ctx(t), prefix+n, client.WithOwner("o-"+n))
		require.NoError(t, err)
		leases = append(leases, l)
	}
	seen := map[string]int64{}
	page := ""
	for {
		items, nextPage, err := c.List(ctx(t), prefix, 2, page)
		require.NoError(t, err)
		assert.LessOrEqual(t, len(items), 2)
		for _, st := range items {
			seen[st.Name] = st.Holder.FencingToken
			assert.Equal(t, "o-"+st.Name[len(prefix):], st.Holder.Owner)
		}
		if nextPage == "" {
			break
		}
		page = nextPage
	}
	assert.Equal(t, map[string]int64{prefix + "a": leases[0].Token(), prefix + "b": leases[1].Token(), prefix + "c": leases[2].Token()}, seen)

	st, changed, err := c.Watch(ctx(t), prefix+"a", leases[0].Token(), 200*time.Millisecond)
	require.NoError(t, err)
	assert.False(t, changed)
	assert.Equal(t, leases[0].Token(), st.Holder.FencingToken)
	go func() { time.Sleep(100 * time.Millisecond); _ = leases[0].Release(ctx(t)) }()
	st, changed, err = c.Watch(ctx(t), prefix+"a", leases[0].Token(), 5*time.Second)
	require.NoError(t, err)
	assert.True(t, changed)
	assert.False(t, st.Held)

	_, _, err = c.List(ctx(t), prefix, 0, "not base64!")
	var inv *lock.InvalidArgumentError
	require.ErrorAs(t, err, &inv)
	assert.Equal(t, "page_token", inv.Field)
	for _, l := range leases[1:] {
		require.NoError(t, l.Release(ctx(t)))
	}
}
