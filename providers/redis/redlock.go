package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

// DefaultNodeTimeout bounds each call to one Redlock node, so that a node
// that does not answer delays an operation by at most this long: small
// beside the shortest TTL (1 s), long beside a round trip.
const DefaultNodeTimeout = 500 * time.Millisecond

// WithNodeTimeout sets how long a Redlock operation waits for each node
// (default DefaultNodeTimeout). A node that does not answer in time counts
// as one whose outcome is unknown.
func WithNodeTimeout(d time.Duration) Option { return func(o *options) { o.nodeTimeout = d } }

// MinRedlockNodes is the fewest masters a Redlock may have: with fewer,
// one failed node stops every operation.
const MinRedlockNodes = 3

// drift is Redlock's allowance for the nodes' clocks running at different
// rates: each node keeps a lease for its TTL plus drift(TTL), while the
// holder is told TTL. The scripts compute the same (floor(ttl/100) + 2).
func drift(ttl time.Duration) time.Duration {
	return time.Duration(ttl.Milliseconds()/100+2) * time.Millisecond
}

// Redlock stores leases on N independent Redis masters (no replication
// between them) and needs a majority of them for every grant, Redis's
// Redlock algorithm, with fencing tokens.
//
//   - Acquire runs the same acquire script as one server on every node at
//     once, each node keeping the lease for TTL + TTL/100 + 2 ms by its own
//     clock. The lock is granted when a majority granted it and the
//     reported expiry (the service's clock before sending, plus the TTL)
//     has not passed when the answers are in. The token is the largest the
//     majority issued; if fewer than a majority issued that very token, the
//     granted nodes that issued less raise their counter to it (a second
//     round trip, only then), so that every later majority, which shares a
//     node with this one, issues more. Failing a majority, the acquire
//     undoes its lease on every node it may have written (those that
//     granted and those that did not answer), and tries again after a
//     random pause of a few milliseconds when the vote was split or nodes
//     did not answer (six rounds at most). It names a holder only when
//     that lease may hold a majority, or when every node answered and the
//     vote stayed split.
//   - Renew and release run on every node; they succeed when a majority
//     renewed or released, and answer lease_lost when a majority no longer
//     has the lease. Otherwise the outcome is unknown (unavailable).
//   - Status reports a holder only when a majority shows the same lease.
//   - List scans every node (SCAN, O(keyspace) per node per page) and
//     lists a name only where a majority shows the same lease, as Status
//     (see Redlock.List).
//
// Consistency model, plainly: mutual exclusion holds while every node
// keeps its data across restarts (AOF, checked as for one server), the
// nodes' clocks run at nearly the same rate (the drift allowance) and do
// not jump, and network delays and process pauses are shorter than the
// TTL. Those are timing assumptions: Redlock is not a consensus protocol,
// and a holder paused past its TTL (a GC, a frozen VM) still believes it
// holds the lock, which is Martin Kleppmann's critique ("How to do
// distributed locking", 2016). The fencing token is what makes it
// usable: the protected resource refuses a token smaller than one it has
// seen, and tokens strictly increase across grants because any two
// majorities share a node, which saw the earlier token before it let the
// later lease in. A node that restarts without its data breaks both
// guarantees for the leases it held, as Redlock's own "delayed restart"
// advice says; the counters it re-creates are seeded from its clock
// (in seconds × 10^6), so tokens still increase if its clock reads at
// least a second later than when it last granted. Waiting is polled, as
// for one server.
//
// A Redlock keeps no permit tables: it is not a providers.PermitStore, so
// semaphore and lock-delay acquires (permits > 1, lock_delay_ms) answer
// providers.ErrUnsupported (HTTP 501). A table is written under a
// compare-and-swap of one record, and a majority of independent masters
// has no such operation: each node could only compare its own copy, and
// two writers could each win on a different majority's worth of nodes
// between them. Use redis:// (one server) for them.
type Redlock struct {
	nodes       []*rnode
	quorum      int
	prefix      string
	clock       lock.Clock
	durability  Durability
	nodeTimeout time.Duration
	owned       bool
	calls       atomic.Int64
}

