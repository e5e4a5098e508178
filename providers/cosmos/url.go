package cosmos

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/hasplock/hasp/providers"
)

func init() {
	providers.Register("cosmos", Open)
}

// Open opens the provider for "cosmos://DATABASE/CONTAINER", with the
// endpoint and credentials from the environment (see ConfigFromEnv).
func Open(ctx context.Context, u *url.URL) (providers.Provider, error) {
	db, container, err := parseStore(u)
	if err != nil {
		return nil, err
	}
	cfg, err := ConfigFromEnv(db, container)
	if err != nil {
		return nil, err
	}
	return New(cfg)
}

// parseStore splits "cosmos://DATABASE/CONTAINER".
func parseStore(u *url.URL) (database, container string, err error) {
	if err := providers.CheckParams(u); err != nil {
		return "", "", err
	}
	container = strings.TrimPrefix(u.Path, "/")
	if u.Host == "" || container == "" || strings.Contains(container, "/") || u.User != nil {
		return "", "", fmt.Errorf("cosmos: store URL %q: want cosmos://DATABASE/CONTAINER", u.Redacted())
	}
	return u.Host, container, nil
}
