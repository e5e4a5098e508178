package providertest

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Hold is one lease as its holder saw it: from the moment the acquire
// returned to the moment the holder began to release it (or its lease was
// due to expire, whichever came first).
type Hold struct {
	// Name is the lock's name.
	Name string
	// Token is the fencing token the acquire returned.
	Token int64
	// Start is when the acquire returned.
	Start time.Time
	// End is when the holder stopped relying on the lease.
	End time.Time
	// Client identifies the holder, for messages.
	Client int
	// Sent is when the acquire was sent; zero when unknown. CheckPermits
	// uses it to order grants.
	Sent time.Time
}

// History collects holds from concurrent clients.
type History struct {
	mu    sync.Mutex
	holds []Hold
}

// Add records a hold.
func (h *History) Add(x Hold) {
	h.mu.Lock()
	h.holds = append(h.holds, x)
	h.mu.Unlock()
}

// Len returns the number of holds recorded.
func (h *History) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.holds)
}

// Check returns an error describing every violation in the history.
func (h *History) Check() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return CheckHolds(h.holds)
}

// CheckHolds checks a history of holds for the two safety properties of a
// lock with fencing: for each name, no two holds overlap in time, and
// fencing tokens strictly increase in the order the holds began. It also
// rejects tokens outside 1 ≤ token < 2^53. It returns nil or an error that
// lists (up to 10 of) the violations.
func CheckHolds(holds []Hold) error {
	byName := map[string][]Hold{}
	for _, x := range holds {
		byName[x.Name] = append(byName[x.Name], x)
	}
	var bad []string
	for name, hs := range byName {
		sort.Slice(hs, func(i, j int) bool { return hs[i].Start.Before(hs[j].Start) })
		for i, x := range hs {
			if x.Token < 1 || x.Token >= 1<<53 {
				bad = append(bad, fmt.Sprintf("%s: token %d out of range", name, x.Token))
			}
			if x.End.Before(x.Start) {
				bad = append(bad, fmt.Sprintf("%s: hold with token %d ends before it starts", name, x.Token))
			}
			if i == 0 {
				continue
			}
			prev := hs[i-1]
			if x.Start.Before(prev.End) {
				bad = append(bad, fmt.Sprintf("%s: overlap: client %d held token %d until %s, client %d got token %d at %s",
					name, prev.Client, prev.Token, prev.End.Format(time.StampMicro), x.Client, x.Token, x.Start.Format(time.StampMicro)))
			}
			if x.Token <= prev.Token {
				bad = append(bad, fmt.Sprintf("%s: token did not increase: %d then %d", name, prev.Token, x.Token))
			}
		}
	}
	return violations(bad)
}

// CheckPermits checks a history of holds of semaphores of permits
// permits: for each name, at no instant do more than permits holds
// overlap, no token is issued twice, and tokens increase in the order of
// grants: a hold whose acquire returned before another's was sent has the
// smaller token. It also rejects tokens outside 1 ≤ token < 2^53.
func CheckPermits(holds []Hold, permits int) error {
	byName := map[string][]Hold{}
	for _, x := range holds {
		byName[x.Name] = append(byName[x.Name], x)
	}
	var bad []string
	for name, hs := range byName {
		seen := map[int64]int{}
		type event struct {
			at    time.Time
			delta int
			token int64
		}
		var events []event
		for _, x := range hs {
			if x.Token < 1 || x.Token >= 1<<53 {
				bad = append(bad, fmt.Sprintf("%s: token %d out of range", name, x.Token))
			}
			if c, dup := seen[x.Token]; dup {
				bad = append(bad, fmt.Sprintf("%s: token %d issued twice (clients %d and %d)", name, x.Token, c, x.Client))
			}
			seen[x.Token] = x.Client
			if x.End.Before(x.Start) {
				bad = append(bad, fmt.Sprintf("%s: hold with token %d ends before it starts", name, x.Token))
			}
			events = append(events, event{x.Start, +1, x.Token}, event{x.End, -1, x.Token})
		}
		// Ends before starts at the same instant: [Start, End) intervals.
		sort.Slice(events, func(i, j int) bool {
			if events[i].at.Equal(events[j].at) {
				return events[i].delta < events[j].delta
			}
			return events[i].at.Before(events[j].at)
		})
		live := 0
		for _, e := range events {
			live += e.delta
			if live > permits {
				bad = append(bad, fmt.Sprintf("%s: %d holders at %s (token %d began), over %d permits", name, live, e.at.Format(time.StampMicro), e.token, permits))
			}
		}
		byStart := slices.Clone(hs)
		sort.Slice(byStart, func(i, j int) bool { return byStart[i].Start.Before(byStart[j].Start) })
		bySent := slices.Clone(hs)
		sort.Slice(bySent, func(i, j int) bool { return bySent[i].Sent.Before(bySent[j].Sent) })
		// For each hold b, every hold a that returned before b was sent
		// must have a smaller token: compare b with the largest such token.
		var maxBefore int64
		i := 0
		for _, b := range bySent {
			if b.Sent.IsZero() {
				continue
			}
			for ; i < len(byStart) && byStart[i].Start.Before(b.Sent); i++ {
				maxBefore = max(maxBefore, byStart[i].Token)
			}
			if b.Token <= maxBefore {
				bad = append(bad, fmt.Sprintf("%s: token %d granted after a grant of token %d returned", name, b.Token, maxBefore))
			}
		}
	}
	return violations(bad)
}

// violations is nil for none, else an error that lists (up to 10 of) them.
func violations(bad []string) error {
	if len(bad) == 0 {
		return nil
	}
	sort.Strings(bad)
	n := len(bad)
	if n > 10 {
		bad = bad[:10]
	}
	return fmt.Errorf("%d safety violations:\n  %s", n, strings.Join(bad, "\n  "))
}
