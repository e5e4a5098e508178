// Package cosmos stores hasp leases in an Azure Cosmos DB for NoSQL
// container, one document per lock name, written only conditionally.
//
// # Container and documents
//
// The container is partitioned on /id (see CreateContainer, `hasp store
// init --store cosmos://DATABASE/CONTAINER`). A lock's document id is its name
// in unpadded base64url (RFC 4648 §5): Cosmos DB ids may not contain '/',
// '\', '?' or '#', and lock names may contain '/'; base64url uses only
// A-Z a-z 0-9 - _, is one-to-one, and a 255-byte name becomes at most 340
// characters (ids may have 1,023 bytes, partition key values 2,048). The
// document:
//
//	id          base64url(name), also the partition key
//	name        the lock's name, for people reading the container
//	token       the fencing counter: the last token issued for the name
//	lease       hex SHA-256 of the holder's lease id ("" when free): the
//	            database never holds a usable lease id
//	owner, metadata  the holder's, as given
//	start_ms    when the holder's lease was granted or last renewed, Unix
//	            milliseconds by the service's clock; it expires at
//	            start_ms + ttl_ms
//	ttl_ms      the granted TTL
//	ttl         always -1: never expire, even if someone turns on a default
//	            time-to-live on the container
//
// # Operations and requests
//
// Every write is conditional, and decided by the database's primary
// replica, never by what a read saw:
//
//   - Acquire: take the document's current version (see below); if there
//     is none, create it (a create fails with 409 if the document exists:
//     read it and decide again); if its lease is free or expired by the
//     service's clock, replace it with the new lease and token+1, with
//     If-Match on that version's etag; if a live lease holds it, report it
//     held. A 412 (another writer changed it since) reads it again and
//     decides again, a few times, then reports it held.
//   - Renew: one patch that sets start_ms (and ttl_ms), conditioned on
//     "FROM c WHERE c.lease = <hash> AND c.start_ms + c.ttl_ms > <now>".
//     Concurrent renews of a lease never conflict, and a 412 means, at the
//     primary, that the lease no longer holds the lock: lease lost.
//   - Release: one patch under the same condition that clears the lease
//     and keeps the document and its token.
//   - Status: one read (of a permit table's document, the table's status).
//
// A read is not authoritative: Cosmos DB serves it from one replica, and
// the SDK passes no session token, so with Session consistency (the
// default) another instance's latest write may be missing from it for a
// moment. Reads only ever choose which conditional write to try, and the
// write's condition decides; what a read can get wrong is a held report
// or a status a moment old.
//
// Each provider remembers, per name, the last version of the document it
// read or wrote (etag and content; a bounded cache, see WithVersionCache),
// and an acquire starts from it instead of reading. This is safe across
// instances because the remembered version is only the base of an
// If-Match write, which succeeds only if the document is still exactly
// that version; if any other instance wrote since, the write fails with
// 412 and the provider reads and decides again. A lock that looks held in
// the remembered version is read again before it is reported held. So an
// uncontended acquire+release through one instance costs two requests (a
// replace and a patch), a renew one, a held acquire one read; an acquire
// of a name the instance has not seen costs a read more (a new name: a
// read and a create).
//
// # Fencing tokens never go back
//
// Within the life of a document its versions form one chain. Every
// replace is conditioned on the etag of the version it replaces, and
// Cosmos DB gives every write a new etag, so no write can replace a
// version another write already replaced; creates succeed only where no
// document exists; patches never touch the token. An acquire writes the
// token of the version it replaces plus one; every other write keeps the
// token. So tokens along the chain never decrease, and each acquire's
// token is greater than every token before it. Release keeps the document,
// and hasp never deletes one; "ttl": -1 keeps Cosmos DB's time-to-live
// from deleting it. A new document starts its counter at its creation
// time in Unix milliseconds ×1000 (tokens stay below 2^53 until the year
// 2255). That start is also a second line of defence if a document is
// deleted by hand anyway: its successor starts above every token of the
// old one unless the old one averaged more than one acquire per
// millisecond over its whole life; the guarantee itself rests on documents
// not being deleted.
//
// Accounts with multiple write regions resolve conflicting writes after
// the fact (last writer wins), which defeats conditional writes as a lock:
// use an account with a single write region.
//
// # Semaphores and lock-delay
//
// A name used as a semaphore, or as a mutex whose leases ask for a
// lock-delay, keeps its permit table (providers.PermitStore) in the same
// document, as the string field "permits" (providers.EncodePermitTable).
// Such a document carries lease "permits" (not hex, so no lease's hash:
// every renew and release condition of the mutex path fails on it, as
// lease_lost), start_ms the table's BusyUntil (the last moment a permit is
// live or lock-delayed; 0 when idle) and ttl_ms 0, so the mutex path sees
// it held exactly while the table is busy; token stays the fencing
// counter, and each permit a write grants gets the next value in that
// write. A plain acquire of a busy table fails with the table's held error
// (Permits set: the service answers permits_mismatch, or held); one of an
// idle table replaces it as it would an expired lease, token+1, without
// the table. Status reads the table; List shows a table's name while a
// permit is live (not when it is only lock-delayed).
//
//   - LoadPermits: one point read, always sent: never the version cache.
//     The version is the document as read, etag included; Now is the
//     provider's clock read before the read is sent. The record is
//     MayBeStale (providers.PermitRecord): see below.
//   - StorePermits: one replace with If-Match on that etag, or, for a name
//     without a document, one create (which fails if one exists). A 412,
//     409 or 404 is providers.ErrConflict: the service reads again.
//   - ConfirmPermits (providers.PermitConfirmer), before a renew or release
//     answers lease_lost: one replace of the document as read by itself,
//     with If-Match on its etag (for a name without a document, one patch
//     conditioned on "FROM c WHERE false", which writes nothing: 404 means
//     no document). Success confirms the read; a 412 is
//     providers.ErrConflict: the read was stale, and the service reads again.
//
// So a semaphore acquire, renew or release costs two requests, a read and
// a replace (a read and a create for a new name), plus a read and a write
// again for each race lost to another writer; an acquire that finds every
// permit taken costs one read; so does a plain acquire of a busy table
// (a failed replace and a read if this instance remembers it idle); a
// renew or release that answers lease_lost costs two, a read and the
// confirming replace (or patch), plus a read and a confirmation again for
// each stale read. The confirming replace is charged as a replace of the
// document (see Limits); a failed patch, as a small write.
//
// LoadPermits does not start from the remembered version, although the
// etag check would make a write based on a stale one safe (it fails with
// 412 and the service reads again): the service also answers without
// writing (held, permits_mismatch, lease_lost for a renew or release whose
// permit is not in the table), and those answers must come from the
// document as it is, not as this instance last wrote it, perhaps seconds
// before other instances' writes.
//
// Safety is the mutex path's argument: every table write is an If-Match
// replace or a create, decided by the partition's primary replica, so no
// write is based on a version another write replaced: two writers never
// both grant from one table, and tokens come from the one counter, so
// they strictly increase across mutex and semaphore use of a name. The
// read is served by one replica with the account's consistency (Session,
// without a session token): it can miss another instance's write of the
// last moments. Then the write fails (its etag is no longer current), or,
// where the service answers without writing, the answer could be a moment
// old. Held and permits_mismatch reports are answered from the read, a
// moment old at worst, as on the mutex path (the caller waits and tries
// again). lease_lost is never answered from the read alone: the read
// could lack a permit granted or renewed through another instance in that
// moment, so the service first has the primary confirm that the document
// is still the version read (ConfirmPermits: an If-Match replace of it by
// itself, which the primary refuses with 412 if any write came after the
// version read; for no document, a patch that only the primary's 404
// passes). Every negative answer of a renew or release is thereby
// decided by the primary, as the mutex path's patches are. This holds
// whatever the account's consistency; with Strong the reads have no such
// window, and the confirmation is merely redundant.
//
// A one-operation transactional batch (a ReadItem in
// ContainerClient.ExecuteTransactionalBatch) would be a single request,
// but Microsoft's documentation does not say that it reads at the primary
// or sees every acknowledged write: "Transactional batch operations in
// Azure Cosmos DB" (learn.microsoft.com/azure/cosmos-db/transactional-batch)
// says "The service receives the request and executes all operations
// within a transactional scope" and promises "ACID compliant transactions
// with snapshot isolation for operations within the same logical
// partition key", and "Transactions and optimistic concurrency control"
// (learn.microsoft.com/azure/cosmos-db/database-transactions-optimistic-concurrency)
// that operations "are transactionally executed within the database engine
// that's hosted by the replica of the partition" — isolation within the
// batch, not which replica, nor its freshness. (The SDKs send a batch to
// the primary as a write, and the .NET direct transport still attaches a
// session token to it "since it can have Reads in it", but that is
// implementation, not a documented guarantee.) So the confirmation above,
// which relies only on the documented If-Match semantics, is used instead.
//
// The SDK (azcore's retry policy) may send a replace or create again when
// its answer was lost (a 503, say); the resend finds the etag changed (412)
// or the document created (409) by the write itself, StorePermits answers
// ErrConflict, and the service reads again and finds its own permit (an
// acquire) or its release's mark (a release: released, not lease_lost). A
// timeout or a broken connection is an unknown outcome,
// lock.ErrUnavailable.
//
// Limits. An item holds at most 2 MB (the UTF-8 length of its JSON). The
// table is a JSON string inside the document's JSON, so its quotes are
// escaped once more. 1000 permits with a short owner and no metadata take
// about 155 KB (about 154 bytes a permit); with a 255-byte owner and
// 1,024 bytes of metadata in plain ASCII, about 1.44 MB (1,435 bytes a
// permit), which fits; metadata made of characters JSON escapes (quotes,
// control characters) can make a permit about 8.3 KB, and then only about
// 240 permits fit. A write over the limit (413) fails with
// lock.ErrRecordTooLarge (HTTP 409 record_too_large), and writes nothing.
// Request units grow with the item: by Microsoft's published table
// (Session consistency, default indexing; the emulator charges 1 RU for
// everything, so this is not measured here), a point read costs about 10 RU at 128 KB, 20 at 256 KB
// and 146 at 1 MB, a replace about 48, 98 and 625. So one semaphore
// operation (a read and a replace) on a table of 1000 short permits costs
// about 70 RU, on one of 1000 maximal permits (1.44 MB) about 1,100 RU,
// against about 6 on a small table. A name is one document in one logical
// partition, served by one physical partition of at most 10,000 RU/s:
// about 140 operations a second on the first table and 9 on the second,
// whatever the container's throughput; a container of 400 RU/s allows
// about 5 a second on the first.
//
// # Time
//
// Expiry is judged by the clock of the service instance that writes, as
// with the DynamoDB provider: start_ms is a time taken before the write is
// sent, so the reported expires_at is never later than the moment another
// instance may take the lock. Instances whose clocks differ by d can
// shorten a lease by d from a holder's point of view; the client SDK's
// safety margin (TTL/10, at least 250 ms) covers that. Cosmos DB's own TTL
// is not used.
//
// # Errors
//
// 429 is lock.ErrThrottled with the service's x-ms-retry-after-ms as the
// retry hint; 408, 5xx, timeouts and broken connections are
// lock.ErrUnavailable (the write may have been applied); anything else
// (authentication, a missing container, a wrong partition key) is an
// internal error.
//
// # Store URL
//
// "cosmos://DATABASE/CONTAINER", with the account endpoint in
// COSMOS_ENDPOINT and, for key authentication, the account key in
// COSMOS_KEY. Without COSMOS_KEY the provider authenticates with Entra ID
// through azidentity's DefaultAzureCredential (managed identity, workload
// identity, environment, Azure CLI, ...); the identity needs the Cosmos DB
// Built-in Data Contributor role on the account or the container.
package cosmos

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/internal/versioncache"
)

