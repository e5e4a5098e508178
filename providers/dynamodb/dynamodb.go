// Package dynamodb stores hasp leases in an Amazon DynamoDB table, with
// exactly one conditional write per acquire, renew and release.
//
// Table: partition key "pk" (string), nothing else required; see
// CreateTable (`hasp dynamodb create-table TABLE`). One item per lock name:
//
//		pk        the lock's name
//		token     the fencing counter (N): the last token issued for the name
//		lease_id  the holder's lease id (absent when free)
//		expires_ms  the holder's expiry, Unix milliseconds, by the service's clock
//		ttl_ms    the granted TTL, for renewals that keep it
//		owner, metadata  as given (absent when empty)
//		gc        optional clean-up time for DynamoDB TTL, Unix seconds
//		released  a random mark of the last release call (see Release)
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
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/internal/awsconfig"
)

func init() {
	providers.Register("dynamodb", Open)
}

// Open opens the provider for "dynamodb://TABLE[?cleanup=DURATION]".
func Open(ctx context.Context, u *url.URL) (providers.Provider, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("dynamodb: store URL %q names no table (dynamodb://TABLE)", u.Redacted())
	}
	var opts []Option
	if c := u.Query().Get("cleanup"); c != "" {
		d, err := time.ParseDuration(c)
		if err != nil {
			return nil, fmt.Errorf("dynamodb: cleanup=%q: %w", c, err)
		}
		opts = append(opts, WithCleanup(d))
	}
	cfg, err := awsconfig.Load(ctx, "DYNAMODB")
	if err != nil {
		return nil, fmt.Errorf("dynamodb: AWS configuration: %w", err)
	}
	return New(dynamodb.NewFromConfig(cfg), u.Host, opts...)
}

// Provider stores leases in one DynamoDB table.
type Provider struct {
	db      *dynamodb.Client
	table   string
	clock   lock.Clock
	cleanup time.Duration
	calls   atomic.Int64 // DynamoDB API calls, for providers.RequestCounter
}

var (
	_ providers.Provider       = (*Provider)(nil)
	_ providers.RequestCounter = (*Provider)(nil)
)

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
// deletion, because a new item's tokens start above lock.TokenBase(now).
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
	p := &Provider{db: db, table: table, clock: lock.SystemClock{}}
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
	"#ttl": "ttl_ms", "#md": "metadata", "#gc": "gc", "#rel": "released",
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
	vals map[string]types.AttributeValue, rv types.ReturnValue, onFail types.ReturnValuesOnConditionCheckFailure) (*dynamodb.UpdateItemOutput, error) {
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
	})
}

// item is a decoded lock item.
type item struct {
	leaseID, owner, metadata string
	token, expMs, ttlMs      int64
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
	it.leaseID, it.owner, it.metadata = getS("lease_id"), getS("owner"), getS("metadata")
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

// Acquire implements providers.Provider: one conditional UpdateItem.
func (p *Provider) Acquire(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	var freed item
	for range 3 {
		now := p.clock.Now()
		vals := map[string]types.AttributeValue{
			":lid": str(req.LeaseID), ":exp": num(lock.ExpiresAt(now, req.TTL).UnixMilli()),
			":ttl": num(req.TTL.Milliseconds()), ":now": num(now.UnixMilli()),
			":base": num(lock.TokenBase(now)), ":one": num(1),
		}
		set := []string{"#lid = :lid", "#exp = :exp", "#ttl = :ttl", "#tok = if_not_exists(#tok, :base) + :one"}
		var remove []string
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
		av := ccf.Item
		if len(av) == 0 {
			// This server does not return the old item: read it.
			p.calls.Add(1)
			got, err := p.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &p.table, Key: p.key(req.Name), ConsistentRead: aws.Bool(true)})
			if err != nil {
				return lock.Lease{}, mapErr(err)
			}
			av = got.Item
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

// Renew implements providers.Provider: one conditional UpdateItem.
func (p *Provider) Renew(ctx context.Context, req lock.RenewRequest) (lock.Lease, error) {
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

// Release implements providers.Provider: one conditional UpdateItem that
// keeps the item (and its token counter).
//
// The update also writes a mark of this call ("released", random), so
// that when the SDK retries a release whose answer was lost after it was
// applied, the retry's failed condition, which returns the item, shows the
// release went through. Another release of the same lease still answers
// lease_lost.
func (p *Provider) Release(ctx context.Context, req lock.ReleaseRequest) error {
	now := p.clock.Now()
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	mark := base64.RawURLEncoding.EncodeToString(nonce[:])
	vals := map[string]types.AttributeValue{":lid": str(req.LeaseID), ":now": num(now.UnixMilli()), ":rel": str(mark)}
	_, err := p.conditionalUpdate(ctx, req.Name, now, []string{"#rel = :rel"}, []string{"#lid", "#own", "#md", "#exp", "#ttl"}, heldCondition, vals,
		types.ReturnValueNone, types.ReturnValuesOnConditionCheckFailureAllOld)
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return mapErr(err)
	}
	av := ccf.Item
	if len(av) == 0 {
		// This server does not return the old item: read it.
		p.calls.Add(1)
		got, gerr := p.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &p.table, Key: p.key(req.Name), ConsistentRead: aws.Bool(true)})
		if gerr != nil {
			return mapErr(gerr)
		}
		av = got.Item
	}
	if rel, ok := av["released"].(*types.AttributeValueMemberS); ok && rel.Value == mark {
		if _, held := av["lease_id"]; !held {
			return nil
		}
	}
	return mapErr(err)
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
