// Package etcd stores hasp leases in etcd, with leases, transactions and
// watches.
//
// Each lock is one key, prefix+name, attached to an etcd lease that etcd
// keeps at least as long as the hasp lease: the hasp TTL is rounded up to
// whole seconds (etcd's granularity; the granted TTL says so), and the etcd
// lease is granted for that plus a slack of up to 5 s (see below). Its
// value is
//
//	lease id, NUL, expiry (13-digit Unix milliseconds), NUL, JSON {owner, ttl_ms, md}
//
// so that one transaction can check "this lease id holds the key and has
// not expired" by two byte-wise comparisons of the value.
//
//   - Fencing token: the key's CreateRevision. etcd revisions increase for the
//     life of the data directory and a new holder always creates the key
//     anew, so tokens strictly increase across releases, expiries and
//     restarts (but not across a wiped data directory).
//   - Acquire: one transaction "create the key if absent, else read it". A
//     record whose expiry by the service's clock has passed but which etcd
//     has not yet removed (etcd revokes expired leases on a 500 ms loop, and
//     extends every lease when a member restarts) is taken over: deleted
//     under a ModRevision guard, then created anew.
//   - Renew: keep-alive of the etcd lease, then the new expiry is written
//     under a ModRevision guard. A renew with another TTL moves the key to
//     another etcd lease (the key, and so the token, stay).
//   - Release: one transaction that deletes the key if the value shows this
//     lease id and an unexpired expiry.
//   - Waiting: a watch on the key from the revision right after the one at
//     which the holder was observed, so that a release is seen at once and
//     none is missed; a timer covers expiry.
//
// Semaphores and lock-delay (providers.PermitStore): the key holds the
// permit table in the record's JSON ("sem"), with an empty lease id (which
// no lease matches) and the table's BusyUntil as expiry, on no etcd lease,
// so a plain acquire finds it held while a permit is live or lock-delayed
// and takes the key over (delete, create) once it is idle. A permit
// acquire, renew or release costs one read and one transaction guarded by
// the key's ModRevision (two RPCs; again per lost race). A permit's token
// is the revision of the transaction that granted it (stored as 0 and read
// back as the key's ModRevision, then written out): revisions only grow,
// so tokens rise across permits and mutex holders alike. Waiting acquires
// and watches wake on any write to a table key. A table is one etcd value:
// etcd's request limit (1.5 MiB by default) bounds it, about 1,000 permits
// with short owners and no metadata, fewer with large metadata (about 170
// when every character of the largest escapes sixfold); a write past it
// fails with lock.ErrRecordTooLarge (HTTP 409 record_too_large).
//
// etcd leases are recycled: a lease whose key was released (or that an
// acquire granted but did not use) goes back to a small pool per TTL, and
// the next acquire with that TTL reuses it instead of granting a new one.
// The pool grants each lease for the TTL plus a slack (the TTL, at most
// 5 s) and remembers when it last sent its grant or keep-alive, so a lease
// that etcd still keeps for a whole TTL from now is reused as it is, and
// only one refreshed longer ago gets a keep-alive (not a raft write) first:
// a lease cycling through acquires and releases is kept alive about once
// per slack, not once per acquire. A key that etcd keeps up to the slack
// past its expiry is expired all the same (by its value) and taken over
// like any other. A lease serves one hasp lease at a time, and every check
// of ownership is by lease id, so a recycled lease cannot carry one
// holder's rights to another. The steady state is thus two RPCs, both raft
// writes, per acquire+release, as with etcd's own concurrency.Mutex.
//
// Clock assumption: expiry is judged by the service's clock (injectable with
// WithClock), measured from before the write is sent, so it is never later
// than etcd's own lease expiry. Several service instances sharing one etcd
// should keep their clocks within a few hundred milliseconds; the client
// SDK's safety margin covers that skew.
//
// Store URL: "etcd://host:2379[,host:2379...][?prefix=/hasp/locks/]".
package etcd

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

// DefaultPrefix is the key prefix under which locks are stored.
const DefaultPrefix = "/hasp/locks/"

// Provider stores leases in etcd.
type Provider struct {
	cli    *clientv3.Client
	prefix string
	clock  lock.Clock
	closer func() error
	pool   *leasePool
	calls  atomic.Int64 // etcd RPCs sent, for providers.RequestCounter
}

