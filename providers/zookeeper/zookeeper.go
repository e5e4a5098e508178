// Package zookeeper stores hasp leases in Apache ZooKeeper, one persistent
// znode per lock, written only by compare-and-set on the znode's data
// version, with watches for waiters.
//
// # Znodes
//
// A lock named N is the znode PREFIX/N (with '/' in N written %2F, see
// nodeName), created on the lock's first acquire and never deleted by
// hasp. Its data is JSON:
//
//	v, name     format version (1) and the lock's name
//	token       the fencing counter: the last token issued for the name
//	lease       hex SHA-256 of the holder's lease id ("" when free): the
//	            ensemble never holds a usable lease id
//	owner, md   the holder's owner and metadata
//	exp_ms      when the holder's lease ends, Unix milliseconds
//	ttl_ms      the granted TTL
//	rel         a mark of the release call that freed it (see Lost answers)
//	permits     a semaphore's permit table (see Semaphores and lock-delay)
//
// # One conditional write per operation
//
// Every acquire, renew and release is one write conditioned on the data
// version of the znode it decided on, so ZooKeeper applies it only if
// nothing changed since: a SetData with that version, or, for a lock's
// first acquire, a Multi that creates the znode (failing if it exists) and
// sets its data at version 0 (so that the answer carries the znode's Stat).
// A refused write (a version conflict, or the znode already created)
// changed nothing: the provider reads again and decides again, a few
// times. Each provider remembers the last version of each name it read or
// wrote (WithVersionCache) and starts from it, so that through one service
// instance an uncontended acquire+release is two requests (a SetData
// each), a renew one, a held acquire one read, Status one read.
//
// # Reads
//
// A session reads from the server it is connected to, which in an
// ensemble may lag the leader for a moment (ZooKeeper's reads are
// sequentially consistent per session, not linearizable). A read only
// ever chooses which conditional write to try, except where no write
// follows: before it answers lease_lost, the provider has the server catch
// up with the leader (Sync) and reads again, so that lease_lost is the
// leader's word (a renew of a lease another instance granted a moment ago
// is never refused by a follower that has not seen the grant). A held
// answer, or Status, may be a moment old, which can only delay a handoff.
// The permit path confirms its lease_lost answers with the leader too
// (see Semaphores and lock-delay).
//
// # Fencing tokens
//
// The token is a counter in the znode's data, not a zxid. An acquire
// writes the token of the version it replaces plus one, conditioned on
// that version; renew and release keep it; hasp never deletes a znode.
// Data versions of a znode strictly increase and a conditional SetData
// succeeds only on the exact version it names, so the writes form one
// chain and the counter never goes back, across releases, expiries,
// restarts of any server (the data is in the ensemble's log and snapshots)
// and leader elections. A new znode starts its counter at
// providers.TokenBase(now) (Unix milliseconds ×1000; below 2^53 until the year
// 2255): a znode deleted by hand and created again starts above every token
// the old one issued, unless the old one averaged more than one acquire a
// millisecond over its whole life.
//
// The znode's mzxid would be a strictly increasing token too, but not a
// bounded one: a zxid is epoch<<32 | counter, and the epoch grows with
// every leader election (and every time the counter wraps), so a zxid
// passes lock.MaxFencingToken (2^53) once the epoch reaches 2^21; and it
// goes back to zero on an ensemble rebuilt from empty data directories.
//
// Deleting a lock's znode by hand ends its lease at once (the next acquire
// creates it anew); ZooKeeper's version condition cannot tell a znode from
// one deleted and created again at the same data version, so do not delete
// lock znodes while the service runs.
//
// # Time
//
// ZooKeeper has no lease that outlives a client session and gives clients
// no clock to ask, so expiry is judged by the clock of the service
// instance that decides, as with DynamoDB and Cosmos DB: exp_ms is now+TTL
// with now taken before the write is sent, so the reported expires_at is
// never later than the moment any instance with the same clock lets
// another acquirer in. Instances whose clocks differ by d can end a lease
// up to d early from its holder's point of view; the client SDK's safety
// margin (TTL/10, at least 250 ms) is what covers d, and the soak runs two
// instances 500 ms apart (+250 ms and -250 ms).
//
// That bound is checked, not only assumed. Every successful write answers
// with the znode's Stat, whose mtime is the ZooKeeper leader's clock at the
// moment it ordered the write, which lies between the instance's clock
// readings before and after the call. If mtime falls more than the maximum
// skew (WithMaxClockSkew, default DefaultMaxClockSkew) outside that
// interval, the instance's clock is that far off the leader's, and the
// acquire or renew is not granted: it answers lock.ErrUnavailable wrapping
// ErrClockSkew (the write took place: the lease is never handed out and
// lapses at its TTL). A write that passes shows the instance's clock within
// the maximum skew plus the call's round trip of the leader's; all
// instances measure themselves against the same leader, so any two that
// grant differ by at most twice that (plus the leader's own clock steps,
// should leadership move to a server whose clock is off: keep the ensemble
// on NTP too). A clock that jumps is caught at its instance's next acquire
// or renew. A takeover that a clock running ahead writes before it is
// caught (and then refused) ends the lease it replaced early for its
// holder, which can no longer renew, but grants nobody: its expiry, by that
// same clock, lies beyond the replaced lease's, so no other instance
// grants the name before the replaced lease has ended.
//
// # Lost answers
//
// The ZooKeeper client never sends a request twice: when its connection
// breaks it fails every request in flight, and the provider never repeats
// a write whose outcome it does not know. It reads the znode once instead
// (within the call's context): if the znode shows exactly the record the
// write carried, the write took place and the call answers as if its
// answer had arrived (an acquire or renew is granted, a release that finds
// its own mark in rel answered released); otherwise the outcome is unknown
// and the call answers lock.ErrUnavailable. An acquire that finds its own
// lease id's hash on a live record is granted, so an acquire repeated with
// its lease id cannot be refused by its own first attempt.
//
// # Semaphores and lock-delay
//
// A semaphore, or a mutex whose leases ask for a lock-delay, keeps its
// permit table (providers.PermitStore) in the lock's one znode: the
// field "permits" holds providers.EncodePermitTable's JSON as a string,
// lease is "permits" (no lease id's hash, so the mutex path's renew and
// release, which compare it with their lease's hash, answer lease_lost),
// exp_ms is the table's BusyUntil (absent once every permit is free),
// token the counter that the mutex path uses, and owner, md, ttl_ms and
// rel are absent. To the mutex path the znode is held until then: a plain
// acquire of a busy table answers the table's *lock.HeldError (Permits
// set), and of an idle one takes the znode over as from an expired lease,
// removing the table and continuing the counter; Status and List report
// the table's holders. New permits take the next tokens of the counter, so
// tokens strictly increase across mutex and semaphore use of a name.
//
// Cost, uncontended: a permit acquire, renew or release is two requests,
// one read (LoadPermits: GetData) and one write (StorePermits: a SetData
// conditioned on the data version read; for a new name the create Multi).
// An acquire of a full semaphore, or a plain acquire of a busy table, is
// one read; a lease_lost answer is a read and a check (below). Each lost
// race for the znode adds a read and a write. LoadPermits never starts
// from the version cache: the service answers held and permits_mismatch
// from the record without writing, and a remembered version may be any
// age; so the permit path has no one-request fast path. The version
// written is remembered, though, so a plain acquire of a table just
// released idle is one SetData.
//
// Why it is safe: the leader orders every write, and a SetData conditioned
// on data version v applies only if no write of any kind (a mutex
// acquire, renew or release, another table write) came after v, so a
// table is only ever written over the exact version it was decided on. A
// read from a lagging server only makes that write fail; its refusal
// comes back through the same server once it has applied the write that
// won, so the service's next read sees it (a read that did not would
// only cost another round). The only answer given without
// a write is lease_lost (a renew or release of a permit not in the
// table): LoadPermits marks its record MayBeStale, and before the service
// answers lease_lost, ConfirmPermits has the leader check the data version
// read (a Multi holding one version check: one request, which writes no
// data and changes no version), and a changed znode means reading again.
// That check was chosen over a Sync before every read (a request more
// on every operation), over a Sync and a second read on lease_lost (two
// requests), and over a SetData of the same data (a new version, which
// would fail other instances' writes decided on the old one). Held and
// permits_mismatch answers are a moment old at worst, as the mutex path's
// held answers are. Expiry is judged as for mutex leases (see Time):
// permits' expiries come from the instance's clock read before the read,
// and a write that grants or renews a permit is checked against the
// maximum skew by its mtime. A table write whose answer is lost is
// resolved by one read (see Lost answers): the record it wrote is
// success, a record changed otherwise is providers.ErrConflict (the
// service reads again and recognises its own write: an acquire its
// lease's hash, a release its mark), an unchanged one is unavailable.
//
// Limits: ZooKeeper refuses a request larger than jute.maxbuffer (by
// default 1 MiB less one byte), so a record is at most MaxDataBytes and a
// larger table is refused before it is sent, with lock.ErrRecordTooLarge
// (HTTP 409 record_too_large).
// A permit takes about 135 bytes of the record with no owner or metadata,
// about 155 with a short owner, and about 1,440 with a 255-byte owner and
// 1,024 bytes of metadata (more where JSON escapes characters, up to six
// bytes for one, twice over since the table is a string inside the record):
// a semaphore of lock.MaxPermits (1,000) permits fits while its holders'
// owners and metadata average under about 900 bytes; with the largest
// owners and metadata about 720 permits fit. Servers started with a
// larger jute.maxbuffer do not raise MaxDataBytes. Every write of a table
// rewrites the whole znode and goes through the leader and a quorum: one
// name's permit operations are serial (each read-and-write round holds
// the znode's version), so a name sustains roughly one operation per
// read and quorum write round trip, and contention on one semaphore turns into
// conflicts and retries (ErrThrottled after 32 in a row); spread heavy
// use over names.
//
// # Waiting
//
// WaitChange sets a data watch on the znode (GetW) and returns when it
// fires with the holder gone (released, or another token) or when the
// holder's expiry passes; a renew of the holder moves the timer and sets
// the watch again. Watches live on a session of their own, which is closed
// as soon as its connection drops (see New): every watch on it then ends
// and its waiter looks again, so a release during a disconnection is never
// missed, only found by the next read. A watch whose waiter gave up stays
// registered in the client until the znode next changes (at the latest
// when its holder renews or its lease is taken over). A waiter on a permit
// table returns on any write to the znode after the version it was
// refused on (any may free a permit), or when the permit it was told of
// frees (its expiry plus its lock-delay).
//
// Watches of a holder (GET /v1/locks/watch, WaitHolderChange) use the
// same session: one data watch per znode (an exists watch while it does
// not exist), shared by every watch of it until it fires, so that long
// polls of a name nobody writes do not pile up watches in the client; each
// wait is one read, then the watch or the holder's expiry, whichever
// comes first, and the service reads the status after each. A 1.5 s watch
// of a held lock costs 3 requests, where polling would cost about 26.
//
// # Listing
//
// List (GET /v1/locks?prefix=) reads the children of PREFIX (one request),
// keeps the names under the listed prefix after the page's continuation,
// in byte order of name, and reads their znodes, at most ListReadBudget
// a page (WithListReadBudget), until it has limit held ones: a page costs
// 1 + up to N reads, N = min(candidates, ListReadBudget), and never more
// reads than limit held ones need. The reads, like Status's, come from the
// session's server and may be a moment old. The children list is read
// whole on every page, so a page also moves O(znodes under PREFIX) bytes.
//
// # Store URL
//
// "zk://HOST:PORT[,HOST:PORT...][/PREFIX][?session_timeout=10s&max_skew=1s]"
// (port 2181 by default; PREFIX by default DefaultPrefix, created with its
// ancestors when missing). Znodes are created with the open ACL
// (world:anyone): credentials are not supported, so keep the ensemble on a
// network only the service reaches.
//
// Client: github.com/go-zookeeper/zk v1.0.4, the maintained successor of
// samuel/go-zookeeper (archived), pure Go with no dependencies outside the
// standard library, and the newest version the module proxy serves
// (July 2024). Two of its traits shape this package: it has no per-request
// cancellation, so each request runs in a goroutine bounded by the
// caller's context; and it re-registers watches after a reconnect without
// synchronising with its receiving goroutine (a data race the race
// detector reports; go-zookeeper/zk pull request 35), so no connection of
// this package that holds watches ever reconnects.
package zookeeper

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/go-zookeeper/zk"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/internal/versioncache"
)

