package redis

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hasplock/hasp/lock"
)

// Listing (providers.Lister) on Redis, for one server and for Redlock.
//
// Redis has no ordered index of keys, so a page is found with SCAN: the
// whole keyspace of the database is walked (SCAN ... MATCH <escaped key
// prefix + name prefix>* COUNT ListScanCount, until the cursor comes back
// to 0), the matching lock names after the page's continuation are sorted,
// and their holders are read in batches of listBatch keys, one script per
// batch judging expiry by the server's clock (TIME), until limit held
// locks are found or ListReadBudget names were read. The continuation is
// the last name read. So one page costs ⌈keys in the database /
// ListScanCount⌉ SCAN calls (O(keyspace) work on the server, whatever the
// prefix: MATCH filters after the walk) plus at most ⌈ListReadBudget /
// listBatch⌉ scripts; names stay after their release (they keep the
// token counter), so the keyspace grows with every name ever used.

const (
	// ListScanCount is the COUNT hint of each SCAN call of a listing: the
	// work of one call on the server (it blocks other clients meanwhile).
	ListScanCount = 1000
	// ListReadBudget bounds the lock names whose holder one page reads:
	// a page whose candidates are mostly free ends there, with a
	// continuation.
	ListReadBudget = 1000
	// listBatch is how many holders one list script reads.
	listBatch = 100
)

// globEscape escapes the characters that SCAN's MATCH pattern treats
// specially, so that s matches only itself.
func globEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// checkAfter checks a listing's continuation: "" or a lock name under
// prefix (the last name a page read).
func checkAfter(prefix, after string) error {
	if after != "" && (!strings.HasPrefix(after, prefix) || lock.ValidateName(after) != nil) {
		return lock.Invalid("page_token", "is not a page token of this listing")
	}
	return nil
}

// scanNames walks the server's keyspace with SCAN and returns the lock
// names (keys under keyPrefix, without it) that start with prefix and sort
// after after, unsorted, possibly repeated (SCAN may return a key twice).
// Keys that are not lock names (release marks, which contain '#') are
// skipped. callTimeout, if not zero, bounds each SCAN call.
func (n *node) scanNames(ctx context.Context, keyPrefix, prefix, after string, callTimeout time.Duration) ([]string, error) {
	match := globEscape(keyPrefix+prefix) + "*"
	var names []string
	var cursor uint64
	for {
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if callTimeout > 0 {
			cctx, cancel = context.WithTimeout(ctx, callTimeout)
		}
		n.calls.Add(1)
		keys, cur, err := n.rdb.Scan(cctx, cursor, match, ListScanCount).Result()
		cancel()
		if err != nil {
			return nil, mapErr(n.addr, err)
		}
		for _, k := range keys {
			name, ok := strings.CutPrefix(k, keyPrefix)
			if ok && strings.HasPrefix(name, prefix) && name > after && lock.ValidateName(name) == nil {
				names = append(names, name)
			}
		}
		if cur == 0 {
			return names, nil
		}
		cursor = cur
	}
}

// list runs the list script on keys: one reply per key, in order.
func (n *node) list(ctx context.Context, keys []string) ([]reply, error) {
	v, err := n.eval(ctx, listScript, keys).Slice()
	if err != nil {
		return nil, mapErr(n.addr, err)
	}
	if len(v) != len(keys) {
		return nil, fmt.Errorf("redis %s: list script answered %d replies for %d keys", n.addr, len(v), len(keys))
	}
	out := make([]reply, len(v))
	for i, x := range v {
		a, ok := x.([]any)
		if !ok {
			return nil, fmt.Errorf("redis %s: list script reply %d is %T", n.addr, i, x)
		}
		if out[i], err = decode(a); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// listPage makes one page from the candidate names (sorted, distinct, all
// after the continuation): it reads their statuses in batches with read,
// which answers one status per name of a batch (listed only if Held),
// until limit held locks are found or ListReadBudget names were read.
func listPage(names []string, limit int, read func(batch []string) ([]lock.Status, error)) ([]lock.Status, string, error) {
	out := make([]lock.Status, 0, min(limit, len(names)))
	done := 0
	for done < len(names) && done < ListReadBudget {
		batch := names[done:min(done+listBatch, len(names), ListReadBudget)]
		statuses, err := read(batch)
		if err != nil {
			return nil, "", err
		}
		for j, st := range statuses {
			if !st.Held {
				continue
			}
			st.Name = batch[j]
			out = append(out, st)
			if len(out) == limit {
				if done+j+1 < len(names) {
					return out, batch[j], nil
				}
				return out, "", nil
			}
		}
		done += len(batch)
	}
	if done < len(names) {
		return out, names[done-1], nil
	}
	return out, "", nil
}

// sortedNames sorts names and drops repeats.
func sortedNames(names []string) []string {
	slices.Sort(names)
	return slices.Compact(names)
}
