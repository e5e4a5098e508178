// Package dynamodb stores hasp leases in an Amazon DynamoDB table, with
// exactly one conditional write per acquire, renew and release.
//
// Table: partition key "pk" (string), nothing else required; see
// CreateTable (`hasp store init --store dynamodb://TABLE`). One item per lock name:
//
//		pk        the lock's name
//		token     the fencing counter (N): the last token issued for the name
//		lease_id  the holder's lease id (absent when free)
//		expires_ms  the holder's expiry, Unix milliseconds, by the service's clock
//		ttl_ms    the granted TTL, for renewals that keep it
//		owner, metadata  as given (absent when empty)
//		gc        optional clean-up time for DynamoDB TTL, Unix seconds
//		released, released_1, released_2  random marks of the last three
//		          release calls, newest first (see Release)
//		permits   a semaphore's or lock-delayed mutex's permit table (see below)
//
//	  - Acquire: one UpdateItem, conditioned on "no lease_id, or expires_ms <=
//	    now", that writes the lease and increments token (ReturnValues
//	    ALL_NEW). When the condition fails the holder comes back in the
//	    ConditionalCheckFailedException (ReturnValuesOnConditionCheckFailure
//	    ALL_OLD); only a server that returns no item costs one more,
//	    strongly consistent, GetItem.
//	  - Renew: one UpdateItem conditioned on "lease_id = :id AND expires_ms >
//	    now"; without a new TTL it sets expires_ms = now + ttl_ms in the
//	    update expression itself.
//	  - Release: one UpdateItem with the same condition that removes the
//	    lease attributes but keeps the item, and with it the counter.
//
// Clock assumption: expiry is judged by the clock of the service instance
// that writes (Lambda hosts are NTP-synchronized, typically within a few
// milliseconds), measured from before the write is sent, so the reported
// expires_at is never later than the moment another instance may take the
// lock. Instances whose clocks differ by d can shorten a lease by d from a
// holder's point of view; the client SDK's safety margin (TTL/10, at least
// 250 ms) is there to cover that.
//
// # Semaphores and lock-delay
//
// The provider is a providers.PermitStore. A name used as a semaphore, or
// as a mutex whose lease asked for a lock-delay, keeps its permit table in
// its one item, in the attribute "permits" (providers.EncodePermitTable's
// JSON), and the item then looks held to the mutex path: lease_id
// "#permits", which no lease id matches (the service's have no "#", and
// Renew and Release refuse it), expires_ms the table's BusyUntil (0 when
// idle), token the name's one counter, owner, metadata and ttl_ms absent.
// So a plain Acquire of a busy table fails its usual condition and
// answers the table's Blocking error (permits_mismatch, or held while a
// lock-delay runs); of an idle table it takes the item over as an expired
// lease, keeping the counter and removing "permits". Status and List show
// the table's holders. The table counts only under lease_id "#permits":
// an older hasp that takes an idle table over leaves a stale one behind.
//
// Cost: a semaphore (or lock-delayed) acquire, renew or release is two
// requests when uncontended, one strongly consistent GetItem (LoadPermits)
// and one conditional UpdateItem (StorePermits); an acquire that finds
// every permit taken, the GetItem alone; each race lost to another writer,
// one more of each.
//
// Why it is safe: the UpdateItem's condition pins, as the GetItem read
// them, the attributes that between them every write changes: token (an
// acquire), expires_ms and ttl_ms (a renew), released (a release's random
// mark), permits (a table write) and lease_id, each equal or still
// absent; DynamoDB TTL removes them all, and a re-created item's counter
// starts above the old one's (see WithCleanup). DynamoDB checks a
// condition against the item's latest state and applies the write
// atomically with it, and a strongly consistent read returns that latest
// state, so a table is only ever written over the very item it was decided
// from (a write that left every pinned attribute as it was changed nothing
// the decision reads). Tokens of new permits continue the pinned counter,
// so they are known before the write and strictly increase across mutex
// and semaphore use of a name; the service grants one permit per write,
// so a table write, like an acquire, adds at most one to the counter and
// WithCleanup's argument holds. Pinning needs no change to the mutex
// path's writes, where a version attribute would have to be bumped by
// every one of them (by instances of an older hasp during a deploy too)
// and would restart after a TTL deletion; its price is that the request
// carries the table twice, pin and new value (bandwidth, not capacity;
// DynamoDB allows 2 MB of expression values). A write applied whose
// answer was lost, and that the SDK sends again, fails its condition:
// StorePermits answers ErrConflict and the service, reading again, finds
// its own grant, or its release's mark.
//
// Limits: an item holds at most 400 KB, names and values. A permit takes
// about 135 bytes encoded without owner or metadata, about 210 with short
// ones, and up to about 1,430 with the largest owner (255 bytes) and
// metadata (1,024 bytes), more when they need JSON escaping (<, >, & and
// control characters take 6 bytes). So 1,000 permits fit only with small
// owners and metadata (135 to 210 KB); with the largest, about 280 do
// (about 52 when every character escapes sixfold), and the write that
// would pass 400 KB fails with lock.ErrRecordTooLarge (HTTP 409
// record_too_large), leaving the table as it was.
// Throughput: a write costs one WCU per KB (rounded up) of the larger of
// the item before and after it, a strongly consistent read one RCU per
// 4 KB, and a name's item lives in one partition, which serves at most
// 1,000 WCU and 3,000 RCU per second. A semaphore whose table is under
// 1 KB (a few permits) allows about 1,000 writes per second, as a mutex;
// a 200 KB table costs 200 WCU per write and 50 RCU per read, so about
// five operations per second on that name, all instances together, and
// every operation rewrites the whole table. Many holders are better
// served by several names (permits sharded) than by one large semaphore.
//
// Store URL: "dynamodb://TABLE[?cleanup=720h]", with region, credentials
// and endpoint from the standard AWS environment (AWS_REGION, the default
// credential chain, AWS_ENDPOINT_URL_DYNAMODB for emulators).
package dynamodb

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

