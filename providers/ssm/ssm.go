package ssm

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsssm "github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

// Provider stores leases in Parameter Store, one parameter per lock name
// under a prefix (see the package documentation).
type Provider struct {
	api    *awsssm.Client
	prefix string
	clock  lock.Clock
	calls  atomic.Int64 // Parameter Store API calls, for providers.RequestCounter
	// listReads bounds the GetParameters requests of one List call
	// (WithListReadBudget).
	listReads int
}

var (
	_ providers.Provider       = (*Provider)(nil)
	_ providers.RequestCounter = (*Provider)(nil)
	_ providers.Guarantor      = (*Provider)(nil)
)

// Option configures a Provider.
type Option func(*Provider)

// WithClock sets the clock that judges expiry (default the system clock).
func WithClock(c lock.Clock) Option { return func(p *Provider) { p.clock = c } }

// New returns a provider that keeps its parameters under prefix (such as
// "/hasp/locks"; see CheckPrefix).
func New(client *awsssm.Client, prefix string, opts ...Option) (*Provider, error) {
	if err := CheckPrefix(prefix); err != nil {
		return nil, fmt.Errorf("ssm: %w", err)
	}
	p := &Provider{api: client, prefix: prefix, clock: lock.SystemClock{}, listReads: ListReadBudget}
	for _, o := range opts {
		o(p)
	}
	return p, nil
}

// Name returns "ssm".
func (p *Provider) Name() string { return "ssm" }

// Guarantee implements providers.Guarantor: status and lock_held answers
// come from eventually consistent reads.
func (p *Provider) Guarantee() string { return providers.GuaranteeStaleReads }

// BackendRequests implements providers.RequestCounter: Parameter Store API
// calls made by lock operations (each may be retried by the SDK).
func (p *Provider) BackendRequests() int64 { return p.calls.Load() }

// Close implements providers.Provider; the SDK client holds nothing to
// close.
func (p *Provider) Close() error { return nil }

// Parameter returns the name of lock name's parameter.
func (p *Provider) Parameter(name string) string { return p.prefix + "/" + Escape(name) }

const (
	// maxAttempts bounds the writes of one operation that lose a race.
	maxAttempts = 8
	// maxWalk is how far back a walk may go: Parameter Store keeps the last
	// 100 versions of a parameter.
	maxWalk = 100
	// unreadableRetries is how often a version not readable yet (reads are
	// eventually consistent) is asked for again before giving up.
	unreadableRetries = 3
)

// record is the value of one version of a lock's parameter.
type record struct {
	Prev  int64  `json:"p"`             // the version its writer read and computed it from; 0 creates the parameter
	Base  int64  `json:"b"`             // the chain's token base
	Op    string `json:"op"`            // acquire, renew, release or sync: for people reading the history
	Mark  string `json:"n"`             // random, one per write (a retried write repeats it)
	Lease string `json:"l,omitempty"`   // SHA-256 of the holder's lease id; empty when free
	Token int64  `json:"t,omitempty"`   // the holder's fencing token (the last one issued, when free)
	ExpMs int64  `json:"e,omitempty"`   // the holder's expiry, Unix milliseconds, by the service's clock
	TTLMs int64  `json:"ttl,omitempty"` // the granted TTL, for renewals that keep it
	Owner []byte `json:"o,omitempty"`   // base64 in JSON: Parameter Store refuses values with "{{"
	Meta  []byte `json:"m,omitempty"`
}

// effective reports whether r, found at version v, took effect.
func (r record) effective(v int64) bool { return r.Prev == v-1 }

func (r record) expires() time.Time { return time.UnixMilli(r.ExpMs).UTC() }

func (r record) lease(name, id string) lock.Lease {
	return lock.Lease{
		Name: name, Owner: string(r.Owner), LeaseID: id, FencingToken: r.Token,
		TTL: time.Duration(r.TTLMs) * time.Millisecond, ExpiresAt: r.expires(), Metadata: string(r.Meta),
	}
}