const (
	// DefaultPrefix is the znode under which locks are stored.
	DefaultPrefix = "/hasp/locks"
	// DefaultSessionTimeout is the ZooKeeper session timeout. hasp keeps
	// no ephemeral znodes, so it only sets how soon the client gives up on
	// a silent connection (two thirds of it) and pings (a third).
	DefaultSessionTimeout = 10 * time.Second
	// DefaultMaxClockSkew is how far an instance's clock may be from the
	// ZooKeeper leader's before it refuses to grant (see "Time" in the
	// package documentation): well above what NTP keeps, well below a TTL.
	DefaultMaxClockSkew = time.Second
	// DefaultVersionCache is how many names' last-seen versions a provider
	// remembers by default.
	DefaultVersionCache = 4096
)

// maxAttempts bounds how often an operation reads again and decides again
// after another writer changed the znode under it.
const maxAttempts = 16

// ErrClockSkew means this service instance's clock is further from the
// ZooKeeper leader's than the maximum skew allows, so it does not grant
// leases. It comes wrapped with lock.ErrUnavailable.
var ErrClockSkew = errors.New("zookeeper: clock skew")

// Provider stores leases in ZooKeeper.
type Provider struct {
	conn           *zk.Conn // every read and write; it never holds a watch
	servers        []string
	sessionTimeout time.Duration
	prefix         string // "" for the root
	clock          lock.Clock
	maxSkew        time.Duration
	versions       *versioncache.Cache[version]
	holderWatches  holderWatches // watches shared by WaitHolderChange
	calls          atomic.Int64  // requests sent, for providers.RequestCounter
	listBudget     int           // reads one List may send (WithListReadBudget)

	wmu    sync.Mutex
	wconn  *zk.Conn // the watches' connection, dialled when first needed
	closed bool
}