// DefaultVersionCache is how many names' last-seen document versions a
// provider remembers by default.
const DefaultVersionCache = 4096

// maxAttempts bounds how often an acquire reads again and decides again
// after another writer changed the document under it (412 or 409).
const maxAttempts = 10

// Provider stores leases in one Cosmos DB container.
type Provider struct {
	client    *azcosmos.Client // owned: closed by Close
	cfg       Config
	container *azcosmos.ContainerClient
	clock     lock.Clock
	versions  *versioncache.Cache[version]
	requests  *atomic.Int64 // HTTP requests, for providers.RequestCounter
	checked   atomic.Bool   // the container's partition key was checked
}

var (
	_ providers.Provider       = (*Provider)(nil)
	_ providers.RequestCounter = (*Provider)(nil)
)

// Option configures a Provider.
type Option func(*Provider)

// WithClock sets the clock that judges expiry (default the system clock).
func WithClock(c lock.Clock) Option { return func(p *Provider) { p.clock = c } }

// WithVersionCache sets how many names' last-seen document versions the
// provider remembers (default DefaultVersionCache); 0 turns the cache off,
// so that every acquire starts with a read.
func WithVersionCache(n int) Option { return func(p *Provider) { p.versions = newVersionCache(n) } }

// New opens a provider on the container cfg names. It sends no request:
// Ping checks the container.
func New(cfg Config, opts ...Option) (*Provider, error) {
	requests := new(atomic.Int64)
	client, err := NewClient(cfg, requests)
	if err != nil {
		return nil, err
	}
	container, err := client.NewContainer(cfg.Database, cfg.Container)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("cosmos: %w", err)
	}
	p := &Provider{client: client, cfg: cfg, container: container, clock: lock.SystemClock{}, versions: newVersionCache(DefaultVersionCache), requests: requests}
	for _, o := range opts {
		o(p)
	}
	return p, nil
}

