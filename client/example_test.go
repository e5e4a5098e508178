package client_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hasplock/hasp/client"
	"github.com/hasplock/hasp/lock"
)

// Run a job under a lock: fn's context is cancelled if the lock is lost.
func ExampleClient_Do() {
	c, _ := client.New(endpoint) // e.g. "http://127.0.0.1:8080"
	err := c.Do(context.Background(), "example/nightly-report", func(ctx context.Context) error {
		fmt.Println("generating the report under the lock")
		return nil
	}, client.WithTTL(10*time.Second))
	fmt.Println("error:", err)
	// Output:
	// generating the report under the lock
	// error: <nil>
}

// Acquire, pass the fencing token to the protected resource, and stop
// when the lease is lost.
func ExampleLease() {
	c, _ := client.New(endpoint)
	ctx := context.Background()
	lease, err := c.Acquire(ctx, "example/orders-db", client.WithTTL(10*time.Second), client.WithWait(5*time.Second))
	if err != nil {
		fmt.Println("not acquired:", err)
		return
	}
	defer lease.Release(ctx)

	write := func(ctx context.Context, fence int64) error {
		// e.g. UPDATE orders SET ... , fence = $fence WHERE id = ... AND fence < $fence
		return ctx.Err()
	}
	if err := write(lease.Context(), lease.Token()); err != nil {
		fmt.Println("lost the lock:", err)
		return
	}
	fmt.Println("written with a fencing token:", lease.Token() > 0)
	// Output: written with a fencing token: true
}

// Lead an election: run only while leader, and watch who leads.
func ExampleClient_Campaign() {
	c, _ := client.New(endpoint)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	changes := c.Observe(ctx, "example/scheduler")
	fmt.Println("leader before:", (<-changes).Held)

	lead, err := c.Campaign(ctx, "example/scheduler", "10.0.0.7:8080", client.WithTTL(10*time.Second))
	if err != nil {
		fmt.Println("not elected:", err)
		return
	}
	ch := <-changes
	fmt.Println("leader:", ch.Value, ch.Token == lead.Token())
	// Work as leader under lead.Context(), with lead.Token() as the fence.
	_ = lead.Resign(context.Background())
	fmt.Println("leader after resigning:", (<-changes).Held)
	// Output:
	// leader before: false
	// leader: 10.0.0.7:8080 true
	// leader after resigning: false
}

// Bound concurrency with a semaphore: at most three workers call the
// payment API at once, each with its own fencing token.
func ExampleWithPermits() {
	c, _ := client.New(endpoint)
	ctx := context.Background()
	var leases []*client.Lease
	for range 3 {
		l, err := c.Acquire(ctx, "example/payment-api", client.WithPermits(3), client.WithTTL(10*time.Second))
		if err != nil {
			fmt.Println("not acquired:", err)
			return
		}
		leases = append(leases, l)
	}
	_, err := c.TryAcquire(ctx, "example/payment-api", client.WithPermits(3))
	fmt.Println("a fourth worker:", errors.Is(err, lock.ErrHeld))
	st, _ := c.Status(ctx, "example/payment-api")
	fmt.Println("permits:", st.Permits, "held:", len(st.Holders))
	for _, l := range leases {
		_ = l.Release(ctx)
	}
	// Output:
	// a fourth worker: true
	// permits: 3 held: 3
}