// Provider stores leases in one DynamoDB table.
type Provider struct {
	db      *dynamodb.Client
	table   string
	clock   lock.Clock
	cleanup time.Duration
	calls   atomic.Int64 // DynamoDB API calls, for providers.RequestCounter
	// scanBudget bounds the items one List reads (WithListScanBudget).
	scanBudget int32
}

var (
	_ providers.Provider       = (*Provider)(nil)
	_ providers.RequestCounter = (*Provider)(nil)
	_ providers.Provisioner    = (*Provider)(nil)
)

// Provision implements providers.Provisioner (`hasp store init`): it
// creates the table (CreateTable), with DynamoDB TTL on "gc" when the
// provider cleans up (WithCleanup, ?cleanup=), and waits until it is
// active. An existing table is left as it is.
func (p *Provider) Provision(ctx context.Context) error {
	return CreateTable(ctx, p.db, p.table, p.cleanup != 0)
}

// BackendRequests implements providers.RequestCounter: DynamoDB API calls
// made by lock operations (each may be retried by the SDK on throttling).
func (p *Provider) BackendRequests() int64 { return p.calls.Load() }

// Option configures a Provider.
type Option func(*Provider)

// WithClock sets the clock that judges expiry (default the system clock).
func WithClock(c lock.Clock) Option { return func(p *Provider) { p.clock = c } }

// MinCleanup is the shortest idle time after which WithCleanup lets
// DynamoDB delete a lock's item.
const MinCleanup = 24 * time.Hour

