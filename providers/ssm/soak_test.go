package ssm_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/local/testbed/faults"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/providers/ssm"
)

// soak runs the soak against moto behind a fault-injecting HTTP proxy,
// through two service instances with clocks ±250 ms apart. The SDK's own
// retries are off, so a dropped response is an unknown outcome (503)
// rather than a retried write. wrap, if set, wraps each instance's HTTP
// transport.
func soak(t *testing.T, wrap func(http.RoundTripper) http.RoundTripper) providertest.SoakResult {
	return soakWith(t, 2, false, faults.Plan{Delay: 20 * time.Millisecond, DelayP: 0.02, ResetP: 0.002, DropResponseP: 0.005, Stall: 300 * time.Millisecond, StallP: 0.002}, wrap)
}

// soakWith runs the soak through n instances with clocks spread over
// ±250 ms, the SDK's standard retryer on when retries, and plan's faults.
func soakWith(t *testing.T, n int, retries bool, plan faults.Plan, wrap func(http.RoundTripper) http.RoundTripper) providertest.SoakResult {
	proxy, err := faults.NewHTTPProxy(launch.Moto(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	var instances []providertest.Instance
	for i := range n {
		skew := 250*time.Millisecond - time.Duration(i)*500*time.Millisecond/time.Duration(n-1)
		var rt http.RoundTripper = &http.Transport{MaxIdleConnsPerHost: 32}
		if wrap != nil {
			rt = wrap(rt)
		}
		c := &providertest.OffsetClock{}
		c.Set(skew)
		p := open(t, client(proxy.URL(), &http.Client{Transport: rt}, retries), ssm.WithClock(c))
		instances = append(instances, providertest.Instance{Provider: p, Skew: skew})
	}
	proxy.SetPlan(plan)
	res := providertest.Soak(context.Background(), instances, providertest.SoakConfig{
		Acquires: providertest.SoakAcquiresOr(1000), Progress: providertest.ProgressLogger(t), TTL: 2 * time.Second,
	})
	proxy.SetPlan(faults.Plan{})
	f := proxy.Counts()
	t.Logf("%s soak: %s; faults injected: %d delays, %d resets, %d dropped responses, %d stalls", t.Name(), res.String(), f.Delays, f.Resets, f.DroppedResponses, f.Stalls)
	assert.Positive(t, f.Total(), "faults were injected")
	return res
}

// TestSoakPollingMoto: eight service instances that only poll (as Lambda
// environments do), with the SDK's standard retryer on, so that writes
// applied but unanswered are retried while other instances go on: 5 % of
// responses dropped after moto applied the request, 5 % of requests reset
// before it, 2 % stalled. Every check of the soak holds.
func TestSoakPollingMoto(t *testing.T) {
	t.Parallel() // its own server
	res := soakWith(t, 8, true, faults.Plan{ResetP: 0.05, DropResponseP: 0.05, Stall: 300 * time.Millisecond, StallP: 0.02}, nil)
	assert.Empty(t, res.Violations, res.Report())
}

// TestSoakMoto: on moto, whose reads are fresh (it serves one request at a
// time), every check of the soak holds: 0 violations.
func TestSoakMoto(t *testing.T) {
	t.Parallel() // each soak has its own server
	res := soak(t, nil)
	assert.Empty(t, res.Violations, res.Report())
}

// staleViolation is the one check of the soak that stale reads may fail:
// an acquire answered lock_held, naming a holder whose release had already
// been answered (the read predates the release).
const staleViolation = "was reported released, then reported holding"

// TestSoakMotoStaleReads: the same soak with eventually consistent reads
// (staleReads: 5% of latest-version reads answer 1 to 3 versions back, 2%
// of version reads leave a version out). Mutual exclusion, fencing, and
// every acquire, renew and release answer must still hold; only lock_held
// answers may name a holder that has just released, which is what
// providers.GuaranteeStaleReads says.
func TestSoakMotoStaleReads(t *testing.T) {
	t.Parallel() // each soak has its own server
	var srs []*staleReads
	res := soak(t, func(rt http.RoundTripper) http.RoundTripper {
		sr := &staleReads{next: rt, staleP: 0.05, maxBack: 3, hideP: 0.02}
		srs = append(srs, sr)
		return sr
	})
	var stale, hidden int64
	for _, sr := range srs {
		stale, hidden = stale+sr.stale.Load(), hidden+sr.hidden.Load()
	}
	var other, examples []string
	for _, v := range res.Violations {
		switch {
		case !strings.Contains(v, staleViolation):
			other = append(other, v)
		case len(examples) < 3:
			examples = append(examples, v)
		}
	}
	for _, e := range examples {
		t.Logf("e.g. %s", e)
	}
	t.Logf("stale reads injected: %d latest reads answered from the past, %d versions hidden; %d stale lock_held answers (%q)",
		stale, hidden, len(res.Violations)-len(other), staleViolation)
	assert.Empty(t, other, res.Report())
	assert.Positive(t, stale, "stale reads were injected")
	assert.Positive(t, hidden, "versions were hidden")
}
