package service

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.opentelemetry.io/otel/trace"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

// DefaultWatchPoll is the longest pause between two status reads of a
// watch on a provider that cannot watch (DynamoDB, Spanner, Cosmos DB,
// SSM). A polling watch pauses as a waiting acquire does, starting short
// and doubling: its pauses are drawn uniformly from [5, 10], [10, 20],
// [20, 40] ms and then [d/2, d] for d = DefaultWatchPoll (jittered, so that
// many watches spread their reads). So a watch notices a change made soon
// after it began (a release, and the grant to a waiter that follows it: a
// change of leader is two changes in a row, and an observer watches again
// right after the first) within a few milliseconds plus one read, no later
// than a waiting acquire of the same age notices a release; one that has
// waited longer polls about 1/(0.75·80 ms) ≈ 17 times a second. A change
// made through this same instance wakes its watches at once.
const DefaultWatchPoll = 80 * time.Millisecond

// WithWatchPoll sets the longest pause between status reads of a watch on
// a provider that cannot watch (default DefaultWatchPoll); pauses start
// at 5 to 10 ms and double up to [d/2, d]. A settled watch costs about
// 1/(0.75·d) status reads a second. d below 10 ms is taken as 10 ms.
func WithWatchPoll(d time.Duration) Option {
	return func(s *Service) { s.watchPoll = max(d, 2*minWatchPause) }
}

// minWatchPause is the shortest pause between two status reads of a
// polling watch.
const minWatchPause = 5 * time.Millisecond

// watchPauses returns the pauses of one polling watch (see
// DefaultWatchPoll): exponential from [5, 10] ms up to [d/2, d], jittered.
func (s *Service) watchPauses() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	// A pause is drawn from interval·[2/3, 4/3]: from ¾ of the bound it
	// spans [bound/2, bound].
	b.InitialInterval = min(3*2*minWatchPause/4, 3*s.watchPoll/4)
	b.MaxInterval = 3 * s.watchPoll / 4
	b.Multiplier, b.RandomizationFactor = 2, 1.0/3
	return b
}

// WatchObserver is an optional interface of an Observer (see WithObserver)
// that is told of watches. Calls must be fast and must not block.
type WatchObserver interface {
	// ObserveWatchStart reports that a watch began.
	ObserveWatchStart(ctx context.Context)
	// ObserveWatchEnd reports that a watch ended: whether it answered
	// with a change of holder, and its error.
	ObserveWatchEnd(ctx context.Context, changed bool, err error)
}

// token is the fencing token of st's holder, 0 when nobody holds it.
func token(st lock.Status) int64 {
	if !st.Held {
		return 0
	}
	return st.Holder.FencingToken
}

// Watch answers as soon as the holder of name differs from the one with
// fencing token after (0: nobody): a lease was granted, released, expired
// or taken over. It waits at most wait (0 to lock.MaxWait; 0 answers at
// once) and returns the status then, and whether the holder differs from
// after (changed). On a provider that is a providers.HolderWatcher the
// wait is woken by the backend; otherwise the status is read again after
// jittered pauses that start short and grow to WithWatchPoll's (see
// DefaultWatchPoll) and never run past the holder's expiry,
// and at once when a lease of name is acquired or released through this
// service. ctx bounds the whole call.
func (s *Service) Watch(ctx context.Context, name string, after int64, wait time.Duration) (st lock.Status, changed bool, err error) {
	if err := lock.ValidateName(name); err != nil {
		return lock.Status{}, false, err
	}
	if after < 0 || after >= lock.MaxFencingToken {
		return lock.Status{}, false, lock.Invalid("after_token", "must be between 0 and %d", lock.MaxFencingToken-1)
	}
	if err := lock.ValidateWait(wait); err != nil {
		return lock.Status{}, false, err
	}
	ctx, span := tracer.Start(ctx, "lock.watch", trace.WithAttributes(AttrName.String(name), AttrWaitMs.Int64(wait.Milliseconds())))
	wo, _ := s.obs.(WatchObserver)
	if wo != nil {
		wo.ObserveWatchStart(ctx)
	}
	defer func() {
		if wo != nil {
			wo.ObserveWatchEnd(ctx, changed, err)
		}
		endSpan(span, "watch", token(st), err)
	}()
	deadline := time.Now().Add(wait)
	hw, watches := providers.As[providers.HolderWatcher](s.p)
	var (
		sub    *subscription
		pauses *backoff.ExponentialBackOff
	)
	if !watches {
		sub = s.notes.subscribe(name)
		defer s.notes.unsubscribe(name, sub)
	}
	for {
		var woken <-chan struct{}
		if sub != nil {
			woken = sub.next() // before the read: a change after it wakes us
		}
		st, err = s.Status(ctx, name)
		if err != nil {
			return lock.Status{}, false, err
		}
		if token(st) != after {
			return st, true, nil
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return st, false, nil
		}
		wctx, cancel := context.WithTimeout(ctx, remaining)
		var werr error
		if watches {
			werr = hw.WaitHolderChange(wctx, name, after)
		} else {
			if pauses == nil {
				pauses = s.watchPauses()
			}
			d := pauses.NextBackOff()
			if st.Held {
				// Never sleep past the holder's expiry (plus a little, so
				// that the next read sees it expired), nor less than
				// minWatchPause: a backend that judges expiry by its own
				// clock (Spanner) may still call it held a moment later.
				d = max(min(d, time.Until(st.Holder.ExpiresAt)+time.Millisecond), minWatchPause)
			}
			werr = sleepOrWake(wctx, d, woken)
		}
		cancel()
		if ctx.Err() != nil {
			return lock.Status{}, false, fmt.Errorf("watch %q: %w", name, ctx.Err())
		}
		if werr != nil && !errors.Is(werr, context.DeadlineExceeded) {
			return lock.Status{}, false, werr
		}
	}
}

