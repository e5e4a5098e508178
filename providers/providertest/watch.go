package providertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/service"
)

// testList: only held names under the prefix are listed, each once across
// pages, with their holders and never a lease id; expired and released
// ones are not.
func testList(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	if _, ok := providers.As[providers.Lister](s.Provider()); !ok {
		// A store that cannot enumerate its locks says so.
		_, _, err := s.List(ctx, name+"/", 2, "")
		require.ErrorIs(t, err, providers.ErrUnsupported)
		t.Logf("%s does not list (providers.Lister): GET /v1/locks?prefix= answers 501 unsupported", s.ProviderName())
		return
	}
	prefix := name + "/"
	held := map[string]lock.Lease{}
	for i := range 5 {
		n := fmt.Sprintf("%s%02d", prefix, i)
		held[n] = acquire(t, s, n, 30*time.Second)
	}
	released := prefix + "released"
	l := acquire(t, s, released, 30*time.Second)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: released, LeaseID: l.LeaseID}))
	expired := prefix + "expired"
	e := acquire(t, s, expired, time.Second)
	acquire(t, s, name+"-other", 30*time.Second) // shares the name, not the prefix
	waitUntil(e.ExpiresAt.Add(300 * time.Millisecond))

	got := map[string]lock.Status{}
	page := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 100, "listing does not end")
		items, next, err := s.List(ctx, prefix, 2, page)
		require.NoError(t, err)
		assert.LessOrEqual(t, len(items), 2, "a page holds at most limit locks")
		for _, st := range items {
			_, dup := got[st.Name]
			assert.False(t, dup, "%s listed twice", st.Name)
			got[st.Name] = st
		}
		if next == "" {
			break
		}
		page = next
	}
	require.Len(t, got, len(held), "listed: %v", slices.Sorted(func(yield func(string) bool) {
		for n := range got {
			if !yield(n) {
				return
			}
		}
	}))
	for n, l := range held {
		st := got[n]
		assert.True(t, st.Held, n)
		assert.Equal(t, lock.Holder{Owner: l.Owner, FencingToken: l.FencingToken, ExpiresAt: l.ExpiresAt, Metadata: l.Metadata}, st.Holder, n)
		assert.NotContains(t, fmt.Sprintf("%+v", st), l.LeaseID)
	}

	// One page of everything under the prefix.
	items, _, err := s.List(ctx, prefix, lock.MaxListLimit, "")
	require.NoError(t, err)
	assert.LessOrEqual(t, len(items), len(held))
	// A prefix nothing has.
	items, next, err := s.List(ctx, prefix+"none/", 10, "")
	require.NoError(t, err)
	assert.Empty(t, items)
	for next != "" { // a provider may bound its work: follow to the end
		items, next, err = s.List(ctx, prefix+"none/", 10, next)
		require.NoError(t, err)
		assert.Empty(t, items)
	}
}

// observation is one answer of a watch that reported a change.
type observation struct {
	held  bool
	token int64
	value string // the holder's metadata
	at    time.Time
}

// watchLoop watches name from after until ctx ends, sending every change
// it is told of.
func watchLoop(ctx context.Context, s *service.Service, name string, after int64, out chan<- observation) {
	defer close(out)
	for ctx.Err() == nil {
		st, changed, err := s.Watch(ctx, name, after, 2*time.Second)
		if err != nil {
			if ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond) // a fault: try again
			}
			continue
		}
		if !changed {
			continue
		}
		after = token(st)
		select {
		case out <- observation{held: st.Held, token: after, value: st.Holder.Metadata, at: time.Now()}:
		case <-ctx.Done():
			return
		}
	}
}

func token(st lock.Status) int64 {
	if !st.Held {
		return 0
	}
	return st.Holder.FencingToken
}

