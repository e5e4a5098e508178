// Package etcd stores hasp leases in etcd, with leases, transactions and
// watches.
//
// Each lock is one key, prefix+name, attached to an etcd lease granted for
// the hasp lease's TTL (etcd counts whole seconds, so the granted TTL is
// rounded up). Its value records the lease id, owner, metadata, granted TTL
// and expiry by the service's clock.
//
//   - Fencing token: the key's CreateRevision. etcd revisions increase for the
//     life of the data directory and a new holder always creates the key
//     anew, so tokens strictly increase across releases, expiries and
//     restarts (but not across a wiped data directory).
//   - Acquire: Grant, then one transaction "create the key if absent, else
//     read it". A record whose expiry by the service's clock has passed but
//     which etcd has not yet removed (etcd revokes expired leases on a
//     500 ms loop, and extends every lease when a member restarts) is taken
//     over: deleted under a ModRevision guard, then created anew.
//   - Renew: keep-alive of the etcd lease, then the new expiry is written
//     under a ModRevision guard. A renew with another TTL moves the key to a
//     freshly granted etcd lease (the key, and so the token, stay).
//   - Release: after checking the lease id, revoke the etcd lease, which
//     deletes the key in the same step.
//   - Waiting: a watch on the key from the revision right after the one at
//     which the holder was observed, so that a release is seen at once and
//     none is missed; a timer covers expiry.
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
	"net/url"
	"strings"
	"time"

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

func init() {
	providers.Register("etcd", Open)
}

// Open opens the provider for an "etcd://host:port[,host:port]" store URL.
// The query parameter prefix sets the key prefix (default DefaultPrefix).
func Open(ctx context.Context, u *url.URL) (providers.Provider, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("etcd: store URL %q names no endpoint (etcd://host:2379)", u.Redacted())
	}
	var eps []string
	for _, h := range strings.Split(u.Host, ",") {
		eps = append(eps, "http://"+h)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   eps,
		DialTimeout: 5 * time.Second,
		Context:     context.Background(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd: connect %v: %w", eps, err)
	}
	var opts []Option
	if p := u.Query().Get("prefix"); p != "" {
		opts = append(opts, WithPrefix(p))
	}
	opts = append(opts, WithCloser(cli.Close))
	return New(cli, opts...), nil
}

// Provider stores leases in etcd.
type Provider struct {
	cli    *clientv3.Client
	prefix string
	clock  lock.Clock
	closer func() error
}

var (
	_ providers.Provider = (*Provider)(nil)
	_ providers.Watcher  = (*Provider)(nil)
)

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
	return p
}

// Name returns "etcd".
func (p *Provider) Name() string { return "etcd" }

// record is the value stored under a lock's key.
type record struct {
	LeaseID  string `json:"id"`
	Owner    string `json:"owner,omitempty"`
	TTLms    int64  `json:"ttl_ms"`
	ExpMs    int64  `json:"exp_ms"` // expiry, Unix milliseconds, service clock
	Metadata string `json:"md,omitempty"`
}

func (r record) expires() time.Time { return time.UnixMilli(r.ExpMs).UTC() }

func decode(kv *mvccpb.KeyValue) (record, error) {
	var r record
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		return r, fmt.Errorf("etcd: undecodable record at %q: %w", kv.Key, err)
	}
	return r, nil
}

func (r record) encode() string {
	b, _ := json.Marshal(r) // a struct of strings and ints always marshals
	return string(b)
}

func (p *Provider) key(name string) string { return p.prefix + name }

func ttlSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// Acquire implements providers.Provider.
func (p *Provider) Acquire(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	now := p.clock.Now()
	key := p.key(req.Name)
	g, err := p.cli.Grant(ctx, ttlSeconds(req.TTL))
	if err != nil {
		return lock.Lease{}, mapErr(err)
	}
	granted := time.Duration(g.TTL) * time.Second
	rec := record{
		LeaseID: req.LeaseID, Owner: req.Owner, Metadata: req.Metadata,
		TTLms: granted.Milliseconds(), ExpMs: lock.ExpiresAt(now, granted).UnixMilli(),
	}
	val := rec.encode()
	for range 3 {
		resp, err := p.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, val, clientv3.WithLease(g.ID))).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			// The key may or may not have been created: revoking the lease
			// removes it if it was, so nobody holds an untold lease.
			p.revoke(g.ID)
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
			p.revoke(g.ID)
			return lock.Lease{}, err
		}
		if exp := cur.expires(); exp.After(now) {
			p.revoke(g.ID)
			return lock.Lease{}, &lock.HeldError{
				Name:       req.Name,
				Holder:     holder(kv, cur),
				RetryAfter: exp.Sub(now),
				Revision:   resp.Header.Revision,
			}
		}
		// Expired by the service's clock; etcd has not removed it yet.
		del, err := p.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(key)).
			Commit()
		if err != nil {
			p.revoke(g.ID)
			return lock.Lease{}, mapErr(err)
		}
		if del.Succeeded {
			p.revoke(clientv3.LeaseID(kv.Lease))
		}
	}
	p.revoke(g.ID)
	return lock.Lease{}, &lock.RetryableError{Err: fmt.Errorf("%w: etcd: lock %q kept changing", lock.ErrUnavailable, req.Name), RetryAfter: 100 * time.Millisecond}
}