// notes tells a service's polling watches of the acquires and releases
// made through the same service, so they read the status again at once.
type notes struct {
	mu   sync.Mutex
	subs map[string]map[*subscription]struct{}
}

// subscription is one watch's interest in a name.
type subscription struct {
	mu sync.Mutex
	ch chan struct{} // closed on the next change
}

// next returns a channel closed on the next change after this call.
func (s *subscription) next() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.ch:
		s.ch = make(chan struct{})
	default:
	}
	return s.ch
}

func (n *notes) subscribe(name string) *subscription {
	s := &subscription{ch: make(chan struct{})}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.subs == nil {
		n.subs = map[string]map[*subscription]struct{}{}
	}
	if n.subs[name] == nil {
		n.subs[name] = map[*subscription]struct{}{}
	}
	n.subs[name][s] = struct{}{}
	return s
}

func (n *notes) unsubscribe(name string, s *subscription) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.subs[name], s)
	if len(n.subs[name]) == 0 {
		delete(n.subs, name)
	}
}

// notify wakes the watches of name.
func (n *notes) notify(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for s := range n.subs[name] {
		s.mu.Lock()
		select {
		case <-s.ch:
		default:
			close(s.ch)
		}
		s.mu.Unlock()
	}
}

// List returns one page of the locks held under prefix ("" lists all):
// at most limit (0 means lock.DefaultListLimit; at most lock.MaxListLimit)
// statuses, and the page token of the next page ("" when the listing is
// complete). pageToken is "" for the first page, else a token a previous
// page returned (opaque: unpadded base64url of the provider's
// continuation); a malformed one is an invalid argument for field
// "page_token". A page may hold fewer than limit locks, even none, and
// still have a next page.
func (s *Service) List(ctx context.Context, prefix string, limit int, pageToken string) ([]lock.Status, string, error) {
	if err := lock.ValidatePrefix(prefix); err != nil {
		return nil, "", err
	}
	if limit == 0 {
		limit = lock.DefaultListLimit
	}
	if err := lock.ValidateListLimit(limit); err != nil {
		return nil, "", err
	}
	after, err := decodePageToken(pageToken)
	if err != nil {
		return nil, "", err
	}
	l, ok := providers.As[providers.Lister](s.p)
	if !ok {
		return nil, "", fmt.Errorf("%s: listing: %w", s.p.Name(), providers.ErrUnsupported)
	}
	var (
		items []lock.Status
		next  string
	)
	_, err = s.call(ctx, func(ctx context.Context) (lock.Lease, error) {
		var err error
		items, next, err = l.List(ctx, prefix, limit, after)
		return lock.Lease{}, err
	})
	if err != nil {
		return nil, "", err
	}
	return items, encodePageToken(next), nil
}

// maxPageToken bounds a page token's length (a provider's continuation is
// at most a few hundred bytes: a name, or a Cosmos DB continuation).
const maxPageToken = 4096

func decodePageToken(t string) (string, error) {
	if t == "" {
		return "", nil
	}
	if len(t) > maxPageToken {
		return "", lock.Invalid("page_token", "is not a page token of this listing")
	}
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil || len(b) == 0 {
		return "", lock.Invalid("page_token", "is not a page token of this listing")
	}
	return string(b), nil
}

func encodePageToken(next string) string {
	if next == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(next))
}