var (
	_ providers.Provider       = (*Provider)(nil)
	_ providers.Watcher        = (*Provider)(nil)
	_ providers.RequestCounter = (*Provider)(nil)
	_ providers.HolderWatcher  = (*Provider)(nil)
	_ providers.Lister         = (*Provider)(nil)
	_ providers.PermitStore    = (*Provider)(nil)
)

// BackendRequests implements providers.RequestCounter: etcd RPCs sent by
// lock operations (including the lease pool's keep-alives, grants and
// revokes).
func (p *Provider) BackendRequests() int64 { return p.calls.Load() + p.pool.calls.Load() }

// Option configures a Provider.
type Option func(*Provider)

// WithPrefix sets the key prefix (default DefaultPrefix).
func WithPrefix(prefix string) Option { return func(p *Provider) { p.prefix = prefix } }

// WithClock sets the clock that judges expiry (default the system clock).
func WithClock(c lock.Clock) Option { return func(p *Provider) { p.clock = c } }

// WithCloser makes Close call fn (for example to close a client or an
// embedded server the provider owns).
func WithCloser(fn func() error) Option { return func(p *Provider) { p.closer = fn } }

// New returns a provider over cli. Close does not close cli unless
// WithCloser says so.
func New(cli *clientv3.Client, opts ...Option) *Provider {
	p := &Provider{cli: cli, prefix: DefaultPrefix, clock: lock.SystemClock{}}
	for _, o := range opts {
		o(p)
	}
	p.pool = newLeasePool(cli)
	return p
}

// Name returns "etcd".
func (p *Provider) Name() string { return "etcd" }

// record is the value stored under a lock's key.
type record struct {
	LeaseID  string `json:"-"`
	ExpMs    int64  `json:"-"` // expiry, Unix milliseconds, service clock
	Owner    string `json:"owner,omitempty"`
	TTLms    int64  `json:"ttl_ms"`
	Metadata string `json:"md,omitempty"`
	// Sem is the permit table (providers.EncodePermitTable) of a
	// semaphore or lock-delayed mutex; LeaseID is then "" and ExpMs the
	// table's BusyUntil.
	Sem string `json:"sem,omitempty"`
}

// table decodes the record's permit table; a permit stored with token 0
// was granted by the write that made kv, so its token is kv's ModRevision.
func (r record) table(kv *mvccpb.KeyValue) (providers.PermitTable, error) {
	return providers.DecodePermitTable(r.Sem, kv.ModRevision)
}

func (r record) expires() time.Time { return time.UnixMilli(r.ExpMs).UTC() }

// expField renders an expiry so that byte order is time order.
func expField(ms int64) string { return fmt.Sprintf("%013d", ms) }

func (r record) encode() string {
	b, _ := json.Marshal(r) // a struct of strings and ints always marshals
	return r.LeaseID + "\x00" + expField(r.ExpMs) + "\x00" + string(b)
}

func decode(kv *mvccpb.KeyValue) (record, error) {
	var r record
	parts := strings.SplitN(string(kv.Value), "\x00", 3)
	if len(parts) != 3 || len(parts[1]) != 13 {
		return r, fmt.Errorf("etcd: undecodable record at %q", kv.Key)
	}
	if err := json.Unmarshal([]byte(parts[2]), &r); err != nil {
		return r, fmt.Errorf("etcd: undecodable record at %q: %w", kv.Key, err)
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return r, fmt.Errorf("etcd: undecodable expiry at %q: %w", kv.Key, err)
	}
	r.LeaseID, r.ExpMs = parts[0], exp
	return r, nil
}

// heldBy returns the comparisons that hold exactly when the key's value
// names leaseID (which must not contain NUL) with an expiry after now:
// the value lies between "leaseID NUL now-expiry \xff" and "leaseID \x01".
func heldBy(key, leaseID string, now time.Time) []clientv3.Cmp {
	return []clientv3.Cmp{
		clientv3.Compare(clientv3.Value(key), ">", leaseID+"\x00"+expField(now.UnixMilli())+"\xff"),
		clientv3.Compare(clientv3.Value(key), "<", leaseID+"\x01"),
	}
}

func (p *Provider) key(name string) string { return p.prefix + name }

func ttlSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// Acquire implements providers.Provider.
func (p *Provider) Acquire(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	if strings.ContainsRune(req.LeaseID, 0) {
		return lock.Lease{}, lock.Invalid("lease_id", "must not contain NUL")
	}
	now := p.clock.Now()
	key := p.key(req.Name)
	secs := ttlSeconds(req.TTL)
	id, granted, err := p.pool.get(ctx, secs)
	if err != nil {
		return lock.Lease{}, err
	}
	rec := record{
		LeaseID: req.LeaseID, Owner: req.Owner, Metadata: req.Metadata,
		TTLms: granted.Milliseconds(), ExpMs: lock.ExpiresAt(now, granted).UnixMilli(),
	}
	val := rec.encode()
	for range 3 {
		p.calls.Add(1)
		resp, err := p.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, val, clientv3.WithLease(id))).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			// The key may or may not have been created: revoking the lease
			// removes it if it was, so nobody holds an untold lease.
			p.pool.revoke(id)
			return lock.Lease{}, mapErr(err)
		}
		if resp.Succeeded {
			return lock.Lease{
				Name: req.Name, Owner: req.Owner, LeaseID: req.LeaseID,
				FencingToken: resp.Header.Revision, TTL: granted,
				ExpiresAt: rec.expires(), Metadata: req.Metadata,
			}, nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			continue // cannot happen in one transaction; try again
		}
		kv := kvs[0]
		cur, err := decode(kv)
		if err != nil {
			p.pool.put(id, secs)
			return lock.Lease{}, err
		}
		if cur.Sem != "" && cur.expires().After(now) {
			p.pool.put(id, secs)
			t, err := cur.table(kv)
			if err != nil {
				return lock.Lease{}, err
			}
			return lock.Lease{}, t.Blocking(req.Name, now, resp.Header.Revision)
		}
		if exp := cur.expires(); exp.After(now) {
			p.pool.put(id, secs)
			return lock.Lease{}, &lock.HeldError{
				Name:       req.Name,
				Holder:     holder(kv, cur),
				RetryAfter: max(exp.Sub(p.clock.Now()), 0),
				Revision:   resp.Header.Revision,
			}
		}
		// Expired by the service's clock; etcd has not removed it yet.
		p.calls.Add(1)
		del, err := p.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(key)).
			Commit()
		if err != nil {
			p.pool.put(id, secs)
			return lock.Lease{}, mapErr(err)
		}
		if del.Succeeded && kv.Lease != 0 {
			p.pool.revoke(clientv3.LeaseID(kv.Lease))
		}
	}
	p.pool.put(id, secs)
	return lock.Lease{}, lock.Unavailable(fmt.Errorf("etcd: lock %q kept changing", req.Name), 100*time.Millisecond)
}

// current reads the key and checks that leaseID holds it at now.
func (p *Provider) current(ctx context.Context, name, leaseID string, now time.Time) (*mvccpb.KeyValue, record, error) {
	p.calls.Add(1)
	resp, err := p.cli.Get(ctx, p.key(name))
	if err != nil {
		return nil, record{}, mapErr(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, record{}, lock.ErrLeaseLost
	}
	kv := resp.Kvs[0]
	rec, err := decode(kv)
	if err != nil {
		return nil, record{}, err
	}
	if subtle.ConstantTimeCompare([]byte(rec.LeaseID), []byte(leaseID)) != 1 || !rec.expires().After(now) {
		return nil, record{}, lock.ErrLeaseLost
	}
	return kv, rec, nil
}

// Renew implements providers.Provider. A concurrent renew of the same
// lease (a retry, or a manual renew beside the background one) may change
// the key between the read and the write: the renew then reads again, and
// answers lease_lost only if the lease no longer holds the key.
func (p *Provider) Renew(ctx context.Context, req lock.RenewRequest) (lock.Lease, error) {
	// Each round at least one of the racing renews wins, so as many rounds
	// as racers always suffice; a short jittered backoff spreads them out.
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = time.Millisecond, 20*time.Millisecond
	for range 16 {
		l, err := p.renewOnce(ctx, req)
		if !errors.Is(err, errChanged) {
			return l, err
		}
		select {
		case <-time.After(b.NextBackOff()):
		case <-ctx.Done():
			return lock.Lease{}, mapErr(ctx.Err())
		}
	}
	return lock.Lease{}, lock.Unavailable(fmt.Errorf("etcd: lock %q kept changing", req.Name), 100*time.Millisecond)
}

// errChanged means the key changed between a read and a guarded write.
var errChanged = errors.New("etcd: changed concurrently")

func (p *Provider) renewOnce(ctx context.Context, req lock.RenewRequest) (lock.Lease, error) {
	now := p.clock.Now()
	kv, rec, err := p.current(ctx, req.Name, req.LeaseID, now)
	if err != nil {
		return lock.Lease{}, err
	}
	ttl := time.Duration(rec.TTLms) * time.Millisecond
	if req.TTL != 0 {
		ttl = req.TTL
	}
	old, oldSecs := clientv3.LeaseID(kv.Lease), rec.TTLms/1000
	id, secs := old, ttlSeconds(ttl)
	var granted time.Duration
	if secs == oldSecs {
		sent := time.Now()
		p.calls.Add(1)
		ka, err := p.cli.KeepAliveOnce(ctx, old)
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return lock.Lease{}, errChanged // read again: moved by a concurrent renew, or gone
		}
		if err != nil {
			return lock.Lease{}, mapErr(err)
		}
		granted = grantedTTL(secs, ka.TTL)
		p.pool.kept(old, sent, ka.TTL)
	} else {
		id, granted, err = p.pool.get(ctx, secs)
		if err != nil {
			return lock.Lease{}, err
		}
	}
	rec.TTLms = granted.Milliseconds()
	rec.ExpMs = lock.ExpiresAt(now, granted).UnixMilli()
	p.calls.Add(1)
	resp, err := p.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)).
		Then(clientv3.OpPut(string(kv.Key), rec.encode(), clientv3.WithLease(id))).
		Commit()
	if err != nil {
		// If id is new, the key may have moved to it: revoking it could end
		// the lease early, pooling it could share it, so it is left to
		// expire at its TTL.
		return lock.Lease{}, mapErr(err)
	}
	if !resp.Succeeded {
		if id != old {
			p.pool.put(id, secs)
		}
		return lock.Lease{}, errChanged
	}
	if id != old {
		p.pool.put(old, oldSecs) // the key has moved to id: old holds nothing
	}
	return lock.Lease{
		Name: req.Name, Owner: rec.Owner, LeaseID: rec.LeaseID,
		FencingToken: kv.CreateRevision, TTL: granted,
		ExpiresAt: rec.expires(), Metadata: rec.Metadata,
	}, nil
}

