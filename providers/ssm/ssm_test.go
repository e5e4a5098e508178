package ssm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsssm "github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hasplock/hasp/api"
	"github.com/hasplock/hasp/local/testbed/launch"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/providertest"
	"github.com/hasplock/hasp/providers/ssm"
	"github.com/hasplock/hasp/service"
)

const prefix = "/hasp/test"

// client returns a Parameter Store client for url; hc nil means the SDK's
// default HTTP client; retries false turns the SDK's retries off.
func client(url string, hc aws.HTTPClient, retries bool) *awsssm.Client {
	o := awsssm.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:   hc,
	}
	if !retries {
		o.Retryer = aws.NopRetryer{}
	}
	return awsssm.New(o)
}

func open(t *testing.T, c *awsssm.Client, opts ...ssm.Option) *ssm.Provider {
	t.Helper()
	p, err := ssm.New(c, prefix, opts...)
	require.NoError(t, err)
	return p
}

func harness(url string, hc aws.HTTPClient) providertest.Harness {
	return providertest.Harness{
		Open: func(t *testing.T) providers.Provider { return open(t, client(url, hc, true)) },
		OpenWithClock: func(t *testing.T, c lock.Clock) providers.Provider {
			return open(t, client(url, hc, true), ssm.WithClock(c))
		},
		Contention: providertest.ContentionConfig{Goroutines: 8, Names: 3, Acquires: 1000},
	}
}

// TestConformanceMoto runs the conformance suite, contention included, on
// moto served one request at a time (launch.Moto).
func TestConformanceMoto(t *testing.T) {
	providertest.Run(t, harness(launch.Moto(t), nil))
}

// counter counts Parameter Store requests by their X-Amz-Target.
type counter struct {
	mu  sync.Mutex
	ops map[string]int
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.ops[strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonSSM.")]++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *counter) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.ops
	c.ops = map[string]int{}
	return old
}

// TestRequestCounts pins the calls of each operation when nobody else
// writes: one GetParameter to read, one PutParameter to write; a held
// acquire, a status and a health check only read; a lost renew or release
// writes once to pin the state it answers from.
func TestRequestCounts(t *testing.T) {
	cnt := &counter{ops: map[string]int{}}
	p := open(t, client(launch.Moto(t), &http.Client{Transport: cnt}, true))
	s := service.New(p)
	ctx := context.Background()
	get, put := "GetParameter", "PutParameter"

	l, err := s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{get: 1, put: 1}, cnt.reset(), "first acquire: not found, then a create")
	for i := range 3 {
		require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: l.LeaseID}))
		l, err = s.Acquire(ctx, lock.AcquireRequest{Name: "n"})
		require.NoError(t, err)
		assert.Equal(t, map[string]int{get: 2, put: 2}, cnt.reset(), "release+acquire %d", i)
	}
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID})
	require.NoError(t, err)
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "n", LeaseID: l.LeaseID, TTL: 5 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, map[string]int{get: 2, put: 2}, cnt.reset(), "one read and one write per renew")
	_, err = s.TryAcquire(ctx, lock.AcquireRequest{Name: "n"})
	require.ErrorIs(t, err, lock.ErrHeld)
	_, err = s.Status(ctx, "n")
	require.NoError(t, err)
	require.NoError(t, s.Ping(ctx))
	assert.Equal(t, map[string]int{get: 3}, cnt.reset(), "held acquire, status and ping only read")
	require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: "n", LeaseID: providers.NewLeaseID()}), lock.ErrLeaseLost)
	assert.Equal(t, map[string]int{get: 1, put: 1}, cnt.reset(), "a lost release pins the state with one write")
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "never-used", LeaseID: l.LeaseID})
	require.ErrorIs(t, err, lock.ErrLeaseLost)
	assert.Equal(t, map[string]int{get: 1, put: 1}, cnt.reset(), "a renew of an unknown name pins \"not found\" with a create")
	assert.Equal(t, int64(2+3*4+4+3+2+2), p.BackendRequests(), "BackendRequests counts every call")
}

// dropFirst applies the first request whose body contains match, then
// loses its answer (a reset connection), so that the SDK retries it.
type dropFirst struct {
	match   string
	dropped atomic.Bool
}