// testWatchChanges: a watch sees every change of holder (acquire, release,
// expiry, takeover), in order of tokens, and nothing else.
func testWatchChanges(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	obs := make(chan observation)
	go watchLoop(wctx, s, name, 0, obs)
	expect := func(held bool, tok int64, what string) {
		t.Helper()
		select {
		case o := <-obs:
			assert.Equal(t, held, o.held, "%s: held", what)
			assert.Equal(t, tok, o.token, "%s: token", what)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no change reported within 5 s", what)
		}
	}
	a := acquire(t, s, name, 30*time.Second)
	expect(true, a.FencingToken, "acquire")
	_, err := s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: a.LeaseID})
	require.NoError(t, err)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: a.LeaseID}))
	expect(false, 0, "release (a renew before it is no change)")
	b := acquire(t, s, name, time.Second)
	expect(true, b.FencingToken, "second acquire")
	expect(false, 0, "expiry")
	c := acquire(t, s, name, 30*time.Second)
	expect(true, c.FencingToken, "acquire after expiry")
	assert.Less(t, a.FencingToken, b.FencingToken)
	assert.Less(t, b.FencingToken, c.FencingToken)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: c.LeaseID}))
	expect(false, 0, "last release")
	select {
	case o := <-obs:
		t.Fatalf("a change that did not happen was reported: %+v", o)
	case <-time.After(300 * time.Millisecond):
	}
}

// testWatchNoChange: a watch of the current holder answers changed=false
// with the unchanged status when its wait runs out, renewals included; a
// watch from another token answers at once; wait 0 answers at once.
func testWatchNoChange(t *testing.T, s *service.Service, name string) {
	ctx := ctxFor(t)
	l := acquire(t, s, name, 30*time.Second)
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, _ = s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID})
	}()
	start := time.Now()
	st, changed, err := s.Watch(ctx, name, l.FencingToken, 400*time.Millisecond)
	require.NoError(t, err)
	assert.False(t, changed)
	assert.True(t, st.Held)
	assert.Equal(t, l.FencingToken, st.Holder.FencingToken)
	assert.GreaterOrEqual(t, time.Since(start), 400*time.Millisecond, "waited the full wait")

	start = time.Now()
	st, changed, err = s.Watch(ctx, name, 0, 5*time.Second)
	require.NoError(t, err)
	assert.True(t, changed, "after_token 0 means no holder: a held lock differs")
	assert.Equal(t, l.FencingToken, st.Holder.FencingToken)
	assert.Less(t, time.Since(start), 2*time.Second, "answered at once")

	st, changed, err = s.Watch(ctx, name, l.FencingToken, 0)
	require.NoError(t, err)
	assert.False(t, changed)
	assert.True(t, st.Held)

	_, _, err = s.Watch(ctx, name, -1, 0)
	assert.ErrorIs(t, err, lock.ErrInvalidArgument)
	_, _, err = s.Watch(ctx, name, 0, lock.MaxWait+time.Millisecond)
	assert.ErrorIs(t, err, lock.ErrInvalidArgument)
}

// testWatchCost pins what an open watch costs the backend: a provider that
// watches (providers.HolderWatcher) reads a couple of times and then waits
// on the backend; the others read the status after pauses of 5 to 10, 10
// to 20, 20 to 40 ms and then every 40 to 80 ms (service.DefaultWatchPoll),
// about 17 reads a second once settled.
func testWatchCost(t *testing.T, p providers.Provider, name string) {
	rc, ok := p.(providers.RequestCounter)
	if !ok {
		t.Skip("provider does not count its backend requests")
	}
	if p.Name() == "memory" {
		t.Skip("memory has no backend")
	}
	s := service.New(p)
	ctx := ctxFor(t)
	l := acquire(t, s, name, 30*time.Second)
	before := rc.BackendRequests()
	const reads = 5
	for range reads {
		_, err := s.Status(ctx, name)
		require.NoError(t, err)
	}
	perRead := float64(rc.BackendRequests()-before) / reads
	require.Positive(t, perRead)

	const window = 1500 * time.Millisecond
	before = rc.BackendRequests()
	_, changed, err := s.Watch(ctx, name, l.FencingToken, window)
	require.NoError(t, err)
	require.False(t, changed)
	spent := float64(rc.BackendRequests() - before)
	if _, watches := providers.As[providers.HolderWatcher](p); watches {
		t.Logf("%s: one watch of %s cost %.0f backend requests", p.Name(), window, spent)
		assert.LessOrEqual(t, spent, 3*perRead+2, "a watching provider does not poll")
		return
	}
	got := spent / perRead
	// The pauses start at [5, 10], [10, 20], [20, 40] ms, then stay within
	// [poll/2, poll].
	poll := service.DefaultWatchPoll
	lo := float64((window-70*time.Millisecond)/poll) + 3 - 1         // every pause at its longest
	hi := float64((window-35*time.Millisecond)/(poll/2)) + 3 + 1 + 1 // at its shortest, and the first read
	t.Logf("%s: one watch of %s cost %.1f status reads (%.1f requests each); bounds %.0f..%.0f", p.Name(), window, got, perRead, lo, hi)
	assert.GreaterOrEqual(t, got, lo, "polls about every %s", poll)
	assert.LessOrEqual(t, got, hi, "polls at most every %s", poll/2)
}