// WithCleanup writes the attribute "gc" (Unix seconds) on every write, set
// to now + after, for a DynamoDB TTL that deletes items idle that long.
// after must be at least MinCleanup, far beyond any lease (at most 1 h), so
// only idle items are deleted. Tokens stay strictly increasing across such a
// deletion, because a new item's tokens start above providers.TokenBase(now).
//
// Why tokens stay strictly increasing when DynamoDB TTL deletes an idle
// item and a later acquire creates it anew: an item created at time c
// starts at c·1000+1 and adds one per acquire. Every acquire is a write to
// that one item, and DynamoDB serves at most 1,000 writes per second to a
// single item (its partition's limit), that is at most one per
// millisecond; so when the item is deleted at time d its last token is at
// most c·1000 + (d−c) ≤ d·1000, and the new item, created at r > d, starts
// above r·1000 > d·1000. Deletion needs the item idle for at least
// MinCleanup (a day), which dwarfs any clock difference between service
// instances.
func WithCleanup(after time.Duration) Option { return func(p *Provider) { p.cleanup = after } }

// New returns a provider over table.
func New(db *dynamodb.Client, table string, opts ...Option) (*Provider, error) {
	p := &Provider{db: db, table: table, clock: lock.SystemClock{}, scanBudget: ListScanBudget}
	for _, o := range opts {
		o(p)
	}
	if p.cleanup != 0 && p.cleanup < MinCleanup {
		return nil, fmt.Errorf("dynamodb: cleanup must be at least %s", MinCleanup)
	}
	return p, nil
}

// Name returns "dynamodb".
func (p *Provider) Name() string { return "dynamodb" }

var names = map[string]string{
	"#lid": "lease_id", "#own": "owner", "#tok": "token", "#exp": "expires_ms",
	"#ttl": "ttl_ms", "#md": "metadata", "#gc": "gc",
	"#mk0": "released", "#mk1": "released_1", "#mk2": "released_2",
	"#pmt": "permits",
}

// exprNames returns the attribute names an expression uses.
func exprNames(exprs ...string) map[string]string {
	out := map[string]string{}
	all := strings.Join(exprs, " ")
	for k, v := range names {
		if strings.Contains(all, k) {
			out[k] = v
		}
	}
	return out
}

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}
func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func (p *Provider) key(name string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": str(name)}
}

// gc adds "gc" to a SET clause when clean-up is on.
func (p *Provider) gc(now time.Time, set []string, vals map[string]types.AttributeValue) []string {
	if p.cleanup == 0 {
		return set
	}
	vals[":gc"] = num(now.Add(p.cleanup).Unix())
	return append(set, "#gc = :gc")
}

func update(set, remove []string) string {
	var b strings.Builder
	if len(set) > 0 {
		b.WriteString("SET " + strings.Join(set, ", "))
	}
	if len(remove) > 0 {
		if b.Len() > 0 {
			b.WriteString(" ")
		}
		b.WriteString("REMOVE " + strings.Join(remove, ", "))
	}
	return b.String()
}

// heldCondition holds when lease :lid holds the item at :now.
const heldCondition = "#lid = :lid AND #exp > :now"

// conditionalUpdate sends the one UpdateItem of an operation on name: SET
// and REMOVE clauses (plus the clean-up attribute) under cond.
func (p *Provider) conditionalUpdate(ctx context.Context, name string, now time.Time, set, remove []string, cond string,
	vals map[string]types.AttributeValue, rv types.ReturnValue, onFail types.ReturnValuesOnConditionCheckFailure,
	optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	upd := update(p.gc(now, set, vals), remove)
	p.calls.Add(1)
	return p.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           &p.table,
		Key:                                 p.key(name),
		UpdateExpression:                    &upd,
		ConditionExpression:                 &cond,
		ExpressionAttributeNames:            exprNames(upd, cond),
		ExpressionAttributeValues:           vals,
		ReturnValues:                        rv,
		ReturnValuesOnConditionCheckFailure: onFail,
	}, optFns...)
}

// item is a decoded lock item.
type item struct {
	leaseID, owner, metadata string
	token, expMs, ttlMs      int64
	// permits is the encoded permit table (see permits.go); it counts
	// only while leaseID is tableLease.
	permits string
}

