package spanner_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	gspanner "cloud.google.com/go/spanner"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/local/testbed/spanneremu"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/spanner"
	"github.com/hasplock/hasp/service"
)

// oldDatabase creates a database whose lock table has the DDL of before
// semaphores: no permits column.
func oldDatabase(t *testing.T, e *spanneremu.Emulator) string {
	t.Helper()
	old := strings.Replace(spanner.DDL(spanner.DefaultTable)[0], "  permits BYTES(MAX),\n", "", 1)
	require.NotEqual(t, spanner.DDL(spanner.DefaultTable)[0], old)
	db, err := spanneremu.CreateDatabase(context.Background(), e.Addr, "hasp-test", "locks", fmt.Sprintf("old%d", dbSeq.Add(1)), []string{old})
	require.NoError(t, err)
	return db
}

// TestOldTableServesMutexes: on a table created before semaphores (no
// permits column) the mutex path, Status, List and Ping work as they did
// before them, at the same request counts once the provider has asked
// INFORMATION_SCHEMA about the column (its first call, one query more);
// semaphore and lock-delay acquires answer ErrUnsupported, saying how to
// add the column, and change nothing.
func TestOldTableServesMutexes(t *testing.T) {
	e := launch.Spanner(t)
	db := oldDatabase(t, e)
	p := open(t, e, db)
	defer p.Close()
	s := service.New(p)
	ctx := context.Background()
	before := p.BackendRequests()
	require.NoError(t, p.Ping(ctx), "health")
	first := p.BackendRequests() - before
	before = p.BackendRequests()
	require.NoError(t, p.Ping(ctx))
	assert.Equal(t, int64(1), p.BackendRequests()-before, "one query: the column is asked about once")
	assert.Greater(t, first, int64(1), "the first call asks INFORMATION_SCHEMA")

	count := func(what string, want int64, f func()) {
		t.Helper()
		before := p.BackendRequests()
		f()
		assert.Equal(t, want, p.BackendRequests()-before, what)
	}
	var l lock.Lease
	var err error
	count("acquire", 2, func() {
		l, err = s.Acquire(ctx, lock.AcquireRequest{Name: "a/n", Owner: "o", Metadata: "m", TTL: 5 * time.Second})
		require.NoError(t, err)
	})
	count("held acquire", 2, func() {
		_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "a/n"})
		var held *lock.HeldError
		require.ErrorAs(t, err, &held)
		assert.Equal(t, l.FencingToken, held.Holder.FencingToken)
		assert.Equal(t, "o", held.Holder.Owner)
	})
	count("renew", 2, func() {
		r, err := s.Renew(ctx, lock.RenewRequest{Name: "a/n", LeaseID: l.LeaseID})
		require.NoError(t, err)
		assert.Equal(t, l.FencingToken, r.FencingToken)
		assert.Equal(t, 5*time.Second, r.TTL)
	})
	count("status", 1, func() {
		st, err := s.Status(ctx, "a/n")
		require.NoError(t, err)
		require.True(t, st.Held)
		assert.Equal(t, "m", st.Holder.Metadata)
	})
	items, next, err := p.List(ctx, "a/", 10, "")
	require.NoError(t, err)
	assert.Empty(t, next)
	require.Len(t, items, 1)
	assert.Equal(t, l.FencingToken, items[0].Holder.FencingToken)
	count("release", 2, func() {
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "a/n", LeaseID: l.LeaseID}))
	})
	require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: "a/n", LeaseID: l.LeaseID}), lock.ErrLeaseLost)
	m, err := s.Acquire(ctx, lock.AcquireRequest{Name: "a/n"})
	require.NoError(t, err)
	assert.Greater(t, m.FencingToken, l.FencingToken)

	for _, req := range []lock.AcquireRequest{{Name: "sem", Permits: 3}, {Name: "sem", LockDelay: time.Second}} {
		_, err = s.Acquire(ctx, req)
		require.ErrorIs(t, err, providers.ErrUnsupported)
		assert.Contains(t, err.Error(), "hasp store init --store spanner://"+db+"`")
		assert.Contains(t, err.Error(), spanner.AddPermitsColumn(spanner.DefaultTable))
	}
	_, err = p.LoadPermits(ctx, "sem")
	require.ErrorIs(t, err, providers.ErrUnsupported)
	_, err = p.StorePermits(ctx, "sem", providers.PermitRecord{}, providers.PermitTable{Permits: 2, Holders: []providers.Permit{{Lease: "x"}}})
	require.ErrorIs(t, err, providers.ErrUnsupported)
	st, err := s.Status(ctx, "sem")
	require.NoError(t, err)
	assert.False(t, st.Held, "the refused acquires left nothing behind")
}

