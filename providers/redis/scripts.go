package redis

import goredis "github.com/redis/go-redis/v9"

// The Lua scripts: every lock operation is one of them, run atomically by
// the Redis server in one round trip (EVALSHA; EVAL once after the server
// lost its script cache). Each judges expiry by the server's own clock
// (TIME), and each may be run twice by the client's retry of a request
// whose answer was lost, with the same effect as once.
//
// One hash per lock name, never expired:
//
//	tok  the last fencing token issued for the name (only grows)
//	lh   SHA-256 of the holder's lease id (providers.HashLeaseID); absent when free
//	exp  when the server lets another acquirer in: Unix ms by the server's clock
//	rep  the expiry reported to the holder: Unix ms by the service's clock
//	ttl  the granted TTL, ms
//	own, md  owner and metadata (absent when empty)
//	pt   the permit table of a semaphore or lock-delayed mutex (see
//	     permits.go), present only while lh is tableLease
//
// and, for a few seconds after each release, its call's mark key (see
// ReleaseMarkTTL). A hash whose lh is tableLease holds a permit table:
// its exp is the table's BusyUntil (0 when idle), so the scripts below
// read it as held until then, by no lease (tableLease is no lease's
// hash); their replies for it carry the server's time and the table, for
// the provider to judge (luaTable).
//
// Numbers are written with string.format('%.0f'), exact for integers below
// 2^53 (Lua's numbers are doubles; tostring would round to 14 digits).

// now is the server's clock in Unix milliseconds.
const luaNow = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function f(n) return string.format('%.0f', n) end
`

// luaTable is the tail of a held reply for a hash whose lh is h[1] and
// whose key is k: the server's time and the permit table when the hash
// holds one (lh is tableLease), nothing otherwise.
const luaTable = `
local function tbl(k, lh)
  if lh ~= '` + tableLease + `' then return nil end
  return redis.call('HGET', k, 'pt') or ''
end
`

// acquireScript grants the lock if it is free or its lease has expired by
// the server's clock.
//
// KEYS[1] the lock's hash. ARGV: lease hash, TTL ms, hold ms (how long
// the server keeps the lease: the TTL, plus Redlock's drift allowance),
// the service's clock ms taken before the request was sent, owner,
// metadata, seed unit ms (1 for one server, 1000 for Redlock nodes).
//
// The token is max(tok, seed) + 1, where seed is the server's time in
// Unix ms (rounded down to the seed unit) times 1000, as providers.TokenBase:
// so a counter that was lost (a server restarted without persistence, a
// replica promoted without the last writes) starts again above every
// token it had issued, as long as the server's clock reads later than it
// did then and no name takes 1000 acquires in one seed unit.
//
// A permit table that is no longer busy is taken over like an expired
// lease, counter and all; the grant removes the table.
//
// Reply: {1, token, rep, ttl, owner, metadata, hold left} when granted
// (also when this lease already holds it: a retry of this very acquire),
// {0, token, rep, ttl, owner, metadata, hold left, lease hash} when held,
// followed by {server time, table} when a busy permit table holds it.
var acquireScript = newScript(luaNow + luaTable + `
local h = redis.call('HMGET', KEYS[1], 'lh', 'exp', 'tok', 'rep', 'ttl', 'own', 'md')
local exp = tonumber(h[2])
if h[1] and exp and exp > now then
  local mine = 0
  if h[1] == ARGV[1] then mine = 1 end
  return {mine, tonumber(h[3]), tonumber(h[4]) or 0, tonumber(h[5]) or 0, h[6] or '', h[7] or '', exp - now, h[1], now, tbl(KEYS[1], h[1])}
end
local unit = tonumber(ARGV[7])
local tok = math.max(tonumber(h[3]) or 0, math.floor(now / unit) * unit * 1000) + 1
if tok >= 9007199254740992 then
  return redis.error_reply('HASP fencing token would reach 2^53')