var (
	_ providers.Provider       = (*Provider)(nil)
	_ providers.Watcher        = (*Provider)(nil)
	_ providers.HolderWatcher  = (*Provider)(nil)
	_ providers.RequestCounter = (*Provider)(nil)
	_ providers.Provisioner    = (*Provider)(nil)
	_ providers.Lister         = (*Provider)(nil)
)

// Option configures a Provider.
type Option func(*Provider)

// WithPrefix sets the znode under which locks are stored (default
// DefaultPrefix); "/" stores them at the root.
func WithPrefix(prefix string) Option {
	return func(p *Provider) { p.prefix = strings.TrimSuffix(prefix, "/") }
}

// WithSessionTimeout sets the ZooKeeper session timeout (default
// DefaultSessionTimeout; the server clamps it to between 2 and 20 of its
// ticks).
func WithSessionTimeout(d time.Duration) Option { return func(p *Provider) { p.sessionTimeout = d } }

// WithClock sets the clock that judges expiry (default the system clock).
func WithClock(c lock.Clock) Option { return func(p *Provider) { p.clock = c } }

// WithMaxClockSkew sets how far this instance's clock may be from the
// ZooKeeper leader's, as measured on each write, before acquires and
// renews are refused (default DefaultMaxClockSkew); 0 turns the check off.
func WithMaxClockSkew(d time.Duration) Option { return func(p *Provider) { p.maxSkew = d } }

