package redis

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/hasplock/hasp/lock"
)

// node is one Redis server: the single server of a Provider, or one of a
// Redlock's masters. It runs the scripts and decodes their replies.
type node struct {
	rdb   *goredis.Client
	addr  string
	calls *atomic.Int64 // commands sent, shared by the provider's nodes
}

// reply is a decoded script reply.
type reply struct {
	ok        bool
	token     int64
	rep       int64 // reported expiry, Unix ms, service clock
	ttl       int64 // granted TTL, ms
	owner, md string
	left      int64  // ms until the server lets another acquirer in
	leaseHash string // the holder's lease hash (acquire and status)
	now       int64  // the server's clock at the script, Unix ms (held replies)
	table     string // the encoded permit table, when leaseHash is tableLease
}

// isTable reports whether the reply is of a hash holding a permit table.
func (r reply) isTable() bool { return r.leaseHash == tableLease }

func (r reply) expires() time.Time { return time.UnixMilli(r.rep).UTC() }

func (r reply) holder() lock.Holder {
	return lock.Holder{Owner: r.owner, FencingToken: r.token, ExpiresAt: r.expires(), Metadata: r.md}
}

func (r reply) lease(name, leaseID string) lock.Lease {
	return lock.Lease{
		Name: name, Owner: r.owner, LeaseID: leaseID, FencingToken: r.token,
		TTL: time.Duration(r.ttl) * time.Millisecond, ExpiresAt: r.expires(), Metadata: r.md,
	}
}

// held reports the holder. The retry hint is the time until the server
// lets another acquirer in, but no more than the time until the holder's
// reported expiry by now (the service's clock): API v1's "or less".
func (r reply) held(name string, now time.Time) *lock.HeldError {
	retry := min(time.Duration(r.left)*time.Millisecond, r.expires().Sub(now))
	return &lock.HeldError{Name: name, Holder: r.holder(), RetryAfter: max(retry, 0)}
}

// eval runs a script by its hash (EVALSHA), and by its text (EVAL) if the
// server does not have it (NOSCRIPT: it did not run), counting each.
func (n *node) eval(ctx context.Context, s *goredis.Script, keys []string, args ...any) *goredis.Cmd {
	n.calls.Add(1)
	cmd := s.EvalSha(ctx, n.rdb, keys, args...)
	if goredis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		n.calls.Add(1)
		cmd = s.Eval(ctx, n.rdb, keys, args...)
	}
	return cmd
}

// run runs a script and decodes an array reply.
func (n *node) run(ctx context.Context, s *goredis.Script, key string, args ...any) (reply, error) {
	v, err := n.eval(ctx, s, []string{key}, args...).Slice()
	if err != nil {
		return reply{}, mapErr(n.addr, err)
	}
	return decode(v)
}

// runInt runs a script whose reply is an integer.
func (n *node) runInt(ctx context.Context, s *goredis.Script, keys []string, args ...any) (int64, error) {
	v, err := n.eval(ctx, s, keys, args...).Int64()
	if err != nil {
		return 0, mapErr(n.addr, err)
	}
	return v, nil
}

func decode(v []any) (reply, error) {
	var r reply
	if len(v) == 0 {
		return r, fmt.Errorf("redis: empty script reply")
	}
	num := func(i int) (int64, error) {
		if i >= len(v) {
			return 0, nil
		}
		switch x := v[i].(type) {
		case int64:
			return x, nil
		case string:
			return strconv.ParseInt(x, 10, 64)
		case nil:
			return 0, nil
		}
		return 0, fmt.Errorf("redis: script reply %d is %T", i, v[i])
	}
	str := func(i int) string {
		if i < len(v) {
			if s, ok := v[i].(string); ok {
				return s
			}
		}
		return ""
	}
	ok, err := num(0)
	if err != nil {
		return r, err
	}
	r.ok = ok == 1
	if len(v) == 1 {
		return r, nil
	}
	for i, dst := range []*int64{&r.token, &r.rep, &r.ttl} {
		if *dst, err = num(i + 1); err != nil {
			return r, err
		}
	}
	r.owner, r.md = str(4), str(5)
	if r.left, err = num(6); err != nil {
		return r, err
	}
	r.leaseHash = str(7)
	if r.now, err = num(8); err != nil {
		return r, err
	}
	r.table = str(9)
	return r, nil
}

// acquire runs the acquire script for a new lease of req.
func (n *node) acquire(ctx context.Context, key, leaseHash string, req lock.AcquireRequest, before time.Time, hold time.Duration, seedUnitMs int64) (reply, error) {
	return n.run(ctx, acquireScript, key, leaseHash, req.TTL.Milliseconds(), hold.Milliseconds(),
		before.UnixMilli(), req.Owner, req.Metadata, seedUnitMs)
}

// renew runs the renew script; ttl 0 keeps the granted TTL. withDrift
// makes the node keep the lease for Redlock's drift allowance longer.
func (n *node) renew(ctx context.Context, key, leaseHash string, ttl time.Duration, withDrift bool, before time.Time) (reply, error) {
	d := 0
	if withDrift {
		d = 1
	}
	return n.run(ctx, renewScript, key, leaseHash, ttl.Milliseconds(), d, before.UnixMilli())
}

// release runs the release script with this call's mark key (see
// markKey); it reports whether the lease was released (now, or by the
// same call before).
func (n *node) release(ctx context.Context, key, markKey, leaseHash string, before time.Time) (bool, error) {
	v, err := n.runInt(ctx, releaseScript, []string{key, markKey}, leaseHash, before.UnixMilli(), ReleaseMarkTTL.Milliseconds())
	return v == 1, err
}

// status runs the status script.
func (n *node) status(ctx context.Context, key string) (reply, error) {
	return n.run(ctx, statusScript, key)
}

// commit raises the node's counter to token if the lease holds it.
func (n *node) commit(ctx context.Context, key, leaseHash string, token int64) (bool, error) {
	v, err := n.runInt(ctx, commitScript, []string{key}, leaseHash, token)
	return v == 1, err
}

// ping sends PING.
func (n *node) ping(ctx context.Context) error {
	n.calls.Add(1)
	return mapErr(n.addr, n.rdb.Ping(ctx).Err())
}

// loadScripts puts the scripts into the server's cache in one pipeline, so
// that the first operations need no EVAL fallback.
func (n *node) loadScripts(ctx context.Context) error {
	pipe := n.rdb.Pipeline()
	for _, src := range sources {
		pipe.ScriptLoad(ctx, src)
	}
	n.calls.Add(1)
	_, err := pipe.Exec(ctx)
	return mapErr(n.addr, err)
}

// ReleaseMarkTTL is how long the mark of a release call outlives it: the
// key prefix + "#rel:" + 128 random bits, written by the release script,
// so that the client's retry of that call (within its timeouts, seconds)
// finds it and answers released, whatever happened to the lock since.
// Lock names cannot contain '#', so a mark never meets a lock.
const ReleaseMarkTTL = 30 * time.Second

// markKey returns a fresh mark key for one release call.
func markKey(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return prefix + "#rel:" + base64.RawURLEncoding.EncodeToString(b[:])
}