func decode(p *types.Parameter) (record, error) {
	var r record
	if p == nil || p.Value == nil {
		return r, errors.New("ssm: parameter without a value")
	}
	if err := json.Unmarshal([]byte(*p.Value), &r); err != nil {
		return r, fmt.Errorf("ssm: version %d of %s is not a hasp record: %w", p.Version, aws.ToString(p.Name), err)
	}
	return r, nil
}

func mark() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// state is a lock's state at version top: the record of the latest
// effective version at or below it.
type state struct {
	top int64  // the latest version known; 0: no parameter
	at  int64  // the effective version the state comes from; 0: none (free, no chain)
	rec record // the record at version at
}

// holds reports whether lease hash holds the state, expired or not.
func (s state) holds(hash string) bool { return s.at > 0 && s.rec.Lease == hash }

// held reports whether an unexpired lease holds the state at now.
func (s state) held(now time.Time) bool {
	return s.at > 0 && s.rec.Lease != "" && s.rec.ExpMs > now.UnixMilli()
}

// base is the token base for the next write: the chain's, or a new one.
func (s state) base(now time.Time) int64 {
	if s.at > 0 && s.rec.Base > 0 {
		return s.rec.Base
	}
	return providers.TokenBase(now)
}

func (s state) holder() lock.Holder {
	return lock.Holder{Owner: string(s.rec.Owner), FencingToken: s.rec.Token, ExpiresAt: s.rec.expires(), Metadata: string(s.rec.Meta)}
}

func (s state) heldError(name string, now time.Time) *lock.HeldError {
	return &lock.HeldError{Name: name, Holder: s.holder(), RetryAfter: max(s.rec.expires().Sub(now), 0)}
}

// load reads the latest version of param and the state at it. The read may
// be stale.
func (p *Provider) load(ctx context.Context, param string) (state, error) {
	p.calls.Add(1)
	out, err := p.api.GetParameter(ctx, &awsssm.GetParameterInput{Name: &param})
	var nf *types.ParameterNotFound
	if errors.As(err, &nf) {
		return state{}, nil
	}
	if err != nil {
		return state{}, mapErr(err)
	}
	return p.current(ctx, param, out.Parameter, nil)
}

// current returns the state at latest, a read of param's latest version
// (by GetParameter, or by GetParametersByPath when listing): latest's
// record if it is effective, else the latest effective version below it.
// w, when not nil, counts the reads of the walk back.
func (p *Provider) current(ctx context.Context, param string, latest *types.Parameter, w *walk) (state, error) {
	rec, err := decode(latest)
	if err != nil {
		return state{}, err
	}
	return p.settle(ctx, param, latest.Version, rec, state{}, w)
}

// walk is what a walk back read: the records (into seen, when not nil)
// and the number of GetParameters requests it sent.
type walk struct {
	seen  map[int64]record
	reads int
}

// settle returns the state at version top, whose record is rec: rec if it
// is effective, else the latest effective version below it. The state at
// below.top is below; versions at or under it are not read again. Records
// read are added to w.seen and requests counted in w.reads, when w is not
// nil.
func (p *Provider) settle(ctx context.Context, param string, top int64, rec record, below state, w *walk) (state, error) {
	if rec.effective(top) {
		return state{top: top, at: top, rec: rec}, nil
	}
	if below.top >= top {
		below = state{} // the parameter was deleted and created again: nothing below is known
	}
	for hi := top - 1; hi > below.top; {
		if top-hi >= maxWalk {
			return state{}, lock.Unavailable(fmt.Errorf("ssm: %s: no effective version among the %d kept below %d", param, maxWalk-1, top), time.Second)
		}
		lo := max(below.top+1, hi-9, top-maxWalk+1) // GetParameters takes 10 names
		recs, err := p.versions(ctx, param, lo, hi, w)
		if err != nil {
			return state{}, err
		}
		for v := hi; v >= lo; v-- {
			r := recs[v]
			if w != nil && w.seen != nil {
				w.seen[v] = r
			}
			if r.effective(v) {
				return state{top: top, at: v, rec: r}, nil
			}
		}
		hi = lo - 1
	}
	return state{top: top, at: below.at, rec: below.rec}, nil
}

