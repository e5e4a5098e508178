package dynamodb

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/internal/awsconfig"
)

func init() {
	providers.Register("dynamodb", Open)
}

// Open opens the provider for "dynamodb://TABLE[?cleanup=DURATION]".
func Open(ctx context.Context, u *url.URL) (providers.Provider, error) {
	if err := providers.CheckParams(u, "cleanup"); err != nil {
		return nil, err
	}
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