func decode(av map[string]types.AttributeValue) (item, error) {
	var it item
	getS := func(k string) string {
		if v, ok := av[k].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	getN := func(k string) (int64, error) {
		v, ok := av[k].(*types.AttributeValueMemberN)
		if !ok {
			return 0, nil
		}
		return strconv.ParseInt(v.Value, 10, 64)
	}
	it.leaseID, it.owner, it.metadata, it.permits = getS("lease_id"), getS("owner"), getS("metadata"), getS("permits")
	var err error
	if it.token, err = getN("token"); err != nil {
		return it, fmt.Errorf("dynamodb: bad token attribute: %w", err)
	}
	if it.expMs, err = getN("expires_ms"); err != nil {
		return it, fmt.Errorf("dynamodb: bad expires_ms attribute: %w", err)
	}
	if it.ttlMs, err = getN("ttl_ms"); err != nil {
		return it, fmt.Errorf("dynamodb: bad ttl_ms attribute: %w", err)
	}
	return it, nil
}

func (it item) expires() time.Time { return time.UnixMilli(it.expMs).UTC() }

// heldAt reports whether a lease holds the item at now.
func (it item) heldAt(now time.Time) bool { return it.leaseID != "" && it.expMs > now.UnixMilli() }

func (it item) lease(name string) lock.Lease {
	return lock.Lease{
		Name: name, Owner: it.owner, LeaseID: it.leaseID, FencingToken: it.token,
		TTL: time.Duration(it.ttlMs) * time.Millisecond, ExpiresAt: it.expires(), Metadata: it.metadata,
	}
}

func (it item) held(name string, now time.Time) *lock.HeldError {
	return &lock.HeldError{
		Name:       name,
		Holder:     lock.Holder{Owner: it.owner, FencingToken: it.token, ExpiresAt: it.expires(), Metadata: it.metadata},
		RetryAfter: max(it.expires().Sub(now), 0),
	}
}

// Acquire implements providers.Provider: one conditional UpdateItem. A
// busy permit table fails the condition as a live lease does and answers
// its Blocking error; an idle one is taken over, its table removed.
func (p *Provider) Acquire(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	var freed item
	for range 3 {
		now := p.clock.Now()
		vals := map[string]types.AttributeValue{
			":lid": str(req.LeaseID), ":exp": num(lock.ExpiresAt(now, req.TTL).UnixMilli()),
			":ttl": num(req.TTL.Milliseconds()), ":now": num(now.UnixMilli()),
			":base": num(providers.TokenBase(now)), ":one": num(1),
		}
		set := []string{"#lid = :lid", "#exp = :exp", "#ttl = :ttl", "#tok = if_not_exists(#tok, :base) + :one"}
		remove := []string{"#pmt"} // an idle permit table is taken over
		for _, f := range []struct{ name, val, ph string }{{"#own", req.Owner, ":own"}, {"#md", req.Metadata, ":md"}} {
			if f.val == "" {
				remove = append(remove, f.name)
			} else {
				vals[f.ph] = str(f.val)
				set = append(set, f.name+" = "+f.ph)
			}
		}
		out, err := p.conditionalUpdate(ctx, req.Name, now, set, remove, "attribute_not_exists(#lid) OR #exp <= :now", vals,
			types.ReturnValueAllNew, types.ReturnValuesOnConditionCheckFailureAllOld)
		if err == nil {
			it, err := decode(out.Attributes)
			if err != nil {
				return lock.Lease{}, err
			}
			return it.lease(req.Name), nil
		}
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			return lock.Lease{}, mapErr(err)
		}
		av, err := p.failedItem(ctx, req.Name, ccf)
		if err != nil {
			return lock.Lease{}, err
		}
		it, err := decode(av)
		if err != nil {
			return lock.Lease{}, err
		}
		if it.leaseID == req.LeaseID {
			// The SDK retried a write that had succeeded: the lock is ours.
			return it.lease(req.Name), nil
		}
		if it.heldAt(now) {
			t, err := it.permitTable()
			if err != nil {
				return lock.Lease{}, err
			}
			if t != nil {
				return lock.Lease{}, t.Blocking(req.Name, now, 0)
			}
			return lock.Lease{}, it.held(req.Name, p.clock.Now())
		}
		// Freed between the write and the read: try again.
		freed = it
	}
	// Held at each write, free at each read (only on a server that returns
	// no old item, under heavy contention): report it held until now.
	freed.expMs = p.clock.Now().UnixMilli()
	return lock.Lease{}, freed.held(req.Name, freed.expires())
}