// versions reads versions lo to hi of param. A version not found is asked
// for again (it may not be visible yet), then is an unavailable error:
// never guessed. Requests are counted in w.reads, when w is not nil.
func (p *Provider) versions(ctx context.Context, param string, lo, hi int64, w *walk) (map[int64]record, error) {
	recs := make(map[int64]record, hi-lo+1)
	for try := 0; ; try++ {
		var names []string
		for v := lo; v <= hi; v++ {
			if _, ok := recs[v]; !ok {
				names = append(names, param+":"+strconv.FormatInt(v, 10))
			}
		}
		if len(names) == 0 {
			return recs, nil
		}
		if try == unreadableRetries {
			return nil, lock.Unavailable(fmt.Errorf("ssm: versions of %s not readable: %v", param, names), 100*time.Millisecond)
		}
		if try > 0 {
			select {
			case <-ctx.Done():
				return nil, lock.Unavailable(fmt.Errorf("ssm: %w", ctx.Err()), 100*time.Millisecond)
			case <-time.After(time.Duration(try) * 25 * time.Millisecond):
			}
		}
		p.calls.Add(1)
		if w != nil {
			w.reads++
		}
		out, err := p.api.GetParameters(ctx, &awsssm.GetParametersInput{Names: names})
		if err != nil {
			return nil, mapErr(err)
		}
		for i := range out.Parameters {
			if v := out.Parameters[i].Version; v >= lo && v <= hi {
				r, err := decode(&out.Parameters[i])
				if err != nil {
					return nil, err
				}
				recs[v] = r
			}
		}
	}
}

// errExists means a create found the parameter there.
var errExists = errors.New("ssm: parameter exists")

// put writes rec as the next version of param and returns its number: a
// create (Overwrite=false) or an overwrite.
func (p *Provider) put(ctx context.Context, param string, rec record, overwrite bool) (int64, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	p.calls.Add(1)
	out, err := p.api.PutParameter(ctx, &awsssm.PutParameterInput{
		Name:      &param,
		Value:     aws.String(string(b)),
		Type:      types.ParameterTypeString,
		Tier:      types.ParameterTierStandard,
		Overwrite: aws.Bool(overwrite),
	})
	var exists *types.ParameterAlreadyExists
	if errors.As(err, &exists) {
		return 0, errExists
	}
	if err != nil {
		return 0, mapErr(err)
	}
	return out.Version, nil
}

// result is what a write learnt.
type result struct {
	next      state            // the state at the version the write created, not a possibly stale read
	effective bool             // the write took effect
	seen      map[int64]record // versions read to settle next
}

// write sends rec, computed from st (rec.Prev = st.top), and returns the
// state after it. A write that is not effective changed nothing; the state
// after it is then read from the versions it skipped.
//
// A record computed from no parameter (rec.Prev = 0) is a create. If the
// parameter exists after all (the read was stale, or another writer
// created it first), the same record is written as an overwrite: it lands
// on version 2 or later, so it is not effective, and the versions below it
// give the state, which a read of the latest version, possibly stale
// again, would not.
func (p *Provider) write(ctx context.Context, param string, st state, rec record) (result, error) {
	v, err := p.put(ctx, param, rec, rec.Prev > 0)
	if errors.Is(err, errExists) {
		v, err = p.put(ctx, param, rec, true)
	}
	if err != nil {
		return result{}, err
	}
	if rec.effective(v) {
		return result{next: state{top: v, at: v, rec: rec}, effective: true}, nil
	}
	w := &walk{seen: map[int64]record{}}
	next, err := p.settle(ctx, param, v, rec, st, w)
	return result{next: next, seen: w.seen}, err
}

// sync writes the state st back unchanged, to learn the state at a version
// this call wrote: renew and release answer lease_lost only from such a
// state, never from a read alone, which may be stale.
func (p *Provider) sync(ctx context.Context, param string, st state, now time.Time) (result, error) {
	rec := record{Base: st.base(now)}
	if st.at > 0 {
		rec = st.rec
	}
	rec.Prev, rec.Op, rec.Mark = st.top, "sync", mark()
	return p.write(ctx, param, st, rec)
}

