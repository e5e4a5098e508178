package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

var (
	_ providers.PermitStore     = (*Provider)(nil)
	_ providers.PermitConfirmer = (*Provider)(nil)
)

// tableLease is the lease field of a record that holds a permit table: not
// hex, so it is no lease id's hash, and the mutex path's renew and release
// (which compare the field with their lease's hash) never match it.
const tableLease = "permits"

// MaxDataBytes is the largest znode data the provider writes: ZooKeeper's
// default jute.maxbuffer (0xfffff, one byte under 1 MiB) bounds a whole
// request, path and headers included, so 4 KiB are left for those. A
// permit table whose record would be larger is refused before it is sent
// (see "Semaphores and lock-delay" in the package documentation).
const MaxDataBytes = 0xfffff - 4096

// table decodes the permit table r holds (r.Permits != "").
func (r record) table() (providers.PermitTable, error) {
	t, err := providers.DecodePermitTable(r.Permits, 0)
	if err != nil {
		return providers.PermitTable{}, fmt.Errorf("zookeeper: %q: %w", r.Name, err)
	}
	return t, nil
}

// LoadPermits implements providers.PermitStore with one read of name's
// znode (GetData), never from the version cache: a remembered version may
// be old, and the service answers held and permits_mismatch from the
// record without a write. Now is read before the read is sent. The
// Version is the znode's record and data version (nil for no znode), and
// Revision its mzxid, which WaitChange compares.
//
// The read comes from the session's server, which may lag the leader: the
// record is MayBeStale, and a lease_lost answer from it is confirmed with
// ConfirmPermits first. A write decided on it is safe as it is (StorePermits
// is conditioned on the data version).
func (p *Provider) LoadPermits(ctx context.Context, name string) (providers.PermitRecord, error) {
	now := p.clock.Now() // before the read: see providers.PermitRecord.Now
	v, found, err := p.read(ctx, name)
	if err != nil {
		return providers.PermitRecord{}, err
	}
	rec := providers.PermitRecord{Now: now, MayBeStale: true}
	if !found {
		return rec, nil
	}
	rec.Version, rec.Revision = v, v.mzxid
	switch {
	case v.rec.Permits != "":
		t, err := v.rec.table()
		if err != nil {
			return providers.PermitRecord{}, err
		}
		rec.Table = &t
	case v.rec.heldAt(now):
		h := v.rec.holder()
		rec.Mutex = &h
	}
	return rec, nil
}

// StorePermits implements providers.PermitStore with one conditional
// write: a SetData at the data version prev read or, when prev found no
// znode, the create Multi of Acquire (which fails if the znode exists).
// Either refused is providers.ErrConflict: nothing was written.
//
// Permits with token 0 get the record's counter plus one each, in order (a
// new znode's counter starts at providers.TokenBase, as Acquire's does).
// The record then looks held to the mutex path until the table's
// BusyUntil: lease tableLease, exp_ms BusyUntil (absent when idle), the
// table in "permits", no owner, metadata, TTL or release mark. A table
// with no permits and no release marks is written as a free record.
//
// The client never sends a request twice; when a write's answer is lost
// (its connection broke), StorePermits reads the znode once, as the mutex
// path does: the record it wrote means the write took place; a record
// changed otherwise since prev is ErrConflict, as a resend of the write
// would have found it (the service reads again and recognises its own
// write, a release by its mark, an acquire by its lease's hash); an
// unchanged record (the write may still be on its way) or a failed read
// is lock.ErrUnavailable.
//
// A write that grants a permit or moves one's expiry is checked against
// the maximum clock skew as the mutex path's acquire and renew are (see
// "Time" in the package documentation): if its mtime shows this
// instance's clock too far off the leader's, the answer is
// lock.ErrUnavailable wrapping ErrClockSkew, and the permit written lapses
// at its TTL.
func (p *Provider) StorePermits(ctx context.Context, name string, prev providers.PermitRecord, t providers.PermitTable) (int64, error) {
	base, found := prev.Version.(version)
	if !found && prev.Version != nil {
		return 0, fmt.Errorf("zookeeper: permits of %q: a version of type %T is not this provider's", name, prev.Version)
	}
	before := p.clock.Now()
	next := record{V: recordVersion, Name: name, Token: providers.TokenBase(before)}
	if found {
		next.Token = base.rec.Token
	}
	t, counter, tok, err := t.GrantTokens(next.Token)
	if err != nil {
		return 0, fmt.Errorf("zookeeper: %q: %w", name, err)
	}
	next.Token = counter
	if len(t.Holders) > 0 || len(t.Released) > 0 {
		next.Lease, next.Permits = tableLease, providers.EncodePermitTable(t)
		if until := t.BusyUntil(); !until.IsZero() {
			next.ExpMs = until.UnixMilli()
		}
	}
	if n := len(next.encode()); n > MaxDataBytes {
		return 0, fmt.Errorf("zookeeper: the permit table of %q (%d permits) makes a record of %d bytes, more than the %d a znode takes (jute.maxbuffer): %w", name, len(t.Holders), n, MaxDataBytes, lock.ErrRecordTooLarge)
	}
	var w version
	if found {
		w, err = p.set(ctx, name, base, next)
	} else {
		w, err = p.create(ctx, name, next)
		if errors.Is(err, zk.ErrNoNode) {
			// No prefix yet: create it. The record was missing, so the
			// service's next read finds it missing again.
			if err := p.Provision(ctx); err != nil {
				return 0, err
			}
			return 0, fmt.Errorf("zookeeper: permits of %q: the prefix was missing: %w", name, providers.ErrConflict)
		}
	}
	switch {
	case err == nil:
	case conflict(err):
		return 0, fmt.Errorf("zookeeper: permits of %q: %w", name, providers.ErrConflict)
	case misconfigured(err):
		return 0, mapErr(err)
	default:
		if w, err = p.resolvePermits(ctx, name, base, found, next, err); err != nil {
			return 0, err
		}
	}
	if extends(prev.Table, t) {
		// A grant or renewal: as the mutex path's, only from an instance
		// whose clock the write's mtime shows near the leader's.
		if err := p.checkSkew(w, before); err != nil {
			return 0, err
		}
	}
	return tok, nil
}

