package dynamodb

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
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
	return New(dynamodb.NewFromConfig(cfg, clientRetries(cfg)), u.Host, opts...)
}

// DynamoDB's own retry defaults: 4 attempts, a 25 ms base backoff for
// errors that are not throttling. The client sets them itself from v1.69.0
// on; go.mod holds it at v1.68.0 (for the Lambda's cold start), which sets
// them only when AWS_NEW_RETRIES_2026=true and otherwise keeps the SDK's
// generic 3 attempts from a 50 ms base.
const (
	retryAttempts  = 4
	retryBaseDelay = 25 * time.Millisecond
)

// clientRetries gives the client DynamoDB's retry defaults unless cfg
// names a retryer of its own; a configured attempt count
// (AWS_MAX_ATTEMPTS) and the adaptive mode (AWS_RETRY_MODE) are kept.
func clientRetries(cfg aws.Config) func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		if cfg.Retryer != nil {
			return
		}
		std := func(so *retry.StandardOptions) {
			so.MaxAttempts = retryAttempts
			if o.RetryMaxAttempts != 0 {
				so.MaxAttempts = o.RetryMaxAttempts
			}
			so.BaseDelay = retryBaseDelay
		}
		if o.RetryMode == aws.RetryModeAdaptive {
			o.Retryer = retry.NewAdaptiveMode(func(ao *retry.AdaptiveModeOptions) {
				ao.StandardOptions = append(ao.StandardOptions, std)
			})
			return
		}
		o.Retryer = retry.NewStandard(std)
	}
}
