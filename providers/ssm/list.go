package ssm

import (
	"context"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsssm "github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

var _ providers.Lister = (*Provider)(nil)

// ListReadBudget is the default bound on the GetParameters requests one
// List call may send to walk back the version chains of candidates whose
// latest version did not take effect; see WithListReadBudget.
const ListReadBudget = 10

// byPathPage is the most parameters one GetParametersByPath request
// answers (Parameter Store's maximum MaxResults).
const byPathPage = 10

// WithListReadBudget bounds the GetParameters requests one List call (one
// page of GET /v1/locks?prefix=) sends to walk back version chains to n
// (default ListReadBudget; n < 1 means the default). A page that spends it
// ends early, with a continuation.
func WithListReadBudget(n int) Option {
	return func(p *Provider) {
		if n >= 1 {
			p.listReads = n
		}
	}
}

// List implements providers.Lister. Parameter Store can neither filter
// GetParametersByPath by name nor start it at a name, and does not say in
// which order it answers, so every page enumerates every parameter under
// PREFIX (GetParametersByPath, not recursive, 10 parameters a request),
// keeps the lock names under prefix after the continuation, sorts them in
// byte order and computes each one's state as Status does, from the
// latest version the enumeration read: that record when it took effect,
// else a walk back over earlier versions (GetParameters, 10 versions a
// request), until limit held locks are found. Expiry is judged by the
// provider's clock.
//
// Cost per page: ⌈P/10⌉ GetParametersByPath requests, where P is the
// number of parameters under PREFIX (every lock name ever used, held or
// not, under any prefix: nothing is deleted), plus GetParameters requests
// for candidates whose latest version did not take effect (a lost race):
// once a page has sent ListReadBudget of them (WithListReadBudget) it
// computes no further candidate and ends with a continuation, so it may
// hold fewer than limit locks, even none (the walk under way finishes
// first: one walk is at most 10 requests, more only to retry versions not
// readable yet). Each page computes at least one candidate. A listing of
// locks whose latest writes took effect needs no GetParameters at all. All of these count
// against the account's and Region's shared read throughput (40
// transactions per second at the default throughput): 1,000 lock names
// cost 100 requests, 2.5 s of that whole budget, per page.
//
// Reads are eventually consistent, as for Status: a listing may still show
// a holder that has just released, or not yet one that has just acquired.
// The continuation is the last name whose state was computed.
func (p *Provider) List(ctx context.Context, prefix string, limit int, after string) ([]lock.Status, string, error) {
	if after != "" && (!strings.HasPrefix(after, prefix) || lock.ValidateName(after) != nil) {
		return nil, "", lock.Invalid("page_token", "is not a page token of this listing")
	}
	latest, err := p.enumerate(ctx, prefix)
	if err != nil {
		return nil, "", err
	}
	names := make([]string, 0, len(latest))
	for n := range latest {
		names = append(names, n)
	}
	slices.Sort(names)
	names = names[sort.SearchStrings(names, after):]
	if len(names) > 0 && names[0] == after {
		names = names[1:]
	}
	var (
		out []lock.Status
		w   walk
	)
	for i, n := range names {
		if i > 0 && w.reads >= p.listReads {
			// The budget is spent: the next page resumes after the last
			// name computed. Each page computes at least one name.
			return out, names[i-1], nil
		}
		st, err := p.current(ctx, p.Parameter(n), latest[n], &w)
		if err != nil {
			return nil, "", err
		}
		if !st.held(p.clock.Now()) {
			continue
		}
		out = append(out, lock.Status{Name: n, Held: true, Holder: st.holder()})
		if len(out) == limit {
			if i == len(names)-1 {
				return out, "", nil
			}
			return out, n, nil
		}
	}
	return out, "", nil
}

// enumerate reads the latest version of every lock parameter under PREFIX
// whose lock name starts with prefix, by lock name. Parameters that are no
// lock's (such as PREFIX/_ping) are left out.
func (p *Provider) enumerate(ctx context.Context, prefix string) (map[string]*types.Parameter, error) {
	latest := map[string]*types.Parameter{}
	in := &awsssm.GetParametersByPathInput{
		Path:       aws.String(p.prefix),
		Recursive:  aws.Bool(false),
		MaxResults: aws.Int32(byPathPage),
	}
	for {
		p.calls.Add(1)
		out, err := p.api.GetParametersByPath(ctx, in)
		if err != nil {
			return nil, mapErr(err)
		}
		for i := range out.Parameters {
			param := &out.Parameters[i]
			last, ok := strings.CutPrefix(aws.ToString(param.Name), p.prefix+"/")
			if !ok {
				continue
			}
			if n, ok := Unescape(last); ok && strings.HasPrefix(n, prefix) {
				latest[n] = param
			}
		}
		if aws.ToString(out.NextToken) == "" {
			return latest, nil
		}
		in.NextToken = out.NextToken
	}
}