// rnode is a Redlock node and what its durability check found.
type rnode struct {
	node
	mu      sync.Mutex
	fsync   string // "always" or "everysec" once checked
	refused error  // wraps ErrNotDurable: the node is never used

	downUntil atomic.Int64 // Unix ns: left out until then (see downFor)
}

// downFor is how long a Redlock node whose call failed for want of a
// connection (after the client's own retries, so not one lost packet) is
// left out of operations, its answer counting as unknown, so that a dead
// or unreachable node does not delay every operation; the first operation
// after that tries it again.
const downFor = time.Second

// left reports whether n is being left out after a failed call.
func (n *rnode) left() bool {
	until := n.downUntil.Load()
	return until != 0 && time.Now().UnixNano() < until
}

// after records the outcome of a call to n made under ctx: a transport
// failure (not an error reply from Redis, not the end of the caller's
// ctx) leaves it out for downFor.
func (n *rnode) after(ctx context.Context, err error) {
	var rerr goredis.Error
	switch {
	case err == nil:
		n.downUntil.Store(0)
	case ctx.Err() != nil, errors.As(err, &rerr), !errors.Is(err, lock.ErrUnavailable):
	default:
		n.downUntil.Store(time.Now().Add(downFor).UnixNano())
	}
}

var (
	_ providers.Provider       = (*Redlock)(nil)
	_ providers.RequestCounter = (*Redlock)(nil)
	_ providers.Guarantor      = (*Redlock)(nil)
	_ providers.Lister         = (*Redlock)(nil)
)

// NewRedlock returns a Redlock over clients, one per independent master
// (at least MinRedlockNodes). Unless WithDurability(DurabilityNone) says
// otherwise, it checks every node's persistence first (ctx bounds it): a
// node that answers and would lose acknowledged writes is an error
// wrapping ErrNotDurable; a node that does not answer is checked before it
// is first used; fewer than a majority answering is an error. Close does
// not close the clients.
func NewRedlock(ctx context.Context, clients []*goredis.Client, opts ...Option) (*Redlock, error) {
	if len(clients) < MinRedlockNodes {
		return nil, fmt.Errorf("redlock: %d nodes; it needs at least %d independent masters", len(clients), MinRedlockNodes)
	}
	o := newOptions(opts)
	if o.durability != DurabilityAOF && o.durability != DurabilityNone {
		return nil, fmt.Errorf("redlock: unknown durability %q (aof or none)", o.durability)
	}
	p := &Redlock{
		quorum: len(clients)/2 + 1, prefix: o.prefix, clock: o.clock,
		durability: o.durability, nodeTimeout: o.nodeTimeout, owned: o.owned,
	}
	seen := map[string]bool{}
	for _, c := range clients {
		addr := c.Options().Addr
		if seen[addr] {
			return nil, fmt.Errorf("redlock: node %s given twice", addr)
		}
		seen[addr] = true
		p.nodes = append(p.nodes, &rnode{node: node{rdb: c, addr: addr, calls: &p.calls}})
	}
	errs := make([]error, len(p.nodes))
	var wg sync.WaitGroup
	for i, n := range p.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = p.ready(ctx, n); errs[i] == nil {
				errs[i] = n.loadScripts(ctx)
			}
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if errors.Is(err, ErrNotDurable) {
			return nil, err
		}
		if err == nil {
			ok++
		}
	}
	if ok < p.quorum {
		return nil, fmt.Errorf("redlock: only %d of %d nodes answered, %d needed: %w", ok, len(p.nodes), p.quorum, errors.Join(errs...))
	}
	return p, nil
}