// failedItem is the item that failed a write's condition: the one
// DynamoDB returned with the failure (ReturnValuesOnConditionCheckFailure),
// or, from a server that returns none, one strongly consistent read.
func (p *Provider) failedItem(ctx context.Context, name string, ccf *types.ConditionalCheckFailedException) (map[string]types.AttributeValue, error) {
	if len(ccf.Item) > 0 {
		return ccf.Item, nil
	}
	p.calls.Add(1)
	got, err := p.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &p.table, Key: p.key(name), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, mapErr(err)
	}
	return got.Item, nil
}

// Renew implements providers.Provider: one conditional UpdateItem.
//
// A renew whose answer was lost after it was applied is retried by the
// SDK with the same request: the lease still holds the item (the applied
// attempt extended it) so the retry passes the condition again and
// answers the lease, with the same token. A failed condition can only
// mean that, at the time the request was first built, the lease no longer
// held the item, or that someone else holds it now (which needs the lease
// to have ended): lease_lost is then the truth whatever an earlier attempt
// did, because a renew never frees the lock.
func (p *Provider) Renew(ctx context.Context, req lock.RenewRequest) (lock.Lease, error) {
	if req.LeaseID == tableLease {
		return lock.Lease{}, lock.ErrLeaseLost
	}
	now := p.clock.Now()
	vals := map[string]types.AttributeValue{":lid": str(req.LeaseID), ":now": num(now.UnixMilli())}
	set := []string{"#exp = :now + #ttl"}
	if req.TTL != 0 {
		vals[":exp"], vals[":ttl"] = num(lock.ExpiresAt(now, req.TTL).UnixMilli()), num(req.TTL.Milliseconds())
		set = []string{"#exp = :exp", "#ttl = :ttl"}
	}
	out, err := p.conditionalUpdate(ctx, req.Name, now, set, nil, heldCondition, vals, types.ReturnValueAllNew, "")
	if err != nil {
		return lock.Lease{}, mapErr(err)
	}
	it, err := decode(out.Attributes)
	if err != nil {
		return lock.Lease{}, err
	}
	return it.lease(req.Name), nil
}

// releaseMarks are the attributes that keep the marks of the last
// releases of a name, newest first (see Release).
var releaseMarks = []string{"#mk0", "#mk1", "#mk2"}

