package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
)

// Env is the configuration of one environment, in one typed place.
type Env struct {
	// Name is dev, staging or prod.
	Name string
	// MemoryMB, TimeoutSeconds and ReservedConcurrency size the function.
	MemoryMB, TimeoutSeconds, ReservedConcurrency float64
	// RateLimit and BurstLimit throttle the API's $default stage.
	RateLimit, BurstLimit float64
	// LogRetention applies to the function's and the API's logs.
	LogRetention awslogs.RetentionDays
	// Retain keeps the table when the stack is deleted; PITR turns on
	// point-in-time recovery.
	Retain, PITR bool
	// P99LatencyAlarmMs is the API p99 latency that raises an alarm.
	P99LatencyAlarmMs float64
}

// HealthRateLimit and HealthBurstLimit throttle GET /v1/health on its
// own, in every environment: the open route must not let probes use up
// the function's concurrency or the stage's rate.
const (
	HealthRateLimit  = 10
	HealthBurstLimit = 20
)

// Envs lists the environments.
var Envs = map[string]Env{
	"dev": {Name: "dev", MemoryMB: 256, TimeoutSeconds: 29, ReservedConcurrency: 20, RateLimit: 50, BurstLimit: 100,
		LogRetention: awslogs.RetentionDays_ONE_WEEK, Retain: false, PITR: false, P99LatencyAlarmMs: 2000},
	"staging": {Name: "staging", MemoryMB: 256, TimeoutSeconds: 29, ReservedConcurrency: 50, RateLimit: 200, BurstLimit: 400,
		LogRetention: awslogs.RetentionDays_ONE_MONTH, Retain: false, PITR: true, P99LatencyAlarmMs: 1000},
	"prod": {Name: "prod", MemoryMB: 512, TimeoutSeconds: 29, ReservedConcurrency: 200, RateLimit: 1000, BurstLimit: 2000,
		LogRetention: awslogs.RetentionDays_THREE_MONTHS, Retain: true, PITR: true, P99LatencyAlarmMs: 500},
}

// LookupEnv returns the named environment, or a clear error.
func LookupEnv(name string) (Env, error) {
	e, ok := Envs[name]
	if !ok {
		var known []string
		for k := range Envs {
			known = append(known, k)
		}
		sort.Strings(known)
		return Env{}, fmt.Errorf("unknown environment %q: pass -c env=%s", name, strings.Join(known, "|"))
	}
	return e, nil
}
