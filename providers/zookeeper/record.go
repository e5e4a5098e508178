package zookeeper

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

// record is the data of a lock's znode, as JSON.
type record struct {
	// V is the format version, 1.
	V int `json:"v"`
	// Name is the lock's name, for people reading the tree (the znode's
	// own name escapes '/').
	Name string `json:"name"`
	// Token is the last fencing token issued for the name.
	Token int64 `json:"token"`
	// Lease is the hex SHA-256 of the holder's lease id, "" when free: the
	// ensemble never holds a usable lease id.
	Lease    string `json:"lease,omitempty"`
	Owner    string `json:"owner,omitempty"`
	Metadata string `json:"md,omitempty"`
	// ExpMs is when the holder's lease ends, Unix milliseconds by the
	// clock of the instance that wrote it, from a time taken before the
	// write was sent; TTLms is its granted TTL.
	ExpMs int64 `json:"exp_ms,omitempty"`
	TTLms int64 `json:"ttl_ms,omitempty"`
	// Released marks the release call that freed the lock (a hash of the
	// lease id and a nonce of the call), so that a release whose answer
	// was lost can tell, by reading, that it was applied.
	Released string `json:"rel,omitempty"`
	// Permits is the permit table of a semaphore or lock-delayed mutex
	// (providers.EncodePermitTable), "" for a plain lease or a free lock.
	// A record holding one has Lease tableLease and ExpMs the table's
	// BusyUntil (see permits.go).
	Permits string `json:"permits,omitempty"`
}

const recordVersion = 1

// version is a znode's record as of one data version.
type version struct {
	rec   record
	ver   int32 // the znode's data version: the condition of the next write
	mzxid int64 // the zxid of the write that made this version
	mtime int64 // when the leader ordered that write, Unix ms by its clock
}

func (r record) expires() time.Time { return time.UnixMilli(r.ExpMs).UTC() }

// heldAt reports whether a lease holds the lock at now.
func (r record) heldAt(now time.Time) bool { return r.Lease != "" && r.ExpMs > now.UnixMilli() }

// acquired is r taken by req at now, with the next token; a permit table
// r held (idle, or the caller would not take it) is removed.
func (r record) acquired(req lock.AcquireRequest, now time.Time) record {
	r.Token++
	r.Lease, r.Owner, r.Metadata, r.Released, r.Permits = providers.HashLeaseID(req.LeaseID), req.Owner, req.Metadata, "", ""
	r.ExpMs, r.TTLms = lock.ExpiresAt(now, req.TTL).UnixMilli(), req.TTL.Milliseconds()
	return r
}

// renewed is r extended at now by ttl.
func (r record) renewed(ttl time.Duration, now time.Time) record {
	r.ExpMs, r.TTLms = lock.ExpiresAt(now, ttl).UnixMilli(), ttl.Milliseconds()
	return r
}

// released is r freed by the release call that mark identifies; the token
// stays.
func (r record) released(mark string) record {
	return record{V: recordVersion, Name: r.Name, Token: r.Token, Released: mark}
}

func (r record) lease(id string) lock.Lease {
	return lock.Lease{
		Name: r.Name, Owner: r.Owner, LeaseID: id, FencingToken: r.Token,
		TTL: time.Duration(r.TTLms) * time.Millisecond, ExpiresAt: r.expires(), Metadata: r.Metadata,
	}
}

// status is the status of the lock whose znode holds r, at now: from its
// permit table if it holds one.
func (r record) status(now time.Time) (lock.Status, error) {
	if r.Permits != "" {
		t, err := r.table()
		if err != nil {
			return lock.Status{}, err
		}
		return t.Status(r.Name, now), nil
	}
	if !r.heldAt(now) {
		return lock.Status{Name: r.Name}, nil
	}
	return lock.Status{Name: r.Name, Held: true, Holder: r.holder()}, nil
}

func (r record) holder() lock.Holder {
	return lock.Holder{Owner: r.Owner, FencingToken: r.Token, ExpiresAt: r.expires(), Metadata: r.Metadata}
}

func (r record) encode() []byte {
	b, _ := json.Marshal(r) // strings and integers always marshal
	return b
}

func decode(name string, data []byte, st *zk.Stat) (version, error) {
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return version{}, fmt.Errorf("zookeeper: the znode of lock %q does not hold a hasp record: %w", name, err)
	}
	if r.V != recordVersion || r.Name != name {
		return version{}, fmt.Errorf("zookeeper: the znode of lock %q holds a record of version %d for %q", name, r.V, r.Name)
	}
	return version{rec: r, ver: st.Version, mzxid: st.Mzxid, mtime: st.Mtime}, nil
}

// nodeName is the znode name of a lock name: the name itself, with '/'
// written %2F (a znode name is one path component), and the names "." and
// ".." (which ZooKeeper refuses as components) written with %2E. '%' is
// not a lock name character, so the mapping is one-to-one.
func nodeName(name string) string {
	n := strings.ReplaceAll(name, "/", "%2F")
	if n == "." || n == ".." {
		n = strings.ReplaceAll(n, ".", "%2E")
	}
	return n
}

// lockName is the lock name of a znode name, the inverse of nodeName; ok is
// false for a znode name that no lock name maps to (not hasp's).
func lockName(node string) (name string, ok bool) {
	name = node
	if node == "%2E" || node == "%2E%2E" {
		name = strings.ReplaceAll(node, "%2E", ".")
	} else {
		name = strings.ReplaceAll(node, "%2F", "/")
	}
	if lock.ValidateName(name) != nil || nodeName(name) != node {
		return "", false
	}
	return name, true
}
