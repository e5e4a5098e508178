package providers

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"time"
)

// Lease ids and tokens: what the service mints and what backends store.
// These helpers serve the service and the providers, never the thin
// client, so they live here rather than in package lock.

// NewLeaseID returns a fresh lease id, 24 bytes in URL-safe base64: the
// issue time in Unix milliseconds (6 bytes, for LeaseIssuedAt) and 144
// random bits.
func NewLeaseID() string {
	var b [24]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// LeaseIssuedAt returns when a lease id made by NewLeaseID (or
// PermitLeaseID) was issued, by
// the issuing instance's clock, so that any instance can measure how long
// a released lease was held. ok is false for ids it cannot read.
func LeaseIssuedAt(id string) (t time.Time, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(id, permitPrefix))
	if err != nil || len(b) != 24 {
		return time.Time{}, false
	}
	var ms [8]byte
	copy(ms[2:], b[:6])
	return time.UnixMilli(int64(binary.BigEndian.Uint64(ms[:]))), true
}

// TokenBase is the counter a backend gives a record it creates at now, so
// that the record's first token is TokenBase(now)+1: now in Unix
// milliseconds times 1000. A record takes at most one acquire a
// millisecond, so a record deleted (by clean-up, or by hand) and created
// again later starts above every token the old one could have reached.
// The tokens stay below MaxFencingToken until the year 2255. Each
// provider states why its records take no more than that.
func TokenBase(now time.Time) int64 { return now.UnixMilli() * 1000 }

// HashLeaseID is what a backend stores in place of a lease id: its
// SHA-256 in hex. Lease ids carry at least 128 random bits, so the hash
// needs no salt; being hex, it is safe inside a query or a condition.
func HashLeaseID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}
