// Package cosmos stores hasp leases in an Azure Cosmos DB for NoSQL
// container, one document per lock name, written only under optimistic
// concurrency (If-Match on the document's etag).
//
// # Container and documents
//
// The container is partitioned on /id (see CreateContainer, `hasp cosmos
// create-container DATABASE CONTAINER`). A lock's document id is its name
// in unpadded base64url (RFC 4648 §5): Cosmos DB ids may not contain '/',
// '\', '?' or '#', and lock names may contain '/'; base64url uses only
// A-Z a-z 0-9 - _, is one-to-one, and a 255-byte name becomes at most 340
// characters (ids may have 1,023 bytes, partition key values 2,048). The
// document:
//
//	id          base64url(name), also the partition key
//	name        the lock's name, for people reading the container
//	token       the fencing counter: the last token issued for the name
//	lease_id    the holder's lease id ("" when free)
//	owner, metadata  the holder's, as given
//	expires_ms  the holder's expiry, Unix milliseconds, by the service's clock
//	ttl_ms      the granted TTL, for renewals that keep it
//	ttl         always -1: never expire, even if someone turns on a default
//	            time-to-live on the container
//
// # Operations and requests
//
// Every write is conditional: a create (which fails with 409 if the
// document exists) or a replace with If-Match on the etag of the version
// the decision was made on (which fails with 412 if anything wrote the
// document since). A 412 means "someone else changed it": the provider
// reads the document again and decides again.
//
//   - Acquire: read the document; if it does not exist, create it (a new
//     name: read + create); if it is free or its lease has expired by the
//     service's clock, replace it with the new lease and token+1 (read +
//     replace); if a live lease holds it, report it held (one read). A 409
//     or 412 re-reads and decides again, a few times, then reports held.
//   - Renew: replace with the new expiry, if the lease still holds the
//     document; a 412 re-reads: still ours, try again, else lease lost.
//   - Release: replace with the lease fields cleared and the token kept;
//     the document is never deleted.
//   - Status: one read.
//
// Each provider remembers, per name, the last version of the document it
// read or wrote (etag and content; a bounded cache, see WithVersionCache),
// and starts from it instead of reading: an uncontended acquire+release
// cycle through one service instance costs two requests (two replaces), a
// renew one. This is safe across instances because the remembered version
// is only ever used as the base of a conditional write: If-Match succeeds
// only if the document is still exactly that version, in which case the
// decision is the one a fresh read would have led to; if any other
// instance wrote in between, the write fails with 412 and the provider
// reads and decides again. The remembered version never answers a caller
// by itself: a lock that looks held there is read again before it is
// reported held, a lease that looks lost is read again before it is
// reported lost.
//
// # Fencing tokens never go back
//
// Within the life of a document its versions form one chain: every write
// is conditioned on the etag of the version it replaces (or on the
// document not existing), and Cosmos DB gives every write a new etag, so
// no two writes can replace the same version. Acquire writes token+1 of
// the version it replaces; renew and release copy the token. So tokens
// along the chain never decrease, and each acquire's token is greater than
// every token before it. Release keeps the document, and hasp never
// deletes one; "ttl": -1 keeps Cosmos DB's time-to-live from deleting it.
// Tokens stay below 2^53: a new document starts at its creation time in
// Unix milliseconds ×1000 (below 2^53 until the year 2255), plus one per
// acquire. That start is also a second line of defence if a document is
// deleted by hand anyway: its successor starts above every token of the
// old one unless the old one averaged more than one acquire per
// millisecond over its whole life (a single document takes a few hundred
// writes a second at most); the guarantee itself rests on documents not
// being deleted.
//
// Accounts with multiple write regions resolve conflicting writes after
// the fact (last writer wins), which defeats If-Match as a lock: use an
// account with a single write region.
//
// # Time
//
// Expiry is judged by the clock of the service instance that writes, as
// with the DynamoDB provider: expires_ms is stored, measured from a time
// taken before the write is sent, so the reported expires_at is never
// later than the moment another instance may take the lock. Instances
// whose clocks differ by d can shorten a lease by d from a holder's point
// of view; the client SDK's safety margin (TTL/10, at least 250 ms) covers
// that. Cosmos DB's own TTL is not used.
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
// Built-in Data Contributor role on the account.
package cosmos

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

func init() {
	providers.Register("cosmos", Open)
}

// Open opens the provider for "cosmos://DATABASE/CONTAINER", with the
// endpoint and credentials from the environment (see ConfigFromEnv).
func Open(ctx context.Context, u *url.URL) (providers.Provider, error) {
	db, container, err := parseStore(u)
	if err != nil {
		return nil, err
	}
	cfg, err := ConfigFromEnv(db, container)
	if err != nil {
		return nil, err
	}
	return New(cfg)
}

// parseStore splits "cosmos://DATABASE/CONTAINER".
func parseStore(u *url.URL) (database, container string, err error) {
	container = strings.TrimPrefix(u.Path, "/")
	if u.Host == "" || container == "" || strings.Contains(container, "/") || u.RawQuery != "" || u.User != nil {
		return "", "", fmt.Errorf("cosmos: store URL %q: want cosmos://DATABASE/CONTAINER", u.Redacted())
	}
	return u.Host, container, nil
}

