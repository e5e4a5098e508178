package providers

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Opener opens a provider from a parsed store URL.
type Opener func(ctx context.Context, u *url.URL) (Provider, error)

var (
	mu      sync.RWMutex
	openers = map[string]Opener{}
)

// Register makes a store URL scheme ("etcd", "memory") open with fn. It is
// called from the init function of a provider's package, or by a program
// that wires in its own; it panics if the scheme is registered twice.
func Register(scheme string, fn Opener) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := openers[scheme]; dup {
		panic("providers: scheme registered twice: " + scheme)
	}
	openers[scheme] = fn
}

// Schemes lists the registered schemes, sorted.
func Schemes() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(openers))
	for s := range openers {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Open opens the provider for a store URL such as "memory:",
// "etcd://127.0.0.1:2379" or "embedded:./.hasp-data".
func Open(ctx context.Context, store string) (Provider, error) {
	u, err := url.Parse(store)
	if err != nil {
		return nil, fmt.Errorf("providers: store URL %q: %w", store, err)
	}
	if u.Scheme == "" {
		return nil, fmt.Errorf("providers: store URL %q has no scheme (known: %s)", store, strings.Join(Schemes(), ", "))
	}
	mu.RLock()
	fn := openers[u.Scheme]
	mu.RUnlock()
	if fn == nil {
		return nil, fmt.Errorf("providers: unknown store scheme %q (known: %s)", u.Scheme, strings.Join(Schemes(), ", "))
	}
	return fn(ctx, u)
}

// CheckParams refuses a store URL whose query names a parameter outside
// allowed, with an error that names the parameter and the allowed ones,
// so that a misspelt option ("clenaup") can never be silently ignored.
// Every opener calls it first.
func CheckParams(u *url.URL, allowed ...string) error {
	keys := make([]string, 0, len(u.Query()))
	for k := range u.Query() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			known := "none"
			if len(allowed) > 0 {
				known = strings.Join(allowed, ", ")
			}
			return fmt.Errorf("%s: store URL %q: unknown parameter %q (allowed: %s)", u.Scheme, u.Redacted(), k, known)
		}
	}
	return nil
}