// Release implements providers.Provider: one conditional UpdateItem that
// keeps the item (and its token counter).
//
// A release whose answer is lost after DynamoDB applied it (a reset, a
// timeout, a 500) is retried by the SDK; the retry's condition then fails,
// although the release went through, and meanwhile any other instance may
// have acquired the freed lock, and released it again. So that the retry
// still answers released, every release writes a random mark of its call,
// and the item keeps the marks of its last len(releaseMarks) releases
// (acquires leave them alone): a failed condition whose item carries this
// call's mark proves that an earlier attempt of this call was applied,
// whatever happened to the item since. Without the mark:
//   - when the SDK sent one attempt, the failed condition is the answer:
//     lease_lost;
//   - when it sent more than one, an earlier attempt may have been
//     applied and its mark pushed out by as many later releases: the
//     outcome is unknown (unavailable), never a false lease_lost. A lease
//     that really ended before the release still answers lease_lost to the
//     client's next try.
func (p *Provider) Release(ctx context.Context, req lock.ReleaseRequest) error {
	if req.LeaseID == tableLease {
		return lock.ErrLeaseLost
	}
	now := p.clock.Now()
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	mark := base64.RawURLEncoding.EncodeToString(nonce[:])
	vals := map[string]types.AttributeValue{":lid": str(req.LeaseID), ":now": num(now.UnixMilli()), ":rel": str(mark), ":none": str("")}
	// DynamoDB evaluates every right-hand side on the item before the
	// update, so this shifts the marks by one.
	set := []string{releaseMarks[0] + " = :rel"}
	for i := 1; i < len(releaseMarks); i++ {
		set = append(set, fmt.Sprintf("%s = if_not_exists(%s, :none)", releaseMarks[i], releaseMarks[i-1]))
	}
	attempts := 0
	_, err := p.conditionalUpdate(ctx, req.Name, now, set, []string{"#lid", "#own", "#md", "#exp", "#ttl"}, heldCondition, vals,
		types.ReturnValueNone, types.ReturnValuesOnConditionCheckFailureAllOld, countAttempts(&attempts))
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return mapErr(err)
	}
	av, ferr := p.failedItem(ctx, req.Name, ccf)
	if ferr != nil {
		return ferr
	}
	for _, m := range releaseMarks {
		if rel, ok := av[names[m]].(*types.AttributeValueMemberS); ok && rel.Value == mark {
			return nil // an earlier attempt of this call was applied
		}
	}
	if attempts > 1 {
		return lock.Unavailable(fmt.Errorf("dynamodb: release of %q retried %d times: whether an earlier attempt was applied is unknown", req.Name, attempts-1), 0)
	}
	return mapErr(err)
}

// countAttempts is a per-operation option that counts the attempts the
// SDK's retryer sends, into n (a middleware after the retry middleware
// runs once per attempt).
func countAttempts(n *int) func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("haspCountAttempts",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					*n++
					return next.HandleFinalize(ctx, in)
				}), middleware.After)
		})
	}
}

// Status implements providers.Provider with one strongly consistent read.
func (p *Provider) Status(ctx context.Context, name string) (lock.Status, error) {
	now := p.clock.Now()
	p.calls.Add(1)
	got, err := p.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &p.table, Key: p.key(name), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return lock.Status{}, mapErr(err)
	}
	it, err := decode(got.Item)
	if err != nil {
		return lock.Status{}, err
	}
	t, err := it.permitTable()
	if err != nil {
		return lock.Status{}, err
	}
	if t != nil {
		return t.Status(name, now), nil
	}
	if !it.heldAt(now) {
		return lock.Status{Name: name}, nil
	}
	return lock.Status{Name: name, Held: true, Holder: it.held(name, now).Holder}, nil
}

// Ping implements providers.Provider: DescribeTable, which costs no
// capacity.
func (p *Provider) Ping(ctx context.Context) error {
	p.calls.Add(1)
	_, err := p.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &p.table})
	return mapErr(err)
}

// Close implements providers.Provider; the SDK client holds nothing to
// close.
func (p *Provider) Close() error { return nil }

// mapErr maps DynamoDB and transport errors to the lock package's
// sentinels. A failed condition on renew or release means the lease does
// not hold the lock.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return lock.ErrLeaseLost
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded", "LimitExceededException":
			return lock.Throttled(fmt.Errorf("dynamodb: %w", err), time.Second)
		case "InternalServerError", "ServiceUnavailable", "ResourceNotFoundException", "TransactionConflictException":
			return lock.Unavailable(fmt.Errorf("dynamodb: %w", err), time.Second)
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return lock.Unavailable(fmt.Errorf("dynamodb: %w", err), time.Second)
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		// The write may have been applied: the outcome is unknown.
		return lock.Unavailable(fmt.Errorf("dynamodb: %w", err), time.Second)
	}
	return fmt.Errorf("dynamodb: %w", err)
}

// ListScanBudget is the default bound on the items one List call reads
// from the table (the Scan's Limit, summed over the Scan calls of one
// List); see WithListScanBudget.
const ListScanBudget = 1000

