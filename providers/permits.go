package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hasplock/hasp/lock"
)

// Semaphores and lock-delay.
//
// A name used as a semaphore (an acquire with permits > 1), or as a mutex
// whose leases ask for a lock-delay, is stored as a permit table in the
// name's one record, the record its mutex leases use: the table is a
// value the provider keeps beside the record's usual fields, opaque to it
// (EncodePermitTable / DecodePermitTable). The service reads the record
// (PermitStore.LoadPermits), decides in one place (package service) who
// gets, renews or gives back a permit, and writes the table back under
// the provider's compare-and-swap (PermitStore.StorePermits). So the
// concurrency argument is the provider's usual one, a conditional write of
// one record, and it is written once for every backend.
//
// The provider makes the table look held to its own mutex path: the record
// it writes carries, as its lease expiry, BusyUntil (the last moment a
// permit is live or lock-delayed) and a lease id that matches no lease. A
// plain acquire of a name whose table is busy fails with a *lock.HeldError
// whose Permits field is set (the service then answers permits_mismatch or
// goes through the table); once the table is idle, a plain acquire simply
// takes the record over, token counter and all. Fencing tokens of permits
// come from the same counter (or revision) as the mutex's, so they
// strictly increase across both uses of a name.

// PermitStore is an optional capability of a Provider that keeps permit
// tables, for semaphores and lock-delay (see above). Providers without it
// answer such acquires with ErrUnsupported (HTTP 501).
type PermitStore interface {
	// LoadPermits reads name's record: its version, the table if it
	// holds one, and the mutex holder if a live plain lease holds it. Now
	// is the provider's clock, read before the backend was asked: the
	// service judges expiry by it and measures new leases from it.
	LoadPermits(ctx context.Context, name string) (PermitRecord, error)

	// StorePermits writes table as name's record if the record is still
	// the one prev read (its Version); otherwise it fails with an error
	// wrapping ErrConflict and writes nothing. A permit of table whose
	// Token is 0 was granted by this write: the provider gives it a token
	// strictly greater than every token issued for the name (by the
	// mutex path too) and returns it (0 when there is none). A table
	// with no permits and no release marks may be written as a free
	// record. An outcome the provider cannot know wraps
	// lock.ErrUnavailable.
	StorePermits(ctx context.Context, name string, prev PermitRecord, table PermitTable) (token int64, err error)
}

// PermitUpdater is an optional capability of a PermitStore that can read a
// name's record, let the service decide, and write the table it decides
// on in one transaction of the backend's own (Spanner's read-write
// transaction, which locks the row), so that no other writer comes in
// between: no lost races, however many writers contend for the name. The
// service uses it instead of LoadPermits and StorePermits when a provider
// has it.
type PermitUpdater interface {
	// UpdatePermits reads name's record as LoadPermits would, calls
	// decide with it, and, if decide returns a table, writes it as
	// StorePermits would (giving permits with Token 0 their tokens), all
	// atomically. decide may be called more than once (the backend runs
	// an aborted transaction again, even one whose commit applied): only
	// the last call's answer counts. It returns the record decide last
	// saw, the token given to a new permit (0 if none) and decide's
	// error, or the backend's (an unknown outcome wraps
	// lock.ErrUnavailable).
	UpdatePermits(ctx context.Context, name string, decide func(rec PermitRecord) (*PermitTable, error)) (PermitRecord, int64, error)
}

// ErrConflict means a conditional write found the record changed since it
// was read; the service reads it again and retries.
var ErrConflict = errors.New("providers: record changed since it was read")

// PermitRecord is a name's record as LoadPermits reads it.
type PermitRecord struct {
	// Now is the provider's clock, read before the backend was asked.
	Now time.Time
	// Version is the provider's compare-and-swap version of the record
	// (an etag, a revision, a counter); zero value for a missing record.
	Version any
	// Table is the record's permit table, or nil when it holds none.
	Table *PermitTable
	// Mutex is the holder of a live plain lease on the record; nil when
	// none (a missing, free, expired or table record).
	Mutex *lock.Holder
	// Revision is the backend revision at which the record was read, for
	// providers that watch (lock.HeldError.Revision); zero otherwise.
	Revision int64
	// MayBeStale says the read may have missed writes acknowledged before
	// it was sent (a read served by one replica, as Cosmos DB's under
	// Session consistency without a session token): a write based on the
	// record is still safe (StorePermits fails with ErrConflict), but an
	// answer given from it without a write may be false. The service
	// confirms a lease_lost answer from such a record with
	// PermitConfirmer.ConfirmPermits first; a provider that sets it
	// implements PermitConfirmer. False for a read that sees every
	// acknowledged write.
	MayBeStale bool
}