// WithVersionCache sets how many names' last-seen znode versions the
// provider remembers (default DefaultVersionCache); 0 turns the cache off,
// so that every operation starts with a read.
func WithVersionCache(n int) Option { return func(p *Provider) { p.versions = newVersionCache(n) } }

// New returns a provider on the ZooKeeper ensemble at servers (host:port,
// port 2181 when omitted). It returns at once: its client connects, and
// reconnects, in the background, and requests wait for a connection
// within their context; Ping tells whether it is connected. Close closes
// its connections.
//
// It keeps two sessions: one for reads and writes, which reconnects by
// itself, and one for watches, dialled when a waiter first needs it and
// closed (ending every watch on it, whose waiters then look again) as soon
// as its connection drops; the next waiter dials a new one. The client
// would set the watches again on a new connection itself, but it does so
// unsynchronised with its receiving goroutine (a data race, go-zookeeper/zk
// pull request 35, open since 2020), so the provider never lets a
// connection with watches reconnect.
func New(servers []string, opts ...Option) (*Provider, error) {
	if len(servers) == 0 {
		return nil, errors.New("zookeeper: no servers")
	}
	p := &Provider{
		servers: servers, sessionTimeout: DefaultSessionTimeout,
		prefix: DefaultPrefix, clock: lock.SystemClock{},
		maxSkew: DefaultMaxClockSkew, versions: newVersionCache(DefaultVersionCache),
		listBudget: ListReadBudget,
	}
	for _, o := range opts {
		o(p)
	}
	conn, err := dial(servers, p.sessionTimeout, false, nil)
	if err != nil {
		return nil, fmt.Errorf("zookeeper: connect %v: %w", servers, err)
	}
	p.conn = conn
	return p, nil
}

// Name returns "zookeeper".
func (p *Provider) Name() string { return "zookeeper" }

// BackendRequests implements providers.RequestCounter: requests sent to
// ZooKeeper (reads, writes and watch registrations; not the client's
// pings or session handshakes).
func (p *Provider) BackendRequests() int64 { return p.calls.Load() }

// Close implements providers.Provider: it closes the provider's
// sessions.
func (p *Provider) Close() error {
	p.wmu.Lock()
	w := p.wconn
	p.wconn, p.closed = nil, true
	p.wmu.Unlock()
	if w != nil {
		w.Close()
	}
	p.conn.Close()
	return nil
}

