package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

var _ providers.PermitStore = (*Provider)(nil)

// tableLease is the lease_id of an item that holds a permit table. No
// lease id of the service's (NewLeaseID, PermitLeaseID) has a "#", and
// Renew and Release refuse it outright, so no mutex lease matches it.
const tableLease = "#permits"

// permitTable is the item's permit table, or nil when it holds none. The
// "permits" attribute counts only under tableLease: a mutex acquire of a
// hasp without permit tables could take an idle table over without
// removing it.
func (it item) permitTable() (*providers.PermitTable, error) {
	if it.leaseID != tableLease || it.permits == "" {
		return nil, nil
	}
	t, err := providers.DecodePermitTable(it.permits, 0)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// pinned are the attributes that StorePermits's condition pins: between
// them, every write to an item changes at least one (an acquire the token,
// a renew the expiry, a release its mark, a table write the table) and
// DynamoDB TTL removes them all.
var pinned = []string{"#tok", "#lid", "#exp", "#ttl", "#mk0", "#pmt"}

// version is a PermitRecord's Version: the pinned attributes as
// LoadPermits read them (absent ones absent).
type version map[string]types.AttributeValue

// condition is StorePermits's condition: each pinned attribute as read,
// or still absent. It adds its values to vals.
func (v version) condition(vals map[string]types.AttributeValue) string {
	conds := make([]string, 0, len(pinned))
	for i, n := range pinned {
		av, ok := v[names[n]]
		if !ok {
			conds = append(conds, "attribute_not_exists("+n+")")
			continue
		}
		ph := ":v" + strconv.Itoa(i)
		vals[ph] = av
		conds = append(conds, n+" = "+ph)
	}
	return strings.Join(conds, " AND ")
}

// LoadPermits implements providers.PermitStore with one strongly
// consistent GetItem; Now is read before it is sent.
func (p *Provider) LoadPermits(ctx context.Context, name string) (providers.PermitRecord, error) {
	now := p.clock.Now()
	p.calls.Add(1)
	got, err := p.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &p.table, Key: p.key(name), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return providers.PermitRecord{}, mapErr(err)
	}
	it, err := decode(got.Item)
	if err != nil {
		return providers.PermitRecord{}, err
	}
	v := version{}
	for _, n := range pinned {
		if av, ok := got.Item[names[n]]; ok {
			v[names[n]] = av
		}
	}
	rec := providers.PermitRecord{Now: now, Version: v}
	t, err := it.permitTable()
	switch {
	case err != nil:
		return providers.PermitRecord{}, err
	case t != nil:
		rec.Table = t
	case it.heldAt(now):
		h := it.held(name, now).Holder
		rec.Mutex = &h
	}
	return rec, nil
}

// StorePermits implements providers.PermitStore with one UpdateItem
// conditioned on the pinned attributes being as LoadPermits read them.
// Tokens of new permits continue the item's counter, which the condition
// pins, so they are known before the write; an item without a counter
// starts at providers.TokenBase, as Acquire's does. The item then looks
// held to the mutex path: lease_id tableLease, expires_ms the table's
// BusyUntil (0 when idle), owner, metadata and ttl_ms removed.
//
// A write whose answer was lost and that the SDK sends again fails its
// condition (the first attempt changed the pinned attributes): that is
// ErrConflict, and the service, reading again, finds its own write.
func (p *Provider) StorePermits(ctx context.Context, name string, prev providers.PermitRecord, t providers.PermitTable) (int64, error) {
	v, ok := prev.Version.(version)
	if !ok {
		return 0, fmt.Errorf("dynamodb: a permit record of %q not read by LoadPermits", name)
	}
	now := p.clock.Now()
	counter, hasCounter := providers.TokenBase(now), false
	if n, ok := v["token"].(*types.AttributeValueMemberN); ok {
		c, err := strconv.ParseInt(n.Value, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("dynamodb: bad token attribute: %w", err)
		}
		counter, hasCounter = c, true
	}
	t, counter, tok, err := t.GrantTokens(counter)
	if err != nil {
		return 0, fmt.Errorf("dynamodb: %q: %w", name, err)
	}
	hasCounter = hasCounter || tok != 0
	var busy int64
	if b := t.BusyUntil(); !b.IsZero() {
		busy = b.UnixMilli()
	}
	enc := providers.EncodePermitTable(t)
	vals := map[string]types.AttributeValue{":pmt": str(enc), ":tlid": str(tableLease), ":exp": num(busy)}
	set := []string{"#pmt = :pmt", "#lid = :tlid", "#exp = :exp"}
	if hasCounter {
		vals[":tok"] = num(counter)
		set = append(set, "#tok = :tok")
	}
	cond := v.condition(vals)
	_, err = p.conditionalUpdate(ctx, name, now, set, []string{"#own", "#md", "#ttl"}, cond, vals, types.ReturnValueNone, "")
	var ccf *types.ConditionalCheckFailedException
	var ae smithy.APIError
	switch {
	case err == nil:
		return tok, nil
	case errors.As(err, &ccf):
		return 0, fmt.Errorf("dynamodb: permit table of %q: %w", name, providers.ErrConflict)
	case errors.As(err, &ae) && ae.ErrorCode() == "ValidationException" && strings.Contains(ae.ErrorMessage(), "size"):
		// The 400 KB item limit (see the package doc): "Item size to
		// update has exceeded the maximum allowed size".
		return 0, fmt.Errorf("dynamodb: the permit table of %q (%d permits, %d bytes) does not fit in one DynamoDB item (400 KB): %w: %w", name, len(t.Holders), len(enc), lock.ErrRecordTooLarge, err)
	case errors.As(err, &ae) && ae.ErrorCode() == "ValidationException":
		return 0, fmt.Errorf("dynamodb: writing the permit table of %q (%d permits, %d bytes): %w", name, len(t.Holders), len(enc), err)
	}
	return 0, mapErr(err)
}