// Name returns "cosmos".
func (p *Provider) Name() string { return "cosmos" }

// BackendRequests implements providers.RequestCounter: HTTP requests sent
// to Cosmos DB, including the SDK's retries and its account metadata
// reads.
func (p *Provider) BackendRequests() int64 { return p.requests.Load() }

var _ providers.Provisioner = (*Provider)(nil)

// Provision implements providers.Provisioner (`hasp store init`): the
// database and the container partitioned on /id, if missing
// (CreateContainer).
func (p *Provider) Provision(ctx context.Context) error { return CreateContainer(ctx, p.cfg) }

// Close implements providers.Provider.
func (p *Provider) Close() error {
	p.client.Close()
	return nil
}

// docID is the document id (and partition key) of a lock name.
func docID(name string) string { return base64.RawURLEncoding.EncodeToString([]byte(name)) }

// document is a lock's Cosmos DB document.
type document struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Token    int64  `json:"token"`
	Lease    string `json:"lease"`
	Owner    string `json:"owner"`
	Metadata string `json:"metadata"`
	StartMs  int64  `json:"start_ms"`
	TTLMs    int64  `json:"ttl_ms"`
	TTL      int    `json:"ttl"`
	// Released marks the last release call (a hash of its lease id and a
	// nonce of the call), so that the call recognises its own write when
	// the SDK retried it after it was applied; another release of the same
	// lease still answers lease_lost.
	Released string `json:"released,omitempty"`
	// Permits is the permit table of a semaphore or lock-delayed mutex
	// (providers.EncodePermitTable), "" for a plain lease; see "Semaphores
	// and lock-delay" in the package documentation.
	Permits string `json:"permits,omitempty"`
}