// Release implements providers.Provider: one transaction deletes the key
// if its value names this lease id with an expiry after now.
func (p *Provider) Release(ctx context.Context, req lock.ReleaseRequest) error {
	if strings.ContainsRune(req.LeaseID, 0) {
		return lock.ErrLeaseLost
	}
	key := p.key(req.Name)
	p.calls.Add(1)
	resp, err := p.cli.Txn(ctx).
		If(heldBy(key, req.LeaseID, p.clock.Now())...).
		Then(clientv3.OpDelete(key, clientv3.WithPrevKV())).
		Commit()
	if err != nil {
		return mapErr(err)
	}
	if !resp.Succeeded {
		return lock.ErrLeaseLost
	}
	if prev := resp.Responses[0].GetResponseDeleteRange().PrevKvs; len(prev) == 1 {
		if rec, err := decode(prev[0]); err == nil {
			p.pool.put(clientv3.LeaseID(prev[0].Lease), rec.TTLms/1000)
		}
	}
	return nil
}

// Status implements providers.Provider.
func (p *Provider) Status(ctx context.Context, name string) (lock.Status, error) {
	now := p.clock.Now()
	p.calls.Add(1)
	resp, err := p.cli.Get(ctx, p.key(name))
	if err != nil {
		return lock.Status{}, mapErr(err)
	}
	if len(resp.Kvs) == 0 {
		return lock.Status{Name: name}, nil
	}
	return statusOf(name, resp.Kvs[0], now)
}

// statusOf is the status of name whose key holds kv, at now.
func statusOf(name string, kv *mvccpb.KeyValue, now time.Time) (lock.Status, error) {
	rec, err := decode(kv)
	if err != nil {
		return lock.Status{}, err
	}
	if rec.Sem != "" {
		t, err := rec.table(kv)
		if err != nil {
			return lock.Status{}, err
		}
		return t.Status(name, now), nil
	}
	if !rec.expires().After(now) {
		return lock.Status{Name: name}, nil
	}
	return lock.Status{Name: name, Held: true, Holder: holder(kv, rec)}, nil
}

// LoadPermits implements providers.PermitStore: one read of the key. The
// version is the key's ModRevision (0 when absent).
func (p *Provider) LoadPermits(ctx context.Context, name string) (providers.PermitRecord, error) {
	now := p.clock.Now()
	p.calls.Add(1)
	resp, err := p.cli.Get(ctx, p.key(name))
	if err != nil {
		return providers.PermitRecord{}, mapErr(err)
	}
	rec := providers.PermitRecord{Now: now, Version: int64(0), Revision: resp.Header.Revision}
	if len(resp.Kvs) == 0 {
		return rec, nil
	}
	kv := resp.Kvs[0]
	rec.Version = kv.ModRevision
	cur, err := decode(kv)
	if err != nil {
		return providers.PermitRecord{}, err
	}
	switch {
	case cur.Sem != "":
		t, err := cur.table(kv)
		if err != nil {
			return providers.PermitRecord{}, err
		}
		rec.Table = &t
	case cur.expires().After(now):
		h := holder(kv, cur)
		rec.Mutex = &h
	}
	return rec, nil
}