// ElectionConfig sizes Election; zero values take the defaults.
type ElectionConfig struct {
	// Candidates is the number of candidates (default 5).
	Candidates int
	// Duration is how long the candidates campaign (default 4 s).
	Duration time.Duration
	// Observers is the number of watching observers (default 2).
	Observers int
}

// Election runs an election on name among candidates spread over the
// given service instances: each candidate campaigns (acquire with wait,
// its id as metadata), leads while renewing (every 300 ms, lease 1 s,
// relying on it until 250 ms before it could end), and resigns after a
// short term. The first leader pauses past its TTL without renewing, so
// the others take over: its renew afterwards must be lost. It checks that
// at most one candidate leads at a time and that tokens increase in the
// order of leadership (CheckHolds), that observers (watch loops) see only
// leaders that were, in increasing token order, and that they converge on
// the final state. Under faults an acquire whose answer was lost may have
// created a lease nobody was told of (API v1: it is never handed out and
// expires): observers may see it, but only with the value of a candidate
// whose acquire had an unknown outcome.
func Election(t *testing.T, instances []*service.Service, name string, cfg ElectionConfig) {
	if cfg.Candidates == 0 {
		cfg.Candidates = 5
	}
	if cfg.Duration == 0 {
		cfg.Duration = 4 * time.Second
	}
	if cfg.Observers == 0 {
		cfg.Observers = 2
	}
	const (
		ttl    = time.Second
		margin = 250 * time.Millisecond
		renew  = 300 * time.Millisecond
		term   = 500 * time.Millisecond
	)
	ctx := ctxFor(t)
	campaign, stop := context.WithTimeout(ctx, cfg.Duration)
	defer stop()
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()

	var (
		hist      History
		mu        sync.Mutex
		granted   = map[int64]string{} // token → candidate value
		ambiguous = map[string]bool{}  // values of acquires with an unknown outcome
		lost      int
		paused    bool
	)
	observed := make([][]observation, cfg.Observers)
	var omu sync.Mutex // guards observed until the observers end
	var owg sync.WaitGroup
	for i := range cfg.Observers {
		ch := make(chan observation)
		go watchLoop(wctx, instances[i%len(instances)], name, 0, ch)
		owg.Add(1)
		go func() {
			defer owg.Done()
			for o := range ch {
				omu.Lock()
				observed[i] = append(observed[i], o)
				omu.Unlock()
			}
		}()
	}

	var wg sync.WaitGroup
	for c := range cfg.Candidates {
		s := instances[c%len(instances)]
		value := fmt.Sprintf("candidate-%d", c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c > 0 {
				// Candidate 0 most likely leads (and pauses) first.
				time.Sleep(200 * time.Millisecond)
			}
			for campaign.Err() == nil {
				wait := min(time.Until(deadlineOf(campaign)), lock.MaxWait).Truncate(time.Millisecond)
				if wait <= 0 {
					return
				}
				l, err := s.Acquire(campaign, lock.AcquireRequest{Name: name, Owner: value, Metadata: value, TTL: ttl, Wait: wait})
				if err != nil {
					var held *lock.HeldError
					if !errors.As(err, &held) {
						// Unavailable, or the campaign's context ended while
						// the acquire was in flight: the outcome is unknown, and
						// a lease it may have created is seen until its TTL.
						mu.Lock()
						ambiguous[value] = true
						mu.Unlock()
					}
					continue // held until the end, or a fault: campaign again
				}
				start := time.Now()
				mu.Lock()
				granted[l.FencingToken] = value
				pause := !paused
				paused = paused || pause
				mu.Unlock()
				// Rely on it no longer than this (the service's clock is
				// this process's: the wait before the grant is not counted).
				safe := l.ExpiresAt.Add(-margin)
				end := start
				if pause {
					// Stop renewing past the TTL (a GC pause, a partition).
					end = safe
					time.Sleep(l.TTL + 500*time.Millisecond)
					_, err := s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID})
					for try := 0; try < 5 && (errors.Is(err, lock.ErrUnavailable) || errors.Is(err, lock.ErrThrottled)); try++ {
						time.Sleep(50 * time.Millisecond) // a fault: the answer is unknown, ask again
						_, err = s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID})
					}
					mu.Lock()
					if errors.Is(err, lock.ErrLeaseLost) {
						lost++
					}
					mu.Unlock()
				} else {
					resign := start.Add(term)
					for {
						now := time.Now()
						if !now.Before(resign) || !now.Before(safe) || campaign.Err() != nil {
							end = now
							if safe.Before(now) {
								end = safe
							}
							break
						}
						time.Sleep(min(renew, time.Until(resign), time.Until(safe)))
						if time.Now().Before(resign) {
							if r, err := s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID}); err == nil {
								safe = r.ExpiresAt.Add(-margin)
							}
						}
					}
					_ = s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID})
				}
				hist.Add(Hold{Name: name, Token: l.FencingToken, Start: start, End: end, Client: c})
			}
		}()
	}
	wg.Wait()
	require.NoError(t, hist.Check(), "at most one leader at a time, tokens in order")
	assert.GreaterOrEqual(t, hist.Len(), 3, "leadership changed hands")
	assert.True(t, paused, "the first leader paused")
	assert.Equal(t, 1, lost, "the paused leader's renew after its TTL is lost")

	// Every candidate has resigned or expired: the observers converge on
	// "no leader" once the last lease runs out. An acquire its candidate
	// gave up on (its context ended, or a fault) may still reach the store
	// a moment later and create a lease nobody was told of: wait until the
	// name has been free for half a second.
	s := instances[0]
	status := func() lock.Status {
		st, err := s.Status(ctx, name)
		for try := 0; try < 5 && err != nil; try++ { // a fault: ask again
			time.Sleep(50 * time.Millisecond)
			st, err = s.Status(ctx, name)
		}
		require.NoError(t, err)
		return st
	}
	for settle := time.Now().Add(15 * time.Second); time.Now().Before(settle); {
		if st := status(); st.Held {
			waitUntil(st.Holder.ExpiresAt.Add(100 * time.Millisecond))
			continue
		}
		time.Sleep(500 * time.Millisecond)
		if !status().Held {
			break
		}
	}
	// Each observer sees it within a poll and a read, or a little longer
	// when a read is slow (one of the emulator's took a second once): give
	// them up to the instances' operation timeout and then some.
	for converged := time.Now().Add(5 * time.Second); time.Now().Before(converged); time.Sleep(50 * time.Millisecond) {
		omu.Lock()
		all := true
		for _, seen := range observed {
			all = all && len(seen) > 0 && !seen[len(seen)-1].held
		}
		omu.Unlock()
		if all {
			break
		}
	}
	stopWatch()
	owg.Wait()
	for i, seen := range observed {
		require.NotEmpty(t, seen, "observer %d saw changes", i)
		var last int64
		for _, o := range seen {
			if !o.held {
				continue
			}
			v, real := granted[o.token]
			if real {
				assert.Equal(t, v, o.value, "observer %d: token %d's value", i, o.token)
			} else {
				assert.True(t, ambiguous[o.value], "observer %d saw token %d (value %q), which no candidate was granted nor may have been", i, o.token, o.value)
			}
			assert.Greater(t, o.token, last, "observer %d: tokens increase", i)
			last = o.token
		}
		assert.False(t, seen[len(seen)-1].held, "observer %d converged on no leader", i)
	}
	t.Logf("election: %d terms, %d changes seen by observer 0", hist.Len(), len(observed[0]))
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// testWatchLatency measures how long a change made through one service
// instance takes to reach a watch served by another (no local wake-up:
// what a fleet of functions sees), from the start of the acquire or
// release that made it to the watch's answer, and sets it beside the
// handoff in the same scenario: every other round, while the watch waits
// for a release, an acquire with a wait on a third instance waits for the
// same release, and its grant is timed from the same instant. A polling
// watch must see a change within service.DefaultWatchPoll plus one status
// read; the bound allows 150 ms of slack for the race detector and a busy
// machine. The two series are logged side by side, not compared by the
// test: they are timings (BENCHMARKS.md, "Watches", records them).
func testWatchLatency(t *testing.T, watcher, changer, waiter *service.Service, name string) {
	ctx := ctxFor(t)
	const rounds = 16
	type answer struct {
		st  lock.Status
		at  time.Time
		err error
	}
	watch := func(after int64) <-chan answer {
		got := make(chan answer, 1)
		go func() {
			st, changed, err := watcher.Watch(ctx, name, after, 5*time.Second)
			if err == nil && !changed {
				err = fmt.Errorf("no change within 5 s")
			}
			got <- answer{st, time.Now(), err}
		}()
		return got
	}
	since := func(at, start time.Time) time.Duration { return max(at.Sub(start), 0) }
	// Untimed: each instance's first requests, which may set up
	// connections (and moto's Parameter Store loads its defaults then).
	l := acquire(t, changer, name, 30*time.Second)
	require.NoError(t, changer.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))
	for _, s := range []*service.Service{watcher, waiter} {
		_, err := s.Status(ctx, name)
		require.NoError(t, err)
	}
	var acquired, released, handoff []time.Duration
	for i := range rounds {
		settle := time.Duration(20+i*7%40) * time.Millisecond // let the watch settle into its wait
		// Even rounds: the changer takes the free name.
		got := watch(0)
		time.Sleep(settle)
		start := time.Now()
		held, err := changer.Acquire(ctx, lock.AcquireRequest{Name: name, TTL: 30 * time.Second})
		require.NoError(t, err)
		a := <-got
		require.NoError(t, a.err)
		acquired = append(acquired, since(a.at, start))
		// Odd rounds: the changer releases; a watch and a waiting acquire,
		// each on an instance of its own, wait for it from the same moment.
		got = watch(held.FencingToken)
		granted := make(chan answer, 2) // the grant, then the release: never blocks
		go func() {
			l, err := waiter.Acquire(ctx, lock.AcquireRequest{Name: name, TTL: 30 * time.Second, Wait: 5 * time.Second})
			granted <- answer{lock.Status{Held: err == nil, Holder: lock.Holder{FencingToken: l.FencingToken}}, time.Now(), err}
			if err == nil {
				// Free again for the next round, once timed.
				err = waiter.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID})
			}
			granted <- answer{err: err}
		}()
		time.Sleep(settle)
		start = time.Now()
		require.NoError(t, changer.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: held.LeaseID}))
		a, g := <-got, <-granted
		require.NoError(t, a.err)
		require.NoError(t, g.err, "the waiter on a third instance is granted the released name")
		assert.Greater(t, g.st.Holder.FencingToken, held.FencingToken)
		released = append(released, since(a.at, start))
		handoff = append(handoff, since(g.at, start))
		require.NoError(t, (<-granted).err)
	}
	p := func(ds []time.Duration) string {
		ds = slices.Clone(ds)
		slices.Sort(ds)
		return fmt.Sprintf("p50 %s, max %s", ds[len(ds)/2].Round(100*time.Microsecond), ds[len(ds)-1].Round(100*time.Microsecond))
	}
	t.Logf("another instance's watch saw an acquire: %s; a release: %s; the same releases were handed to a waiter on a third instance: %s (%d rounds)",
		p(acquired), p(released), p(handoff), rounds)
	all := slices.Concat(acquired, released)
	assert.LessOrEqual(t, slices.Max(all), service.DefaultWatchPoll+150*time.Millisecond, "a change is seen within the poll interval")
}