// DefaultVersionCache is how many names' last-seen document versions a
// provider remembers by default.
const DefaultVersionCache = 4096

// maxAttempts bounds how often one operation re-reads and retries after
// another writer changed the document under it (412 or 409).
const maxAttempts = 10

// Provider stores leases in one Cosmos DB container.
type Provider struct {
	client    *azcosmos.Client // owned: closed by Close; nil when given a container
	container *azcosmos.ContainerClient
	clock     lock.Clock
	versions  *versionCache
	requests  *atomic.Int64 // HTTP requests, for providers.RequestCounter
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
// so that every operation starts with a read.
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
	p := &Provider{client: client, container: container, clock: lock.SystemClock{}, versions: newVersionCache(DefaultVersionCache), requests: requests}
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

// Close implements providers.Provider.
func (p *Provider) Close() error {
	if p.client != nil {
		p.client.Close()
	}
	return nil
}

// docID is the document id (and partition key) of a lock name.
func docID(name string) string { return base64.RawURLEncoding.EncodeToString([]byte(name)) }

// document is a lock's Cosmos DB document.
type document struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Token     int64  `json:"token"`
	LeaseID   string `json:"lease_id"`
	Owner     string `json:"owner,omitempty"`
	Metadata  string `json:"metadata,omitempty"`
	ExpiresMs int64  `json:"expires_ms"`
	TTLMs     int64  `json:"ttl_ms"`
	TTL       int    `json:"ttl"`
}

// version is a document as of one etag.
type version struct {
	doc  document
	etag azcore.ETag
}

// tokenBase is the counter of a new document created at now: its first
// acquire gets tokenBase+1. See the package documentation.
func tokenBase(now time.Time) int64 { return now.UnixMilli() * 1000 }

func (d document) expires() time.Time { return time.UnixMilli(d.ExpiresMs).UTC() }

// heldAt reports whether a lease holds the lock at now.
func (d document) heldAt(now time.Time) bool { return d.LeaseID != "" && d.ExpiresMs > now.UnixMilli() }

// heldBy reports whether lease id holds the lock at now.
func (d document) heldBy(id string, now time.Time) bool { return d.LeaseID == id && d.heldAt(now) }

// acquired is d taken by req at now, with the next token.
func (d document) acquired(req lock.AcquireRequest, now time.Time) document {
	d.Token++
	d.LeaseID, d.Owner, d.Metadata = req.LeaseID, req.Owner, req.Metadata
	d.ExpiresMs, d.TTLMs = lock.ExpiresAt(now, req.TTL).UnixMilli(), req.TTL.Milliseconds()
	return d
}

// renewed is d with its lease extended to now + ttl (the granted TTL when
// ttl is zero).
func (d document) renewed(ttl time.Duration, now time.Time) document {
	if ttl == 0 {
		ttl = time.Duration(d.TTLMs) * time.Millisecond
	}
	d.ExpiresMs, d.TTLMs = lock.ExpiresAt(now, ttl).UnixMilli(), ttl.Milliseconds()
	return d
}

// released is d free, keeping its token.
func (d document) released() document {
	d.LeaseID, d.Owner, d.Metadata, d.ExpiresMs, d.TTLMs = "", "", "", 0, 0
	return d
}

func (d document) lease() lock.Lease {
	return lock.Lease{
		Name: d.Name, Owner: d.Owner, LeaseID: d.LeaseID, FencingToken: d.Token,
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
	if status(err) == 404 {
		p.versions.drop(name)
		return version{}, false, nil
	}
	if err != nil {
		return version{}, false, mapErr(err)
	}
	if err := json.Unmarshal(resp.Value, &v.doc); err != nil {
		return version{}, false, fmt.Errorf("cosmos: document of %q: %w", name, err)
	}
	if v.doc.ID != id || v.doc.Name != name {
		return version{}, false, fmt.Errorf("cosmos: document %q does not belong to lock %q", v.doc.ID, name)
	}
	v.etag = resp.ETag
	p.versions.put(name, v)
	return v, true, nil
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
	p.versions.put(d.Name, v)
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
		if s := status(err); s == 412 || s == 404 {
			p.versions.drop(next.Name)
		}
		return version{}, err
	}
	v := version{doc: next, etag: resp.ETag}
	p.versions.put(next.Name, v)
	return v, nil
}

// current returns the version to decide on: the remembered one (fresh is
// false) or, with reread or nothing remembered, one read now.
func (p *Provider) current(ctx context.Context, name string, reread bool) (v version, found, fresh bool, err error) {
	if !reread {
		if v, ok := p.versions.get(name); ok {
			return v, true, false, nil
		}
	}
	v, found, err = p.read(ctx, name)
	return v, found, true, err
}