// ready checks n's persistence once (see NewRedlock).
func (p *Redlock) ready(ctx context.Context, n *rnode) error {
	if p.durability == DurabilityNone {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.refused != nil {
		return n.refused
	}
	if n.fsync != "" {
		return nil
	}
	fsync, err := n.fsyncOf(ctx)
	if errors.Is(err, ErrNotDurable) {
		n.refused = err
	}
	if err != nil {
		return err
	}
	n.fsync = fsync
	return nil
}

// Name returns "redlock".
func (p *Redlock) Name() string { return "redlock" }

// Guarantee implements providers.Guarantor: "best effort" with
// durability=none, else "durable: AOF appendfsync everysec (or always) on
// every node, majority Q of N", counting the nodes not yet checked and
// those refused (which count as down).
func (p *Redlock) Guarantee() string {
	if p.durability == DurabilityNone {
		return "best effort"
	}
	fsync, unchecked, refused := "always", 0, 0
	for _, n := range p.nodes {
		n.mu.Lock()
		switch {
		case n.refused != nil:
			refused++
		case n.fsync == "":
			unchecked++
		case n.fsync == "everysec":
			fsync = "everysec"
		}
		n.mu.Unlock()
	}
	s := fmt.Sprintf("durable: AOF appendfsync %s on every node, majority %d of %d", fsync, p.quorum, len(p.nodes))
	if unchecked > 0 {
		s += fmt.Sprintf(" (%d not yet checked)", unchecked)
	}
	if refused > 0 {
		s += fmt.Sprintf(" (%d refused: no persistence, never used)", refused)
	}
	return s
}

// BackendRequests implements providers.RequestCounter: commands sent to
// all nodes.
func (p *Redlock) BackendRequests() int64 { return p.calls.Load() }

func (p *Redlock) key(name string) string { return p.prefix + name }

// answer is one node's part of an operation.
type answer struct {
	r   reply
	err error
}

// fanout runs fn on the nodes at idx (all when idx is nil) at once, each
// bounded by the node timeout, and returns their answers by node index.
func (p *Redlock) fanout(ctx context.Context, idx []int, fn func(ctx context.Context, n *rnode) (reply, error)) []answer {
	out := make([]answer, len(p.nodes))
	errs := p.each(ctx, idx, p.nodeTimeout, func(ctx context.Context, i int, n *rnode) error {
		var err error
		out[i].r, err = fn(ctx, n)
		return err
	})
	for i, err := range errs {
		out[i].err = err
	}
	return out
}

// each runs fn on the nodes at idx (all when idx is nil) at once, each
// call bounded by bound (none when zero: fn bounds its own requests), and
// returns their errors by node index. A node left out after a failed
// connection, or refused by its durability check, is not called.
func (p *Redlock) each(ctx context.Context, idx []int, bound time.Duration, fn func(ctx context.Context, i int, n *rnode) error) []error {
	if idx == nil {
		idx = p.all()
	}
	errs := make([]error, len(p.nodes))
	var wg sync.WaitGroup
	for _, i := range idx {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nctx, cancel := ctx, context.CancelFunc(func() {})
			if bound > 0 {
				nctx, cancel = context.WithTimeout(ctx, bound)
			}
			defer cancel()
			n := p.nodes[i]
			if n.left() {
				errs[i] = lock.Unavailable(fmt.Errorf("redis %s: left out for %s after a failed connection", n.addr, downFor), downFor)
				return
			}
			rctx, rcancel := context.WithTimeout(nctx, p.nodeTimeout)
			err := p.ready(rctx, n)
			rcancel()
			if err != nil {
				n.after(ctx, err)
				errs[i] = err
				return
			}
			errs[i] = fn(nctx, i, n)
			n.after(ctx, errs[i])
		}()
	}
	wg.Wait()
	return errs
}

// tally sorts answers into succeeded, refused (answered but not ok) and
// unknown (no answer) node indexes.
func tally(ans []answer, idx []int) (ok, no, unknown []int) {
	for _, i := range idx {
		switch a := ans[i]; {
		case a.err != nil:
			unknown = append(unknown, i)
		case a.r.ok:
			ok = append(ok, i)
		default:
			no = append(no, i)
		}
	}
	return ok, no, unknown
}

