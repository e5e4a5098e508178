package providers

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/lock"
)

func TestGrantTokens(t *testing.T) {
	tests := []struct {
		name          string
		tokens        []int64 // the holders' tokens, 0 for new
		counter       int64
		want          []int64
		next, granted int64
		exhausted     bool
	}{
		{"none new", []int64{5, 6}, 6, []int64{5, 6}, 6, 0, false},
		{"one new", []int64{5, 0}, 6, []int64{5, 7}, 7, 7, false},
		{"two new, in order", []int64{0, 3, 0}, 10, []int64{11, 3, 12}, 12, 12, false},
		{"empty", nil, 4, nil, 4, 0, false},
		{"exhausted", []int64{0}, lock.MaxFencingToken - 1, nil, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in PermitTable
			for _, tok := range tt.tokens {
				in.Holders = append(in.Holders, Permit{Token: tok})
			}
			out, next, granted, err := in.GrantTokens(tt.counter)
			if tt.exhausted {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			var got []int64
			for _, p := range out.Holders {
				got = append(got, p.Token)
			}
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.next, next)
			assert.Equal(t, tt.granted, granted)
			for i, tok := range tt.tokens {
				assert.Equal(t, tok, in.Holders[i].Token, "the input table is not changed")
			}
		})
	}
}

func TestPermitTableTime(t *testing.T) {
	now := time.UnixMilli(1_000_000)
	ms := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	tab := PermitTable{Permits: 2, Holders: []Permit{
		{Lease: "a", Token: 1, ExpMs: ms(time.Second)},                     // live
		{Lease: "b", Token: 2, ExpMs: ms(-time.Second), DelayMs: 3000},     // lock-delayed until +2 s
		{Lease: "c", Token: 3, ExpMs: ms(-2 * time.Second), DelayMs: 1000}, // free since -1 s
		{Lease: "d", Token: 4, ExpMs: ms(-time.Millisecond)},               // expired, no delay
	}}
	assert.Equal(t, now.Add(2*time.Second).UTC(), tab.BusyUntil())
	pruned := tab.Prune(now)
	require.Len(t, pruned.Holders, 2, "c and d are free")
	assert.Len(t, tab.Holders, 4, "Prune leaves its input alone")

	st := tab.Status("n", now)
	assert.True(t, st.Held)
	assert.Equal(t, 2, st.Permits)
	require.Len(t, st.Holders, 1)
	assert.Equal(t, int64(1), st.Holder.FencingToken)
	require.Len(t, st.Delayed, 1)
	assert.Equal(t, now.Add(2*time.Second).UTC(), st.Delayed[0].FreeAt())

	held := tab.Held("n", now, 7)
	require.NotNil(t, held, "a live and a delayed permit take both")
	assert.Equal(t, int64(1), held.Holder.FencingToken, "the live one frees first")
	assert.Equal(t, time.Second, held.RetryAfter)
	assert.True(t, held.DelayedUntil.IsZero())
	assert.Nil(t, tab.Held("n", now.Add(1500*time.Millisecond), 7), "after a's expiry a permit is free")
	delayed := PermitTable{Permits: 1, Holders: tab.Holders[1:2]}.Held("n", now, 0)
	require.NotNil(t, delayed)
	assert.Equal(t, now.Add(2*time.Second).UTC(), delayed.DelayedUntil)
	assert.False(t, tab.Busy(now.Add(2*time.Second)))
	assert.Equal(t, lock.Status{Name: "n"}, tab.Status("n", now.Add(3*time.Second)), "an idle table is a free name")
}

func TestPermitTableEncoding(t *testing.T) {
	tab := PermitTable{Permits: 3, Holders: []Permit{{Lease: "h", Owner: "o", Metadata: "m", Token: 0, TTLms: 1000, ExpMs: 5, DelayMs: 7}}, Released: []string{"r"}}
	got, err := DecodePermitTable(EncodePermitTable(tab), 42)
	require.NoError(t, err)
	tab.Holders[0].Token = 42
	assert.Equal(t, tab, got, "a pending token is the one given")
	for _, bad := range []string{"", "{", `{"n":0}`, `{"n":1001}`, `{"n":2,"x":1}`} {
		_, err := DecodePermitTable(bad, 0)
		assert.ErrorIs(t, err, lock.ErrUnavailable, "%q", bad)
	}
	assert.True(t, IsPermitLeaseID(PermitLeaseID()))
	assert.False(t, IsPermitLeaseID(NewLeaseID()))
	_, ok := LeaseIssuedAt(PermitLeaseID())
	assert.True(t, ok, "a permit's lease id carries its issue time too")
}
