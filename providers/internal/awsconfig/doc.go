// Package awsconfig loads the AWS configuration of the providers that talk
// to AWS (dynamodb, ssm), in one place for both builds: the standard one,
// and the Lambda build (tag hasp_lambda) that leaves out the SDK's config
// loader.
package awsconfig
