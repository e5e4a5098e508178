package lambdafn_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsdb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/api/apitest"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/providers/dynamodb"
)

// TestUnderRIE runs the real bootstrap under the Lambda Runtime Interface
// Emulator on moto, and checks API v1 through API Gateway HTTP API events.
func TestUnderRIE(t *testing.T) {
	moto := launch.Moto(t)
	db := awsdb.New(awsdb.Options{Region: "us-east-1", BaseEndpoint: aws.String(moto), Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	require.NoError(t, dynamodb.CreateTable(context.Background(), db, "hasp-locks", false))
	invoke, rie := launch.LambdaRIEProc(t, launch.BuildLambda(t, "github.com/hasplock/hasp/functions/aws"), []string{
		"HASP_STORE=dynamodb://hasp-locks", "AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test", "AWS_ENDPOINT_URL_DYNAMODB=" + moto,
	})
	gw := &launch.APIGateway{InvokeURL: invoke}
	tg := apitest.Target{BaseURL: "https://hasptest.execute-api.us-east-1.amazonaws.com", Client: &http.Client{Transport: gw}, Provider: "dynamodb", Serial: true}
	apitest.Run(t, tg)

	t.Run("Base64Body", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, tg.BaseURL+"/v1/locks/acquire", nil)
		ev := launch.Event(req, []byte(`{"name":"b64"}`))
		ev.Body, ev.IsBase64Encoded = "eyJuYW1lIjoiYjY0In0=", true // {"name":"b64"}
		raw, err := gw.Invoke(ev)
		require.NoError(t, err)
		var out events.APIGatewayV2HTTPResponse
		require.NoError(t, json.Unmarshal(raw, &out))
		assert.Equal(t, 200, out.StatusCode, out.Body)
		assert.Equal(t, "application/json", out.Headers["Content-Type"])
		assert.Contains(t, out.Body, `"fencing_token"`)
	})
	t.Run("JSONLogsWithRequestIDs", func(t *testing.T) {
		var lines int
		for _, line := range strings.Split(rie.Logs(), "\n") {
			if !strings.Contains(line, `"msg":"request"`) {
				continue
			}
			lines++
			var rec map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
			assert.NotEmpty(t, rec["aws_request_id"], line)
			assert.NotEmpty(t, rec["apigw_request_id"], line)
			assert.NotContains(t, line, "lease_id", "logs never carry a lease id")
		}
		assert.Positive(t, lines, "the function logs each request as JSON")
	})
	t.Run("EmbeddedMetricFormat", func(t *testing.T) {
		// Each invocation writes its metrics as EMF lines on stdout, which
		// CloudWatch Logs turns into metrics in the namespace "hasp".
		metrics := map[string]bool{}
		for _, line := range strings.Split(rie.Logs(), "\n") {
			if !strings.Contains(line, `"_aws"`) {
				continue
			}
			var rec struct {
				AWS struct {
					Timestamp         int64
					CloudWatchMetrics []struct {
						Namespace  string
						Dimensions [][]string
						Metrics    []struct{ Name, Unit string }
					}
				} `json:"_aws"`
			}
			require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
			require.Len(t, rec.AWS.CloudWatchMetrics, 1)
			assert.Equal(t, "hasp", rec.AWS.CloudWatchMetrics[0].Namespace)
			for _, m := range rec.AWS.CloudWatchMetrics[0].Metrics {
				metrics[m.Name] = true
			}
		}
		for _, name := range []string{"lock_acquire_total", "lock_acquire_duration_seconds", "lock_release_total", "lock_renew_total",
			"lock_backend_requests_total", "lock_http_requests_total", "lock_contended_acquire_total", "lock_hold_duration_seconds"} {
			assert.True(t, metrics[name], "the function wrote %s", name)
		}
	})
	t.Run("HeadersThatMatter", func(t *testing.T) {
		r := tg.Do(t, http.MethodDelete, "/v1/locks/acquire", nil)
		assert.Equal(t, 405, r.Status)
		assert.Equal(t, "POST", r.Header.Get("Allow"))
		r = tg.Post(t, "/v1/locks/acquire", strings.Repeat(" ", 70000))
		assert.Equal(t, 413, r.Status)
	})
}