func (d *dropFirst) RoundTrip(r *http.Request) (*http.Response, error) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || !bytes.Contains(body, []byte(d.match)) || d.dropped.Swap(true) {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
}

// op matches the record of one operation inside PutParameter's Value.
func op(name string) string { return `\"op\":\"` + name + `\"` }

// TestWritesRetriedAfterApplied: the SDK retries a write whose answer was
// lost after it was applied. The first attempt took effect; the retry
// lands later and does not. Acquire finds its own lease in the state;
// release finds its own mark on the version after the one it read, and
// answers released; a second release is lost.
func TestWritesRetriedAfterApplied(t *testing.T) {
	url := launch.Moto(t)
	ctx := context.Background()
	for _, what := range []string{"acquire", "renew", "release", "sync"} {
		t.Run(what, func(t *testing.T) {
			drop := &dropFirst{match: op(what)}
			s := service.New(open(t, client(url, &http.Client{Transport: drop}, true)))
			name := "retried-" + what
			if what == "acquire" {
				// The first acquire is a create: retried, it finds the
				// parameter there.
				l, err := s.Acquire(ctx, lock.AcquireRequest{Name: name})
				require.NoError(t, err)
				require.True(t, drop.dropped.Load())
				require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}))
				drop.dropped.Store(false)
			}
			l, err := s.Acquire(ctx, lock.AcquireRequest{Name: name})
			require.NoError(t, err)
			r, err := s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID})
			require.NoError(t, err)
			assert.Equal(t, l.FencingToken, r.FencingToken)
			require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}), "the release went through")
			_, err = s.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: l.LeaseID})
			require.ErrorIs(t, err, lock.ErrLeaseLost, "a renew after the release is lost (and syncs)")
			require.ErrorIs(t, s.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: l.LeaseID}), lock.ErrLeaseLost, "a second release is lost")
			require.True(t, drop.dropped.Load(), "an answer was lost")
			l2, err := s.Acquire(ctx, lock.AcquireRequest{Name: name})
			require.NoError(t, err)
			assert.Greater(t, l2.FencingToken, l.FencingToken)
		})
	}
}

// refuse answers every PutParameter with an error of the given type, and
// passes the rest on.
type refuse struct{ code string }

func (f refuse) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("X-Amz-Target") != "AmazonSSM.PutParameter" {
		return http.DefaultTransport.RoundTrip(r)
	}
	return errorResponse(r, f.code, "Rate exceeded"), nil
}

func errorResponse(r *http.Request, code, msg string) *http.Response {
	body, _ := json.Marshal(map[string]string{"__type": code, "message": msg})
	return &http.Response{
		StatusCode: http.StatusBadRequest, Status: "400 Bad Request", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/x-amz-json-1.1"}, "X-Amzn-Requestid": {"test"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}
}

// TestThrottledIs429: ThrottlingException and TooManyUpdates are
// lock.ErrThrottled, which the API answers 429 with Retry-After; a write
// whose answer never came is 503 unavailable, never a success.
func TestThrottledIs429(t *testing.T) {
	url := launch.Moto(t)
	for _, tt := range []struct {
		name   string
		rt     func() http.RoundTripper
		status int
		code   string
	}{
		{"ThrottlingException", func() http.RoundTripper { return refuse{"ThrottlingException"} }, http.StatusTooManyRequests, "throttled"},
		{"TooManyUpdates", func() http.RoundTripper { return refuse{"TooManyUpdates"} }, http.StatusTooManyRequests, "throttled"},
		{"answer lost", func() http.RoundTripper { return &dropFirst{match: op("acquire")} }, http.StatusServiceUnavailable, "unavailable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := open(t, client(url, &http.Client{Transport: tt.rt()}, false))
			_, err := p.Acquire(context.Background(), lock.AcquireRequest{Name: "throttled-" + tt.name, LeaseID: providers.NewLeaseID(), TTL: time.Second})
			if tt.status == http.StatusTooManyRequests {
				require.ErrorIs(t, err, lock.ErrThrottled)
			} else {
				require.ErrorIs(t, err, lock.ErrUnavailable)
			}
			p = open(t, client(url, &http.Client{Transport: tt.rt()}, false))
			srv := httptest.NewServer(api.New(service.New(p)))
			defer srv.Close()
			resp, err := http.Post(srv.URL+"/v1/locks/acquire", "application/json", strings.NewReader(`{"name":"api-`+strings.ReplaceAll(tt.name, " ", "-")+`"}`))
			require.NoError(t, err)
			defer resp.Body.Close()
			var body struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			assert.Equal(t, tt.status, resp.StatusCode)
			assert.Equal(t, tt.code, body.Error.Code)
			assert.Equal(t, "1", resp.Header.Get("Retry-After"))
			assert.NotContains(t, body.Error.Message, "Rate exceeded", "backend text never leaks")
		})
	}
}