func (p *Redlock) all() []int {
	idx := make([]int, len(p.nodes))
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// group is one lease seen on several nodes.
type group struct {
	replies []reply
}

// summary is what the group's nodes say of the lease: the largest token,
// the earliest expiry and remaining time.
func (g group) summary() reply {
	s := g.replies[0]
	for _, r := range g.replies[1:] {
		if r.token > s.token {
			s.token, s.owner, s.md, s.ttl = r.token, r.owner, r.md, r.ttl
		}
		s.rep, s.left = min(s.rep, r.rep), min(s.left, r.left)
	}
	return s
}

// biggest groups the replies at idx by lease and returns the lease seen
// on the most nodes (ties: the largest token), or ok false.
func biggest(ans []answer, idx []int) (group, bool) {
	by := map[string]*group{}
	for _, i := range idx {
		r := ans[i].r
		g := by[r.leaseHash]
		if g == nil {
			g = &group{}
			by[r.leaseHash] = g
		}
		g.replies = append(g.replies, r)
	}
	var best *group
	for _, g := range by {
		if best == nil || len(g.replies) > len(best.replies) ||
			len(g.replies) == len(best.replies) && g.summary().token > best.summary().token {
			best = g
		}
	}
	if best == nil {
		return group{}, false
	}
	return *best, true
}

// Acquire implements providers.Provider (see Redlock).
func (p *Redlock) Acquire(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	key, lh := p.key(req.Name), providers.HashLeaseID(req.LeaseID)
	hadMajority := false // a round wrote this lease on a majority, then undid it
	for attempt := 1; ; attempt++ {
		l, final, err := p.acquireOnce(ctx, key, lh, req, attempt == maxAcquireRounds)
		var held *lock.HeldError
		if err != nil && !errors.As(err, &held) && errors.Is(err, errMajorityUndone) {
			hadMajority = true
		}
		if final {
			if hadMajority && errors.As(err, &held) {
				// Observers may have seen this lease hold a majority for a
				// moment: the caller is told the outcome was unknown, not
				// that another holder had the lock all along.
				return lock.Lease{}, lock.Unavailable(fmt.Errorf("redlock: %q: a majority granted this lease, which then had to be undone: %w", req.Name, err), 50*time.Millisecond)
			}
			return l, err
		}
		// A split vote or unknown outcomes: try again after a random
		// pause, so that racing acquirers fall out of step.
		select {
		case <-time.After(time.Duration(1+rand.IntN(4*attempt)) * time.Millisecond):
		case <-ctx.Done():
			return lock.Lease{}, err
		}
	}
}

// errMajorityUndone marks a round whose lease reached a majority but could
// not be completed (see finish) and was undone.
var errMajorityUndone = errors.New("redlock: granted by a majority, then undone")

// maxAcquireRounds is how many rounds an Acquire may take when votes are
// split or nodes do not answer.
const maxAcquireRounds = 6

// acquireOnce is one round of Acquire; final is false when another round
// may succeed (and last is false).
func (p *Redlock) acquireOnce(ctx context.Context, key, lh string, req lock.AcquireRequest, last bool) (_ lock.Lease, final bool, _ error) {
	before := p.clock.Now()
	ans := p.fanout(ctx, nil, func(ctx context.Context, n *rnode) (reply, error) {
		return n.acquire(ctx, key, lh, req, before, req.TTL+drift(req.TTL), 1000)
	})
	granted, held, unknown := tally(ans, p.all())
	if len(granted) >= p.quorum {
		l, err := p.finish(ctx, key, lh, req, before, ans, granted)
		if err == nil {
			return l, true, nil
		}
		p.undo(ctx, key, lh, append(granted, unknown...))
		return lock.Lease{}, last, fmt.Errorf("%w: %w", errMajorityUndone, err)
	}
	p.undo(ctx, key, lh, append(granted, unknown...))
	g, ok := biggest(ans, held)
	n, u := len(g.replies), len(unknown)
	if len(granted)+u >= p.quorum {
		// The nodes that did not answer may have granted too: this lease
		// may have held a majority, for observers, until the undo.
		return lock.Lease{}, last, fmt.Errorf("%w: %w", errMajorityUndone, lock.Unavailable(fmt.Errorf("redlock: %q: %d of %d nodes granted and %d did not answer (%w)",
			req.Name, len(granted), len(p.nodes), u, firstErr(ans, unknown)), 50*time.Millisecond))
	}
	switch {
	// Name a holder only if it may hold a majority (so a lease released
	// on a majority, still left on a node where its release failed, is
	// not named), and unless this acquire might have had one too.
	case ok && (n >= p.quorum || n+u >= p.quorum && len(granted)+u < p.quorum):
		return lock.Lease{}, true, g.summary().held(req.Name, p.clock.Now())
	// Every node answered and the vote stayed split between acquirers
	// round after round: the lock is contended; name the likeliest.
	case last && ok && u == 0:
		return lock.Lease{}, true, g.summary().held(req.Name, p.clock.Now())
	}
	return lock.Lease{}, last, lock.Unavailable(fmt.Errorf("redlock: %q: %d of %d nodes granted, %d held by others, %d did not answer (%w); %d needed",
		req.Name, len(granted), len(p.nodes), len(held), u, firstErr(ans, unknown), p.quorum), 50*time.Millisecond)
}

// finish completes a grant by a majority: it makes sure a majority's
// counters reach the token, and that the lease is still valid.
func (p *Redlock) finish(ctx context.Context, key, lh string, req lock.AcquireRequest, before time.Time, ans []answer, granted []int) (lock.Lease, error) {
	var token int64
	for _, i := range granted {
		token = max(token, ans[i].r.token)
	}
	atToken, exp := 0, lock.ExpiresAt(before, req.TTL).UnixMilli()
	var behind []int
	for _, i := range granted {
		exp = min(exp, ans[i].r.rep)
		if ans[i].r.token == token {
			atToken++
		} else {
			behind = append(behind, i)
		}
	}
	if atToken < p.quorum {
		// The majority issued different tokens: raise the others to the
		// largest, so that a majority has seen it.
		cans := p.fanout(ctx, behind, func(ctx context.Context, n *rnode) (reply, error) {
			ok, err := n.commit(ctx, key, lh, token)
			return reply{ok: ok}, err
		})
		done, _, unknown := tally(cans, behind)
		if atToken += len(done); atToken < p.quorum {
			return lock.Lease{}, lock.Unavailable(fmt.Errorf("redlock: token %d reached only %d of %d nodes (%w)", token, atToken, len(p.nodes), firstErr(cans, unknown)), 50*time.Millisecond)
		}
	}
	if !p.clock.Now().Before(time.UnixMilli(exp)) {
		return lock.Lease{}, lock.Unavailable(errors.New("redlock: the majority answered after the lease's validity"), 0)
	}
	r := ans[granted[0]].r
	r.token, r.rep, r.ttl = token, exp, req.TTL.Milliseconds()
	return r.lease(req.Name, req.LeaseID), nil
}

// undo releases the lease on the nodes at idx, whatever ctx says (it may
// have ended): best effort, a lease left behind expires at its TTL.
func (p *Redlock) undo(ctx context.Context, key, lh string, idx []int) {
	if len(idx) == 0 {
		return
	}
	mark, now := markKey(p.prefix), p.clock.Now()
	p.fanout(context.WithoutCancel(ctx), idx, func(ctx context.Context, n *rnode) (reply, error) {
		_, err := n.release(ctx, key, mark, lh, now)
		return reply{}, err
	})
}

// Renew implements providers.Provider (see Redlock).
func (p *Redlock) Renew(ctx context.Context, req lock.RenewRequest) (lock.Lease, error) {
	key, lh, before := p.key(req.Name), providers.HashLeaseID(req.LeaseID), p.clock.Now()
	ans := p.fanout(ctx, nil, func(ctx context.Context, n *rnode) (reply, error) {
		return n.renew(ctx, key, lh, req.TTL, true, before)
	})
	renewed, lost, unknown := tally(ans, p.all())
	if len(renewed) >= p.quorum {
		g := group{}
		for _, i := range renewed {
			g.replies = append(g.replies, ans[i].r)
		}
		r := g.summary()
		if !p.clock.Now().Before(r.expires()) {
			return lock.Lease{}, lock.Unavailable(errors.New("redlock: the majority answered after the lease's validity"), 0)
		}
		return r.lease(req.Name, req.LeaseID), nil
	}
	if len(lost) > len(p.nodes)-p.quorum {
		return lock.Lease{}, lock.ErrLeaseLost
	}
	return lock.Lease{}, lock.Unavailable(fmt.Errorf("redlock: renew of %q: %d renewed, %d lost, %d did not answer (%w); %d needed",
		req.Name, len(renewed), len(lost), len(unknown), firstErr(ans, unknown), p.quorum), 50*time.Millisecond)
}

// Release implements providers.Provider (see Redlock).
func (p *Redlock) Release(ctx context.Context, req lock.ReleaseRequest) error {
	key, lh, mark, before := p.key(req.Name), providers.HashLeaseID(req.LeaseID), markKey(p.prefix), p.clock.Now()
	ans := p.fanout(ctx, nil, func(ctx context.Context, n *rnode) (reply, error) {
		ok, err := n.release(ctx, key, mark, lh, before)
		return reply{ok: ok}, err
	})
	released, lost, unknown := tally(ans, p.all())
	switch {
	case len(released) >= p.quorum:
		return nil
	case len(lost) > len(p.nodes)-p.quorum:
		return lock.ErrLeaseLost
	}
	return lock.Unavailable(fmt.Errorf("redlock: release of %q: %d released, %d lost, %d did not answer (%w); %d needed",
		req.Name, len(released), len(lost), len(unknown), firstErr(ans, unknown), p.quorum), 50*time.Millisecond)
}

// Status implements providers.Provider: held when a majority shows the
// same lease.
func (p *Redlock) Status(ctx context.Context, name string) (lock.Status, error) {
	ans := p.fanout(ctx, nil, func(ctx context.Context, n *rnode) (reply, error) { return n.status(ctx, p.key(name)) })
	r, v, unknown := p.verdict(ans)
	switch v {
	case held:
		return lock.Status{Name: name, Held: true, Holder: r.holder()}, nil
	case unsure:
		return lock.Status{}, lock.Unavailable(fmt.Errorf("redlock: status of %q: %d nodes did not answer (%w)", name, len(unknown), firstErr(ans, unknown)), 50*time.Millisecond)
	}
	return lock.Status{Name: name}, nil
}

// verdictOf is what the nodes' status replies say of a name.
type verdictOf int

const (
	free   verdictOf = iota
	held             // a majority shows the same lease
	unsure           // the nodes that did not answer could make either true
)

// verdict judges a name from every node's status reply (ans, by node
// index), as Status answers: held, with the summary of the lease, when a
// majority shows the same lease; unsure when too many nodes did not
// answer, or when a lease seen on fewer than a majority might hold one
// with the nodes that did not answer (listed in unknown); else free.
func (p *Redlock) verdict(ans []answer) (_ reply, _ verdictOf, unknown []int) {
	live, _, unknown := tally(ans, p.all())
	g, ok := biggest(ans, live)
	switch {
	case ok && len(g.replies) >= p.quorum:
		return g.summary(), held, unknown
	case len(unknown) > len(p.nodes)-p.quorum, ok && len(g.replies)+len(unknown) >= p.quorum:
		return reply{}, unsure, unknown
	}
	return reply{}, free, unknown
}

// List implements providers.Lister as for one server (see Provider.List),
// on every node at once: each page walks the keyspace of every node with
// SCAN (each SCAN call bounded by the node timeout; O(keyspace) per node
// per page), takes the names any node has under prefix after the
// continuation, and reads their holders on every node with one script per
// 100 names per node. A name is listed only where a majority of nodes show
// the same lease, as Status judges: a name whose status would be unsure
// because nodes did not answer is left out (never listed when it may not
// be held). A page needs a majority of nodes to answer the scan and every
// read, else it fails as unavailable. Each SCAN call and each script on
// each node counts as a backend request.
func (p *Redlock) List(ctx context.Context, prefix string, limit int, after string) ([]lock.Status, string, error) {
	if err := checkAfter(prefix, after); err != nil {
		return nil, "", err
	}
	found := make([][]string, len(p.nodes))
	errs := p.each(ctx, nil, 0, func(ctx context.Context, i int, n *rnode) error {
		var err error
		found[i], err = n.scanNames(ctx, p.prefix, prefix, after, p.nodeTimeout)
		return err
	})
	if err := p.majorityAnswered("list", errs); err != nil {
		return nil, "", err
	}
	var names []string
	for _, f := range found {
		names = append(names, f...)
	}
	return listPage(sortedNames(names), limit, func(batch []string) ([]lock.Status, error) {
		keys := make([]string, len(batch))
		for i, n := range batch {
			keys[i] = p.key(n)
		}
		rs := make([][]reply, len(p.nodes))
		errs := p.each(ctx, nil, p.nodeTimeout, func(ctx context.Context, i int, n *rnode) error {
			var err error
			rs[i], err = n.list(ctx, keys)
			return err
		})
		if err := p.majorityAnswered("list", errs); err != nil {
			return nil, err
		}
		out := make([]lock.Status, len(batch))
		ans := make([]answer, len(p.nodes))
		for j := range batch {
			for i, err := range errs {
				ans[i] = answer{err: err}
				if err == nil {
					ans[i].r = rs[i][j]
				}
			}
			if r, v, _ := p.verdict(ans); v == held {
				out[j] = lock.Status{Held: true, Holder: r.holder()}
			}
		}
		return out, nil
	})
}

// majorityAnswered returns nil when a majority of nodes answered without
// error (errs by node index), else an unavailable error for op.
func (p *Redlock) majorityAnswered(op string, errs []error) error {
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(p.nodes)-len(failed) >= p.quorum {
		return nil
	}
	return lock.Unavailable(fmt.Errorf("redlock: %s: %d of %d nodes answered, %d needed (%w)", op, len(p.nodes)-len(failed), len(p.nodes), p.quorum, errors.Join(failed...)), 50*time.Millisecond)
}

// Ping implements providers.Provider: a majority must answer.
func (p *Redlock) Ping(ctx context.Context) error {
	ans := p.fanout(ctx, nil, func(ctx context.Context, n *rnode) (reply, error) { return reply{ok: true}, n.ping(ctx) })
	ok, _, unknown := tally(ans, p.all())
	if len(ok) < p.quorum {
		return lock.Unavailable(fmt.Errorf("redlock: %d of %d nodes answered, %d needed (%w)", len(ok), len(p.nodes), p.quorum, firstErr(ans, unknown)), time.Second)
	}
	return nil
}

// Close implements providers.Provider; it closes the clients only if the
// provider opened them (Open).
func (p *Redlock) Close() error {
	if !p.owned {
		return nil
	}
	var errs []error
	for _, n := range p.nodes {
		if err := n.rdb.Close(); err != nil && !errors.Is(err, goredis.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// firstErr returns the first error among the answers at idx, or one that
// says there was none.
func firstErr(ans []answer, idx []int) error {
	for _, i := range idx {
		if ans[i].err != nil {
			return ans[i].err
		}
	}
	return errors.New("no node failed")
}
