//go:build !hasp_lite

package main

// The cloud stores (and ZooKeeper, Redis). The default build links them all; `make run` builds
// with the tag hasp_lite, which leaves them out (the embedded etcd, etcd://
// and memory: stay), so that the first run compiles a third of the code.
// `make build` (or plain `go build ./cmd/hasp`) links every store.
import (
	_ "github.com/hasplock/hasp/providers/cosmos"
	_ "github.com/hasplock/hasp/providers/dynamodb"
	_ "github.com/hasplock/hasp/providers/redis"
	_ "github.com/hasplock/hasp/providers/spanner"
	_ "github.com/hasplock/hasp/providers/ssm"
	_ "github.com/hasplock/hasp/providers/zookeeper"
)
