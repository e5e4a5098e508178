package ssm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/hasplock/hasp/lock"
)

// mapErr maps Parameter Store and transport errors to the lock package's
// sentinels: throttling (ThrottlingException, and TooManyUpdates, which
// refuses concurrent updates of one parameter) to lock.ErrThrottled, server
// errors, timeouts and network errors (the write may have been applied) to
// lock.ErrUnavailable. Anything else (access denied, the parameter limit,
// a label blocking new versions) is returned as it is, for the logs.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ThrottlingException", "Throttling", "TooManyUpdates", "RequestLimitExceeded":
			return lock.Throttled(fmt.Errorf("ssm: %w", err), time.Second)
		case "InternalServerError", "ServiceUnavailable":
			return lock.Unavailable(fmt.Errorf("ssm: %w", err), time.Second)
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch code := re.HTTPStatusCode(); {
		case code == 429:
			return lock.Throttled(fmt.Errorf("ssm: %w", err), time.Second)
		case code >= 500:
			return lock.Unavailable(fmt.Errorf("ssm: %w", err), time.Second)
		}
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		// The write may have been applied: the outcome is unknown.
		return lock.Unavailable(fmt.Errorf("ssm: %w", err), time.Second)
	}
	return fmt.Errorf("ssm: %w", err)
}