// Acquire implements providers.Provider: one GetParameter and, when the
// lock is free, one PutParameter (see the package documentation).
func (p *Provider) Acquire(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	param, hash := p.Parameter(req.Name), providers.HashLeaseID(req.LeaseID)
	st, err := p.load(ctx, param)
	if err != nil {
		return lock.Lease{}, err
	}
	for attempt := range maxAttempts {
		now := p.clock.Now()
		if st.holds(hash) {
			// A write of this call went through (the SDK retried it).
			return st.rec.lease(req.Name, req.LeaseID), nil
		}
		if st.held(now) {
			return lock.Lease{}, st.heldError(req.Name, now)
		}
		base := st.base(now)
		rec := record{
			Prev: st.top, Base: base, Op: "acquire", Mark: mark(), Lease: hash, Token: base + st.top + 1,
			ExpMs: lock.ExpiresAt(now, req.TTL).UnixMilli(), TTLMs: req.TTL.Milliseconds(),
			Owner: []byte(req.Owner), Meta: []byte(req.Metadata),
		}
		res, err := p.write(ctx, param, st, rec)
		if err != nil {
			return lock.Lease{}, err
		}
		if res.effective {
			return rec.lease(req.Name, req.LeaseID), nil
		}
		if n, now := res.next, p.clock.Now(); n.holds(hash) {
			return n.rec.lease(req.Name, req.LeaseID), nil
		} else if n.held(now) {
			return lock.Lease{}, n.heldError(req.Name, now)
		}
		if st, err = p.retry(ctx, param, attempt, res.next); err != nil {
			return lock.Lease{}, err
		}
	}
	// Every write lost a race to another writer: report the lock held as
	// of now, so that a waiting acquire tries again.
	now := p.clock.Now()
	held := st.heldError(req.Name, now)
	if !st.held(now) {
		held.Holder.ExpiresAt, held.RetryAfter = now.UTC().Truncate(time.Millisecond), 0
	}
	return lock.Lease{}, held
}

// retry returns the state to try again from after a write lost a race and
// learnt the state after it (lost). It waits a random 0 to 5 ms times the
// attempt, so that racing writers spread out, then reads the latest
// version again, because the version the lost write landed on is not the
// latest when others lost the same race after it; but a stale read may be
// older than that version, so it keeps whichever of the two is later.
func (p *Provider) retry(ctx context.Context, param string, attempt int, lost state) (state, error) {
	select {
	case <-ctx.Done():
		return state{}, lock.Unavailable(fmt.Errorf("ssm: %w", ctx.Err()), 100*time.Millisecond)
	case <-time.After(time.Duration(mrand.Int64N(int64(5*time.Millisecond) * int64(attempt+1)))):
	}
	st, err := p.load(ctx, param)
	if err != nil || st.top > lost.top {
		return st, err
	}
	return lost, nil
}

// errContended means every write of a renew or release lost a race.
var errContended = errors.New("ssm: every write lost a race to another writer")

// Renew implements providers.Provider: one GetParameter and one
// PutParameter when the lease holds the lock.
//
// Renews of one lease that race each other (a retry beside the original)
// need not all win: a renew that loses to another renew of the same lease
// is done if that one extended the lease at least as far as this call
// would have, counted from the call's start, with at least its TTL.
func (p *Provider) Renew(ctx context.Context, req lock.RenewRequest) (lock.Lease, error) {
	start := p.clock.Now()
	param, hash := p.Parameter(req.Name), providers.HashLeaseID(req.LeaseID)
	st, err := p.load(ctx, param)
	if err != nil {
		return lock.Lease{}, err
	}
	pinned := false // st is the state at a version this call wrote
	for attempt := range maxAttempts {
		now := p.clock.Now()
		if !st.holds(hash) || !st.held(now) {
			if pinned {
				return lock.Lease{}, lock.ErrLeaseLost
			}
			res, err := p.sync(ctx, param, st, now)
			if err != nil {
				return lock.Lease{}, err
			}
			st, pinned = res.next, true
			continue
		}
		rec := st.rec
		rec.Prev, rec.Op, rec.Mark = st.top, "renew", mark()
		if req.TTL != 0 {
			rec.TTLMs = req.TTL.Milliseconds()
		}
		rec.ExpMs = lock.ExpiresAt(now, time.Duration(rec.TTLMs)*time.Millisecond).UnixMilli()
		res, err := p.write(ctx, param, st, rec)
		if err != nil {
			return lock.Lease{}, err
		}
		if res.effective {
			return rec.lease(req.Name, req.LeaseID), nil
		}
		n := res.next
		if !n.holds(hash) || !n.held(p.clock.Now()) {
			return lock.Lease{}, lock.ErrLeaseLost
		}
		if ttl := n.rec.TTLMs; (req.TTL == 0 || ttl >= req.TTL.Milliseconds()) &&
			n.rec.ExpMs >= lock.ExpiresAt(start, time.Duration(ttl)*time.Millisecond).UnixMilli() {
			return n.rec.lease(req.Name, req.LeaseID), nil
		}
		if st, err = p.retry(ctx, param, attempt, n); err != nil {
			return lock.Lease{}, err
		}
		pinned = false
	}
	return lock.Lease{}, lock.Unavailable(errContended, 100*time.Millisecond)
}