// version is a document as of one etag.
type version struct {
	doc  document
	etag azcore.ETag
}

func (d document) expiresMs() int64 { return d.StartMs + d.TTLMs }

func (d document) expires() time.Time { return time.UnixMilli(d.expiresMs()).UTC() }

// heldAt reports whether a lease holds the lock at now.
func (d document) heldAt(now time.Time) bool { return d.Lease != "" && d.expiresMs() > now.UnixMilli() }

// acquired is d taken by req at now, with the next token; a permit
// table d held (idle, or acquired would not be called) is dropped.
func (d document) acquired(req lock.AcquireRequest, now time.Time) document {
	d.Token++
	d.Permits = ""
	d.Lease, d.Owner, d.Metadata = providers.HashLeaseID(req.LeaseID), req.Owner, req.Metadata
	d.StartMs, d.TTLMs = now.UnixMilli(), req.TTL.Milliseconds()
	return d
}

// lease is the lease with id that holds d.
func (d document) lease(id string) lock.Lease {
	return lock.Lease{
		Name: d.Name, Owner: d.Owner, LeaseID: id, FencingToken: d.Token,
		TTL: time.Duration(d.TTLMs) * time.Millisecond, ExpiresAt: d.expires(), Metadata: d.Metadata,
	}
}

func (d document) held(now time.Time) *lock.HeldError {
	return &lock.HeldError{
		Name:       d.Name,
		Holder:     lock.Holder{Owner: d.Owner, FencingToken: d.Token, ExpiresAt: d.expires(), Metadata: d.Metadata},
		RetryAfter: max(d.expires().Sub(now), 0),
	}
}

