package redis

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

// Semaphores and lock-delay on one server (providers.PermitStore; see the
// package documentation). Only Provider keeps permit tables: a Redlock's
// majority has no compare-and-swap of one record, so it is no
// PermitStore and answers such acquires with providers.ErrUnsupported.

var _ providers.PermitStore = (*Provider)(nil)

// tableLease is the lh field of a hash that holds a permit table: not a
// SHA-256 in hex, so it matches no lease (the mutex path's renew and
// release of any lease find it lost), and not empty, so the mutex path
// reads the hash as held until its exp, the table's BusyUntil.
const tableLease = "permit-table"

// luaDigest defines digest(a): the SHA-1 of a hash's fields and values
// as HGETALL returned them (a), sorted by field and each length-prefixed,
// so that equal contents, and only they, give equal digests whatever
// order the server keeps the fields in. A missing hash digests as the
// empty string's SHA-1.
const luaDigest = `
local function digest(a)
  local fields, vals = {}, {}
  for i = 1, #a, 2 do
    fields[#fields + 1] = a[i]
    vals[a[i]] = a[i + 1]
  end
  table.sort(fields)
  local parts = {}
  for _, k in ipairs(fields) do
    parts[#parts + 1] = #k .. ':' .. k .. #vals[k] .. ':' .. vals[k]
  end
  return redis.sha1hex(table.concat(parts)), vals
end
`

// loadScript reads a lock's hash for LoadPermits.
//
// KEYS[1]. Reply: {server time ms, digest, lh, exp, tok, rep, own, md,
// pt}, each field false (nil) when absent.
var loadScript = newScript(luaNow + luaDigest + `
local d, h = digest(redis.call('HGETALL', KEYS[1]))
local out = {now, d}
for i, k in ipairs({'lh', 'exp', 'tok', 'rep', 'own', 'md', 'pt'}) do
  out[i + 2] = h[k] or false
end
return out
`)

// storeScript writes a permit table iff the hash is still the one
// LoadPermits read (its digest): tok the counter, lh tableLease, exp the
// busy-until time and pt the table; the lease fields of the mutex path
// are removed. An empty table argument writes a free hash (the counter
// alone). A run again after it applied (the client's retry) finds the
// digest changed and writes nothing.
//
// KEYS[1]; ARGV: the digest read, the encoded table (” for a free hash),
// busy-until Unix ms (0 when idle), the counter. Reply: 1 written, 0 the
// hash changed.
var storeScript = newScript(luaDigest + `
if digest(redis.call('HGETALL', KEYS[1])) ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'rep', 'ttl', 'own', 'md')
redis.call('HSET', KEYS[1], 'tok', ARGV[4])
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], 'lh', 'exp', 'pt')
else
  redis.call('HSET', KEYS[1], 'lh', '` + tableLease + `', 'exp', ARGV[3], 'pt', ARGV[2])
end
return 1
`)

// version is a hash's compare-and-swap version (PermitRecord.Version):
// the digest of its whole content as read, with what StorePermits needs
// of it, the counter and the server's time at the read.
type version struct {
	digest   string
	token    int64
	serverMs int64
}

// tableNow is the clock permit tables are judged by: the earlier of the
// service's clock taken before the request was sent and the server's at
// the script, as the mutex path's reported expiry is the earlier of the
// two. It never reads later than the server's clock, by which the mutex
// path lets another acquirer in.
func tableNow(before time.Time, serverMs int64) time.Time {
	if server := time.UnixMilli(serverMs); server.Before(before) {
		return server.UTC()
	}
	return before
}

// decodeTable parses the permit table of name's hash.
func decodeTable(name, s string) (providers.PermitTable, error) {
	t, err := providers.DecodePermitTable(s, 0)
	if err != nil {
		return providers.PermitTable{}, fmt.Errorf("redis: %q: %w", name, err)
	}
	return t, nil
}

