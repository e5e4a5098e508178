package dynamodb_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers/dynamodb"
	"github.com/hasplock/hasp/service"
)

const (
	getItem    = "DynamoDB_20120810.GetItem"
	updateItem = "DynamoDB_20120810.UpdateItem"
)

// TestPermitRequestCounts: a semaphore acquire, renew and release cost two
// requests each when uncontended: one consistent GetItem (LoadPermits) and
// one conditional UpdateItem (StorePermits). An acquire that finds every
// permit taken costs the read alone; a plain acquire of a busy table costs
// its one UpdateItem (moto returns the table with the failed condition);
// a status is one GetItem. A mutex acquire of the idle table takes the
// item over, counter and all, and removes the table.
func TestPermitRequestCounts(t *testing.T) {
	url := launch.Moto(t)
	cnt := &counter{ops: map[string]int{}}
	db := client(url, &http.Client{Transport: cnt})
	require.NoError(t, dynamodb.CreateTable(context.Background(), db, "counted", false))
	p, err := dynamodb.New(db, "counted")
	require.NoError(t, err)
	s := service.New(p)
	ctx := context.Background()
	var leases []lock.Lease
	for i := range 2 {
		cnt.reset()
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "sem", Permits: 2, Owner: "o"})
		require.NoError(t, err)
		assert.Equal(t, map[string]int{getItem: 1, updateItem: 1}, cnt.reset(), "acquire %d", i)
		leases = append(leases, l)
	}
	_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "sem", Permits: 2})
	require.ErrorIs(t, err, lock.ErrHeld)
	assert.Equal(t, map[string]int{getItem: 1}, cnt.reset(), "a full semaphore is seen in the read")
	_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "sem"})
	require.ErrorIs(t, err, lock.ErrPermitsMismatch)
	assert.Equal(t, map[string]int{updateItem: 1}, cnt.reset(), "the table comes back with the failed condition")
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "sem", LeaseID: leases[0].LeaseID})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{getItem: 1, updateItem: 1}, cnt.reset(), "renew")
	st, err := s.Status(ctx, "sem")
	require.NoError(t, err)
	assert.Len(t, st.Holders, 2)
	assert.Equal(t, map[string]int{getItem: 1}, cnt.reset(), "status")
	for i, l := range leases {
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "sem", LeaseID: l.LeaseID}))
		assert.Equal(t, map[string]int{getItem: 1, updateItem: 1}, cnt.reset(), "release %d", i)
	}

	m, err := s.Acquire(ctx, lock.AcquireRequest{Name: "sem"})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{updateItem: 1}, cnt.reset(), "a mutex takes the idle table over")
	assert.Equal(t, leases[1].FencingToken+1, m.FencingToken, "one counter")
	got, err := db.GetItem(ctx, &awsdb.GetItemInput{TableName: aws.String("counted"), Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "sem"}}, ConsistentRead: aws.Bool(true)})
	require.NoError(t, err)
	assert.NotContains(t, got.Item, "permits", "the takeover removed the table")
}

// TestPermitWriteRetriedAfterApplied: the SDK sends again a permit write
// whose answer was lost after DynamoDB applied it. The retry fails its
// condition (the first attempt changed the item), StorePermits answers
// ErrConflict, and the service, reading the item again, finds its own
// write: a release answers released (its mark is in the table), even when
// another instance took the freed permit in between, and a second release
// is lost; an acquire answers the permit it was granted.
func TestPermitWriteRetriedAfterApplied(t *testing.T) {
	servers := map[string]string{"moto": launch.Moto(t)}
	servers["dynalite"], _ = launch.Dynalite(t, "")
	// The release's table carries its mark: "r":[...] inside the JSON
	// string of the attribute, so with its quotes escaped.
	releaseWrite := []byte(`\"r\":[`)
	for server, u := range servers {
		require.NoError(t, dynamodb.CreateTable(context.Background(), client(u, nil), "retried", false))
		other, err := dynamodb.New(client(u, nil), "retried")
		require.NoError(t, err)
		others := service.New(other)
		ctx := context.Background()
		open := func(drop *dropFirstWrite) *service.Service {
			p, err := dynamodb.New(client(u, &http.Client{Transport: drop}), "retried")
			require.NoError(t, err)
			return service.New(p)
		}

		for _, take := range []bool{false, true} {
			name := server + ".release"
			if take {
				name += ".taken"
			}
			t.Run(name, func(t *testing.T) {
				var taken lock.Lease
				keep, err := others.Acquire(ctx, lock.AcquireRequest{Name: name, Permits: 2})
				require.NoError(t, err)
				drop := &dropFirstWrite{match: releaseWrite, between: func() {
					if take {
						l, err := others.TryAcquire(ctx, lock.AcquireRequest{Name: name, Permits: 2})
						require.NoError(t, err, "the release was applied: a permit is free")
						taken = l
					}
				}}
				s := open(drop)
				l, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Permits: 2})
				require.NoError(t, err)
				require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}), "the release went through")
				require.True(t, drop.dropped.Load(), "the first answer was lost")
				require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}), lock.ErrLeaseLost, "a second release is lost")
				st, err := s.Status(ctx, name)
				require.NoError(t, err)
				want := []int64{keep.FencingToken}
				if take {
					want = append(want, taken.FencingToken)
				}
				var got []int64
				for _, h := range st.Holders {
					got = append(got, h.FencingToken)
				}
				assert.Equal(t, want, got, "the retry left the other permits alone")
			})
		}

		t.Run(server+".acquire", func(t *testing.T) {
			name := server + ".acquire"
			drop := &dropFirstWrite{match: []byte(name)}
			s := open(drop)
			l, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Permits: 2})
			require.NoError(t, err, "the acquire went through")
			require.True(t, drop.dropped.Load(), "the first answer was lost")
			st, err := s.Status(ctx, name)
			require.NoError(t, err)
			require.Len(t, st.Holders, 1, "granted once")
			assert.Equal(t, l.FencingToken, st.Holders[0].FencingToken)
			assert.Equal(t, l.ExpiresAt, st.Holders[0].ExpiresAt)
			require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))
		})
	}
}