// read reads name's document; found is false when it does not exist.
func (p *Provider) read(ctx context.Context, name string) (v version, found bool, err error) {
	id := docID(name)
	resp, err := p.container.ReadItem(ctx, azcosmos.NewPartitionKeyString(id), id, nil)
	if docStatus(err) == http.StatusNotFound {
		p.versions.Drop(name)
		return version{}, false, nil
	}
	if err != nil {
		return version{}, false, mapErr(err)
	}
	if v, err = p.decode(name, resp); err != nil {
		return version{}, false, err
	}
	p.versions.Put(name, v)
	return v, true, nil
}

// decode reads name's document from a response that carries it.
func (p *Provider) decode(name string, resp azcosmos.ItemResponse) (version, error) {
	var d document
	if err := json.Unmarshal(resp.Value, &d); err != nil {
		return version{}, fmt.Errorf("cosmos: document of %q: %w", name, err)
	}
	if d.ID != docID(name) || d.Name != name {
		return version{}, fmt.Errorf("cosmos: document %q does not belong to lock %q", d.ID, name)
	}
	return version{doc: d, etag: resp.ETag}, nil
}

// create writes a new document; it fails with 409 if it exists.
func (p *Provider) create(ctx context.Context, d document) (version, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return version{}, err
	}
	resp, err := p.container.CreateItem(ctx, azcosmos.NewPartitionKeyString(d.ID), b, nil)
	if err != nil {
		return version{}, err
	}
	v := version{doc: d, etag: resp.ETag}
	p.versions.Put(d.Name, v)
	return v, nil
}

