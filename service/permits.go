package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

// Semaphores and lock-delay (see providers.PermitStore): an acquire with
// Permits > 1 or a LockDelay goes through the name's permit table, read
// and written back under the provider's compare-and-swap; so do the renew
// and release of its lease, whose id says so (providers.IsPermitLeaseID).
// Every decision is made here, once for every backend, by the provider's
// clock as LoadPermits read it (PermitRecord.Now, taken before the read,
// so a lease never ends later than the service says).
//
// Cost: one read and one conditional write per acquire, renew or release,
// plus one of each again per conflict (another writer changed the record
// in between).
//
// A renew or release answers lease_lost without writing, from the record
// it read. Where that read may be stale (PermitRecord.MayBeStale: it may
// miss the write that granted or renewed the permit moments before,
// through another instance), the answer is confirmed first
// (PermitConfirmer.ConfirmPermits, one conditional write of the record
// unchanged): a conflict means the read was stale, and the service reads
// again as after any conflict. So lease_lost is never answered from a
// stale read; it costs one request more there (held and permits_mismatch
// answers are not confirmed: they are a moment old at worst, as a mutex's
// held report is).

// maxConflicts bounds how often one operation reads and writes again after
// losing a race for the record; past it, the answer is ErrThrottled.
const maxConflicts = 32

// wantsPermits reports whether req goes through the permit table.
func wantsPermits(req lock.AcquireRequest) bool { return req.Permits > 1 || req.LockDelay > 0 }

// permitStore returns the provider as a PermitStore, or ErrUnsupported.
func (s *Service) permitStore() (providers.PermitStore, error) {
	ps, ok := providers.As[providers.PermitStore](s.p)
	if !ok {
		return nil, fmt.Errorf("%s: semaphores and lock-delay: %w", s.p.Name(), providers.ErrUnsupported)
	}
	return ps, nil
}

// attempt is one try at req: through the permit table when it asks for
// one, else the provider's plain acquire. A plain acquire that finds a
// permit table of another count answers ErrPermitsMismatch.
func (s *Service) attempt(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	if wantsPermits(req) {
		return s.acquirePermit(ctx, req)
	}
	l, err := s.p.Acquire(ctx, req)
	var held *lock.HeldError
	if errors.As(err, &held) && held.Permits > 0 && held.Permits != req.Permits {
		return lock.Lease{}, &lock.PermitsMismatchError{Name: req.Name, Permits: held.Permits, Requested: req.Permits}
	}
	if err == nil {
		l.Permits = 1
	}
	return l, err
}

// rewrite reads name's record, lets change decide (it returns the table
// to write, or an answer), and writes the table back, reading again after
// a conflict. sent tells change that this call wrote a table before: that
// write lost a race, or applied while its answer was lost (the provider's
// client sent it again, and that found the record changed). A lease_lost
// answer from a record that may be stale is confirmed first (see above).
// On a providers.PermitUpdater the read, the decision and the write are
// one transaction of the backend's; with preread (acquires, which mostly
// answer held under contention), a plain read decides first and only a
// decision to write opens the transaction.
func (s *Service) rewrite(ctx context.Context, name string, preread bool, change func(rec providers.PermitRecord, sent bool) (*providers.PermitTable, error)) (providers.PermitRecord, int64, error) {
	ps, err := s.permitStore()
	if err != nil {
		return providers.PermitRecord{}, 0, err
	}
	if u, ok := providers.As[providers.PermitUpdater](s.p); ok {
		if preread {
			// Most acquires under contention answer held from a read:
			// only one that writes pays for a transaction.
			rec, err := ps.LoadPermits(ctx, name)
			if err != nil {
				return rec, 0, err
			}
			if t, err := change(rec, false); err != nil || t == nil {
				return rec, 0, err
			}
		}
		// One transaction of the backend's: no race to lose. A run that
		// returned a table may have committed though the backend ran the
		// transaction again: the next run is told, as after a sent write.
		wrote := false
		return u.UpdatePermits(ctx, name, func(rec providers.PermitRecord) (*providers.PermitTable, error) {
			t, err := change(rec, wrote)
			wrote = wrote || t != nil
			return t, err
		})
	}
	confirmer, _ := providers.As[providers.PermitConfirmer](s.p)
	pause := backoff.NewExponentialBackOff()
	pause.InitialInterval, pause.MaxInterval = time.Millisecond, 50*time.Millisecond
	sent := false
	for range maxConflicts {
		rec, err := ps.LoadPermits(ctx, name)
		if err != nil {
			return rec, 0, err
		}
		t, err := change(rec, sent)
		if errors.Is(err, lock.ErrLeaseLost) && rec.MayBeStale && confirmer != nil {
			// The permit may have been granted or renewed after the
			// replica that served the read last heard: lost only if the
			// record is still the one read.
			if cerr := confirmer.ConfirmPermits(ctx, name, rec); !errors.Is(cerr, providers.ErrConflict) {
				if cerr != nil {
					return rec, 0, cerr
				}
				return rec, 0, err
			}
		} else {
			if err != nil || t == nil {
				return rec, 0, err
			}
			sent = true
			tok, err := ps.StorePermits(ctx, name, rec, *t)
			if !errors.Is(err, providers.ErrConflict) {
				return rec, tok, err
			}
		}
		select {
		case <-time.After(pause.NextBackOff()):
		case <-ctx.Done():
			return rec, 0, ctx.Err()
		}
	}
	return providers.PermitRecord{}, 0, lock.Throttled(fmt.Errorf("the record of %q changed under %d writes in a row", name, maxConflicts), 50*time.Millisecond)
}

