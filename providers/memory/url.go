package memory

import (
	"context"
	"fmt"
	"net/url"

	"github.com/hasplock/hasp/providers"
)

func init() {
	providers.Register("memory", Open)
}

// Open opens a new, empty in-memory provider for "memory:", for tests.
func Open(_ context.Context, u *url.URL) (providers.Provider, error) {
	if err := providers.CheckParams(u); err != nil {
		return nil, err
	}
	if u.Opaque != "" || u.Host != "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("memory: store URL takes no address: %q", u.String())
	}
	return New(), nil
}
