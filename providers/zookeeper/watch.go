package zookeeper

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// WaitHolderChange implements providers.HolderWatcher with a watch on the
// znode (a data watch, or an exists watch while the znode does not exist)
// and one read: it returns at once if the holder already differs from the
// one with fencing token token (0: none), and otherwise on the next write,
// creation or deletion of the znode, or when the holder's expiry passes by
// this instance's clock. The service reads the status after each return.
//
// No change after the read is missed: the watch it waits on was set on
// the watch session no later than that read, on the same session, and
// ZooKeeper fires a watch for any change after it was set. The ZooKeeper
// client keeps every watch it sets until the znode next changes and cannot
// remove one, so a watch set on every call would pile up on a name nobody
// writes (a long poll of a free name, every 20 s). Calls on one znode
// share a watch instead: while one is set, a call reads without setting
// another.
//
// The watch session may sit on another server than the one the status was
// read from. If its read is older than a version this provider has seen
// already, the call waits for the watch, which fires as that server
// catches up, instead of returning at once and being called again and
// again while it lags.
func (p *Provider) WaitHolderChange(ctx context.Context, name string, token int64) error {
	conn, err := p.watchConn()
	if err != nil {
		return mapErr(err)
	}
	path := p.path(name)
	type read struct {
		got
		watch *holderWatch
	}
	shared := p.holderWatches.live(path, conn) // before the read
	w, err := do(ctx, p, func() (read, error) {
		if shared != nil {
			d, st, err := conn.Get(path)
			return read{got{d, st}, shared}, err
		}
		d, st, ch, err := conn.GetW(path)
		if errors.Is(err, zk.ErrNoNode) {
			// No znode, so no holder: watch for its creation.
			var exists bool
			p.calls.Add(1)
			exists, st, ch, err = conn.ExistsW(path)
			if err == nil && exists {
				err = errRecreated
			} else if err == nil {
				err = zk.ErrNoNode
			}
		}
		var hw *holderWatch
		if ch != nil {
			// Recorded here, not by the caller, so that a call whose
			// context ends during the read leaves its watch shared.
			hw = p.holderWatches.set(path, conn, ch)
		}
		return read{got{d, st}, hw}, err
	})
	var fired <-chan struct{}
	if w.watch != nil {
		fired = w.watch.done
	}
	var until time.Duration = -1
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, errRecreated):
		return nil // created between the two reads: look again
	case errors.Is(err, zk.ErrNoNode):
		if token != 0 {
			return nil // deleted: the holder is gone
		}
	case err != nil || fired == nil:
		// Let the service read the status again, which reports a real
		// failure; pause first so that an outage is no busy loop.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(retryPause):
			return nil
		}
	default:
		v, err := decode(name, w.data, w.st)
		if err != nil {
			return nil // the status read reports it
		}
		now := p.clock.Now()
		st, err := v.rec.status(now)
		if err != nil {
			return nil
		}
		var cur int64
		if st.Held {
			cur, until = st.Holder.FencingToken, st.Holder.ExpiresAt.Sub(now)
		}
		if cur != token {
			if seen, ok := p.versions.Get(name); !ok || seen.mzxid <= v.mzxid {
				return nil
			}
			// This server lags: wait for it to apply what was seen.
			until = -1
		}
	}
	var expiry <-chan time.Time
	if until >= 0 {
		t := time.NewTimer(until)
		defer t.Stop()
		expiry = t.C
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-expiry:
		return nil
	case <-fired:
		return nil // written, created, deleted, or the connection ended
	}
}

// errRecreated: a znode that did not exist when read exists when watched.
var errRecreated = errors.New("zookeeper: the znode was created meanwhile")

// holderWatches are the watches WaitHolderChange has set, one per znode at
// most while it has not fired.
type holderWatches struct {
	mu sync.Mutex
	m  map[string]*holderWatch
}

// holderWatch is one watch set on a znode through conn; done is closed
// when it fires, or when conn ends (the client then ends every watch).
type holderWatch struct {
	conn *zk.Conn
	done chan struct{}
}

// live returns the watch set on path through conn that has not fired,
// or nil.
func (hw *holderWatches) live(path string, conn *zk.Conn) *holderWatch {
	hw.mu.Lock()
	defer hw.mu.Unlock()
	w := hw.m[path]
	if w == nil || w.conn != conn {
		return nil
	}
	select {
	case <-w.done:
		return nil
	default:
		return w
	}
}

// set records the watch on path that ch will report, and returns it; a
// goroutine closes its done when it fires. Another call may have set one
// meanwhile: the newer is kept for later calls, and each caller waits on
// its own.
func (hw *holderWatches) set(path string, conn *zk.Conn, ch <-chan zk.Event) *holderWatch {
	w := &holderWatch{conn: conn, done: make(chan struct{})}
	hw.mu.Lock()
	if hw.m == nil {
		hw.m = map[string]*holderWatch{}
	}
	hw.m[path] = w
	hw.mu.Unlock()
	go func() {
		<-ch
		close(w.done)
		hw.mu.Lock()
		if hw.m[path] == w {
			delete(hw.m, path)
		}
		hw.mu.Unlock()
	}()
	return w
}