// LoadPermits implements providers.PermitStore with one script (loadScript)
// that reads name's hash and the server's clock. Now is tableNow: the
// service's clock before the script was sent, or the server's at the
// read if that is earlier. The version is the digest of the hash's whole
// content (see storeScript): every write of it, by the mutex path's
// scripts or by another table write, changes it. The read is of the one
// server, so it sees every acknowledged write (MayBeStale false).
func (p *Provider) LoadPermits(ctx context.Context, name string) (providers.PermitRecord, error) {
	before := p.clock.Now()
	v, err := p.n.eval(ctx, loadScript, []string{p.key(name)}).Slice()
	if err != nil {
		return providers.PermitRecord{}, mapErr(p.n.addr, err)
	}
	if len(v) != 9 {
		return providers.PermitRecord{}, fmt.Errorf("redis %s: load script answered %d values", p.n.addr, len(v))
	}
	field := func(i int) string { s, _ := v[i].(string); return s }
	num := func(i int) (int64, error) {
		switch x := v[i].(type) {
		case nil:
			return 0, nil
		case int64:
			return x, nil
		case string:
			return strconv.ParseInt(x, 10, 64)
		}
		return 0, fmt.Errorf("redis %s: load script value %d is %T", p.n.addr, i, v[i])
	}
	var ver version
	var exp, rep int64
	for i, dst := range map[int]*int64{0: &ver.serverMs, 3: &exp, 4: &ver.token, 5: &rep} {
		if *dst, err = num(i); err != nil {
			return providers.PermitRecord{}, err
		}
	}
	ver.digest = field(1)
	rec := providers.PermitRecord{Now: tableNow(before, ver.serverMs), Version: ver}
	switch lh := field(2); {
	case lh == tableLease:
		t, err := decodeTable(name, field(8))
		if err != nil {
			return providers.PermitRecord{}, err
		}
		rec.Table = &t
	case lh != "" && exp > ver.serverMs:
		// A live plain lease, by the server's clock, as the acquire
		// script judges it.
		rec.Mutex = &lock.Holder{Owner: field(6), FencingToken: ver.token, ExpiresAt: time.UnixMilli(rep).UTC(), Metadata: field(7)}
	}
	return rec, nil
}

// StorePermits implements providers.PermitStore with one script
// (storeScript) that writes t iff the hash's digest is still prev's, else
// writes nothing and answers an error wrapping providers.ErrConflict; so
// does the client's retry of a script that was applied but whose answer
// was lost (the digest changed with that very write), and the service
// reads again and finds its own write.
//
// Permits with token 0 get the next tokens of the hash's counter, as the
// acquire script issues them: the first max(counter, seed) + 1, where the
// seed is providers.TokenBase of the server's time at prev's read, then
// one more each. The counter cannot have moved since that read (it is
// part of the digest).
func (p *Provider) StorePermits(ctx context.Context, name string, prev providers.PermitRecord, t providers.PermitTable) (int64, error) {
	ver, ok := prev.Version.(version)
	if !ok {
		return 0, fmt.Errorf("redis: permits of %q: a version of type %T is not this provider's", name, prev.Version)
	}
	counter, tok := ver.token, int64(0)
	t.Holders = slices.Clone(t.Holders)
	for i := range t.Holders {
		if t.Holders[i].Token != 0 {
			continue
		}
		if tok == 0 {
			counter = max(counter, providers.TokenBase(time.UnixMilli(ver.serverMs)))
		}
		counter++
		t.Holders[i].Token, tok = counter, counter
	}
	if counter >= lock.MaxFencingToken {
		return 0, fmt.Errorf("redis: fencing token of %q would reach 2^53", name)
	}
	var enc string
	var busy int64
	if len(t.Holders) > 0 || len(t.Released) > 0 {
		enc = providers.EncodePermitTable(t)
		if b := t.BusyUntil(); !b.IsZero() {
			busy = b.UnixMilli()
		}
	}
	n, err := p.n.runInt(ctx, storeScript, []string{p.key(name)}, ver.digest, enc, busy, counter)
	if err != nil {
		return 0, err
	}
	if n != 1 {
		return 0, fmt.Errorf("redis: permits of %q: %w", name, providers.ErrConflict)
	}
	return tok, nil
}