// StorePermits implements providers.PermitStore: one transaction puts the
// table if the key's ModRevision is still prev's. A permit granted by the
// write is stored with token 0 and gets the transaction's revision (the
// key's new ModRevision; see record.table): etcd revisions only grow, so
// it is above every token issued before, a mutex's CreateRevision too.
// The key is on no etcd lease: an idle table stays, with its release
// marks, until an acquire takes the key over.
func (p *Provider) StorePermits(ctx context.Context, name string, prev providers.PermitRecord, t providers.PermitTable) (int64, error) {
	ver, _ := prev.Version.(int64)
	granted := false
	for _, h := range t.Holders {
		granted = granted || h.Token == 0
	}
	var busy int64 // an idle table: expired since the epoch
	if b := t.BusyUntil(); !b.IsZero() {
		busy = b.UnixMilli()
	}
	val := record{ExpMs: busy, Sem: providers.EncodePermitTable(t)}.encode()
	key := p.key(name)
	p.calls.Add(1)
	resp, err := p.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", ver)).
		Then(clientv3.OpPut(key, val)).
		Commit()
	if tooLarge(err) {
		return 0, fmt.Errorf("etcd: the permit table of %q (%d permits, a %d-byte value) is larger than etcd takes in one request: %w", name, len(t.Holders), len(val), mapErr(err))
	}
	if err != nil {
		return 0, mapErr(err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("etcd: %q: %w", name, providers.ErrConflict)
	}
	if !granted {
		return 0, nil
	}
	return resp.Header.Revision, nil
}

// WaitChange implements providers.Watcher. It watches the key from the
// revision right after held.Revision, so a release between the failed
// acquire and the watch is not missed, and returns on a delete, on a new
// holder, or when the holder's expiry (updated by its renewals) passes.
func (p *Provider) WaitChange(ctx context.Context, held *lock.HeldError) error {
	// Expiry is judged by the provider's clock, as in Acquire; a held
	// permit frees once its lock-delay too has run out.
	until := held.Holder.FreeAt().Sub(p.clock.Now())
	if until <= 0 {
		return nil
	}
	t := time.NewTimer(until)
	defer t.Stop()
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	p.calls.Add(1)
	wch := p.cli.Watch(wctx, p.key(held.Name), clientv3.WithRev(held.Revision+1))
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				// Closed, compacted or leaderless: let the service try
				// again, which reports a real failure if there is one.
				return ctx.Err()
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete || ev.Kv.CreateRevision != held.Holder.FencingToken || held.Permits > 0 {
					return nil // any write to a permit table may free a permit
				}
				if rec, err := decode(ev.Kv); err == nil {
					t.Reset(rec.expires().Sub(p.clock.Now()))
				}
			}
		}
	}
}

// WaitHolderChange implements providers.HolderWatcher: one read of the
// key, then a watch from the revision right after it, so no change after
// the read is missed; it returns on a delete, on a new holder, or when the
// holder's expiry (updated by its renewals) passes by the provider's clock.
func (p *Provider) WaitHolderChange(ctx context.Context, name string, token int64) error {
	key := p.key(name)
	p.calls.Add(1)
	resp, err := p.cli.Get(ctx, key)
	if err != nil {
		return mapErr(err)
	}
	var cur int64
	var until time.Duration = -1
	if len(resp.Kvs) == 1 {
		now := p.clock.Now()
		if st, err := statusOf(name, resp.Kvs[0], now); err == nil && st.Held {
			cur, until = st.Holder.FencingToken, st.Holder.ExpiresAt.Sub(now)
		}
	}
	if cur != token {
		return nil
	}
	var expiry <-chan time.Time
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	if until >= 0 {
		t.Reset(until)
		expiry = t.C
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	p.calls.Add(1)
	wch := p.cli.Watch(wctx, key, clientv3.WithRev(resp.Header.Revision+1))
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-expiry:
			return nil
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				// Closed, compacted or leaderless: the service reads the
				// status again, which reports a real failure if there is one.
				return ctx.Err()
			}
			for _, ev := range wr.Events {
				rec, err := decode(ev.Kv)
				if ev.Type == clientv3.EventTypeDelete || ev.Kv.CreateRevision != token || err != nil || rec.Sem != "" {
					return nil // a permit table: the service reads the status again
				}
				t.Reset(rec.expires().Sub(p.clock.Now()))
				expiry = t.C
			}
		}
	}
}