// Acquire implements providers.Provider. Uncontended it costs one replace
// (remembered version), a read and a replace, or for a new name a read
// and a create; a held lock costs one read.
func (p *Provider) Acquire(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	reread := false
	var last document
	for range maxAttempts {
		v, found, fresh, err := p.current(ctx, req.Name, reread)
		if err != nil {
			return lock.Lease{}, err
		}
		reread = true
		now := p.clock.Now()
		if !found {
			d := document{ID: docID(req.Name), Name: req.Name, Token: tokenBase(now), TTL: -1}.acquired(req, now)
			if _, err := p.create(ctx, d); err == nil {
				return d.lease(), nil
			} else if status(err) != 409 {
				return lock.Lease{}, mapErr(err)
			}
			continue // created by someone else meanwhile: read it
		}
		last = v.doc
		if v.doc.heldAt(now) {
			if !fresh {
				continue // remembered as held: it may have been released since
			}
			if v.doc.LeaseID == req.LeaseID {
				// The SDK retried a write that had been applied: ours.
				return v.doc.lease(), nil
			}
			return lock.Lease{}, v.doc.held(p.clock.Now())
		}
		next := v.doc.acquired(req, now)
		if _, err := p.replace(ctx, v, next); err == nil {
			return next.lease(), nil
		} else if s := status(err); s != 412 && s != 404 {
			return lock.Lease{}, mapErr(err)
		}
		// Changed since that version: read it again and decide again.
	}
	// Taken by others between each read and write: report it held as of
	// the last version seen, retry at once.
	last.Name, last.ExpiresMs = req.Name, p.clock.Now().UnixMilli()
	return lock.Lease{}, last.held(last.expires())
}

// Renew implements providers.Provider: one replace from the remembered
// version, else a read and a replace.
func (p *Provider) Renew(ctx context.Context, req lock.RenewRequest) (lock.Lease, error) {
	v, err := p.update(ctx, req.Name, req.LeaseID, func(d document, now time.Time) document { return d.renewed(req.TTL, now) })
	if err != nil {
		return lock.Lease{}, err
	}
	return v.doc.lease(), nil
}

// Release implements providers.Provider: one replace from the remembered
// version, else a read and a replace. The document, and with it the token
// counter, stays.
func (p *Provider) Release(ctx context.Context, req lock.ReleaseRequest) error {
	_, err := p.update(ctx, req.Name, req.LeaseID, func(d document, _ time.Time) document { return d.released() })
	return err
}

// update writes change(document) if lease id still holds name, re-reading
// after every 412; it fails with lock.ErrLeaseLost once a version read
// from the database shows that the lease does not hold the lock.
func (p *Provider) update(ctx context.Context, name, id string, change func(document, time.Time) document) (version, error) {
	reread := false
	for range maxAttempts {
		v, found, fresh, err := p.current(ctx, name, reread)
		if err != nil {
			return version{}, err
		}
		reread = true
		if !found {
			return version{}, fmt.Errorf("cosmos: %q has no document: %w", name, lock.ErrLeaseLost)
		}
		now := p.clock.Now()
		if !v.doc.heldBy(id, now) {
			if !fresh {
				continue // the remembered version may be out of date: read it
			}
			return version{}, lock.ErrLeaseLost
		}
		w, err := p.replace(ctx, v, change(v.doc, now))
		if err == nil {
			return w, nil
		}
		if s := status(err); s != 412 && s != 404 {
			return version{}, mapErr(err)
		}
	}
	// Still ours at every read, but another write (a concurrent renew of
	// the same lease) won each time.
	return version{}, &lock.RetryableError{Err: fmt.Errorf("%w: cosmos: %q changed under %d attempts", lock.ErrUnavailable, name, maxAttempts), RetryAfter: 100 * time.Millisecond}
}

// Status implements providers.Provider with one read.
func (p *Provider) Status(ctx context.Context, name string) (lock.Status, error) {
	v, found, err := p.read(ctx, name)
	if err != nil {
		return lock.Status{}, err
	}
	now := p.clock.Now()
	if !found || !v.doc.heldAt(now) {
		return lock.Status{Name: name}, nil
	}
	return lock.Status{Name: name, Held: true, Holder: v.doc.held(now).Holder}, nil
}

// Ping implements providers.Provider: it reads the container's properties
// and checks that it is partitioned on /id.
func (p *Provider) Ping(ctx context.Context) error {
	resp, err := p.container.Read(ctx, nil)
	if err != nil {
		return mapErr(err)
	}
	if resp.ContainerProperties == nil {
		return errors.New("cosmos: the container's properties are missing from its read")
	}
	return checkPartitionKey(p.container.ID(), resp.ContainerProperties.PartitionKeyDefinition)
}

// checkPartitionKey requires the partition key path /id.
func checkPartitionKey(container string, pk azcosmos.PartitionKeyDefinition) error {
	if len(pk.Paths) != 1 || pk.Paths[0] != "/id" {
		return fmt.Errorf("cosmos: container %s is partitioned on %v; hasp needs /id (create it with `hasp cosmos create-container`)", container, pk.Paths)
	}
	return nil
}
