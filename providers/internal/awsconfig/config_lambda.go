//go:build hasp_lambda

package awsconfig

import (
	"context"
	"errors"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Load, in the Lambda build (tag hasp_lambda), reads only what the Lambda
// runtime provides: the region and the function role's credentials in the
// environment, and an endpoint override for emulators
// (AWS_ENDPOINT_URL_<SERVICE>, service being "DYNAMODB" or "SSM", then
// AWS_ENDPOINT_URL). It leaves out the SDK's config loader (shared files,
// SSO, STS, IMDS), which Lambda never needs, keeping the bootstrap under
// 10 MB.
func Load(ctx context.Context, service string) (aws.Config, error) {
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = os.Getenv("AWS_DEFAULT_REGION")
	}
	id, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	if region == "" || id == "" || secret == "" {
		return aws.Config{}, errors.New("AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set (the Lambda runtime sets them)")
	}
	cfg := aws.Config{
		Region:      region,
		Credentials: aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(id, secret, os.Getenv("AWS_SESSION_TOKEN"))),
	}
	for _, k := range []string{"AWS_ENDPOINT_URL_" + service, "AWS_ENDPOINT_URL"} {
		if v := os.Getenv(k); v != "" {
			cfg.BaseEndpoint = aws.String(v)
			break
		}
	}
	return cfg, nil
}