end
local ttl = tonumber(ARGV[2])
local rep = math.min(tonumber(ARGV[4]) + ttl, now + ttl)
local hold = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'lh', ARGV[1], 'exp', f(now + hold), 'tok', f(tok), 'rep', f(rep), 'ttl', ARGV[2])
redis.call('HDEL', KEYS[1], 'pt')
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'own', ARGV[5]) else redis.call('HDEL', KEYS[1], 'own') end
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'md', ARGV[6]) else redis.call('HDEL', KEYS[1], 'md') end
return {1, tok, rep, ttl, ARGV[5], ARGV[6], hold, ARGV[1]}
`)

// heldBy is the Lua condition "lease ARGV[1] holds the lock": by the
// server's clock, and by the clock of the service that sends the request
// (ARGV[n], taken before sending), which must not read past the expiry it
// reported.
func heldBy(svcArg string) string {
	return `h[1] == ARGV[1] and tonumber(h[2]) and tonumber(h[2]) > now and tonumber(` + svcArg + `) < tonumber(h[4])`
}

// renewScript extends the lease to now + TTL.
//
// KEYS[1]; ARGV: lease hash, TTL ms (0 keeps the granted one), 1 to keep
// the lease for Redlock's drift allowance longer (floor(ttl/100) + 2 ms,
// as drift in Go) or 0, the service's clock ms.
//
// Reply: {1, token, rep, ttl, owner, metadata, hold left} or {0}.
var renewScript = newScript(luaNow + `
local h = redis.call('HMGET', KEYS[1], 'lh', 'exp', 'tok', 'rep', 'ttl', 'own', 'md')
if not (` + heldBy("ARGV[4]") + `) then return {0} end
local ttl = tonumber(ARGV[2])
if ttl == 0 then ttl = tonumber(h[5]) end
local rep = math.min(tonumber(ARGV[4]) + ttl, now + ttl)
local hold = ttl
if ARGV[3] == '1' then hold = ttl + math.floor(ttl / 100) + 2 end
redis.call('HSET', KEYS[1], 'exp', f(now + hold), 'rep', f(rep), 'ttl', f(ttl))
return {1, tonumber(h[3]), rep, ttl, h[6] or '', h[7] or '', hold}
`)

// releaseScript ends the lease and keeps the hash (and its counter). It
// also writes this call's mark key (expiring after ReleaseMarkTTL), so
// that the client's retry of a release whose answer was lost finds it and
// answers released, even if others have taken and released the lock
// since, while any other release of the same lease answers lost.
//
// KEYS[1] the lock's hash, KEYS[2] the call's mark key; ARGV: lease hash,
// the service's clock ms, mark TTL ms.
//
// Reply: 1 released (now, or by this very call before), 0 not held.
var releaseScript = newScript(luaNow + `
local h = redis.call('HMGET', KEYS[1], 'lh', 'exp', 'tok', 'rep')
if ` + heldBy("ARGV[2]") + ` then
  redis.call('HDEL', KEYS[1], 'lh', 'exp', 'rep', 'ttl', 'own', 'md')
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  return 1
end
return redis.call('EXISTS', KEYS[2])
`)

// statusScript reads the holder.
//
// KEYS[1]. Reply: {1, token, rep, ttl, owner, metadata, hold left, lease
// hash}, followed by {server time, table} for a busy permit table, or {0}.
var statusScript = newScript(luaNow + luaTable + `
local h = redis.call('HMGET', KEYS[1], 'lh', 'exp', 'tok', 'rep', 'ttl', 'own', 'md')
local exp = tonumber(h[2])
if not (h[1] and exp and exp > now) then return {0} end
return {1, tonumber(h[3]), tonumber(h[4]) or 0, tonumber(h[5]) or 0, h[6] or '', h[7] or '', exp - now, h[1], now, tbl(KEYS[1], h[1])}
`)

// listScript reads the holders of a batch of locks (List): statusScript
// for each key, in one round trip. A key that is not a lock's hash (a key
// of another program under the prefix) reads as free.
//
// KEYS: the locks' hashes. Reply: one statusScript reply per key, in order.
var listScript = newScript(luaNow + luaTable + `
local out = {}
for i, k in ipairs(KEYS) do
  local h = redis.pcall('HMGET', k, 'lh', 'exp', 'tok', 'rep', 'ttl', 'own', 'md')
  local exp = nil
  if type(h) == 'table' and not h.err then exp = tonumber(h[2]) end
  if exp and h[1] and exp > now then
    out[i] = {1, tonumber(h[3]), tonumber(h[4]) or 0, tonumber(h[5]) or 0, h[6] or '', h[7] or '', exp - now, h[1], now, tbl(k, h[1])}
  else
    out[i] = {0}
  end
end
return out
`)

// commitScript raises the counter of a Redlock node that the lease holds
// to the token the majority gave it (see Redlock.Acquire).
//
// KEYS[1]; ARGV: lease hash, token. Reply: 1 done, 0 not held.
var commitScript = newScript(luaNow + `
local h = redis.call('HMGET', KEYS[1], 'lh', 'exp', 'tok')
if not (h[1] == ARGV[1] and tonumber(h[2]) and tonumber(h[2]) > now) then return 0 end
if (tonumber(h[3]) or 0) < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], 'tok', ARGV[2]) end
return 1
`)

// sources are the scripts' texts, loaded into each server's cache when a
// provider opens.
var sources []string

func newScript(src string) *goredis.Script {
	sources = append(sources, src)
	return goredis.NewScript(src)
}
