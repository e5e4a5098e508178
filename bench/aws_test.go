package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsdb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers/dynamodb"
	"github.com/hasplock/hasp/service"
)

// countingRT counts requests to DynamoDB.
type countingRT struct{ n atomic.Int64 }

func (c *countingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func ddbClient(url string, rt http.RoundTripper) *awsdb.Client {
	return awsdb.New(awsdb.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:  &http.Client{Transport: rt},
	})
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// TestReportAWS prints the AWS table of BENCHMARKS.md (HASP_BENCH=1, make
// bench): DynamoDB request counts and handoff on moto, and Lambda warm
// invokes under the Runtime Interface Emulator against a hello-world
// handler built the same way.
func TestReportAWS(t *testing.T) {
	if os.Getenv("HASP_BENCH") == "" {
		t.Skip("set HASP_BENCH=1 (make bench) to run the benchmark report")
	}
	moto := launch.Moto(t)
	ctx := context.Background()
	require := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	require(dynamodb.CreateTable(ctx, ddbClient(moto, http.DefaultTransport), "bench", false))
	cnt := &countingRT{}
	newSvc := func() *service.Service {
		p, err := dynamodb.New(ddbClient(moto, cnt), "bench")
		require(err)
		return service.New(p)
	}

	// Baseline: one DynamoDB request (a strongly consistent GetItem).
	db := ddbClient(moto, http.DefaultTransport)
	var one []time.Duration
	for range 200 {
		start := time.Now()
		_, err := db.GetItem(ctx, &awsdb.GetItemInput{TableName: aws.String("bench"), Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "x"}}, ConsistentRead: aws.Bool(true)})
		require(err)
		one = append(one, time.Since(start))
	}
	rtt := pct(one, 0.5)

	// Uncontended cycles.
	svc := newSvc()
	cnt.n.Store(0)
	const cycles = 200
	for i := range cycles {
		l, err := svc.Acquire(ctx, lock.AcquireRequest{Name: fmt.Sprint("u", i%5)})
		require(err)
		require(svc.Release(ctx, lock.ReleaseRequest{Name: l.Name, LeaseID: l.LeaseID}))
	}
	perCycle := float64(cnt.n.Load()) / cycles

	// Contended: 4 clients on 1 name holding ~5 ms, then 5 ms of think time.
	contended := func(svcs []*service.Service, name string) ([]time.Duration, float64) {
		const n = 300
		cnt.n.Store(0)
		hand, err := handoffs(4, n, 5*time.Millisecond, 5*time.Millisecond, func(ctx context.Context, c int) (func() error, error) {
			s := svcs[c%len(svcs)]
			l, err := s.Acquire(ctx, lock.AcquireRequest{Name: name, Wait: 20 * time.Second})
			if err != nil {
				return nil, err
			}
			return func() error { return s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}) }, nil
		})
		require(err)
		// handoffs stops at n grants, each with one release.
		return hand, float64(cnt.n.Load()-n) / n
	}
	handoffsOf := func(d []time.Duration) string { return fmt.Sprintf("%d handoffs", len(d)) }
	oneInst, reqOne := contended([]*service.Service{svc}, "c1")
	fourInst, reqFour := contended([]*service.Service{newSvc(), newSvc(), newSvc(), newSvc()}, "c4")

	// Lambda: bootstrap sizes, and warm invokes against hello-world.
	size := func(arch string) int64 {
		out := filepath.Join(t.TempDir(), "bootstrap")
		cmd := exec.Command("go", "build", "-tags", "lambda.norpc,hasp_lambda", "-trimpath", "-ldflags=-s -w", "-o", out, "github.com/hasplock/hasp/functions/aws")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		st, err := os.Stat(out)
		require(err)
		return st.Size()
	}
	arm, amd := size("arm64"), size("amd64")
	env := []string{"HASP_STORE=dynamodb://bench", "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_ENDPOINT_URL_DYNAMODB=" + moto, "HASP_LOG_LEVEL=error"}
	haspGW := &launch.APIGateway{InvokeURL: launch.LambdaRIE(t, launch.BuildLambda(t, "github.com/hasplock/hasp/functions/aws"), env)}
	helloGW := &launch.APIGateway{InvokeURL: launch.LambdaRIE(t, launch.BuildLambda(t, "github.com/hasplock/hasp/bench/lambdahello"), nil)}
	invokes := func(gw *launch.APIGateway, path string) []time.Duration {
		var d []time.Duration
		for i := range 220 {
			req, _ := http.NewRequest(http.MethodGet, "https://x.execute-api.us-east-1.amazonaws.com"+path, nil)
			start := time.Now()
			if _, err := gw.Invoke(launch.Event(req, nil)); err != nil {
				t.Fatal(err)
			}
			if i >= 20 { // the first ones are the cold start and warm-up
				d = append(d, time.Since(start))
			}
		}
		return d
	}
	hello := invokes(helloGW, "/")
	statusInv := invokes(haspGW, "/v1/locks?name=x")
	health := invokes(haspGW, "/v1/health")

	fmt.Printf("\nbaseline: one strongly consistent GetItem on moto, p50 %s (%d requests)\n\n", ms(rtt), len(one))
	fmt.Printf("| measure | hasp on DynamoDB (moto) | goal |\n|---|---|---|\n")
	fmt.Printf("| requests per uncontended acquire+release | %.2f | 2 |\n", perCycle)
	fmt.Printf("| contended handoff p50 / p99, 4 clients, 1 name, hold 5 ms, one service instance | %s / %s (%.1f× / %.1f× one request; %s) | p50 ≤ 25 ms |\n", ms(pct(oneInst, 0.5)), ms(pct(oneInst, 0.99)), float64(pct(oneInst, 0.5))/float64(rtt), float64(pct(oneInst, 0.99))/float64(rtt), handoffsOf(oneInst))
	fmt.Printf("| requests per contended acquire, one service instance | %.2f | ≤ 4 |\n", reqOne)
	fmt.Printf("| contended handoff p50 / p99, 4 service instances (polling only) | %s / %s (%.1f× / %.1f× one request; %s) | |\n", ms(pct(fourInst, 0.5)), ms(pct(fourInst, 0.99)), float64(pct(fourInst, 0.5))/float64(rtt), float64(pct(fourInst, 0.99))/float64(rtt), handoffsOf(fourInst))
	fmt.Printf("| requests per contended acquire, 4 service instances | %.2f | ≤ 4 |\n\n", reqFour)
	fmt.Printf("| Lambda (Runtime Interface Emulator) | hasp bootstrap | hello-world, built the same way | ratio |\n|---|---|---|---|\n")
	fmt.Printf("| bootstrap size arm64 / amd64 | %.1f MB / %.1f MB | | limit 10 MB |\n", float64(arm)/1e6, float64(amd)/1e6)
	fmt.Printf("| warm invoke p50, GET /v1/health (DescribeTable) | %s | %s | %.2f× |\n", ms(pct(health, 0.5)), ms(pct(hello, 0.5)), float64(pct(health, 0.5))/float64(pct(hello, 0.5)))
	fmt.Printf("| warm invoke p50, GET /v1/locks (one GetItem) | %s | %s | %.2f× |\n", ms(pct(statusInv, 0.5)), ms(pct(hello, 0.5)), float64(pct(statusInv, 0.5))/float64(pct(hello, 0.5)))
	fmt.Printf("| warm invoke p99, GET /v1/locks | %s | %s (p99) | %.2f× |\n\n", ms(pct(statusInv, 0.99)), ms(pct(hello, 0.99)), float64(pct(statusInv, 0.99))/float64(pct(hello, 0.99)))
}
