//go:build !hasp_lambda

package dynamodb

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

// loadConfig loads the AWS configuration the standard way: environment,
// shared config files, SSO, web identity, ECS/EKS container credentials,
// EC2 instance metadata.
func loadConfig(ctx context.Context) (aws.Config, error) { return config.LoadDefaultConfig(ctx) }