// List implements providers.Lister: one range read of the keys under
// prefix+P from the key after the continuation, with a limit (a serializable
// read of at most limit keys: O(limit)); keys whose lease expired by the
// provider's clock but that etcd has not removed yet are skipped, so a page
// may hold fewer than limit locks. The continuation is the last name read.
func (p *Provider) List(ctx context.Context, prefix string, limit int, after string) ([]lock.Status, string, error) {
	from := p.key(prefix)
	end := clientv3.GetPrefixRangeEnd(from)
	if after != "" {
		if !strings.HasPrefix(after, prefix) {
			return nil, "", lock.Invalid("page_token", "is not a page token of this listing")
		}
		from = p.key(after) + "\x00"
	}
	now := p.clock.Now()
	p.calls.Add(1)
	resp, err := p.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(int64(limit)),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, "", mapErr(err)
	}
	out := make([]lock.Status, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		st, err := statusOf(strings.TrimPrefix(string(kv.Key), p.prefix), kv, now)
		if err != nil {
			return nil, "", err
		}
		if st.Held {
			out = append(out, st)
		}
	}
	next := ""
	if resp.More && len(resp.Kvs) > 0 {
		next = strings.TrimPrefix(string(resp.Kvs[len(resp.Kvs)-1].Key), p.prefix)
	}
	return out, next, nil
}

// Ping implements providers.Provider.
func (p *Provider) Ping(ctx context.Context) error {
	_, err := p.cli.Get(ctx, p.prefix, clientv3.WithCountOnly(), clientv3.WithLimit(1))
	return mapErr(err)
}

// Close implements providers.Provider: it revokes the pooled etcd leases.
func (p *Provider) Close() error {
	p.pool.close()
	if p.closer != nil {
		return p.closer()
	}
	return nil
}

func holder(kv *mvccpb.KeyValue, r record) lock.Holder {
	return lock.Holder{Owner: r.Owner, FencingToken: kv.CreateRevision, ExpiresAt: r.expires(), Metadata: r.Metadata}
}

// tooLarge reports whether err refused a request for its size: etcd's own
// limit (--max-request-bytes, 1.5 MiB by default), or gRPC's message
// limit on either side (the client's MaxCallSendMsgSize, 2 MiB by
// default; the server's, the request limit plus 512 KiB).
func tooLarge(err error) bool {
	if err == nil {
		return false
	}
	if rpctypes.ErrorDesc(err) == rpctypes.ErrorDesc(rpctypes.ErrGRPCRequestTooLarge) {
		return true
	}
	s, ok := status.FromError(err)
	return ok && s.Code() == codes.ResourceExhausted && strings.Contains(s.Message(), "larger than max")
}

// mapErr maps etcd and gRPC errors to the lock package's sentinels. The
// callers handle the errors that carry lock semantics (a missing lease)
// first; misconfiguration (permissions, authentication, invalid requests)
// is an internal error; every other failure of a call to etcd is a
// transport or cluster problem whose outcome the caller cannot know, so it
// is unavailable.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	code := codes.Unknown
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if s, ok := status.FromError(err); ok {
		code = s.Code()
	}
	if tooLarge(err) {
		// Not load: the same request would be refused again.
		return fmt.Errorf("etcd: %w: %w", lock.ErrRecordTooLarge, err)
	}
	switch code {
	case codes.PermissionDenied, codes.Unauthenticated, codes.InvalidArgument, codes.FailedPrecondition, codes.Unimplemented:
		// Misconfiguration (credentials, permissions, an incompatible
		// server): retrying will not help, so it is an internal error.
		return fmt.Errorf("etcd: %w", err)
	}
	// A full database (also ResourceExhausted) is not load: retrying soon
	// will not help, so it is unavailable, not throttled.
	if code == codes.ResourceExhausted && rpctypes.ErrorDesc(err) != rpctypes.ErrorDesc(rpctypes.ErrGRPCNoSpace) {
		return lock.Throttled(fmt.Errorf("etcd: %w", err), time.Second)
	}
	return lock.Unavailable(fmt.Errorf("etcd: %w", err), time.Second)
}