// acquirePermit is one try at a permit of req.Name's table.
func (s *Service) acquirePermit(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	var (
		exp  time.Time
		mine *providers.Permit
		hash = providers.HashLeaseID(req.LeaseID)
	)
	_, tok, err := s.rewrite(ctx, req.Name, true, func(rec providers.PermitRecord, sent bool) (*providers.PermitTable, error) {
		mine = nil
		now := rec.Now
		if m := rec.Mutex; m != nil {
			if req.Permits != 1 {
				return nil, &lock.PermitsMismatchError{Name: req.Name, Permits: 1, Requested: req.Permits}
			}
			return nil, &lock.HeldError{Name: req.Name, Holder: *m, RetryAfter: m.ExpiresAt.Sub(now), Revision: rec.Revision}
		}
		var t providers.PermitTable
		if rec.Table != nil {
			t = rec.Table.Prune(now)
		}
		if i := slices.IndexFunc(t.Holders, func(p providers.Permit) bool { return p.Lease == hash }); i >= 0 {
			// An earlier write of this call applied though its answer was
			// lost (the provider's client sent it again, which then found
			// the record changed): the permit is ours already.
			mine = &t.Holders[i]
			return nil, nil
		}
		if len(t.Holders) > 0 && t.Permits != req.Permits {
			return nil, &lock.PermitsMismatchError{Name: req.Name, Permits: t.Permits, Requested: req.Permits}
		}
		t.Permits = req.Permits
		if held := t.Held(req.Name, now, rec.Revision); held != nil {
			return nil, held
		}
		exp = lock.ExpiresAt(now, req.TTL)
		t.Holders = append(slices.Clone(t.Holders), providers.Permit{
			Lease: hash, Owner: req.Owner, Metadata: req.Metadata,
			TTLms: req.TTL.Milliseconds(), ExpMs: exp.UnixMilli(), DelayMs: req.LockDelay.Milliseconds(),
		})
		return &t, nil
	})
	if err != nil {
		return lock.Lease{}, err
	}
	if mine != nil {
		tok, exp = mine.Token, mine.Expires()
	}
	return lock.Lease{
		Name: req.Name, Owner: req.Owner, LeaseID: req.LeaseID, FencingToken: tok, TTL: req.TTL,
		ExpiresAt: exp, Metadata: req.Metadata, Permits: req.Permits, LockDelay: req.LockDelay,
	}, nil
}

// lost is the error of a renew or release of a permit lease that holds
// nothing.
func lost(name string) error {
	return fmt.Errorf("permit of %q: %w", name, lock.ErrLeaseLost)
}

// renewPermit extends a permit's lease, keeping its token.
func (s *Service) renewPermit(ctx context.Context, req lock.RenewRequest) (lock.Lease, error) {
	hash := providers.HashLeaseID(req.LeaseID)
	var l lock.Lease
	_, _, err := s.rewrite(ctx, req.Name, false, func(rec providers.PermitRecord, sent bool) (*providers.PermitTable, error) {
		if rec.Table == nil {
			return nil, lost(req.Name)
		}
		t := rec.Table.Prune(rec.Now)
		t.Holders = slices.Clone(t.Holders)
		i := slices.IndexFunc(t.Holders, func(p providers.Permit) bool { return p.Lease == hash })
		if i < 0 || !rec.Now.Before(t.Holders[i].Expires()) {
			return nil, lost(req.Name)
		}
		p := &t.Holders[i]
		ttl := req.TTL
		if ttl == 0 {
			ttl = time.Duration(p.TTLms) * time.Millisecond
		}
		exp := lock.ExpiresAt(rec.Now, ttl)
		p.TTLms, p.ExpMs = ttl.Milliseconds(), exp.UnixMilli()
		l = lock.Lease{
			Name: req.Name, Owner: p.Owner, LeaseID: req.LeaseID, FencingToken: p.Token, TTL: ttl,
			ExpiresAt: exp, Metadata: p.Metadata, Permits: t.Permits, LockDelay: time.Duration(p.DelayMs) * time.Millisecond,
		}
		return &t, nil
	})
	if err != nil {
		return lock.Lease{}, err
	}
	return l, nil
}

// releasePermit gives a permit back. If this call's write applied but the
// answer was lost (its retry found the record changed), the next read
// finds the release's mark (PermitTable.Released) and answers released; a
// second release call answers lease_lost, as a mutex's does.
func (s *Service) releasePermit(ctx context.Context, req lock.ReleaseRequest) error {
	hash := providers.HashLeaseID(req.LeaseID)
	_, _, err := s.rewrite(ctx, req.Name, false, func(rec providers.PermitRecord, sent bool) (*providers.PermitTable, error) {
		var t providers.PermitTable
		if rec.Table != nil {
			t = rec.Table.Prune(rec.Now)
		}
		i := slices.IndexFunc(t.Holders, func(p providers.Permit) bool { return p.Lease == hash })
		switch {
		case i < 0 && sent && slices.Contains(t.Released, hash):
			return nil, nil // released by this call's earlier write
		case i < 0 && sent:
			// This call's write may have applied and its mark been pushed
			// out by MaxReleaseMarks later releases: the outcome is unknown.
			return nil, lock.Unavailable(fmt.Errorf("release of a permit of %q: its write was sent, and neither the permit nor its mark is left", req.Name), 0)
		case i < 0 || !rec.Now.Before(t.Holders[i].Expires()):
			return nil, lost(req.Name)
		}
		t.Holders = slices.Delete(slices.Clone(t.Holders), i, i+1)
		t.Released = append(slices.Clone(t.Released), hash)
		if n := len(t.Released); n > providers.MaxReleaseMarks {
			t.Released = t.Released[n-providers.MaxReleaseMarks:]
		}
		return &t, nil
	})
	return err
}
