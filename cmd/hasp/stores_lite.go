//go:build hasp_lite

package main

import (
	"context"
	"fmt"
	"net/url"

	"github.com/hasplock/hasp/providers"
)

// A lean build (make run) knows the cloud stores' schemes only to say how
// to get them.
func init() {
	for _, scheme := range []string{"dynamodb", "spanner", "cosmos", "ssm", "zk", "redis", "redlock"} {
		providers.Register(scheme, func(context.Context, *url.URL) (providers.Provider, error) {
			return nil, fmt.Errorf("this hasp is the lean build of make run, without the %s store: build every store with `make build` and run bin/hasp serve --store %s://...", scheme, scheme)
		})
	}
}
