package providers_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

func TestTokenBaseAndHash(t *testing.T) {
	now := time.UnixMilli(1_795_000_000_123)
	if got := providers.TokenBase(now); got != 1_795_000_000_123_000 || got >= lock.MaxFencingToken {
		t.Fatalf("TokenBase = %d", got)
	}
	h := providers.HashLeaseID("id")
	if len(h) != 64 || h == providers.HashLeaseID("id2") || h != providers.HashLeaseID("id") {
		t.Fatalf("HashLeaseID = %q", h)
	}
}

func TestLeaseIssuedAt(t *testing.T) {
	before := time.Now().Truncate(time.Millisecond)
	id := providers.NewLeaseID()
	after := time.Now()
	at, ok := providers.LeaseIssuedAt(id)
	require.True(t, ok)
	assert.False(t, at.Before(before) || at.After(after), "issued %v, between %v and %v", at, before, after)
	assert.Len(t, id, 32)
	for _, bad := range []string{"", "short", "!!!!", strings.Repeat("A", 33)} {
		_, ok := providers.LeaseIssuedAt(bad)
		assert.False(t, ok, bad)
	}
}