// TestOldTableUpgrade: once CreateSchema (`hasp store init`) has added the
// column, a new provider serves semaphores at once, and one that found the
// column missing does after it asks again (at most once per interval), or
// as soon as it reads a permit table written by another; the rows keep
// their tokens.
func TestOldTableUpgrade(t *testing.T) {
	e := launch.Spanner(t)
	ctx := context.Background()
	db := oldDatabase(t, e)
	old := open(t, e, db)
	defer old.Close()
	olds := service.New(old)
	m, err := olds.Acquire(ctx, lock.AcquireRequest{Name: "n"})
	require.NoError(t, err)
	_, err = olds.Acquire(ctx, lock.AcquireRequest{Name: "s", Permits: 2})
	require.ErrorIs(t, err, providers.ErrUnsupported)

	created, err := spanner.CreateSchema(ctx, db, spanner.DefaultTable, e.ClientOptions()...)
	require.NoError(t, err)
	assert.False(t, created, "the table was there")
	created, err = spanner.CreateSchema(ctx, db, spanner.DefaultTable, e.ClientOptions()...)
	require.NoError(t, err)
	assert.False(t, created)

	_, err = olds.Acquire(ctx, lock.AcquireRequest{Name: "s", Permits: 2})
	require.ErrorIs(t, err, providers.ErrUnsupported, "asked less than an interval ago")

	p := open(t, e, db)
	defer p.Close()
	s := service.New(p)
	require.NoError(t, p.Ping(ctx))
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "s", Permits: 2})
	require.NoError(t, err, "a new provider finds the column")
	_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
	require.ErrorIs(t, err, lock.ErrHeld, "the old provider's lease holds")
	require.NoError(t, olds.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: m.LeaseID}))
	n, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n", Permits: 2})
	require.NoError(t, err)
	assert.Greater(t, n.FencingToken, m.FencingToken, "the row kept its token")

	// The old provider reads the permit table that the new one wrote:
	// the column is there.
	r, err := olds.Renew(ctx, lock.RenewRequest{Name: "s", LeaseID: l.LeaseID})
	require.NoError(t, err)
	assert.Equal(t, l.FencingToken, r.FencingToken)
	st, err := olds.Status(ctx, "s")
	require.NoError(t, err)
	assert.Equal(t, 2, st.Permits, "the old provider reads the table now")

	// Another that found the column missing asks again after the interval.
	db2 := oldDatabase(t, e)
	other := open(t, e, db2)
	defer other.Close()
	others := service.New(other)
	_, err = others.Acquire(ctx, lock.AcquireRequest{Name: "s", Permits: 2})
	require.ErrorIs(t, err, providers.ErrUnsupported)
	_, err = spanner.CreateSchema(ctx, db2, spanner.DefaultTable, e.ClientOptions()...)
	require.NoError(t, err)
	_, err = others.Acquire(ctx, lock.AcquireRequest{Name: "s", Permits: 2})
	require.ErrorIs(t, err, providers.ErrUnsupported, "asked less than an interval ago")
	spanner.SetRecheckInterval(other, 0)
	_, err = others.Acquire(ctx, lock.AcquireRequest{Name: "s", Permits: 2})
	require.NoError(t, err, "asked again")
}

// TestStalePermitsIgnored: a row whose permits column holds a table but
// whose lease_id is a lease's (left by a writer that did not know the
// column, such as a version before semaphores taking over an idle table)
// is that lease's: the table is ignored by acquires, Status and List.
func TestStalePermitsIgnored(t *testing.T) {
	e := launch.Spanner(t)
	ctx := context.Background()
	db := database(t, e)
	c, err := gspanner.NewClient(ctx, db, e.ClientOptions()...)
	require.NoError(t, err)
	defer c.Close()
	past := time.Now().Add(-time.Minute)
	stale := providers.EncodePermitTable(providers.PermitTable{Permits: 2, Holders: []providers.Permit{{Lease: providers.HashLeaseID("gone"), Token: 7, TTLms: 1000, ExpMs: past.UnixMilli()}}})
	_, err = c.Apply(ctx, []*gspanner.Mutation{gspanner.InsertOrUpdate(spanner.DefaultTable,
		[]string{"name", "token", "lease_id", "owner", "expires_at", "updated_at", "permits"},
		[]any{"x/n", int64(9), providers.HashLeaseID("live"), "o", time.Now().Add(time.Minute), gspanner.CommitTimestamp, []byte(stale)})})
	require.NoError(t, err)

	p := open(t, e, db)
	defer p.Close()
	s := service.New(p)
	_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "x/n"})
	var held *lock.HeldError
	require.ErrorAs(t, err, &held)
	assert.Equal(t, int64(9), held.Holder.FencingToken)
	_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "x/n", Permits: 2})
	require.ErrorIs(t, err, lock.ErrPermitsMismatch, "the mutex lease holds it")
	st, err := s.Status(ctx, "x/n")
	require.NoError(t, err)
	assert.True(t, st.Held)
	assert.Equal(t, "o", st.Holder.Owner)
	items, _, err := p.List(ctx, "x/", 10, "")
	require.NoError(t, err)
	require.Len(t, items, 1)
	assert.Equal(t, int64(9), items[0].Holder.FencingToken)
}