// extends reports whether t, written over old, grants a permit or moves
// one's expiry.
func extends(old *providers.PermitTable, t providers.PermitTable) bool {
	exp := map[string]int64{}
	if old != nil {
		for _, h := range old.Holders {
			exp[h.Lease] = h.ExpMs
		}
	}
	for _, h := range t.Holders {
		if e, ok := exp[h.Lease]; h.Token == 0 || !ok || e != h.ExpMs {
			return true
		}
	}
	return false
}

// resolvePermits learns the outcome of a table write of next whose answer
// was lost (cause), from base (found false: no znode), by one read: the
// version read if the znode holds next, ErrConflict if it changed
// otherwise, else (unchanged, or not read) lock.ErrUnavailable.
func (p *Provider) resolvePermits(ctx context.Context, name string, base version, found bool, next record, cause error) (version, error) {
	unknown := lock.Unavailable(fmt.Errorf("zookeeper: outcome of the permit table write to %q unknown: %w", name, cause), time.Second)
	if ctx.Err() != nil {
		return version{}, unknown
	}
	v, exists, err := p.read(ctx, name)
	switch {
	case err != nil:
		return version{}, unknown
	case exists && v.rec == next:
		return v, nil
	case exists != found || (found && v.ver != base.ver):
		return version{}, fmt.Errorf("zookeeper: permits of %q: changed since read (the write's answer was lost: %v): %w", name, cause, providers.ErrConflict)
	}
	return version{}, unknown
}

// ConfirmPermits implements providers.PermitConfirmer with one request
// that the leader decides, as it decides every write, on the znode as it
// is: a Multi holding only a version check (no data changes, so no
// version changes either). rec read a znode: the check of its data
// version; ZooKeeper's BadVersion (or NoNode: deleted since) is
// providers.ErrConflict. rec found none: a check at any version (-1);
// NoNode confirms there is none, success (one exists now) is ErrConflict.
// The answer comes back through the session's server once it has applied
// everything up to the check, so the service's next read sees what the
// leader saw.
func (p *Provider) ConfirmPermits(ctx context.Context, name string, rec providers.PermitRecord) error {
	base, found := rec.Version.(version)
	if !found && rec.Version != nil {
		return fmt.Errorf("zookeeper: permits of %q: a version of type %T is not this provider's", name, rec.Version)
	}
	want := int32(-1)
	if found {
		want = base.ver
	}
	path := p.path(name)
	_, err := do(ctx, p, func() ([]zk.MultiResponse, error) {
		return p.conn.Multi(&zk.CheckVersionRequest{Path: path, Version: want})
	})
	stale := fmt.Errorf("zookeeper: permits of %q: the read was stale: %w", name, providers.ErrConflict)
	switch {
	case !found && errors.Is(err, zk.ErrNoNode):
		return nil
	case !found && err == nil:
		return stale
	case found && err == nil:
		return nil
	case found && (errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNoNode)):
		return stale
	}
	return mapErr(err)
}
