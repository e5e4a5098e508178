package providertest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/hasplock/hasp/local/testbed/faults"
	"github.com/hasplock/hasp/service"
)

// Injector injects faults by a plan and counts them: the HTTP and TCP
// proxies and the HTTP transport of local/testbed/faults.
type Injector interface {
	SetPlan(faults.Plan)
	Counts() faults.Counts
}

// ElectionThroughFaults runs Election for 5 s on instances while every
// injector (between the instances and their store) injects faults by
// plan; then it stops them, logs what each injected, and fails if none
// was.
func ElectionThroughFaults(t *testing.T, instances []*service.Service, plan faults.Plan, injectors ...Injector) {
	for _, in := range injectors {
		in.SetPlan(plan)
	}
	Election(t, instances, "election.faults", ElectionConfig{Duration: 5 * time.Second})
	var total int64
	for _, in := range injectors {
		in.SetPlan(faults.Plan{})
		c := in.Counts()
		total += c.Total()
		t.Logf("faults injected: %d delays, %d resets, %d dropped responses, %d stalls", c.Delays, c.Resets, c.DroppedResponses, c.Stalls)
	}
	assert.Positive(t, total, "faults were injected")
}