// staleReads makes Parameter Store reads eventually consistent, the way
// AWS documents none but its CloudFormation documentation warns of: a read
// of a parameter's latest version may answer an older version, or "not
// found" when it goes back past version 1; a read of given versions may
// leave some out ("not found" yet). It never answers a value that a
// version did not have. It relies on moto not checking signatures (it
// rewrites request bodies).
type staleReads struct {
	next http.RoundTripper
	// back, if positive, makes every read of a latest version answer that
	// many versions back; otherwise staleP of them answer 1 to maxBack
	// versions back.
	back, maxBack int64
	staleP, hideP float64

	stale, hidden atomic.Int64
}

func (s *staleReads) RoundTrip(r *http.Request) (*http.Response, error) {
	target := r.Header.Get("X-Amz-Target")
	if target != "AmazonSSM.GetParameter" && target != "AmazonSSM.GetParameters" {
		return s.next.RoundTrip(r)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	resp, err := s.next.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	out, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	if target == "AmazonSSM.GetParameters" {
		return s.hide(resp, out), nil
	}
	back := s.back
	if back <= 0 {
		if rand.Float64() >= s.staleP {
			return resp, nil
		}
		back = 1 + rand.Int64N(s.maxBack)
	}
	var in struct{ Name string }
	var got struct{ Parameter struct{ Version int64 } }
	if json.Unmarshal(body, &in) != nil || json.Unmarshal(out, &got) != nil || strings.Contains(in.Name, ":") {
		return resp, nil
	}
	s.stale.Add(1)
	old := got.Parameter.Version - back
	if old < 1 {
		return errorResponse(r, "ParameterNotFound", "Parameter "+in.Name+" not found."), nil
	}
	b, _ := json.Marshal(map[string]string{"Name": in.Name + ":" + strconv.FormatInt(old, 10)})
	r2 := r.Clone(r.Context())
	r2.Body, r2.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	return s.next.RoundTrip(r2)
}

// hide leaves out each version of a GetParameters answer with chance hideP.
func (s *staleReads) hide(resp *http.Response, out []byte) *http.Response {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(out))
	d.UseNumber()
	if s.hideP == 0 || d.Decode(&m) != nil {
		return resp
	}
	params, _ := m["Parameters"].([]any)
	kept := params[:0]
	for _, p := range params {
		if rand.Float64() < s.hideP {
			s.hidden.Add(1)
			continue
		}
		kept = append(kept, p)
	}
	m["Parameters"] = kept
	b, _ := json.Marshal(m)
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	resp.Header.Del("Content-Length")
	resp.Header.Del("X-Amz-Crc32")
	return resp
}