// watchConn returns the connection for watches, dialling it if there is
// none. It dials its servers until one answers, then never again: when
// that connection drops, the client reports it and the provider closes
// the connection (see New).
func (p *Provider) watchConn() (*zk.Conn, error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.closed {
		return nil, zk.ErrClosing
	}
	if p.wconn != nil {
		return p.wconn, nil
	}
	var (
		self    atomic.Pointer[zk.Conn]
		dropped atomic.Bool
	)
	drop := func(c *zk.Conn) {
		p.wmu.Lock()
		if p.wconn == c {
			p.wconn = nil
		}
		p.wmu.Unlock()
		go c.Close() // not from the client's own goroutine, which Close waits for
	}
	conn, err := dial(p.servers, p.sessionTimeout, true, func(ev zk.Event) {
		if ev.Type != zk.EventSession || (ev.State != zk.StateDisconnected && ev.State != zk.StateExpired) {
			return
		}
		// Whichever of this and the Store below comes second drops it.
		dropped.Store(true)
		if c := self.Load(); c != nil {
			drop(c)
		}
	})
	if err != nil {
		return nil, err
	}
	self.Store(conn)
	if dropped.Load() {
		go conn.Close() // lost already: its requests fail, and the next waiter dials anew
		return conn, nil
	}
	p.wconn = conn
	return conn, nil
}

func (p *Provider) path(name string) string { return p.prefix + "/" + nodeName(name) }

var openACL = zk.WorldACL(zk.PermAll)