// WithListScanBudget bounds the items one List call (one page of GET
// /v1/locks?prefix=) reads from the table to n (default ListScanBudget;
// n < 1 means the default). Each item read costs read capacity whether
// it is listed or not.
func WithListScanBudget(n int) Option {
	return func(p *Provider) {
		if n >= 1 {
			p.scanBudget = int32(min(n, 1<<30))
		}
	}
}

var _ providers.Lister = (*Provider)(nil)

// List implements providers.Lister with a Scan, because the table's only
// key is the name (a hash key: DynamoDB can neither range over it nor
// return it in order). The Scan filters on begins_with(pk, prefix) and a
// live lease, is strongly consistent, and reads at most ListScanBudget items
// per call (one or more Scan requests); filtered-out items are read and
// paid for all the same. So a complete listing costs O(table) read
// capacity (every item of the table, held or not, once, at 1 RCU per 4 KB
// strongly consistent, items are ~100 bytes), spread over pages that read
// at most ListScanBudget items each (WithListScanBudget): a page may hold fewer than limit locks, even
// none, and still have a next page. Names come in the table's hash order,
// not sorted. The continuation is the name of the last item read, the
// Scan's ExclusiveStartKey. A table with many idle names and frequent
// listings would want a sparse GSI on held items instead; see the README.
func (p *Provider) List(ctx context.Context, prefix string, limit int, after string) ([]lock.Status, string, error) {
	var start map[string]types.AttributeValue
	if after != "" {
		// Any item's key: the last one read may lie outside the prefix.
		if lock.ValidateName(after) != nil {
			return nil, "", lock.Invalid("page_token", "is not a page token of this listing")
		}
		start = p.key(after)
	}
	now := p.clock.Now()
	filter := "#lid <> :empty AND #exp > :now"
	vals := map[string]types.AttributeValue{":now": num(now.UnixMilli()), ":empty": str("")}
	if prefix != "" {
		filter = "begins_with(pk, :p) AND " + filter
		vals[":p"] = str(prefix)
	}
	proj := "pk, #tok, #lid, #own, #md, #exp, #pmt"
	var out []lock.Status
	budget := p.scanBudget
	for budget > 0 {
		p.calls.Add(1)
		resp, err := p.db.Scan(ctx, &dynamodb.ScanInput{
			TableName:                 &p.table,
			FilterExpression:          &filter,
			ProjectionExpression:      &proj,
			ExpressionAttributeNames:  exprNames(filter, proj),
			ExpressionAttributeValues: vals,
			ExclusiveStartKey:         start,
			Limit:                     aws.Int32(budget),
			ConsistentRead:            aws.Bool(true),
		})
		if err != nil {
			return nil, "", mapErr(err)
		}
		budget -= resp.ScannedCount
		for _, av := range resp.Items {
			it, err := decode(av)
			if err != nil {
				return nil, "", err
			}
			pk, _ := av["pk"].(*types.AttributeValueMemberS)
			if pk == nil || !it.heldAt(now) {
				continue
			}
			t, err := it.permitTable()
			switch {
			case err != nil:
				return nil, "", err
			case t != nil:
				st := t.Status(pk.Value, now)
				if !st.Held {
					continue // only lock-delayed permits
				}
				out = append(out, st)
			default:
				out = append(out, lock.Status{Name: pk.Value, Held: true, Holder: it.held(pk.Value, now).Holder})
			}
			if len(out) == limit {
				// Resume right after this item, in the table's order.
				return out, pk.Value, nil
			}
		}
		if len(resp.LastEvaluatedKey) == 0 {
			return out, "", nil
		}
		start = resp.LastEvaluatedKey
		if resp.ScannedCount == 0 {
			break
		}
	}
	last, _ := start["pk"].(*types.AttributeValueMemberS)
	if last == nil {
		return out, "", nil
	}
	return out, last.Value, nil
}
