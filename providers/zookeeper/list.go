package zookeeper

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/go-zookeeper/zk"

	"github.com/hasplock/hasp/lock"
)

// ListReadBudget is the default bound on the znodes one List call (one
// page of GET /v1/locks?prefix=) reads; see WithListReadBudget.
const ListReadBudget = 1000

// listParallel bounds the reads one List call has in flight at once (the
// client pipelines them on the provider's one connection).
const listParallel = 32

// WithListReadBudget bounds the znodes one List call reads to n (default
// ListReadBudget; n < 1 means the default). A page that spends it before
// it has limit held locks ends early, with a continuation.
func WithListReadBudget(n int) Option {
	return func(p *Provider) {
		if n >= 1 {
			p.listBudget = n
		} else {
			p.listBudget = ListReadBudget
		}
	}
}

// List implements providers.Lister. A page costs 1 + up to N requests: one
// GetChildren of PREFIX, which names every lock znode (the whole list,
// O(znodes under PREFIX) bytes, whatever the listed prefix), then a GetData
// of each lock under the listed prefix after the continuation, in byte
// order of name, up to 32 at a time, until limit held ones are found or N
// = ListReadBudget (WithListReadBudget) reads are spent; never more reads
// than are needed for limit held locks. ZooKeeper keeps no index of held
// locks, so released and expired names (hasp keeps their znodes, for
// their tokens) are read too: a complete listing reads every znode under
// the prefix once. A page may hold fewer than limit locks, even none, and
// still have a continuation: the name of the last znode read. Expiry is
// judged by this instance's clock after the reads; like Status, the reads
// come from the session's server, which may lag the leader for a moment.
// Znodes under PREFIX that hold no hasp record (another application's, or
// ZooKeeper's own /zookeeper when PREFIX is the root) are skipped.
func (p *Provider) List(ctx context.Context, prefix string, limit int, after string) ([]lock.Status, string, error) {
	if err := lock.ValidateListLimit(limit); err != nil {
		return nil, "", err
	}
	if after != "" && (!strings.HasPrefix(after, prefix) || lock.ValidateName(after) != nil) {
		return nil, "", lock.Invalid("page_token", "is not a page token of this listing")
	}
	dir := p.prefix
	if dir == "" {
		dir = "/"
	}
	children, err := do(ctx, p, func() ([]string, error) {
		c, _, err := p.conn.Children(dir)
		return c, err
	})
	out := make([]lock.Status, 0, min(limit, len(children)))
	if errors.Is(err, zk.ErrNoNode) {
		return out, "", nil // no prefix yet: no lock was ever acquired
	}
	if err != nil {
		return nil, "", mapErr(err)
	}
	var names []string
	for _, c := range children {
		if n, ok := lockName(c); ok && strings.HasPrefix(n, prefix) && n > after {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	budget, i := p.listBudget, 0
	for i < len(names) && len(out) < limit && budget > 0 {
		k := min(limit-len(out), budget, len(names)-i, listParallel)
		recs, err := p.readRecords(ctx, names[i:i+k])
		if err != nil {
			return nil, "", err
		}
		now := p.clock.Now()
		for _, r := range recs {
			if r == nil {
				continue
			}
			st, err := r.status(now)
			if err != nil {
				return nil, "", err
			}
			if st.Held { // a busy permit table may be only lock-delayed
				out = append(out, st)
			}
		}
		i += k
		budget -= k
	}
	if i < len(names) {
		return out, names[i-1], nil
	}
	return out, "", nil
}

// readRecords reads the znodes of names at once, for List: nil for a
// znode deleted since it was listed or that holds no hasp record. The
// versions read are not remembered (a listing would push the names in
// use out of the cache).
func (p *Provider) readRecords(ctx context.Context, names []string) ([]*record, error) {
	recs := make([]*record, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for j, n := range names {
		path := p.path(n)
		wg.Go(func() {
			g, err := do(ctx, p, func() (got, error) {
				d, st, err := p.conn.Get(path)
				return got{d, st}, err
			})
			switch {
			case errors.Is(err, zk.ErrNoNode):
			case err != nil:
				errs[j] = mapErr(err)
			default:
				if v, err := decode(n, g.data, g.st); err == nil {
					recs[j] = &v.rec
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return recs, nil
}