// do sends one request with fn, bounded by ctx. The client cannot cancel
// a request: when ctx ends first, do returns ctx's error and fn finishes
// in the background, its result dropped.
func do[T any](ctx context.Context, p *Provider, fn func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	p.calls.Add(1)
	ch := make(chan result, 1)
	go func() {
		v, err := fn()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

type got struct {
	data []byte
	st   *zk.Stat
}

// read reads name's znode; found is false when it does not exist.
func (p *Provider) read(ctx context.Context, name string) (v version, found bool, err error) {
	path := p.path(name)
	g, err := do(ctx, p, func() (got, error) {
		d, st, err := p.conn.Get(path)
		return got{d, st}, err
	})
	if errors.Is(err, zk.ErrNoNode) {
		p.versions.Drop(name)
		return version{}, false, nil
	}
	if err != nil {
		return version{}, false, mapErr(err)
	}
	if v, err = decode(name, g.data, g.st); err != nil {
		return version{}, false, err
	}
	p.versions.Put(name, v)
	return v, true, nil
}

// sync makes the server that this provider's session is on catch up with
// the leader, so that the next read shows every write committed before.
// In an ensemble a read may come from a follower that lags: a decision that
// no write checks (lease_lost) or a conflict after a fresh read syncs first.
func (p *Provider) sync(ctx context.Context, name string) error {
	path := p.path(name)
	_, err := do(ctx, p, func() (string, error) { return p.conn.Sync(path) })
	return mapErr(err)
}

// current returns the version to decide on: the remembered one (fresh is
// false) or, with reread or nothing remembered, one read now.
func (p *Provider) current(ctx context.Context, name string, reread bool) (v version, found, fresh bool, err error) {
	if !reread {
		if v, ok := p.versions.Get(name); ok {
			return v, true, false, nil
		}
	}
	v, found, err = p.read(ctx, name)
	return v, found, true, err
}

// set writes next over base if the znode is still at base's version. The
// error is ZooKeeper's, for the caller to classify.
func (p *Provider) set(ctx context.Context, name string, base version, next record) (version, error) {
	path, data := p.path(name), next.encode()
	st, err := do(ctx, p, func() (*zk.Stat, error) { return p.conn.Set(path, data, base.ver) })
	if err != nil {
		p.versions.Drop(name)
		return version{}, err
	}
	v := version{rec: next, ver: st.Version, mzxid: st.Mzxid, mtime: st.Mtime}
	p.versions.Put(name, v)
	return v, nil
}

// create creates name's znode holding rec, failing with zk.ErrNodeExists
// if it exists (zk.ErrNoNode: the prefix is missing). It is a Multi of the
// create of an empty znode and a SetData of rec at version 0, whose answer
// carries the Stat; the two apply at once, so nobody reads the empty
// znode, and the data is sent once (a request of it twice would pass
// jute.maxbuffer at half the MaxDataBytes StorePermits checks).
func (p *Provider) create(ctx context.Context, name string, rec record) (version, error) {
	path, data := p.path(name), rec.encode()
	res, err := do(ctx, p, func() ([]zk.MultiResponse, error) {
		return p.conn.Multi(
			&zk.CreateRequest{Path: path, Acl: openACL},
			&zk.SetDataRequest{Path: path, Data: data, Version: 0},
		)
	})
	if err != nil {
		p.versions.Drop(name)
		return version{}, err
	}
	if len(res) != 2 || res[1].Stat == nil {
		// Applied, by the absence of an error, but unreadable: the caller
		// reads the znode to learn the outcome.
		return version{}, fmt.Errorf("zookeeper: unexpected answer to the create of %q: %d results", name, len(res))
	}
	st := res[1].Stat
	v := version{rec: rec, ver: st.Version, mzxid: st.Mzxid, mtime: st.Mtime}
	p.versions.Put(name, v)
	return v, nil
}

// conflict reports a conditional write that ZooKeeper refused because the
// znode was not as the write assumed: nothing changed.
func conflict(err error) bool {
	return errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNodeExists) || errors.Is(err, zk.ErrNoNode)
}

// misconfigured reports an error that retrying will not cure (ACLs,
// authentication, an invalid path or request): nothing changed.
func misconfigured(err error) bool {
	for _, e := range []error{zk.ErrNoAuth, zk.ErrAuthFailed, zk.ErrInvalidACL, zk.ErrBadArguments, zk.ErrInvalidPath,
		zk.ErrInvalidFlags, zk.ErrAPIError, zk.ErrNotEmpty, zk.ErrNoChildrenForEphemerals} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// mapErr maps ZooKeeper and context errors to the lock package's
// sentinels: misconfiguration is an internal error; every other failure of
// a request (a broken or closed connection, no server reachable, an
// expired session, a timeout) is one whose outcome the caller cannot know,
// so it is unavailable.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case misconfigured(err):
		return fmt.Errorf("zookeeper: %w", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return lock.Unavailable(fmt.Errorf("zookeeper: no answer: %w", err), time.Second)
	}
	return lock.Unavailable(fmt.Errorf("zookeeper: %w", err), time.Second)
}

// granted returns the lease with id that v, written by this call with a
// clock reading before taken before it was sent, grants, once the write's
// mtime shows this instance's clock within the maximum skew of the
// leader's.
func (p *Provider) granted(v version, id string, before time.Time) (lock.Lease, error) {
	if err := p.checkSkew(v, before); err != nil {
		return lock.Lease{}, err
	}
	return v.rec.lease(id), nil
}

// checkSkew returns lock.ErrUnavailable wrapping ErrClockSkew if the
// mtime of v, written by this call with a clock reading before taken
// before it was sent, shows this instance's clock further than the
// maximum skew from the leader's.
func (p *Provider) checkSkew(v version, before time.Time) error {
	if p.maxSkew <= 0 {
		return nil
	}
	after := p.clock.Now()
	lo, hi := before.Add(-p.maxSkew).UnixMilli(), after.Add(p.maxSkew).UnixMilli()
	if v.mtime >= lo && v.mtime <= hi {
		return nil
	}
	// How far the leader's clock reads outside this call's interval on
	// this instance's clock: negative when it is behind.
	off := time.Duration(v.mtime-after.UnixMilli()) * time.Millisecond
	if v.mtime < before.UnixMilli() {
		off = time.Duration(v.mtime-before.UnixMilli()) * time.Millisecond
	}
	return lock.Unavailable(fmt.Errorf("%w: %q not granted: the ZooKeeper leader's clock reads %s off this instance's (allowed: %s)",
		ErrClockSkew, v.rec.Name, off, p.maxSkew), time.Second)
}

// resolve learns the outcome of a write of want whose answer was lost
// (cause): it reads the znode once, and the write took place if the znode
// holds exactly want. Otherwise the outcome is unknown: unavailable.
func (p *Provider) resolve(ctx context.Context, name string, want record, cause error) (version, error) {
	unknown := lock.Unavailable(fmt.Errorf("zookeeper: outcome of the write to %q unknown: %w", name, cause), time.Second)
	if ctx.Err() != nil {
		return version{}, unknown
	}
	v, found, err := p.read(ctx, name)
	if err != nil || !found || v.rec != want {
		return version{}, unknown
	}
	return v, nil
}

// Acquire implements providers.Provider. From a remembered free version it
// costs one SetData; from nothing remembered, a read and a SetData (for a
// new name, a read and a Multi); a held lock costs one read.
func (p *Provider) Acquire(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	hash := providers.HashLeaseID(req.LeaseID)
	reread, synced := false, false
	for range maxAttempts {
		v, found, fresh, err := p.current(ctx, req.Name, reread)
		if err != nil {
			return lock.Lease{}, err
		}
		reread = true
		now := p.clock.Now()
		var next record
		if !found {
			next = record{V: recordVersion, Name: req.Name, Token: providers.TokenBase(now)}.acquired(req, now)
			v, err = p.create(ctx, req.Name, next)
			if errors.Is(err, zk.ErrNoNode) {
				if err := p.Provision(ctx); err != nil {
					return lock.Lease{}, err
				}
				continue
			}
		} else {
			if v.rec.heldAt(now) {
				if !fresh {
					continue // remembered as held: it may have been released since
				}
				if v.rec.Lease == hash {
					return v.rec.lease(req.LeaseID), nil // this lease's own earlier write
				}
				if v.rec.Permits != "" {
					t, err := v.rec.table()
					if err != nil {
						return lock.Lease{}, err
					}
					return lock.Lease{}, t.Blocking(req.Name, now, v.mzxid) // a busy permit table
				}
				return lock.Lease{}, &lock.HeldError{
					Name: req.Name, Holder: v.rec.holder(),
					RetryAfter: max(v.rec.expires().Sub(p.clock.Now()), 0),
					Revision:   v.mzxid,
				}
			}
			next = v.rec.acquired(req, now)
			if next.Token >= lock.MaxFencingToken {
				return lock.Lease{}, fmt.Errorf("zookeeper: the fencing tokens of %q are exhausted", req.Name)
			}
			v, err = p.set(ctx, req.Name, v, next)
		}
		switch {
		case err == nil:
		case conflict(err):
			// Changed since that version: read again, decide again (after
			// a sync, if the version came from a read, which may lag).
			if fresh && !synced {
				if err := p.sync(ctx, req.Name); err != nil {
					return lock.Lease{}, err
				}
				synced = true
			}
			continue
		case misconfigured(err):
			return lock.Lease{}, mapErr(err)
		default:
			if v, err = p.resolve(ctx, req.Name, next, err); err != nil {
				return lock.Lease{}, err
			}
		}
		return p.granted(v, req.LeaseID, now)
	}
	// Changed by others between each read and write: neither held nor free
	// is known; the caller may retry at once.
	return lock.Lease{}, lock.Unavailable(fmt.Errorf("zookeeper: %q kept changing under %d attempts", req.Name, maxAttempts), 10*time.Millisecond)
}

// Renew implements providers.Provider: one SetData from the remembered
// version, or a read and a SetData. Renews of one lease that race (a retry
// beside the original, a manual renew beside the background one) each
// read again on a conflict; one wins each round.
func (p *Provider) Renew(ctx context.Context, req lock.RenewRequest) (lock.Lease, error) {
	var l lock.Lease
	err := p.update(ctx, req.Name, req.LeaseID, func(v version, now time.Time) (record, func(version) error) {
		ttl := req.TTL
		if ttl == 0 {
			ttl = time.Duration(v.rec.TTLms) * time.Millisecond
		}
		return v.rec.renewed(ttl, now), func(w version) (err error) {
			l, err = p.granted(w, req.LeaseID, now)
			return err
		}
	})
	return l, err
}

// Release implements providers.Provider: one SetData from the remembered
// version, or a read and a SetData, that frees the lock and keeps the
// znode, and with it the token counter.
func (p *Provider) Release(ctx context.Context, req lock.ReleaseRequest) error {
	var nonce [12]byte
	_, _ = rand.Read(nonce[:])
	mark := providers.HashLeaseID(req.LeaseID + "\x00" + hex.EncodeToString(nonce[:]))
	return p.update(ctx, req.Name, req.LeaseID, func(v version, _ time.Time) (record, func(version) error) {
		return v.rec.released(mark), func(version) error { return nil }
	})
}

// update writes change(v) over the version v of name's znode if lease id
// holds it at now, reading again after a conflict, and calls the returned
// done with the version written.
func (p *Provider) update(ctx context.Context, name, id string, change func(v version, now time.Time) (record, func(version) error)) error {
	hash := providers.HashLeaseID(id)
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = time.Millisecond, 20*time.Millisecond
	reread, synced := false, false
	for range maxAttempts {
		v, found, fresh, err := p.current(ctx, name, reread)
		if err != nil {
			return err
		}
		now := p.clock.Now()
		if !found || v.rec.Lease != hash || !v.rec.heldAt(now) {
			switch {
			case !fresh:
				reread = true
			case !synced:
				// lease_lost must be the leader's word, not a lagging
				// follower's: sync, then read again.
				if err := p.sync(ctx, name); err != nil {
					return err
				}
				reread, synced = true, true
			default:
				return fmt.Errorf("zookeeper: %q: %w", name, lock.ErrLeaseLost)
			}
			continue
		}
		next, done := change(v, now)
		w, err := p.set(ctx, name, v, next)
		switch {
		case err == nil:
		case conflict(err):
			if reread {
				// Another writer won a round from a fresh read: let the
				// racers spread out.
				select {
				case <-time.After(b.NextBackOff()):
				case <-ctx.Done():
					return mapErr(ctx.Err())
				}
			}
			reread = true
			continue
		case misconfigured(err):
			return mapErr(err)
		default:
			if w, err = p.resolve(ctx, name, next, err); err != nil {
				return err
			}
		}
		return done(w)
	}
	return lock.Unavailable(fmt.Errorf("zookeeper: %q kept changing under %d attempts", name, maxAttempts), 10*time.Millisecond)
}

// Status implements providers.Provider with one read; a semaphore's (or
// lock-delayed mutex's) status comes from its permit table.
func (p *Provider) Status(ctx context.Context, name string) (lock.Status, error) {
	v, found, err := p.read(ctx, name)
	if err != nil {
		return lock.Status{}, err
	}
	if !found {
		return lock.Status{Name: name}, nil
	}
	return v.rec.status(p.clock.Now())
}

type watched struct {
	got
	ch <-chan zk.Event
}

// retryPause is how long WaitChange waits before it lets the service try
// again when ZooKeeper does not answer, so that an outage is no busy loop.
const retryPause = 100 * time.Millisecond

// WaitChange implements providers.Watcher with a data watch on the znode:
// it returns when the holder in held no longer holds the lock (released,
// taken over, or expired by this instance's clock), following the
// holder's renewals. For a permit table (held.Permits set) it returns on
// any write to the znode after held.Revision, since any may free a
// permit, or when held's holder frees (its expiry plus its lock-delay).
func (p *Provider) WaitChange(ctx context.Context, held *lock.HeldError) error {
	until := held.Holder.FreeAt().Sub(p.clock.Now())
	if until <= 0 {
		return nil
	}
	t := time.NewTimer(until)
	defer t.Stop()
	path := p.path(held.Name)
	for {
		conn, err := p.watchConn()
		if err != nil {
			return nil // closed: let the acquire report it
		}
		w, err := do(ctx, p, func() (watched, error) {
			d, st, ch, err := conn.GetW(path)
			return watched{got{d, st}, ch}, err
		})
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, zk.ErrNoNode):
			return nil // deleted: free
		case err != nil:
			// Let the service try again, which reports a real failure.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(min(retryPause, time.Until(held.Holder.FreeAt()))):
				return nil
			}
		}
		v, err := decode(held.Name, w.data, w.st)
		if err != nil {
			return nil // the acquire reports it
		}
		p.versions.Put(held.Name, v)
		now := p.clock.Now()
		if held.Permits > 0 || v.rec.Permits != "" {
			// A permit table: any write may have freed a permit; else
			// wait for the watch or held's holder to free.
			if v.mzxid != held.Revision {
				return nil
			}
		} else {
			if v.rec.Token != held.Holder.FencingToken || !v.rec.heldAt(now) {
				return nil
			}
			t.Reset(v.rec.expires().Sub(now)) // the holder may have renewed
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		case ev := <-w.ch:
			if ev.Type == zk.EventNotWatching {
				return nil // the connection ended: look again
			}
			// Changed: read it again, with a new watch.
		}
	}
}

// Ping implements providers.Provider: one exists check of the prefix.
func (p *Provider) Ping(ctx context.Context) error {
	path := p.prefix
	if path == "" {
		path = "/"
	}
	_, err := do(ctx, p, func() (bool, error) {
		ok, _, err := p.conn.Exists(path)
		return ok, err
	})
	return mapErr(err)
}

// Provision implements providers.Provisioner: it creates the prefix and
// its ancestors where missing (empty persistent znodes with the open
// ACL). Acquire calls it when the prefix is missing.
func (p *Provider) Provision(ctx context.Context) error {
	if p.prefix == "" {
		return nil
	}
	path := ""
	for _, part := range strings.Split(p.prefix[1:], "/") {
		path += "/" + part
		_, err := do(ctx, p, func() (string, error) { return p.conn.Create(path, nil, 0, openACL) })
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("zookeeper: create the prefix %s: %w", path, mapErr(err))
		}
	}
	return nil
}