// TestStaleReads: with every read of a latest version answered from the
// past, acquire, renew and release still answer right — a stale read only
// costs writes that are not effective — and never a false success or a
// false lease_lost. Only status (and lock_held) may show the past.
func TestStaleReads(t *testing.T) {
	url := launch.Moto(t)
	ctx := context.Background()
	for _, back := range []int64{1, 2, 5} {
		t.Run(fmt.Sprintf("%d versions back", back), func(t *testing.T) {
			sr := &staleReads{next: http.DefaultTransport, back: back}
			stale := service.New(open(t, client(url, &http.Client{Transport: sr}, true)))
			fresh := service.New(open(t, client(url, nil, true)))
			name := fmt.Sprintf("stale-%d", back)

			a, err := stale.Acquire(ctx, lock.AcquireRequest{Name: name, TTL: 10 * time.Second})
			require.NoError(t, err)
			for i := range 3 {
				r, err := stale.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: a.LeaseID})
				require.NoError(t, err, "renew %d of a live lease read from the past", i)
				assert.Equal(t, a.FencingToken, r.FencingToken)
			}
			_, err = stale.TryAcquire(ctx, lock.AcquireRequest{Name: name})
			require.ErrorIs(t, err, lock.ErrHeld, "a past without the holder never grants the lock")
			require.NoError(t, stale.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: a.LeaseID}))
			_, err = stale.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: a.LeaseID})
			require.ErrorIs(t, err, lock.ErrLeaseLost, "a past in which the lease held never renews it after its release")
			require.ErrorIs(t, stale.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: a.LeaseID}), lock.ErrLeaseLost)

			b, err := fresh.Acquire(ctx, lock.AcquireRequest{Name: name, TTL: 10 * time.Second})
			require.NoError(t, err)
			assert.Greater(t, b.FencingToken, a.FencingToken)
			_, err = stale.TryAcquire(ctx, lock.AcquireRequest{Name: name})
			require.ErrorIs(t, err, lock.ErrHeld, "a past in which the lock was free never grants it")
			_, err = stale.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: a.LeaseID})
			require.ErrorIs(t, err, lock.ErrLeaseLost)
			r, err := stale.Renew(ctx, lock.RenewRequest{Name: name, LeaseID: b.LeaseID})
			require.NoError(t, err, "the holder renews through stale reads")
			assert.Equal(t, b.FencingToken, r.FencingToken)
			require.NoError(t, stale.Release(ctx, lock.ReleaseRequest{Name: name, LeaseID: b.LeaseID}))
			st, err := fresh.Status(ctx, name)
			require.NoError(t, err)
			assert.False(t, st.Held, "released, as a fresh read shows")
			assert.Positive(t, sr.stale.Load())
		})
	}
}

// TestUnreadableVersion: a version that cannot be read (not visible yet, or
// no longer kept) is never guessed: the operation answers unavailable.
func TestUnreadableVersion(t *testing.T) {
	url := launch.Moto(t)
	ctx := context.Background()
	sr := &staleReads{next: http.DefaultTransport, back: 2, hideP: 1}
	s := service.New(open(t, client(url, &http.Client{Transport: sr}, true)))
	a, err := s.Acquire(ctx, lock.AcquireRequest{Name: "unreadable", TTL: 10 * time.Second})
	require.NoError(t, err)
	// The latest read answers "not found"; the create that would pin it
	// finds the parameter, and the overwrite's state needs version 1,
	// which stays hidden.
	_, err = s.Renew(ctx, lock.RenewRequest{Name: "unreadable", LeaseID: a.LeaseID})
	require.ErrorIs(t, err, lock.ErrUnavailable)
	assert.Positive(t, sr.hidden.Load())
	sr.hideP = 0
	r, err := s.Renew(ctx, lock.RenewRequest{Name: "unreadable", LeaseID: a.LeaseID})
	require.NoError(t, err, "once the versions are readable")
	assert.Equal(t, a.FencingToken, r.FencingToken)
}

// TestOpen: store URLs and prefixes.
func TestOpen(t *testing.T) {
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	ctx := context.Background()
	for store, want := range map[string]string{
		"ssm:///hasp/locks":                    "",
		"ssm:///hasp/locks/":                   "",
		"ssm:///Hasp_1.x-y":                    "",
		"ssm:///a/b/c/d/e/f/g/h/i/j/k/l/m/n":   "",
		"ssm://hasp/locks":                     "three slashes",
		"ssm:hasp":                             "three slashes",
		"ssm:///":                              "no prefix",
		"ssm://":                               "no prefix",
		"ssm:///hasp//locks":                   "empty level",
		"ssm:///hasp/lo:cks":                   "may contain only",
		"ssm:///aws/locks":                     "reserves",
		"ssm:///SSM-locks":                     "reserves",
		"ssm:///a/b/c/d/e/f/g/h/i/j/k/l/m/n/o": "15 levels, more than 14",
		"ssm:///" + strings.Repeat("x", ssm.MaxPrefixLen): "more than 128",
		"ssm:///hasp?region=eu-west-1":                    `unknown parameter "region"`,
	} {
		p, err := providers.Open(ctx, store)
		if want == "" {
			require.NoError(t, err, store)
			assert.Equal(t, "ssm", p.Name())
			assert.Equal(t, providers.GuaranteeStaleReads, providers.GuaranteeOf(p))
			continue
		}
		require.Error(t, err, store)
		assert.Contains(t, err.Error(), want, store)
	}
}

