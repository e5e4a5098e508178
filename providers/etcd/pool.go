package etcd

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// poolPerTTL bounds the idle etcd leases kept per TTL.
const poolPerTTL = 32

// maxSlack bounds how much longer than a hasp lease's TTL the pool asks
// etcd to keep the etcd lease under it (see slack).
const maxSlack = 5

// slack is how many seconds beyond secs the pool asks etcd to keep a
// lease it grants for hasp leases of secs seconds: the TTL, at most
// maxSlack. A lease refreshed (granted, or kept alive) less than slack ago
// still has secs to live in etcd, so it can serve a new hasp lease without
// a keep-alive; refreshing it once per slack seconds then suffices, instead
// of once per acquire. The longer etcd lease is safe: every check of
// ownership and expiry is by the value's lease id and expiry, never by the
// key's presence, so a key etcd keeps past its expiry is taken over like
// any expired one; what must never happen, etcd removing a key before its
// expiry, is what the refresh times guard.
func slack(secs int64) int64 { return min(secs, maxSlack) }

// grantedTTL is the hasp TTL that an etcd lease of ttl seconds, just
// refreshed, gives a hasp lease of secs seconds: its ttl less the slack
// the pool adds, but not less than secs (a lease granted for exactly secs,
// by an older hasp, has no slack), and never more than ttl.
func grantedTTL(secs, ttl int64) time.Duration {
	return time.Duration(max(min(secs, ttl), ttl-slack(secs))) * time.Second
}

// refresh is when the pool last sent a grant or keep-alive of a lease, by
// this process's monotonic clock, and the TTL etcd answered: etcd keeps
// the lease at least until at+ttl.
type refresh struct {
	at  time.Time
	ttl int64
}

// leasePool recycles etcd leases that hold no key, by TTL in seconds, and
// revokes unwanted ones in the background.
type leasePool struct {
	cli *clientv3.Client

	mu     sync.Mutex
	idle   map[int64][]clientv3.LeaseID
	closed bool
	// refreshed holds the last refresh of the leases this pool granted or
	// kept alive in the last maxSlack seconds (older ones are of no use to
	// get), pruned when it has doubled.
	refreshed map[clientv3.LeaseID]refresh
	pruneAt   int

	revokes chan clientv3.LeaseID
	done    chan struct{}
	ctx     context.Context // ends on close, abandoning queued revokes
	cancel  context.CancelFunc
	calls   atomic.Int64 // etcd RPCs sent
}

func newLeasePool(cli *clientv3.Client) *leasePool {
	ctx, cancel := context.WithCancel(context.Background())
	lp := &leasePool{
		cli:       cli,
		idle:      map[int64][]clientv3.LeaseID{},
		refreshed: map[clientv3.LeaseID]refresh{},
		pruneAt:   64,
		revokes:   make(chan clientv3.LeaseID, 1024),
		done:      make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
	}
	go lp.revoker()
	return lp
}

// get returns a lease that etcd keeps for at least the returned TTL (secs
// seconds or more) from now: an idle one refreshed recently enough, else
// an idle one refreshed by a keep-alive, else a new grant of secs plus
// slack.
func (lp *leasePool) get(ctx context.Context, secs int64) (clientv3.LeaseID, time.Duration, error) {
	for {
		lp.mu.Lock()
		ids := lp.idle[secs]
		if len(ids) == 0 {
			lp.mu.Unlock()
			break
		}
		id := ids[len(ids)-1]
		lp.idle[secs] = ids[:len(ids)-1]
		r, known := lp.refreshed[id]
		lp.mu.Unlock()
		if known && r.ttl >= secs {
			// etcd keeps it until r.at+r.ttl at least; the caller's expiry
			// starts from a moment before now.
			granted := grantedTTL(secs, r.ttl)
			if time.Until(r.at.Add(time.Duration(r.ttl)*time.Second)) >= granted {
				return id, granted, nil
			}
		}
		sent := time.Now()
		lp.calls.Add(1)
		ka, err := lp.cli.KeepAliveOnce(ctx, id)
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			lp.forget(id)
			continue // it expired while idle
		}
		if err != nil {
			lp.put(id, secs)
			return 0, 0, mapErr(err)
		}
		if ka.TTL >= secs {
			lp.kept(id, sent, ka.TTL)
			return id, grantedTTL(secs, ka.TTL), nil
		}
		lp.revoke(id)
	}
	sent := time.Now()
	lp.calls.Add(1)
	g, err := lp.cli.Grant(ctx, secs+slack(secs))
	if err != nil {
		return 0, 0, mapErr(err)
	}
	lp.kept(g.ID, sent, g.TTL)
	return g.ID, grantedTTL(secs, g.TTL), nil
}

// kept records that a grant or keep-alive of id sent at sent was answered
// with ttl seconds.
func (lp *leasePool) kept(id clientv3.LeaseID, sent time.Time, ttl int64) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if lp.closed {
		return
	}
	lp.refreshed[id] = refresh{at: sent, ttl: ttl}
	if len(lp.refreshed) >= lp.pruneAt {
		for id, r := range lp.refreshed {
			if time.Since(r.at) > maxSlack*time.Second {
				delete(lp.refreshed, id)
			}
		}
		lp.pruneAt = max(2*len(lp.refreshed), 64)
	}
}

// forget drops what the pool knows of a lease that is gone.
func (lp *leasePool) forget(id clientv3.LeaseID) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	delete(lp.refreshed, id)
}

// put returns a lease that holds no key to the pool, or revokes it when the
// pool is full.
func (lp *leasePool) put(id clientv3.LeaseID, secs int64) {
	lp.mu.Lock()
	if !lp.closed && len(lp.idle[secs]) < poolPerTTL {
		lp.idle[secs] = append(lp.idle[secs], id)
		lp.mu.Unlock()
		return
	}
	lp.mu.Unlock()
	lp.revoke(id)
}

// revoke revokes a lease in the background, best effort: a lease left
// behind expires by itself at its TTL.
func (lp *leasePool) revoke(id clientv3.LeaseID) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	delete(lp.refreshed, id)
	if lp.closed {
		return
	}
	select {
	case lp.revokes <- id:
	default:
	}
}

func (lp *leasePool) revoker() {
	defer close(lp.done)
	for id := range lp.revokes {
		ctx, cancel := context.WithTimeout(lp.ctx, 2*time.Second)
		lp.calls.Add(1)
		_, _ = lp.cli.Revoke(ctx, id)
		cancel()
	}
}

// close revokes the idle leases and stops the background revoker, within
// about two seconds even if etcd does not answer; leases it leaves behind
// expire at their TTL.
func (lp *leasePool) close() {
	lp.mu.Lock()
	if lp.closed {
		lp.mu.Unlock()
		return
	}
	lp.closed = true
	var all []clientv3.LeaseID
	for _, ids := range lp.idle {
		all = append(all, ids...)
	}
	lp.idle, lp.refreshed = nil, nil
	close(lp.revokes)
	lp.mu.Unlock()
	lp.cancel()
	<-lp.done
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, id := range all {
		_, _ = lp.cli.Revoke(ctx, id)
	}
}
