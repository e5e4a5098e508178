// Command lambdahello is the baseline of the Lambda benchmarks: a
// hello-world API Gateway HTTP API handler built exactly as hasp's
// bootstrap is.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		return events.APIGatewayV2HTTPResponse{StatusCode: 200, Headers: map[string]string{"Content-Type": "application/json"}, Body: `{"status":"ok"}`}, nil
	})
}
