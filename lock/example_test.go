package lock_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/hasplock/hasp/lock"
)

// Errors from every layer match the sentinels with errors.Is, and a held
// lock carries its holder.
func ExampleHeldError() {
	var err error = &lock.HeldError{
		Name:       "nightly-report",
		Holder:     lock.Holder{Owner: "worker-7", FencingToken: 42, ExpiresAt: time.Date(2026, 11, 25, 22, 43, 28, 123e6, time.UTC)},
		RetryAfter: 1500 * time.Millisecond,
	}
	var held *lock.HeldError
	if errors.Is(err, lock.ErrHeld) && errors.As(err, &held) {
		fmt.Println("held by", held.Holder.Owner, "token", held.Holder.FencingToken, "retry in", lock.RetryAfter(err))
	}
	// Output: held by worker-7 token 42 retry in 1.5s
}

func ExampleAcquireRequest_Validate() {
	req := lock.AcquireRequest{Name: "jobs/nightly", TTL: 500 * time.Millisecond}
	err := req.Validate()
	var inv *lock.InvalidArgumentError
	if errors.As(err, &inv) {
		fmt.Println(inv.Field+":", inv.Message)
	}
	// Output: ttl_ms: must be between 1000 and 3600000
}
