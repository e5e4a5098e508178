//go:build !hasp_lambda

package awsconfig

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

// Load loads the AWS configuration the standard way: environment, shared
// config files, SSO, web identity, ECS/EKS container credentials, EC2
// instance metadata. The SDK itself honours AWS_ENDPOINT_URL_<SERVICE>
// (service is the suffix, "DYNAMODB", "SSM") and AWS_ENDPOINT_URL.
func Load(ctx context.Context, service string) (aws.Config, error) {
	return config.LoadDefaultConfig(ctx)
}
