// Package redis stores hasp leases in Redis: on one server
// ("redis://host:6379") or on a Redlock majority of independent masters
// ("redlock://h1:6379,h2:6379,h3:6379"), each operation one Lua script per
// server (see scripts.go), with expiry judged by the server's clock.
//
// # One server (redis://)
//
// A lock is one hash that is never expired; it keeps the name's token
// counter, so tokens strictly increase across releases and expiries, and
// across restarts as long as Redis keeps its data. Lease ids are stored
// only as their SHA-256 (providers.HashLeaseID).
//
//   - Acquire: one script that grants the lock if it has no lease or the
//     lease's expiry by the server's clock (TIME) has passed, and issues
//     the token max(counter, seed) + 1, where the seed is the server's
//     time in Unix ms times 1000 (as providers.TokenBase).
//   - Renew and release: one script that compares the lease and acts.
//   - Status: one script that reads the holder.
//   - List: a SCAN of the whole keyspace per page, then one script per
//     100 names read (see Provider.List): O(keyspace) per page.
//   - Waiting: polled by the service (jittered backoff from 10 ms, capped
//     by the holder's remaining time; a release through the same service
//     instance wakes its local waiter at once). No pub/sub.
//
// The expiry reported to the holder (expires_at) is the earlier of the
// service's clock taken before the request was sent plus the TTL, and the
// server's clock at the script plus the TTL, so it is never later than the
// moment the server lets another acquirer in (assuming the two clocks run
// at the same rate; an offset between them only makes leases look shorter).
// Renew and release also refuse a lease whose reported expiry the calling
// service's clock has passed, so a lease ends at its expires_at.
//
// A request whose answer was lost is retried by the client (up to twice)
// with the same effect as once: an acquire finds its own lease and
// returns it, a renew renews again, and a release finds the mark key its
// call wrote (ReleaseMarkTTL) and answers released, even if the lock has
// changed hands since (a second release of the same lease answers
// lease_lost).
//
// What it relies on, and what happens when that fails:
//
//   - Persistence. Open refuses a server that would lose acknowledged
//     writes on a restart (ErrNotDurable): the append-only file must be on
//     with appendfsync always or everysec, and no allkeys-* eviction policy,
//     checked with CONFIG GET. With everysec a crash of the machine (not of
//     the process) can lose about the last second of writes. A store URL
//     with ?durability=none skips the check and labels the store "best
//     effort" in /v1/health.
//   - A restart without persistence, or a failover to a replica that missed
//     the last writes, loses leases: a second client can be granted a lock
//     whose holder still thinks it holds it. Mutual exclusion is then broken
//     until the old lease's TTL passes; only fencing protects the resource.
//     The token counter goes back with the lost data, but the new counter is
//     seeded from the server's clock: tokens still increase as long as the
//     (new) server's clock reads later than the old one's did at its last
//     grant, and no name takes 1000 acquires in one millisecond (a Redis
//     server serves far fewer scripts than that). If the clock is also
//     behind (a wrong clock, a replica whose clock lags by more than the
//     outage), tokens can go back.
//   - The server's clock. A jump forward ends leases early (another client
//     may be let in before the holder's expires_at); a jump back lengthens
//     them. Run the server with a disciplined clock (NTP slewing).
//
// # Semaphores and lock-delay (redis:// only)
//
// Provider is a providers.PermitStore; Redlock is not (see Redlock). A
// name used as a semaphore (permits > 1) or by a lease with a lock-delay
// keeps its permit table (providers.EncodePermitTable, a JSON string) in
// the name's one hash, the one its mutex leases use, in field pt, with
// lh "permit-table" (no lease's hash, so the mutex path's renew and
// release of any lease find it lost), exp the table's BusyUntil by
// which the mutex path's acquire reads the hash as held (0 when idle), tok
// the name's one counter, and no rep, ttl, own or md. A plain acquire of
// a busy table answers its PermitTable.Blocking (the service answers
// permits_mismatch or held); a plain acquire of an idle one takes the
// hash over like an expired lease, counter and all, and deletes pt.
// Status and List answer PermitTable.Status for a busy table (a name
// whose permits are only lock-delayed is not listed).
//
//   - Read (LoadPermits): one script returning the hash, the server's
//     time and a SHA-1 digest of the whole hash (every field and value,
//     sorted): the compare-and-swap version. The read is the one server's,
//     so it sees every acknowledged write (PermitRecord.MayBeStale false:
//     a lease_lost answer needs no confirmation).
//   - Write (StorePermits): one script that recomputes the digest and
//     writes the table only if it is unchanged, else writes nothing
//     (providers.ErrConflict). Any write to the hash (the mutex path's
//     acquire, renew, release and takeover, another table write) changes
//     its content, so its digest; a write that leaves the content as it
//     was changes nothing the read's decision depended on. The mutex
//     path's scripts keep their one round trip and need no version field,
//     so service instances of an older release running beside this one (a
//     rolling upgrade) cannot slip a write past the comparison. New
//     permits get the counter's next tokens as the acquire script issues
//     them (max(counter, seed) + 1, the seed from the server's time at the
//     read), so tokens strictly increase across mutex and semaphore use,
//     releases, clean-ups and restarts alike.
//   - Cost: a semaphore acquire, renew or release is 2 round trips
//     uncontended (load and store scripts), plus 2 per conflict with
//     another writer; an acquire that finds every permit taken, and a
//     renew or release that finds its permit gone, is 1 (the load); a
//     status, a plain acquire of a busy table and a mutex takeover of an
//     idle one are 1 script, as for a mutex.
//   - Clock: permit expiry is judged by the earlier of the service's
//     clock, taken before the load was sent, and the server's at the load
//     (PermitRecord.Now), as a mutex's expires_at is the earlier of the
//     two: a permit is never reported to last past the moment the server
//     (whose clock the mutex path's acquire judges exp by) would let
//     another in. A service whose clock runs behind the server's thus
//     grants shorter permits and waits longer for others' to end, never
//     the reverse.
//   - Unknown outcomes: a script whose answer was lost is sent again by
//     the client (up to twice). A load is a read; a store that had been
//     applied finds the digest changed by itself and answers ErrConflict,
//     the service reads again and finds its own write (a release's mark,
//     an acquire's permit). Past the retries, the outcome is unavailable.
//   - Persistence and the server's clock matter to tables exactly as to
//     mutex leases (above): a table is one more field of the same hash,
//     written by the same append-only file, so with appendfsync everysec a
//     machine crash can lose the last second of table writes (permits
//     granted twice, as for leases), and tokens stay above the lost ones
//     as long as the server's clock moves forward. Lock-delays are judged
//     by the same clock and end early on a forward jump.
//   - Limits: a permit is about 150-250 bytes of JSON with short owner and
//     metadata, and up to about 7.8 KB with the longest owner (255 bytes)
//     and metadata (1024 bytes) made of characters JSON escapes six-fold
//     (\u00XX). So a 1000-permit table is about 0.2 MB typically and 7.8
//     MB at most, far below Redis's 512 MB value limit; but each load or
//     store script copies and digests the whole hash on the server's one
//     thread, which serves no one else meanwhile: about 1 ms per script
//     for the 0.18 MB table and 50 ms for the 7.8 MB one on a development
//     machine (TestPermitLargeTable), so every acquire, renew or release
//     of such a name stalls the server twice, and moves the table over the
//     network twice. Operations on one name are serialized by the server
//     and conflict with each other (2 more round trips per conflict); a
//     name's rate is bounded by its table's size and its writers' round
//     trips, a server's by its one thread.
//
// # Redlock (redlock://)
//
// See Redlock.
package redis

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

