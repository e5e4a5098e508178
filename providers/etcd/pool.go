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

// leasePool recycles etcd leases that hold no key, by TTL in seconds, and
// revokes unwanted ones in the background.
type leasePool struct {
	cli *clientv3.Client

	mu     sync.Mutex
	idle   map[int64][]clientv3.LeaseID
	closed bool

	revokes chan clientv3.LeaseID
	done    chan struct{}
	ctx     context.Context // ends on close, abandoning queued revokes
	cancel  context.CancelFunc
	calls   atomic.Int64 // etcd RPCs sent
}

func newLeasePool(cli *clientv3.Client) *leasePool {
	ctx, cancel := context.WithCancel(context.Background())
	lp := &leasePool{
		cli:     cli,
		idle:    map[int64][]clientv3.LeaseID{},
		revokes: make(chan clientv3.LeaseID, 1024),
		done:    make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
	}
	go lp.revoker()
	return lp
}

// get returns a lease of secs seconds whose TTL runs from now: an idle one
// refreshed by a keep-alive, or a new grant.
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
		lp.mu.Unlock()
		lp.calls.Add(1)
		ka, err := lp.cli.KeepAliveOnce(ctx, id)
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			continue // it expired while idle
		}
		if err != nil {
			lp.put(id, secs)
			return 0, 0, mapErr(err)
		}
		if ka.TTL >= secs {
			return id, time.Duration(ka.TTL) * time.Second, nil
		}
		lp.revoke(id)
	}
	lp.calls.Add(1)
	g, err := lp.cli.Grant(ctx, secs)
	if err != nil {
		return 0, 0, mapErr(err)
	}
	return g.ID, time.Duration(g.TTL) * time.Second, nil
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
	lp.idle = nil
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