// unescape is Escape's inverse.
func unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '_' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("short escape in %q", s)
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", err
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), nil
}

// TestEscape: every lock name maps to a distinct parameter name made only
// of the characters Parameter Store allows, never "." or ".." alone, and
// never the health check's.
func TestEscape(t *testing.T) {
	assert.Equal(t, "jobs_2Fnightly", ssm.Escape("jobs/nightly"))
	assert.Equal(t, "_2E", ssm.Escape("."))
	assert.Equal(t, "_2E.", ssm.Escape(".."))
	assert.Equal(t, "a.b-c_5Fd_3A_40_3D_2B_7E", ssm.Escape("a.b-c_d:@=+~"))
	const alphabet = "abcXYZ019._-:/@=+~"
	for range 5000 {
		n := make([]byte, 1+rand.IntN(12))
		for i := range n {
			n[i] = alphabet[rand.IntN(len(alphabet))]
		}
		e := ssm.Escape(string(n))
		back, err := unescape(e)
		require.NoError(t, err, e)
		require.Equal(t, string(n), back, "one-to-one")
		un, ok := ssm.Unescape(e)
		require.True(t, ok, e)
		require.Equal(t, string(n), un, "Unescape is Escape's inverse")
		for i := 0; i < len(e); i++ {
			c := e[i]
			require.True(t, 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-", c) >= 0, "%q", e)
		}
		require.NotEqual(t, "_ping", e)
		require.NotEqual(t, '.', e[0])
	}
	for _, s := range []string{"_ping", "_2e", "_41", "_2", "a_", ".x", "_ZZ", "a_2Fb_"} {
		_, ok := ssm.Unescape(s)
		assert.False(t, ok, "%q is not what Escape writes", s)
	}
	long := ssm.Escape(strings.Repeat("/", lock.MaxNameLen))
	u, _ := url.Parse("ssm:///" + strings.Repeat("x", ssm.MaxPrefixLen-1))
	arn := "arn:aws-us-gov:ssm:ap-southeast-4:123456789012:parameter"
	assert.LessOrEqual(t, len(arn)+len(u.Path)+1+len(long), 1011, "the longest parameter's ARN fits Parameter Store's limit")
}

// overwrite writes value as the next version of name's parameter under
// prefix, bypassing the provider: a record whose prev is not the version
// before it stands for a write that lost a race.
func overwrite(t *testing.T, c *awsssm.Client, prefix, name, value string) {
	t.Helper()
	_, err := c.PutParameter(context.Background(), &awsssm.PutParameterInput{
		Name: aws.String(prefix + "/" + ssm.Escape(name)), Value: aws.String(value),
		Type: "String", Overwrite: aws.Bool(true),
	})
	require.NoError(t, err)
}

// TestList: a listing is sorted by lock name (not by escaped parameter
// name), leaves out parameters that are no lock's, computes each state
// from the version chain — a latest version that lost a race neither
// hides the holder nor invents one — and costs ⌈P/10⌉ GetParametersByPath
// per page plus one GetParameters per walk back.
func TestList(t *testing.T) {
	cnt := &counter{ops: map[string]int{}}
	c := client(launch.Moto(t), &http.Client{Transport: cnt}, true)
	const pfx = "/hasp/list"
	p, err := ssm.New(c, pfx)
	require.NoError(t, err)
	s := service.New(p)
	ctx := context.Background()

	// 23 lock parameters and one that is no lock's: P = 24, 3 requests.
	held := map[string]lock.Lease{}
	for i := range 20 {
		n := fmt.Sprintf("jobs/%02d", i)
		if i%4 == 3 {
			n = fmt.Sprintf("jobs_%02d", i) // "_" escapes to _5F, which sorts before "/"'s _2F
		}
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: n, Owner: "o", TTL: 30 * time.Second})
		require.NoError(t, err)
		held[n] = l
	}
	free, err := s.Acquire(ctx, lock.AcquireRequest{Name: "jobs/free"})
	require.NoError(t, err)
	require.NoError(t, s.Release(ctx, lock.ReleaseRequest{Name: "jobs/free", LeaseID: free.LeaseID}))
	other, err := s.Acquire(ctx, lock.AcquireRequest{Name: "other", TTL: 30 * time.Second})
	require.NoError(t, err)
	lost, err := s.Acquire(ctx, lock.AcquireRequest{Name: "jobs/lost", TTL: 30 * time.Second})
	require.NoError(t, err)
	held["jobs/lost"] = lost
	// A write that lost a race on top of a holder (prev 0 at version 2),
	// and one that would hold the free lock (prev 1 at version 3).
	intruder := fmt.Sprintf(`{"p":%d,"b":1,"op":"acquire","n":"x","l":"intruder","t":7,"e":%d}`, 0, time.Now().Add(time.Hour).UnixMilli())
	overwrite(t, c, pfx, "jobs/lost", intruder)
	overwrite(t, c, pfx, "jobs/free", strings.Replace(intruder, `"p":0`, `"p":1`, 1))
	_, err = c.PutParameter(ctx, &awsssm.PutParameterInput{Name: aws.String(pfx + "/_ping"), Value: aws.String("x"), Type: "String"})
	require.NoError(t, err)
	cnt.reset()

	var names []string
	page, walks := "", 0
	for pages := 0; ; pages++ {
		require.Less(t, pages, 20)
		items, next, err := s.List(ctx, "jobs", 8, page)
		require.NoError(t, err)
		ops := cnt.reset()
		assert.Equal(t, 3, ops["GetParametersByPath"], "⌈24/10⌉ per page")
		walks += ops["GetParameters"]
		delete(ops, "GetParameters")
		assert.Len(t, ops, 1, "nothing else: %v", ops)
		for _, st := range items {
			l, ok := held[st.Name]
			require.True(t, ok, "listed %s", st.Name)
			assert.Equal(t, lock.Holder{Owner: l.Owner, FencingToken: l.FencingToken, ExpiresAt: l.ExpiresAt, Metadata: l.Metadata}, st.Holder, st.Name)
			names = append(names, st.Name)
		}
		if next == "" {
			break
		}
		page = next
	}
	assert.Equal(t, 2, walks, "one walk back each for jobs/free and jobs/lost, none for the others")
	assert.Len(t, names, len(held), "every held lock under the prefix, once; not jobs/free, other or _ping")
	assert.True(t, slices.IsSorted(names), "in byte order of lock name: %v", names)
	assert.NotContains(t, names, other.Name)

	_, _, err = p.List(ctx, "jobs", 8, "other")
	require.ErrorIs(t, err, lock.ErrInvalidArgument, "a continuation outside the prefix")
	items, next, err := p.List(ctx, "nothing", 8, "")
	require.NoError(t, err)
	assert.Empty(t, items)
	assert.Empty(t, next)
}