// PermitConfirmer is implemented by a PermitStore whose LoadPermits may
// return a stale record (PermitRecord.MayBeStale).
type PermitConfirmer interface {
	// ConfirmPermits checks, where the backend decides its conditional
	// writes, that name's record is still the one rec read (rec as
	// LoadPermits returned it, missing record included): nil if it is, an
	// error wrapping ErrConflict if it is not (the service then reads
	// again, as after a conflict). It changes nothing LoadPermits or the
	// provider's other operations report; it may give the record a new
	// Version (a compare-and-swap write of the record unchanged). An
	// outcome the provider cannot know wraps lock.ErrUnavailable.
	ConfirmPermits(ctx context.Context, name string, rec PermitRecord) error
}

// PermitTable is the permit table of a semaphore, or of a lock-delayed
// mutex (Permits 1).
type PermitTable struct {
	// Permits is the permit count the holders agreed on.
	Permits int `json:"n"`
	// Holders are the leases holding a permit, live or lock-delayed,
	// oldest grant first.
	Holders []Permit `json:"h,omitempty"`
	// Released holds the lease hashes of the last few releases, so that a
	// release whose answer was lost and that is sent again answers
	// released (see MaxReleaseMarks).
	Released []string `json:"r,omitempty"`
}

// MaxReleaseMarks is how many releases a table remembers.
const MaxReleaseMarks = 8

// Permit is one lease of a permit table.
type Permit struct {
	// Lease is the lease id's HashLeaseID.
	Lease string `json:"l"`
	// Owner is the lease's owner label.
	Owner string `json:"o,omitempty"`
	// Metadata is the lease's metadata.
	Metadata string `json:"m,omitempty"`
	// Token is the lease's fencing token; 0 for a permit granted by the
	// write under way (the provider assigns it).
	Token int64 `json:"t"`
	// TTLms is the lease's granted TTL in milliseconds.
	TTLms int64 `json:"ttl"`
	// ExpMs is the lease's expiry, Unix milliseconds.
	ExpMs int64 `json:"e"`
	// DelayMs is the lease's lock-delay in milliseconds.
	DelayMs int64 `json:"d,omitempty"`
}

// Expires is when the permit's lease ends unless renewed.
func (p Permit) Expires() time.Time { return time.UnixMilli(p.ExpMs).UTC() }

// FreeAt is when the permit can be granted again if its lease is not
// released: its expiry plus its lock-delay.
func (p Permit) FreeAt() time.Time { return time.UnixMilli(p.ExpMs + p.DelayMs).UTC() }

// Holder is the permit as others see it.
func (p Permit) Holder() lock.Holder {
	return lock.Holder{Owner: p.Owner, FencingToken: p.Token, ExpiresAt: p.Expires(), Metadata: p.Metadata, LockDelay: time.Duration(p.DelayMs) * time.Millisecond}
}

// EncodePermitTable renders t for a provider to store (JSON, at most about
// 1,300 bytes a permit).
func EncodePermitTable(t PermitTable) string {
	b, _ := json.Marshal(t) // strings and integers always marshal
	return string(b)
}

// DecodePermitTable parses what EncodePermitTable rendered. pending is the
// token of a permit stored with token 0 (a provider that learns the token
// only from the write itself, such as etcd's revision); other providers
// pass 0.
func DecodePermitTable(s string, pending int64) (PermitTable, error) {
	var t PermitTable
	d := json.NewDecoder(strings.NewReader(s))
	d.DisallowUnknownFields()
	if err := d.Decode(&t); err != nil || t.Permits < 1 || t.Permits > lock.MaxPermits {
		return PermitTable{}, fmt.Errorf("providers: a permit table that does not parse (%v): %w", err, lock.ErrUnavailable)
	}
	for i := range t.Holders {
		if t.Holders[i].Token == 0 {
			t.Holders[i].Token = pending
		}
	}
	return t, nil
}

