package cosmos

import (
	"context"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/data/azcosmos"

	"github.com/hasplock/hasp/providers"
)

var _ providers.PermitStore = (*Provider)(nil)

// tableLease is the lease field of a document that holds a permit table:
// not hex, so no lease's hash (and no renew or release condition of the
// mutex path) ever matches it.
const tableLease = "permits"

// table decodes the permit table d holds.
func (d document) table() (providers.PermitTable, error) {
	t, err := providers.DecodePermitTable(d.Permits, 0)
	if err != nil {
		return providers.PermitTable{}, fmt.Errorf("cosmos: %q: %w", d.Name, err)
	}
	return t, nil
}

var _ providers.PermitConfirmer = (*Provider)(nil)

// LoadPermits implements providers.PermitStore with one point read of
// name's document, never from the version cache (see the package
// documentation). The version is the document as read, etag and content;
// nil when there is none. The record is MayBeStale: one replica serves
// the read (see "Semaphores and lock-delay" in the package documentation).
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
	rec.Version = v
	switch {
	case v.doc.Permits != "":
		t, err := v.doc.table()
		if err != nil {
			return providers.PermitRecord{}, err
		}
		rec.Table = &t
	case v.doc.heldAt(now):
		h := v.doc.held(now).Holder
		rec.Mutex = &h
	}
	return rec, nil
}

// StorePermits implements providers.PermitStore with one conditional
// write: a replace with If-Match on the etag prev read, or, when prev
// found no document, a create (which fails if one exists). A failed
// condition (412, 409, or 404 for a document gone since) is
// providers.ErrConflict; so is the SDK's retry of a write that was
// applied, which finds the etag changed (or the document created) by
// that very write: the service reads again and recognises its own write.
//
// Permits with token 0 get the document's counter plus one each, in
// order. The document looks held to the mutex path until the table's
// BusyUntil: lease "permits" (no lease's hash), start_ms BusyUntil (0 when
// idle) and ttl_ms 0.
func (p *Provider) StorePermits(ctx context.Context, name string, prev providers.PermitRecord, t providers.PermitTable) (int64, error) {
	d := document{ID: docID(name), Name: name, Token: providers.TokenBase(prev.Now), TTL: -1}
	base, found := prev.Version.(version)
	switch {
	case found:
		d = base.doc // keeps the counter and the mutex path's release mark
	case prev.Version != nil:
		return 0, fmt.Errorf("cosmos: permits of %q: a version of type %T is not this provider's", name, prev.Version)
	}
	t, counter, tok, err := t.GrantTokens(d.Token)
	if err != nil {
		return 0, fmt.Errorf("cosmos: %q: %w", name, err)
	}
	d.Token = counter
	d.Lease, d.Owner, d.Metadata, d.StartMs, d.TTLMs = tableLease, "", "", 0, 0
	if until := t.BusyUntil(); !until.IsZero() {
		d.StartMs = until.UnixMilli()
	}
	d.Permits = providers.EncodePermitTable(t)
	if found {
		_, err = p.replace(ctx, base, d)
	} else {
		_, err = p.create(ctx, d)
	}
	switch s := docStatus(err); {
	case err == nil:
		return tok, nil
	case s == http.StatusPreconditionFailed || s == http.StatusConflict || s == http.StatusNotFound:
		return 0, fmt.Errorf("cosmos: permits of %q: %w", name, providers.ErrConflict)
	case s == http.StatusRequestEntityTooLarge:
		return 0, fmt.Errorf("cosmos: the permit table of %q (%d permits, a %d-byte string) does not fit in one Cosmos DB item (2 MB): %w", name, len(t.Holders), len(d.Permits), mapErr(err))
	}
	return 0, mapErr(err)
}

// ConfirmPermits implements providers.PermitConfirmer with one
// conditional write, which the partition's primary replica decides, as it
// decides every write, on the document as it is:
//
//   - rec read a document: a replace of it by itself (the same content),
//     with If-Match on the etag read. 200: the document was that version
//     (it now has a new etag, nothing else changed); 412 (or 404) is
//     providers.ErrConflict. A mutex path's renew or release is not
//     affected (its patches are conditioned on the lease, not the etag);
//     another instance's remembered version fails its If-Match once and
//     is read again.
//   - rec found no document: a patch conditioned on "FROM c WHERE false",
//     which writes nothing: 404 confirms that there is no document, 412
//     (the condition evaluated on a document) is providers.ErrConflict.
//
// The SDK's resend of an applied replace finds the etag changed by the
// replace itself: ErrConflict, and the service reads again.
func (p *Provider) ConfirmPermits(ctx context.Context, name string, rec providers.PermitRecord) error {
	base, found := rec.Version.(version)
	if !found && rec.Version != nil {
		return fmt.Errorf("cosmos: permits of %q: a version of type %T is not this provider's", name, rec.Version)
	}
	var err error
	if found {
		_, err = p.replace(ctx, base, base.doc)
	} else {
		var ops azcosmos.PatchOperations
		ops.SetCondition("FROM c WHERE false")
		ops.AppendSet("/ttl", -1) // never applied: the condition is false
		id := docID(name)
		_, err = p.container.PatchItem(ctx, azcosmos.NewPartitionKeyString(id), id, ops, nil)
		switch {
		case docStatus(err) == http.StatusNotFound:
			return nil // no document, at the primary either
		case err == nil:
			return fmt.Errorf("cosmos: permits of %q: a patch with a false condition was applied", name)
		}
	}
	switch s := docStatus(err); {
	case err == nil:
		return nil
	case s == http.StatusPreconditionFailed || s == http.StatusNotFound:
		return fmt.Errorf("cosmos: permits of %q: the read was stale: %w", name, providers.ErrConflict)
	}
	return mapErr(err)
}