// current reads the key and checks that leaseID holds it at now.
func (p *Provider) current(ctx context.Context, name, leaseID string, now time.Time) (*mvccpb.KeyValue, record, error) {
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

// Renew implements providers.Provider.
func (p *Provider) Renew(ctx context.Context, req lock.RenewRequest) (lock.Lease, error) {
	now := p.clock.Now()
	kv, rec, err := p.current(ctx, req.Name, req.LeaseID, now)
	if err != nil {
		return lock.Lease{}, err
	}
	ttl := time.Duration(rec.TTLms) * time.Millisecond
	if req.TTL != 0 {
		ttl = req.TTL
	}
	old := clientv3.LeaseID(kv.Lease)
	id := old
	var granted time.Duration
	if secs := ttlSeconds(ttl); secs*1000 == rec.TTLms {
		ka, err := p.cli.KeepAliveOnce(ctx, old)
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return lock.Lease{}, lock.ErrLeaseLost
		}
		if err != nil {
			return lock.Lease{}, mapErr(err)
		}
		granted = time.Duration(ka.TTL) * time.Second
	} else {
		g, err := p.cli.Grant(ctx, secs)
		if err != nil {
			return lock.Lease{}, mapErr(err)
		}
		id, granted = g.ID, time.Duration(g.TTL)*time.Second
	}
	rec.TTLms = granted.Milliseconds()
	rec.ExpMs = lock.ExpiresAt(now, granted).UnixMilli()
	resp, err := p.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)).
		Then(clientv3.OpPut(string(kv.Key), rec.encode(), clientv3.WithLease(id))).
		Commit()
	if err != nil {
		return lock.Lease{}, mapErr(err)
	}
	if !resp.Succeeded {
		if id != old {
			p.revoke(id)
		}
		return lock.Lease{}, lock.ErrLeaseLost
	}
	if id != old {
		p.revoke(old) // the key has moved to id: this deletes nothing
	}
	return lock.Lease{
		Name: req.Name, Owner: rec.Owner, LeaseID: rec.LeaseID,
		FencingToken: kv.CreateRevision, TTL: granted,
		ExpiresAt: rec.expires(), Metadata: rec.Metadata,
	}, nil
}

// Release implements providers.Provider. Revoking the lease's own etcd
// lease deletes the key; an etcd lease belongs to one hasp lease only, so
// the revoke cannot touch a later holder.
func (p *Provider) Release(ctx context.Context, req lock.ReleaseRequest) error {
	kv, _, err := p.current(ctx, req.Name, req.LeaseID, p.clock.Now())
	if err != nil {
		return err
	}
	_, err = p.cli.Revoke(ctx, clientv3.LeaseID(kv.Lease))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return lock.ErrLeaseLost
	}
	return mapErr(err)
}

// Status implements providers.Provider.
func (p *Provider) Status(ctx context.Context, name string) (lock.Status, error) {
	now := p.clock.Now()
	resp, err := p.cli.Get(ctx, p.key(name))
	if err != nil {
		return lock.Status{}, mapErr(err)
	}
	if len(resp.Kvs) == 0 {
		return lock.Status{Name: name}, nil
	}
	rec, err := decode(resp.Kvs[0])
	if err != nil {
		return lock.Status{}, err
	}
	if !rec.expires().After(now) {
		return lock.Status{Name: name}, nil
	}
	return lock.Status{Name: name, Held: true, Holder: holder(resp.Kvs[0], rec)}, nil
}

// WaitChange implements providers.Watcher. It watches the key from the
// revision right after held.Revision, so a release between the failed
// acquire and the watch is not missed, and returns on a delete, on a new
// holder, or when the holder's expiry (updated by its renewals) passes.
func (p *Provider) WaitChange(ctx context.Context, held *lock.HeldError) error {
	until := time.Until(held.Holder.ExpiresAt)
	if until <= 0 {
		return nil
	}
	t := time.NewTimer(until)
	defer t.Stop()
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
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
				if ev.Type == clientv3.EventTypeDelete || ev.Kv.CreateRevision != held.Holder.FencingToken {
					return nil
				}
				if rec, err := decode(ev.Kv); err == nil {
					t.Reset(time.Until(rec.expires()))
				}
			}
		}
	}
}

// Ping implements providers.Provider.
func (p *Provider) Ping(ctx context.Context) error {
	_, err := p.cli.Get(ctx, p.prefix, clientv3.WithCountOnly(), clientv3.WithLimit(1))
	return mapErr(err)
}

// Close implements providers.Provider.
func (p *Provider) Close() error {
	if p.closer != nil {
		return p.closer()
	}
	return nil
}

// revoke revokes an etcd lease on a best-effort basis: a lease left behind
// expires by itself at its TTL.
func (p *Provider) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = p.cli.Revoke(ctx, id)
}

func holder(kv *mvccpb.KeyValue, r record) lock.Holder {
	return lock.Holder{Owner: r.Owner, FencingToken: kv.CreateRevision, ExpiresAt: r.expires(), Metadata: r.Metadata}
}

// mapErr maps etcd and gRPC errors to the lock package's sentinels.
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
	switch {
	case code == codes.ResourceExhausted:
		return &lock.RetryableError{Err: fmt.Errorf("%w: etcd: %w", lock.ErrThrottled, err), RetryAfter: time.Second}
	case code == codes.Unavailable, code == codes.DeadlineExceeded, code == codes.Aborted,
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, rpctypes.ErrNoSpace):
		return &lock.RetryableError{Err: fmt.Errorf("%w: etcd: %w", lock.ErrUnavailable, err), RetryAfter: time.Second}
	}
	return fmt.Errorf("etcd: %w", err)
}
