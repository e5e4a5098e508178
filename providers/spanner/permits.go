package spanner

import (
	"context"
	"fmt"
	"time"

	"cloud.google.com/go/spanner"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

var (
	_ providers.PermitStore   = (*Provider)(nil)
	_ providers.PermitUpdater = (*Provider)(nil)
)

// tableLease is the lease_id of a row that holds a permit table: it is not
// a SHA-256 in hex, so it matches no lease, and it is not NULL, so the
// mutex path reads the row as held until its expires_at (the table's
// BusyUntil).
const tableLease = "permit-table"

// version is a row's compare-and-swap version (providers.PermitRecord's
// Version): the commit timestamp of its last write, zero for a missing
// row. Every write of a row by hasp sets updated_at to its commit
// timestamp, and Spanner gives two transactions that write one row
// distinct commit timestamps, in their order.
type version struct{ updated time.Time }

// LoadPermits implements providers.PermitStore with one strong single-use
// read of the row (one streaming RPC). Now is the read's timestamp:
// Spanner's clock, by which the mutex path judges expiry too, at the
// instant the row was read; the write that StorePermits then makes
// commits later.
//
// On a table without the permits column it answers an error wrapping
// providers.ErrUnsupported (see the package doc, Upgrading).
func (p *Provider) LoadPermits(ctx context.Context, name string) (providers.PermitRecord, error) {
	if err := p.permitsReady(ctx, name); err != nil {
		return providers.PermitRecord{}, err
	}
	ro := p.client.Single()
	r, err := p.read(ctx, ro, name)
	if err != nil {
		return providers.PermitRecord{}, mapErr(err)
	}
	ts, err := ro.Timestamp()
	if err != nil {
		return providers.PermitRecord{}, lock.Unavailable(fmt.Errorf("spanner: the read of %q has no timestamp: %w", name, err), time.Second)
	}
	r.now = ts
	rec := providers.PermitRecord{Now: ts, Version: version{updated: r.updated}, Table: r.table}
	if r.table == nil && r.heldAt() {
		h := r.held(name).Holder
		rec.Mutex = &h
	}
	return rec, nil
}

// StorePermits implements providers.PermitStore with one read-write
// transaction (two RPCs: the query that reads the row and begins the
// transaction, and the commit): it writes t as name's row iff the row's
// updated_at is still prev's, giving each new permit the next token of
// the row's counter (a missing row's starts at providers.TokenBase of
// Spanner's time, as the mutex path's does). A changed row commits
// nothing and answers an error wrapping providers.ErrConflict. When the
// client library runs the transaction again after a commit that was
// applied (one answered Aborted, say), the run finds the row changed by
// that commit and answers ErrConflict too; the service then reads the
// row and finds its own write. On a table without the permits column it
// answers an error wrapping providers.ErrUnsupported.
func (p *Provider) StorePermits(ctx context.Context, name string, prev providers.PermitRecord, t providers.PermitTable) (int64, error) {
	if err := p.permitsReady(ctx, name); err != nil {
		return 0, err
	}
	want, _ := prev.Version.(version)
	var tok int64
	err := p.transact(ctx, name, func(tx *spanner.ReadWriteTransaction, r row) error {
		tok = 0 // only the last run counts
		if !r.updated.Equal(want.updated) {
			return fmt.Errorf("spanner: the row of %q: %w", name, providers.ErrConflict)
		}
		counter := r.token
		if !r.exists {
			counter = providers.TokenBase(r.now)
		}
		w, counter, granted, err := t.GrantTokens(counter)
		if err != nil {
			return fmt.Errorf("spanner: %q: %w", name, err)
		}
		tok = granted
		return p.writeTable(tx, name, counter, w)
	})
	if err != nil {
		return 0, err
	}
	return tok, nil
}

// UpdatePermits implements providers.PermitUpdater with one read-write
// transaction (two RPCs: the query that reads the row and begins the
// transaction, and the commit), in which decide sees the row as
// LoadPermits would (Now is Spanner's time, read in the transaction) and
// the table it returns is written as StorePermits writes it. Spanner's
// read-write transactions lock the row they read, so concurrent writers
// of a name queue (or are aborted and run again by the client library)
// instead of losing compare-and-swap races: under contention this is what
// the service uses, not LoadPermits and StorePermits. A decision that
// writes nothing still commits the (empty) transaction.
func (p *Provider) UpdatePermits(ctx context.Context, name string, decide func(rec providers.PermitRecord) (*providers.PermitTable, error)) (providers.PermitRecord, int64, error) {
	if err := p.permitsReady(ctx, name); err != nil {
		return providers.PermitRecord{}, 0, err
	}
	var (
		rec     providers.PermitRecord
		tok     int64
		decided error
	)
	err := p.transact(ctx, name, func(tx *spanner.ReadWriteTransaction, r row) error {
		tok, decided = 0, nil // only the last run counts
		rec = providers.PermitRecord{Now: r.now, Version: version{updated: r.updated}, Table: r.table}
		if r.table == nil && r.heldAt() {
			h := r.held(name).Holder
			rec.Mutex = &h
		}
		t, err := decide(rec)
		if err != nil || t == nil {
			decided = err
			return nil // nothing to write
		}
		counter := r.token
		if !r.exists {
			counter = providers.TokenBase(r.now)
		}
		w, counter, granted, err := t.GrantTokens(counter)
		if err != nil {
			return fmt.Errorf("spanner: %q: %w", name, err)
		}
		tok = granted
		return p.writeTable(tx, name, counter, w)
	})
	if err != nil {
		return rec, 0, err
	}
	return rec, tok, decided
}

// writeTable buffers t as name's row with token counter: lease_id
// tableLease, expires_at t.BusyUntil() (NULL when idle), the table in the
// permits column, the lease columns NULL. A table with no permits and no
// release marks is written as a free row.
func (p *Provider) writeTable(tx *spanner.ReadWriteTransaction, name string, counter int64, t providers.PermitTable) error {
	var (
		lease spanner.NullString
		busy  spanner.NullTime
		table []byte
	)
	if len(t.Holders) > 0 || len(t.Released) > 0 {
		lease = spanner.NullString{StringVal: tableLease, Valid: true}
		table = []byte(providers.EncodePermitTable(t))
		if b := t.BusyUntil(); !b.IsZero() {
			busy = spanner.NullTime{Time: b, Valid: true}
		}
	}
	vals := []any{name, counter, lease, spanner.NullString{}, spanner.NullString{}, spanner.NullInt64{},
		busy, spanner.NullTime{}, spanner.CommitTimestamp, table}
	return tx.BufferWrite([]*spanner.Mutation{spanner.InsertOrUpdate(p.table, leaseColumns, vals)})
}
