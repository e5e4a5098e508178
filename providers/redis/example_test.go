package redis_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/redis"
	"github.com/hasplock/hasp/service"
)

// Open a store on one Redis server, as `hasp serve --store redis://…`
// does, and take a lock. Open refuses a server that would lose
// acknowledged writes (no append-only file) unless the URL says
// ?durability=none, which labels the store "best effort". (Not run: it
// needs a Redis server on 127.0.0.1:6379.)
func Example() {
	ctx := context.Background()
	p, err := providers.Open(ctx, "redis://127.0.0.1:6379")
	if errors.Is(err, redis.ErrNotDurable) {
		fmt.Println("refused:", err)
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	fmt.Println(providers.GuaranteeOf(p)) // durable: AOF appendfsync everysec

	s := service.New(p)
	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "nightly-report", TTL: 30 * time.Second, Wait: 5 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Pass l.FencingToken with every write to the protected resource.
	defer s.Release(ctx, lock.ReleaseRequest{Name: l.Name, LeaseID: l.LeaseID})
	fmt.Println("token", l.FencingToken)
}
