package launch

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// LambdaRIE starts the AWS Lambda Runtime Interface Emulator (installed
// into bin/tools by `make deps`) running bootstrap with env added, on
// loopback addresses only, and returns its invoke URL.
func LambdaRIE(t testing.TB, bootstrap string, env []string) string {
	url, _ := LambdaRIEProc(t, bootstrap, env)
	return url
}

// LambdaRIEProc is LambdaRIE that also returns the emulator's process,
// whose logs hold the function's.
func LambdaRIEProc(t testing.TB, bootstrap string, env []string) (string, *Proc) {
	t.Helper()
	rie := filepath.Join(ModuleRoot(t), "bin", "tools", "aws-lambda-rie")
	if _, err := os.Stat(rie); err != nil {
		p, lerr := exec.LookPath("aws-lambda-rie")
		Require(t, lerr == nil, "aws-lambda-rie", "run `make deps`: it installs the emulator from its Go module into bin/tools")
		rie = p
	}
	port, apiPort := FreePort(t), FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	// Its defaults listen on every interface: always pass both addresses.
	p := StartProc(t, "aws-lambda-rie", append([]string{"AWS_LAMBDA_FUNCTION_TIMEOUT=60"}, env...), HTTPReady(base),
		rie, "--runtime-interface-emulator-address", "127.0.0.1:"+strconv.Itoa(port),
		"--runtime-api-address", "127.0.0.1:"+strconv.Itoa(apiPort), "--log-level", "error", bootstrap)
	return base + "/2015-03-31/functions/function/invocations", p
}

// BuildLambda builds the Go main package pkg as a Lambda bootstrap for this
// machine (the emulator runs it natively), with the flags of
// `make build-lambda`, and returns its path.
func BuildLambda(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc,hasp_lambda", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, b)
	}
	return out
}

// APIGateway is an http.RoundTripper that turns each request into the
// event an API Gateway HTTP API ($default stage, payload format 2.0) would
// send, invokes a function through the Runtime Interface Emulator, and
// turns the function's answer back into an HTTP response. Invocations are
// serialized: the emulator runs one at a time.
type APIGateway struct {
	// InvokeURL is the emulator's invoke URL (LambdaRIE).
	InvokeURL string

	mu sync.Mutex
	hc http.Client
}

// Event builds the API Gateway HTTP API event for r.
func Event(r *http.Request, body []byte) events.APIGatewayV2HTTPRequest {
	headers := map[string]string{}
	for k, vs := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	headers["host"] = r.URL.Host
	if len(body) > 0 {
		headers["content-length"] = strconv.Itoa(len(body))
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	now := time.Now()
	ev := events.APIGatewayV2HTTPRequest{
		Version:        "2.0",
		RouteKey:       "$default",
		RawPath:        r.URL.EscapedPath(),
		RawQueryString: r.URL.RawQuery,
		Headers:        headers,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:   "$default",
			AccountID:  "123456789012",
			Stage:      "$default",
			RequestID:  hex.EncodeToString(id[:]),
			APIID:      "hasptest",
			DomainName: r.URL.Host,
			Time:       now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:  now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: r.Method, Path: r.URL.EscapedPath(), Protocol: "HTTP/1.1",
				SourceIP: "127.0.0.1", UserAgent: r.UserAgent(),
			},
		},
	}
	switch {
	case len(body) == 0:
	case utf8.Valid(body):
		ev.Body = string(body)
	default: // API Gateway base64-encodes bodies that are not text
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
	}
	return ev
}

// Invoke sends one event and returns the function's raw answer.
func (a *APIGateway) Invoke(ev any) ([]byte, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	resp, err := a.hc.Post(a.InvokeURL, "application/json", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("invoke: HTTP %d: %s", resp.StatusCode, out)
	}
	return out, nil
}

// RoundTrip implements http.RoundTripper.
func (a *APIGateway) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		var err error
		if body, err = io.ReadAll(r.Body); err != nil {
			return nil, err
		}
		r.Body.Close()
	}
	raw, err := a.Invoke(Event(r, body))
	if err != nil {
		return nil, err
	}
	var out events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(raw, &out); err != nil || out.StatusCode == 0 {
		return nil, fmt.Errorf("the function did not answer with an HTTP API response: %s", raw)
	}
	respBody := []byte(out.Body)
	if out.IsBase64Encoded {
		if respBody, err = base64.StdEncoding.DecodeString(out.Body); err != nil {
			return nil, err
		}
	}
	h := http.Header{}
	for k, v := range out.Headers {
		h.Set(k, v)
	}
	for k, vs := range out.MultiValueHeaders {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	if r.Method == http.MethodHead {
		respBody = nil // API Gateway sends no body on HEAD
	}
	return &http.Response{
		StatusCode: out.StatusCode, Status: fmt.Sprintf("%d %s", out.StatusCode, http.StatusText(out.StatusCode)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(bytes.NewReader(respBody)), ContentLength: int64(len(respBody)), Request: r,
	}, nil
}