// DefaultPrefix is the key prefix under which locks are stored.
const DefaultPrefix = "hasp:lock:"

// Option configures a Provider or a Redlock.
type Option func(*options)

type options struct {
	prefix      string
	clock       lock.Clock
	durability  Durability
	nodeTimeout time.Duration
	owned       bool // Close closes the clients
}

func newOptions(opts []Option) options {
	o := options{prefix: DefaultPrefix, clock: lock.SystemClock{}, durability: DurabilityAOF, nodeTimeout: DefaultNodeTimeout}
	for _, fn := range opts {
		fn(&o)
	}
	return o
}

// WithPrefix sets the key prefix (default DefaultPrefix).
func WithPrefix(prefix string) Option { return func(o *options) { o.prefix = prefix } }

// WithClock sets the service's clock, which measures the expiry reported
// to holders (default the system clock). Expiry itself is judged by each
// Redis server's clock.
func WithClock(c lock.Clock) Option { return func(o *options) { o.clock = c } }

// WithDurability sets what the provider requires of its servers' persistence
// (default DurabilityAOF, checked when it opens).
func WithDurability(d Durability) Option { return func(o *options) { o.durability = d } }

// withOwnedClients makes Close close the clients (for Open).
func withOwnedClients() Option { return func(o *options) { o.owned = true } }

// Provider stores leases on one Redis server.
type Provider struct {
	n      *node
	prefix string
	clock  lock.Clock
	label  string
	owned  bool
	calls  atomic.Int64
}

var (
	_ providers.Provider       = (*Provider)(nil)
	_ providers.RequestCounter = (*Provider)(nil)
	_ providers.Guarantor      = (*Provider)(nil)
	_ providers.Lister         = (*Provider)(nil)
)

