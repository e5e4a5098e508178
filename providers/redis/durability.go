package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// Durability says how much a store may rely on its servers keeping
// their data, as the store URL's durability parameter gives it.
type Durability string

const (
	// DurabilityAOF (the default) requires every server to keep each
	// acknowledged write across a restart: appendonly yes with appendfsync
	// always or everysec, and no allkeys-* eviction, checked with CONFIG
	// GET when the provider opens (and, for a Redlock node that did not
	// answer then, before it is first used).
	DurabilityAOF Durability = "aof"
	// DurabilityNone skips the check: the store is labelled "best effort"
	// in /v1/health, because a restart without persistence or a failover
	// to a replica that missed the last writes can lose leases (two
	// holders) and, if the server's clock also reads earlier than before,
	// send fencing tokens back.
	DurabilityNone Durability = "none"
)

// fsyncOf checks the server's persistence settings in one round trip and
// returns its appendfsync policy ("always" or "everysec"). The error wraps
// ErrNotDurable when the server would lose acknowledged writes or does not
// let CONFIG GET say; other errors are the connection's (mapped).
func (n *node) fsyncOf(ctx context.Context) (string, error) {
	pipe := n.rdb.Pipeline()
	cmds := map[string]*goredis.MapStringStringCmd{}
	for _, k := range []string{"appendonly", "appendfsync", "maxmemory-policy"} {
		cmds[k] = pipe.ConfigGet(ctx, k)
	}
	n.calls.Add(1)
	_, err := pipe.Exec(ctx)
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		// CONFIG renamed away or not permitted (managed services, ACLs).
		return "", fmt.Errorf("%w: %s: CONFIG GET refused (%v), so persistence cannot be checked; use a server that allows it, or say durability=none", ErrNotDurable, n.addr, rerr)
	}
	if err != nil {
		return "", mapErr(n.addr, err)
	}
	get := func(k string) string { return cmds[k].Val()[k] }
	if get("appendonly") != "yes" {
		return "", fmt.Errorf("%w: %s has appendonly %q: a restart loses every lock and may send fencing tokens back (set appendonly yes, or say durability=none)", ErrNotDurable, n.addr, get("appendonly"))
	}
	fsync := get("appendfsync")
	if fsync != "always" && fsync != "everysec" {
		return "", fmt.Errorf("%w: %s has appendfsync %q: a crash of the machine can lose any amount of acknowledged writes (set appendfsync everysec or always, or say durability=none)", ErrNotDurable, n.addr, fsync)
	}
	if p := get("maxmemory-policy"); strings.HasPrefix(p, "allkeys-") {
		return "", fmt.Errorf("%w: %s has maxmemory-policy %q, which may evict lock records and their token counters (use noeviction or a volatile-* policy, or say durability=none)", ErrNotDurable, n.addr, p)
	}
	return fsync, nil
}
