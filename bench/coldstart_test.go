package bench

import (
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/hasplock/hasp/local/testbed/launch"
)

// coldStarts is how many fresh execution environments each function gets.
const coldStarts = 80

// TestReportColdStart prints the Lambda cold-start table of BENCHMARKS.md
// (HASP_BENCH=1, make bench): under the Runtime Interface Emulator, the time
// from the first invoke of a fresh environment to its answer (the runtime
// process starting, its init, and one request) for hasp's bootstrap and
// for the hello-world bootstrap built the same way, alternating in one run.
// hasp's request is one the router answers without a backend call (a 404),
// so that what differs is the start-up: opening the store (no network call
// at init), the handler, the telemetry set-up.
func TestReportColdStart(t *testing.T) {
	if os.Getenv("HASP_BENCH") == "" {
		t.Skip("set HASP_BENCH=1 (make bench) to run the benchmark report")
	}
	hasp := launch.BuildLambda(t, "github.com/hasplock/hasp/functions/aws")
	hello := launch.BuildLambda(t, "github.com/hasplock/hasp/bench/lambdahello")
	env := []string{"HASP_STORE=dynamodb://bench", "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:9", "HASP_LOG_LEVEL=error"}
	first := func(bootstrap string, env []string) time.Duration {
		url, p := launch.LambdaRIEProc(t, bootstrap, env)
		defer p.Stop()
		gw := &launch.APIGateway{InvokeURL: url}
		req, _ := http.NewRequest(http.MethodGet, "https://x.execute-api.us-east-1.amazonaws.com/cold-start", nil)
		start := time.Now()
		if _, err := gw.Invoke(launch.Event(req, nil)); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	var h, b []time.Duration
	for range coldStarts {
		h = append(h, first(hasp, env))
		b = append(b, first(hello, nil))
	}
	st := func(path string) float64 {
		s, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return float64(s.Size()) / 1e6
	}
	fmt.Printf("\n| Lambda cold start (RIE, %d fresh environments each, alternating) | hasp bootstrap (%.1f MB) | hello-world (%.1f MB) | ratio |\n|---|---|---|---|\n", coldStarts, st(hasp), st(hello))
	for _, p := range []float64{0.5, 0.9} {
		fmt.Printf("| first invoke p%.0f | %s | %s | %.2f× |\n", p*100, ms(pct(h, p)), ms(pct(b, p)), float64(pct(h, p))/float64(pct(b, p)))
	}
	fmt.Println()
}