// New returns a provider over rdb. Unless WithDurability(DurabilityNone)
// says otherwise it first checks the server's persistence (an error
// wrapping ErrNotDurable if it would lose acknowledged writes); it also
// loads the scripts. ctx bounds both. Close does not close rdb.
func New(ctx context.Context, rdb *goredis.Client, opts ...Option) (*Provider, error) {
	o := newOptions(opts)
	p := &Provider{prefix: o.prefix, clock: o.clock, owned: o.owned}
	p.n = &node{rdb: rdb, addr: rdb.Options().Addr, calls: &p.calls}
	switch o.durability {
	case DurabilityNone:
		p.label = "best effort"
	case DurabilityAOF:
		fsync, err := p.n.fsyncOf(ctx)
		if err != nil {
			return nil, err
		}
		p.label = "durable: AOF appendfsync " + fsync
	default:
		return nil, fmt.Errorf("redis: unknown durability %q (aof or none)", o.durability)
	}
	if err := p.n.loadScripts(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Name returns "redis".
func (p *Provider) Name() string { return "redis" }

// Guarantee implements providers.Guarantor: "durable: AOF appendfsync
// everysec" (or always) after a passed check, "best effort" with
// durability=none.
func (p *Provider) Guarantee() string { return p.label }

// BackendRequests implements providers.RequestCounter: commands sent to
// Redis (a script that the server had lost from its cache counts twice:
// EVALSHA, then EVAL).
func (p *Provider) BackendRequests() int64 { return p.calls.Load() }

func (p *Provider) key(name string) string { return p.prefix + name }

// Acquire implements providers.Provider: one script.
func (p *Provider) Acquire(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	before := p.clock.Now()
	r, err := p.n.acquire(ctx, p.key(req.Name), providers.HashLeaseID(req.LeaseID), req, before, req.TTL, 1)
	if err != nil {
		return lock.Lease{}, err
	}
	if !r.ok {
		if r.isTable() {
			t, err := decodeTable(req.Name, r.table)
			if err != nil {
				return lock.Lease{}, err
			}
			return lock.Lease{}, t.Blocking(req.Name, tableNow(before, r.now), 0)
		}
		return lock.Lease{}, r.held(req.Name, p.clock.Now())
	}
	return r.lease(req.Name, req.LeaseID), nil
}

// Renew implements providers.Provider: one script.
func (p *Provider) Renew(ctx context.Context, req lock.RenewRequest) (lock.Lease, error) {
	r, err := p.n.renew(ctx, p.key(req.Name), providers.HashLeaseID(req.LeaseID), req.TTL, false, p.clock.Now())
	if err != nil {
		return lock.Lease{}, err
	}
	if !r.ok {
		return lock.Lease{}, lock.ErrLeaseLost
	}
	return r.lease(req.Name, req.LeaseID), nil
}

// Release implements providers.Provider: one script.
func (p *Provider) Release(ctx context.Context, req lock.ReleaseRequest) error {
	ok, err := p.n.release(ctx, p.key(req.Name), markKey(p.prefix), providers.HashLeaseID(req.LeaseID), p.clock.Now())
	if err != nil {
		return err
	}
	if !ok {
		return lock.ErrLeaseLost
	}
	return nil
}

// Status implements providers.Provider: one script.
func (p *Provider) Status(ctx context.Context, name string) (lock.Status, error) {
	before := p.clock.Now()
	r, err := p.n.status(ctx, p.key(name))
	if err != nil {
		return lock.Status{}, err
	}
	return r.status(name, before)
}

// status is the status of name from its status or list script reply; a
// busy permit table's is its PermitTable.Status by tableNow.
func (r reply) status(name string, before time.Time) (lock.Status, error) {
	switch {
	case !r.ok:
		return lock.Status{Name: name}, nil
	case r.isTable():
		t, err := decodeTable(name, r.table)
		if err != nil {
			return lock.Status{}, err
		}
		return t.Status(name, tableNow(before, r.now)), nil
	}
	return lock.Status{Name: name, Held: true, Holder: r.holder()}, nil
}

// List implements providers.Lister with SCAN, as Redis has no ordered
// index of keys: every page walks the whole keyspace of the database
// (⌈keys / ListScanCount⌉ SCAN calls, O(keyspace) on the server whatever
// the prefix; released names stay, with their token counters), sorts the
// names under prefix after the continuation, and reads their holders by
// the server's clock with one script per 100 names, until limit held
// locks are found or ListReadBudget names were read. So a page costs
// O(keyspace) and a full listing O(keyspace × pages). Names come in byte
// order; the continuation is the last name read. Each SCAN call and each
// script counts as a backend request.
func (p *Provider) List(ctx context.Context, prefix string, limit int, after string) ([]lock.Status, string, error) {
	if err := checkAfter(prefix, after); err != nil {
		return nil, "", err
	}
	names, err := p.n.scanNames(ctx, p.prefix, prefix, after, 0)
	if err != nil {
		return nil, "", err
	}
	return listPage(sortedNames(names), limit, func(batch []string) ([]lock.Status, error) {
		keys := make([]string, len(batch))
		for i, n := range batch {
			keys[i] = p.key(n)
		}
		before := p.clock.Now()
		rs, err := p.n.list(ctx, keys)
		if err != nil {
			return nil, err
		}
		out := make([]lock.Status, len(rs))
		for i, r := range rs {
			if out[i], err = r.status(batch[i], before); err != nil {
				return nil, err
			}
		}
		return out, nil
	})
}

// Ping implements providers.Provider.
func (p *Provider) Ping(ctx context.Context) error { return p.n.ping(ctx) }

// Close implements providers.Provider; it closes the client only if the
// provider opened it (Open).
func (p *Provider) Close() error {
	if p.owned {
		if err := p.n.rdb.Close(); err != nil && !errors.Is(err, goredis.ErrClosed) {
			return err
		}
	}
	return nil
}
