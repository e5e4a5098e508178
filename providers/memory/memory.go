// Package memory is an in-process provider FOR TESTS ONLY: its leases live
// in one process's memory and vanish with it, so two service instances
// never share a lock. It is the reference implementation of the provider
// contract and runs the conformance suite in every `go test`.
//
// Store URL: "memory:".
package memory

import (
	"context"
	"crypto/subtle"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

// Provider keeps leases in memory. Its fencing counters survive releases
// and expiries, but not the process. Expiry is judged by its Clock.
type Provider struct {
	clock lock.Clock
	*state
}

// state is shared by a provider and its views (see View).
type state struct {
	mu      sync.Mutex
	locks   map[string]*record
	tokens  map[string]int64 // last token issued per name; never deleted
	gen     map[string]int64 // bumped on every change of a name's record
	changed chan struct{}    // closed and replaced on every acquire and release
	closed  bool
}

type record struct {
	leaseID  string
	owner    string
	token    int64
	ttl      time.Duration
	expires  time.Time
	metadata string
	// table is the permit table of a semaphore or lock-delayed mutex
	// (leaseID is then "", which matches no lease, and expires is the
	// table's BusyUntil); nil for a plain lease.
	table *providers.PermitTable
}

var (
	_ providers.Provider      = (*Provider)(nil)
	_ providers.Watcher       = (*Provider)(nil)
	_ providers.HolderWatcher = (*Provider)(nil)
	_ providers.Lister        = (*Provider)(nil)
	_ providers.PermitStore   = (*Provider)(nil)
)

// Option configures a Provider.
type Option func(*Provider)

// WithClock makes the provider judge expiry by c instead of the system
// clock.
func WithClock(c lock.Clock) Option { return func(p *Provider) { p.clock = c } }

// New returns an empty in-memory provider. It is for tests only.
func New(opts ...Option) *Provider {
	p := &Provider{
		clock: lock.SystemClock{},
		state: &state{
			locks:   map[string]*record{},
			tokens:  map[string]int64{},
			gen:     map[string]int64{},
			changed: make(chan struct{}),
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// View returns a provider over the same leases that judges expiry by c, as
// a second service instance with another clock would. Closing either
// closes both.
func (p *Provider) View(c lock.Clock) *Provider {
	return &Provider{clock: c, state: p.state}
}

// Name returns "memory".
func (p *Provider) Name() string { return "memory" }

// live returns the unexpired record for name (a busy permit table too),
// deleting an expired plain one; an idle table stays, for its release
// marks, until an acquire takes the record over.
func (p *Provider) live(name string, now time.Time) *record {
	r := p.locks[name]
	if r != nil && !now.Before(r.expires) {
		if r.table == nil {
			delete(p.locks, name)
		}
		return nil
	}
	return r
}

func (p *Provider) check() error {
	if p.closed {
		return fmt.Errorf("memory: provider closed: %w", lock.ErrUnavailable)
	}
	return nil
}

// Acquire implements providers.Provider.
func (p *Provider) Acquire(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(); err != nil {
		return lock.Lease{}, err
	}
	now := p.clock.Now()
	if r := p.live(req.Name, now); r != nil {
		if r.table != nil {
			return lock.Lease{}, r.table.Blocking(req.Name, now, p.gen[req.Name])
		}
		return lock.Lease{}, &lock.HeldError{
			Name:       req.Name,
			Holder:     r.holder(),
			RetryAfter: r.expires.Sub(now),
			Revision:   p.gen[req.Name],
		}
	}
	p.tokens[req.Name]++
	p.gen[req.Name]++
	r := &record{
		leaseID:  req.LeaseID,
		owner:    req.Owner,
		token:    p.tokens[req.Name],
		ttl:      req.TTL,
		expires:  lock.ExpiresAt(now, req.TTL),
		metadata: req.Metadata,
	}
	p.locks[req.Name] = r
	p.notify()
	return r.lease(req.Name), nil
}

// Renew implements providers.Provider.
func (p *Provider) Renew(ctx context.Context, req lock.RenewRequest) (lock.Lease, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(); err != nil {
		return lock.Lease{}, err
	}
	now := p.clock.Now()
	r := p.live(req.Name, now)
	if r == nil || !sameID(r.leaseID, req.LeaseID) {
		return lock.Lease{}, lock.ErrLeaseLost
	}
	if req.TTL != 0 {
		r.ttl = req.TTL
	}
	r.expires = lock.ExpiresAt(now, r.ttl)
	p.gen[req.Name]++
	return r.lease(req.Name), nil
}

// Release implements providers.Provider.
func (p *Provider) Release(ctx context.Context, req lock.ReleaseRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(); err != nil {
		return err
	}
	r := p.live(req.Name, p.clock.Now())
	if r == nil || !sameID(r.leaseID, req.LeaseID) {
		return lock.ErrLeaseLost
	}
	delete(p.locks, req.Name)
	p.gen[req.Name]++
	p.notify()
	return nil
}

// Status implements providers.Provider.
func (p *Provider) Status(ctx context.Context, name string) (lock.Status, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(); err != nil {
		return lock.Status{}, err
	}
	return p.status(name, p.clock.Now()), nil
}

// status is Status with p.mu held.
func (p *Provider) status(name string, now time.Time) lock.Status {
	r := p.live(name, now)
	switch {
	case r == nil:
		return lock.Status{Name: name}
	case r.table != nil:
		return r.table.Status(name, now)
	}
	return lock.Status{Name: name, Held: true, Holder: r.holder()}
}

// LoadPermits implements providers.PermitStore.
func (p *Provider) LoadPermits(ctx context.Context, name string) (providers.PermitRecord, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(); err != nil {
		return providers.PermitRecord{}, err
	}
	now := p.clock.Now()
	rec := providers.PermitRecord{Now: now, Version: p.gen[name], Revision: p.gen[name]}
	p.live(name, now)
	switch r := p.locks[name]; {
	case r == nil:
	case r.table != nil:
		t := *r.table
		rec.Table = &t
	default:
		h := r.holder()
		rec.Mutex = &h
	}
	return rec, nil
}

// StorePermits implements providers.PermitStore: the version is the
// name's change counter.
func (p *Provider) StorePermits(ctx context.Context, name string, prev providers.PermitRecord, t providers.PermitTable) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(); err != nil {
		return 0, err
	}
	if v, _ := prev.Version.(int64); v != p.gen[name] {
		return 0, providers.ErrConflict
	}
	t, counter, tok, err := t.GrantTokens(p.tokens[name])
	if err != nil {
		return 0, fmt.Errorf("memory: %q: %w", name, err)
	}
	p.tokens[name] = counter
	p.locks[name] = &record{token: p.tokens[name], expires: t.BusyUntil(), table: &t}
	p.gen[name]++
	p.notify()
	return tok, nil
}

// WaitChange implements providers.Watcher: it returns on any release, when
// the holder's lease (as last seen) expires, or when ctx ends.
func (p *Provider) WaitChange(ctx context.Context, held *lock.HeldError) error {
	p.mu.Lock()
	ch := p.changed
	if p.gen[held.Name] != held.Revision {
		p.mu.Unlock()
		return nil // changed since the holder was observed
	}
	until := held.Holder.FreeAt().Sub(p.clock.Now())
	p.mu.Unlock()
	if until <= 0 {
		return nil
	}
	t := time.NewTimer(until)
	defer t.Stop()
	select {
	case <-ch:
		return nil
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// notify wakes every WaitChange and WaitHolderChange; p.mu must be held.
func (p *Provider) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// WaitHolderChange implements providers.HolderWatcher: it returns at once
// if the holder is not the one with token, else on the next acquire or
// release of any name, when the holder's lease (as now renewed) expires,
// or when ctx ends.
func (p *Provider) WaitHolderChange(ctx context.Context, name string, token int64) error {
	p.mu.Lock()
	if err := p.check(); err != nil {
		p.mu.Unlock()
		return err
	}
	ch := p.changed
	now := p.clock.Now()
	st := p.status(name, now)
	var cur int64
	if st.Held {
		cur = st.Holder.FencingToken
	}
	if cur != token {
		p.mu.Unlock()
		return nil
	}
	var timeout <-chan time.Time
	if st.Held {
		t := time.NewTimer(st.Holder.ExpiresAt.Sub(now))
		defer t.Stop()
		timeout = t.C
	}
	p.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-timeout:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// List implements providers.Lister: a scan of the names in memory, sorted,
// O(locks held) per page. The continuation is the last name listed.
func (p *Provider) List(ctx context.Context, prefix string, limit int, after string) ([]lock.Status, string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.check(); err != nil {
		return nil, "", err
	}
	now := p.clock.Now()
	var names []string
	for n := range p.locks {
		if strings.HasPrefix(n, prefix) && n > after && p.status(n, now).Held {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	next := ""
	if len(names) > limit {
		names = names[:limit]
		next = names[limit-1]
	}
	out := make([]lock.Status, 0, len(names))
	for _, n := range names {
		out = append(out, p.status(n, now))
	}
	return out, next, nil
}

// Ping implements providers.Provider.
func (p *Provider) Ping(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.check()
}

// Close implements providers.Provider; later calls fail as unavailable.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return nil
}

func (r *record) holder() lock.Holder {
	return lock.Holder{Owner: r.owner, FencingToken: r.token, ExpiresAt: r.expires, Metadata: r.metadata}
}

func (r *record) lease(name string) lock.Lease {
	return lock.Lease{
		Name: name, Owner: r.owner, LeaseID: r.leaseID, FencingToken: r.token,
		TTL: r.ttl, ExpiresAt: r.expires, Metadata: r.metadata,
	}
}

func sameID(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// BackendRequests implements providers.RequestCounter: memory has no
// backend, so always 0.
func (p *Provider) BackendRequests() int64 { return 0 }