// replace writes next over the version base, if the document is still
// that version (If-Match); it fails with 412 if it is not, 404 if it is
// gone.
func (p *Provider) replace(ctx context.Context, base version, next document) (version, error) {
	b, err := json.Marshal(next)
	if err != nil {
		return version{}, err
	}
	resp, err := p.container.ReplaceItem(ctx, azcosmos.NewPartitionKeyString(next.ID), next.ID, b, &azcosmos.ItemOptions{IfMatchEtag: &base.etag})
	if err != nil {
		if s := docStatus(err); s == http.StatusPreconditionFailed || s == http.StatusNotFound {
			p.versions.Drop(next.Name)
		}
		return version{}, err
	}
	v := version{doc: next, etag: resp.ETag}
	p.versions.Put(next.Name, v)
	return v, nil
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

// Acquire implements providers.Provider. Uncontended it costs one replace
// (from the remembered version), or a read and a replace, or for a new
// name a read and a create; a held lock costs one read.
func (p *Provider) Acquire(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	reread := false
	for range maxAttempts {
		v, found, fresh, err := p.current(ctx, req.Name, reread)
		if err != nil {
			return lock.Lease{}, err
		}
		reread = true
		now := p.clock.Now()
		if !found {
			d := document{ID: docID(req.Name), Name: req.Name, Token: providers.TokenBase(now), TTL: -1}.acquired(req, now)
			if _, err := p.create(ctx, d); err == nil {
				return d.lease(req.LeaseID), nil
			} else if status(err) != http.StatusConflict {
				return lock.Lease{}, mapErr(err)
			}
			continue // created by someone else meanwhile: read it
		}
		if v.doc.heldAt(now) {
			if !fresh {
				continue // remembered as held: it may have been released since
			}
			if v.doc.Permits != "" {
				t, err := v.doc.table()
				if err != nil {
					return lock.Lease{}, err
				}
				return lock.Lease{}, t.Blocking(req.Name, now, 0)
			}
			if v.doc.Lease == providers.HashLeaseID(req.LeaseID) {
				// The SDK retried a write that had been applied: ours.
				return v.doc.lease(req.LeaseID), nil
			}
			return lock.Lease{}, v.doc.held(p.clock.Now())
		}
		next := v.doc.acquired(req, now)
		if next.Token >= lock.MaxFencingToken {
			return lock.Lease{}, fmt.Errorf("cosmos: fencing token of %q exhausted", req.Name)
		}
		if _, err := p.replace(ctx, v, next); err == nil {
			return next.lease(req.LeaseID), nil
		} else if s := docStatus(err); s != http.StatusPreconditionFailed && s != http.StatusNotFound {
			return lock.Lease{}, mapErr(err)
		}
		// Changed since that version: read it again and decide again.
	}
	// Changed by others between each read and write: the outcome is not
	// known to be held or free; the caller may retry at once.
	return lock.Lease{}, lock.Unavailable(fmt.Errorf("cosmos: %q kept changing under %d attempts", req.Name, maxAttempts), 10*time.Millisecond)
}

// Renew implements providers.Provider: one conditional patch.
//
// A patch sent again after it was applied meets the lease still holding
// the document (the applied one extended it) and extends it again, with
// the same token; a renew never frees the lock, so a failed condition is
// the truth: lease_lost.
func (p *Provider) Renew(ctx context.Context, req lock.RenewRequest) (lock.Lease, error) {
	now := p.clock.Now()
	var ops azcosmos.PatchOperations
	ops.AppendSet("/start_ms", now.UnixMilli())
	if req.TTL != 0 {
		ops.AppendSet("/ttl_ms", req.TTL.Milliseconds())
	}
	v, err := p.patchHeld(ctx, req.Name, req.LeaseID, now, ops)
	if err != nil {
		return lock.Lease{}, err
	}
	return v.doc.lease(req.LeaseID), nil
}

// Release implements providers.Provider: one conditional patch that frees
// the lock and keeps the document, and with it the token counter.
//
// The SDK retries a patch whose answer was lost (a reset, a timeout); if
// an earlier attempt was applied, the retry's condition fails although the
// release went through, and meanwhile another instance may have taken the
// freed lock. (azcosmos does not retry a write after a reset today, but a
// gateway below it, or a later SDK, may send one twice.) So every release
// writes a random mark of its call, which acquires leave in place and only
// the next release replaces: after a failed condition, one read that finds
// this call's mark proves the release went through, whoever holds the lock
// now. Without the mark, a call the SDK sent once is lease_lost; one it
// sent more than once, whose mark may have been replaced by a later
// holder's release, is an unknown outcome (unavailable), never a false
// lease_lost.
func (p *Provider) Release(ctx context.Context, req lock.ReleaseRequest) error {
	var nonce [12]byte
	_, _ = rand.Read(nonce[:])
	mark := providers.HashLeaseID(req.LeaseID + "\x00" + hex.EncodeToString(nonce[:]))
	var ops azcosmos.PatchOperations
	for _, f := range []struct {
		path string
		val  any
	}{{"/lease", ""}, {"/owner", ""}, {"/metadata", ""}, {"/start_ms", 0}, {"/ttl_ms", 0}, {"/released", mark}} {
		ops.AppendSet(f.path, f.val)
	}
	actx, attempts := withAttempts(ctx)
	_, err := p.patchHeld(actx, req.Name, req.LeaseID, p.clock.Now(), ops)
	if !errors.Is(err, lock.ErrLeaseLost) {
		return err
	}
	v, found, rerr := p.read(ctx, req.Name)
	if rerr != nil {
		return rerr // unknown: unavailable
	}
	if found && v.doc.Released == mark {
		return nil // an earlier attempt of this call was applied
	}
	if attempts.Load() > 1 {
		return lock.Unavailable(fmt.Errorf("cosmos: release of %q retried %d times: whether an earlier attempt was applied is unknown", req.Name, attempts.Load()-1), 0)
	}
	return err
}

// patchHeld applies ops to name's document if lease id holds it at now,
// as the primary replica sees it: a 412 (or a missing document) is
// lock.ErrLeaseLost. The condition holds only hex and integers: the SDK
// copies it into the request unescaped.
func (p *Provider) patchHeld(ctx context.Context, name, id string, now time.Time, ops azcosmos.PatchOperations) (version, error) {
	ops.SetCondition(fmt.Sprintf("FROM c WHERE c.lease = '%s' AND c.start_ms + c.ttl_ms > %d", providers.HashLeaseID(id), now.UnixMilli()))
	key := docID(name)
	resp, err := p.container.PatchItem(ctx, azcosmos.NewPartitionKeyString(key), key, ops, &azcosmos.ItemOptions{EnableContentResponseOnWrite: true})
	if s := docStatus(err); s == http.StatusPreconditionFailed || s == http.StatusNotFound {
		return version{}, fmt.Errorf("cosmos: %q: %w", name, lock.ErrLeaseLost)
	}
	if err != nil {
		return version{}, mapErr(err)
	}
	v, err := p.decode(name, resp)
	if err != nil {
		return version{}, err
	}
	p.versions.Put(name, v)
	return v, nil
}

// Status implements providers.Provider with one read.
func (p *Provider) Status(ctx context.Context, name string) (lock.Status, error) {
	v, found, err := p.read(ctx, name)
	if err != nil {
		return lock.Status{}, err
	}
	now := p.clock.Now()
	if found && v.doc.Permits != "" {
		t, err := v.doc.table()
		if err != nil {
			return lock.Status{}, err
		}
		return t.Status(name, now), nil
	}
	if !found || !v.doc.heldAt(now) {
		return lock.Status{Name: name}, nil
	}
	return lock.Status{Name: name, Held: true, Holder: v.doc.held(now).Holder}, nil
}

// Ping implements providers.Provider: it reads the container's properties
// and checks that it is partitioned on /id.
func (p *Provider) Ping(ctx context.Context) error {
	if p.checked.Load() {
		// Container reads are metadata requests, with a small throttle
		// budget of their own: once the container is known good, a point
		// read of a document id no lock name maps to (base64url has no
		// '.') checks that the container answers, for one request unit.
		_, err := p.container.ReadItem(ctx, azcosmos.NewPartitionKeyString(pingID), pingID, nil)
		if err == nil || docStatus(err) == http.StatusNotFound {
			return nil
		}
		return mapErr(err)
	}
	resp, err := p.container.Read(ctx, nil)
	if err != nil {
		return mapErr(err)
	}
	if resp.ContainerProperties == nil {
		return errors.New("cosmos: the container's properties are missing from its read")
	}
	if err := checkPartitionKey(p.container.ID(), resp.ContainerProperties.PartitionKeyDefinition); err != nil {
		return err
	}
	p.checked.Store(true)
	return nil
}

// pingID is the document id Ping reads: never a lock's.
const pingID = "hasp.ping"

// checkPartitionKey requires the partition key path /id.
func checkPartitionKey(container string, pk azcosmos.PartitionKeyDefinition) error {
	if len(pk.Paths) != 1 || pk.Paths[0] != "/id" {
		return fmt.Errorf("cosmos: container %s is partitioned on %v; hasp needs /id (create it with `hasp store init --store cosmos://DATABASE/CONTAINER`)", container, pk.Paths)
	}
	return nil
}

var _ providers.Lister = (*Provider)(nil)

// List implements providers.Lister with one page of one cross-partition
// query (the container is partitioned on /id, one partition per name),
//
//	SELECT * FROM c WHERE STARTSWITH(c.name, @prefix) AND c.lease != "" AND c.start_ms + c.ttl_ms > @now
//
// which the gateway fans out to every physical partition and which uses
// the default range index on /name (the prefix) — one request per page,
// charged by the documents it reads under the prefix. Cosmos DB's gateway
// cannot serve ORDER BY across partitions, so names come in the order of
// the partitions, not sorted; a page may hold fewer than limit locks, even
// none, and still have a next page. The continuation is Cosmos DB's
// continuation token (a stale or forged one is an invalid page_token).
// Expiry is judged by the provider's clock. A busy permit table matches
// the query; it is listed, with its table's status, only while a permit
// is live.
func (p *Provider) List(ctx context.Context, prefix string, limit int, after string) ([]lock.Status, string, error) {
	now := p.clock.Now()
	opts := &azcosmos.QueryOptions{
		PageSizeHint: int32(limit),
		// Keep the page token (base64url of this) under the API's 4096
		// bytes.
		ResponseContinuationTokenLimitInKB: 2,
		QueryParameters: []azcosmos.QueryParameter{
			{Name: "@prefix", Value: prefix},
			{Name: "@now", Value: now.UnixMilli()},
		},
	}
	if after != "" {
		opts.ContinuationToken = &after
	}
	pager := p.container.NewQueryItemsPager(
		`SELECT * FROM c WHERE STARTSWITH(c.name, @prefix) AND c.lease != "" AND c.start_ms + c.ttl_ms > @now`,
		azcosmos.NewPartitionKey(), opts)
	page, err := pager.NextPage(ctx)
	if err != nil {
		if after != "" && status(err) == http.StatusBadRequest {
			return nil, "", lock.Invalid("page_token", "is not a page token of this listing")
		}
		return nil, "", mapErr(err)
	}
	out := make([]lock.Status, 0, len(page.Items))
	for _, raw := range page.Items {
		var d document
		if err := json.Unmarshal(raw, &d); err != nil {
			return nil, "", fmt.Errorf("cosmos: listed document: %w", err)
		}
		if d.ID != docID(d.Name) || !strings.HasPrefix(d.Name, prefix) || !d.heldAt(now) {
			continue
		}
		if d.Permits != "" {
			// A busy table: listed if a permit is live, not when only
			// lock-delayed.
			t, err := d.table()
			if err != nil {
				return nil, "", err
			}
			if st := t.Status(d.Name, now); st.Held {
				out = append(out, st)
			}
			continue
		}
		out = append(out, lock.Status{Name: d.Name, Held: true, Holder: d.held(now).Holder})
	}
	next := ""
	if page.ContinuationToken != nil {
		next = *page.ContinuationToken
	}
	return out, next, nil
}