// TestListReadBudget: a page stops walking back once WithListReadBudget
// GetParameters are spent, and the next page goes on from there.
func TestListReadBudget(t *testing.T) {
	cnt := &counter{ops: map[string]int{}}
	c := client(launch.Moto(t), &http.Client{Transport: cnt}, true)
	const pfx = "/hasp/budget"
	p, err := ssm.New(c, pfx, ssm.WithListReadBudget(1))
	require.NoError(t, err)
	s := service.New(p)
	ctx := context.Background()
	want := map[string]int64{}
	for _, n := range []string{"a", "b", "c"} {
		l, err := s.Acquire(ctx, lock.AcquireRequest{Name: n, TTL: 30 * time.Second})
		require.NoError(t, err)
		want[n] = l.FencingToken
		overwrite(t, c, pfx, n, `{"p":0,"b":1,"op":"acquire","n":"x","l":"intruder","t":7,"e":1}`)
	}
	cnt.reset()
	got := map[string]int64{}
	page, pages := "", 0
	for ; ; pages++ {
		require.Less(t, pages, 10)
		items, next, err := p.List(ctx, "", 10, page)
		require.NoError(t, err)
		assert.Equal(t, 1, cnt.reset()["GetParameters"], "one walk back per page")
		for _, st := range items {
			got[st.Name] = st.Holder.FencingToken
		}
		if next == "" {
			break
		}
		page = next
	}
	assert.Equal(t, 2, pages, "three pages, each with one walk")
	assert.Equal(t, want, got)
}