// GrantTokens gives each permit of t with Token 0 (granted by the write
// under way) the next token after counter, the record's fencing counter,
// in order. It returns the table (t's holders are not changed), the new
// counter and the last token given (0 if none), or an error once the
// counter would reach lock.MaxFencingToken.
func (t PermitTable) GrantTokens(counter int64) (PermitTable, int64, int64, error) {
	var tok int64
	t.Holders = slices.Clone(t.Holders)
	for i := range t.Holders {
		if t.Holders[i].Token == 0 {
			counter++
			tok = counter
			t.Holders[i].Token = tok
		}
	}
	if counter >= lock.MaxFencingToken {
		return t, counter, 0, errors.New("the fencing tokens of the name are exhausted")
	}
	return t, counter, tok, nil
}

// Prune returns t without the permits that are free at now: their lease
// and lock-delay have both run out.
func (t PermitTable) Prune(now time.Time) PermitTable {
	t.Holders = slices.DeleteFunc(slices.Clone(t.Holders), func(p Permit) bool { return !now.Before(p.FreeAt()) })
	return t
}

// BusyUntil is the last moment a permit of t is live or lock-delayed;
// zero when t has none.
func (t PermitTable) BusyUntil() time.Time {
	var at time.Time
	for _, p := range t.Holders {
		if f := p.FreeAt(); f.After(at) {
			at = f
		}
	}
	return at
}

// Busy reports whether a permit of t is live or lock-delayed at now.
func (t PermitTable) Busy(now time.Time) bool { return now.Before(t.BusyUntil()) }

// Status is the status of name whose record holds t, at now.
func (t PermitTable) Status(name string, now time.Time) lock.Status {
	st := lock.Status{Name: name}
	t = t.Prune(now)
	if len(t.Holders) == 0 {
		return st // an idle table is a free name, as a mutex's
	}
	st.Permits = t.Permits
	for _, p := range t.Holders {
		if now.Before(p.Expires()) {
			st.Holders = append(st.Holders, p.Holder())
		} else {
			st.Delayed = append(st.Delayed, p.Holder())
		}
	}
	slices.SortFunc(st.Holders, func(a, b lock.Holder) int { return int(a.FencingToken - b.FencingToken) })
	if n := len(st.Holders); n > 0 {
		st.Held, st.Holder = true, st.Holders[n-1]
	}
	return st
}

// Held is the error of an acquire that finds every permit of t taken at
// now (a plain acquire of a busy table too): the holder whose permit frees
// first, and when. It is nil when a permit is free.
func (t PermitTable) Held(name string, now time.Time, revision int64) *lock.HeldError {
	t = t.Prune(now)
	if len(t.Holders) < t.Permits {
		return nil
	}
	first := t.Holders[0]
	for _, p := range t.Holders[1:] {
		if p.FreeAt().Before(first.FreeAt()) {
			first = p
		}
	}
	e := &lock.HeldError{Name: name, Holder: first.Holder(), RetryAfter: first.FreeAt().Sub(now), Revision: revision, Permits: t.Permits}
	if !now.Before(first.Expires()) {
		e.DelayedUntil = first.FreeAt()
	}
	return e
}

// Blocking is the error of a plain acquire (a mutex's, Permits 1) of a
// name whose record holds t, busy at now: t.Held when every permit is
// taken, else a *lock.HeldError with Permits set and the newest holder,
// which the service answers as a permits mismatch.
func (t PermitTable) Blocking(name string, now time.Time, revision int64) *lock.HeldError {
	if h := t.Held(name, now, revision); h != nil {
		return h
	}
	st := t.Status(name, now)
	return &lock.HeldError{Name: name, Holder: st.Holder, Revision: revision, Permits: t.Permits}
}

// PermitLeaseID returns a fresh lease id for a permit: NewLeaseID's with
// the prefix "p.", which no mutex lease id has, so that renew and release
// know which path a lease takes.
func PermitLeaseID() string { return permitPrefix + NewLeaseID() }

const permitPrefix = "p."

// IsPermitLeaseID reports whether id was made by PermitLeaseID.
func IsPermitLeaseID(id string) bool { return strings.HasPrefix(id, permitPrefix) }
