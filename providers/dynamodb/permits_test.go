package dynamodb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/api"
	haspclient "github.com/hasplock/hasp/client"
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

// TestRecordTooLargeOverHTTP: a semaphore whose holders carry the largest
// owners and metadata fills DynamoDB's 400 KB item; the acquire that would
// pass it answers 409 record_too_large with the API's error body (no
// DynamoDB text), the SDK reports lock.ErrRecordTooLarge without retrying,
// and the holders keep their permits.
func TestRecordTooLargeOverHTTP(t *testing.T) {
	url, _ := launch.Dynalite(t, "")
	db := client(url, nil)
	require.NoError(t, dynamodb.CreateTable(context.Background(), db, "large", false))
	p, err := dynamodb.New(db, "large")
	require.NoError(t, err)
	srv := httptest.NewServer(api.New(service.New(p)))
	defer srv.Close()
	c, err := haspclient.New(srv.URL)
	require.NoError(t, err)
	ctx := context.Background()
	opts := []haspclient.AcquireOption{haspclient.WithPermits(lock.MaxPermits), haspclient.WithAutoRenew(false),
		haspclient.WithOwner(strings.Repeat("<", lock.MaxOwnerLen)), haspclient.WithMetadata(strings.Repeat("\x01", lock.MaxMetadataLen))}
	held := 0
	for ; held < lock.MaxPermits; held++ {
		if _, err = c.Acquire(ctx, "big", opts...); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, lock.ErrRecordTooLarge)
	require.Greater(t, held, 10, "permits granted before the item was full")
	t.Logf("%d permits of the largest fit in a 400 KB item", held)

	body, err := json.Marshal(map[string]any{"name": "big", "permits": lock.MaxPermits,
		"owner": strings.Repeat("<", lock.MaxOwnerLen), "metadata": strings.Repeat("\x01", lock.MaxMetadataLen)})
	require.NoError(t, err)
	resp, err := http.Post(srv.URL+"/v1/locks/acquire", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusConflict, resp.StatusCode, "%s", raw)
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(raw, &e), "%s", raw)
	assert.Equal(t, "record_too_large", e.Error.Code)
	assert.NotContains(t, string(raw), "ValidationException", "backend text never leaks")
	st, err := c.Status(ctx, "big")
	require.NoError(t, err)
	assert.Len(t, st.Holders, held, "the holders keep their permits")
}