// Release implements providers.Provider: one GetParameter and one
// PutParameter (a free record) when the lease holds the lock.
//
// When the SDK retries a release whose first attempt was applied, the
// first attempt is version prev+1, effective, with this write's mark:
// reading it tells that the release went through. Another release of the
// same lease still answers lease_lost.
func (p *Provider) Release(ctx context.Context, req lock.ReleaseRequest) error {
	param, hash := p.Parameter(req.Name), providers.HashLeaseID(req.LeaseID)
	st, err := p.load(ctx, param)
	if err != nil {
		return err
	}
	pinned := false // st is the state at a version this call wrote
	for attempt := range maxAttempts {
		now := p.clock.Now()
		if !st.holds(hash) || !st.held(now) {
			if pinned {
				return lock.ErrLeaseLost
			}
			res, err := p.sync(ctx, param, st, now)
			if err != nil {
				return err
			}
			st, pinned = res.next, true
			continue
		}
		rec := record{Prev: st.top, Base: st.rec.Base, Op: "release", Mark: mark(), Token: st.rec.Token}
		res, err := p.write(ctx, param, st, rec)
		if err != nil {
			return err
		}
		if res.effective {
			return nil
		}
		n := res.next
		if !n.holds(hash) {
			// Either this release went through on an attempt the SDK
			// retried, or the lease was lost meanwhile.
			applied, err := p.applied(ctx, param, rec, res.seen)
			if err != nil || applied {
				return err
			}
			return lock.ErrLeaseLost
		}
		if !n.held(p.clock.Now()) {
			return lock.ErrLeaseLost
		}
		if st, err = p.retry(ctx, param, attempt, n); err != nil {
			return err
		}
		pinned = false
	}
	return lock.Unavailable(errContended, 100*time.Millisecond)
}

// applied reports whether rec took effect on an earlier attempt: whether
// version rec.Prev+1 carries its mark.
func (p *Provider) applied(ctx context.Context, param string, rec record, seen map[int64]record) (bool, error) {
	v := rec.Prev + 1
	r, ok := seen[v]
	if !ok {
		recs, err := p.versions(ctx, param, v, v, nil)
		if err != nil {
			return false, err
		}
		r = recs[v]
	}
	return r.Mark == rec.Mark && r.effective(v), nil
}

// Status implements providers.Provider with one GetParameter. The read may
// be stale (see the package documentation).
func (p *Provider) Status(ctx context.Context, name string) (lock.Status, error) {
	st, err := p.load(ctx, p.Parameter(name))
	if err != nil {
		return lock.Status{}, err
	}
	if !st.held(p.clock.Now()) {
		return lock.Status{Name: name}, nil
	}
	return lock.Status{Name: name, Held: true, Holder: st.holder()}, nil
}

// Ping implements providers.Provider: one GetParameter of PREFIX/_ping,
// which no lock's parameter is named; "not found" is an answer.
func (p *Provider) Ping(ctx context.Context) error {
	name := p.prefix + "/_ping"
	p.calls.Add(1)
	_, err := p.api.GetParameter(ctx, &awsssm.GetParameterInput{Name: &name})
	var nf *types.ParameterNotFound
	if errors.As(err, &nf) {
		return nil
	}
	return mapErr(err)
}
