package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/hasplock/hasp/api/wire"
	"github.com/hasplock/hasp/lock"
)

// DefaultEndpoint is where `hasp serve` listens by default.
const DefaultEndpoint = "http://127.0.0.1:8080"

// Client calls a hasp endpoint. It is safe for concurrent use.
type Client struct {
	base   string
	hc     *http.Client
	header http.Header
	hooks  []func(*http.Request) error
	creds  aws.CredentialsProvider
	region string
	signer *v4.Signer
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sends requests with hc (default: a client with the default
// transport; each request is bounded by its context).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithBearerToken sends "Authorization: Bearer token" (hasp serve's
// --auth-token-file).
func WithBearerToken(token string) Option {
	return func(c *Client) { c.header.Set("Authorization", "Bearer "+token) }
}

// WithHeader sends a static header on every request, e.g. the Azure
// Functions key: WithHeader("x-functions-key", key).
func WithHeader(key, value string) Option { return func(c *Client) { c.header.Add(key, value) } }

// WithRequestHook calls fn on every request before it is sent (and before
// it is signed), e.g. to add a fresh Google identity token.
func WithRequestHook(fn func(*http.Request) error) Option {
	return func(c *Client) { c.hooks = append(c.hooks, fn) }
}

// WithSigV4 signs every request with AWS Signature Version 4 for service
// "execute-api" in region, with credentials from creds (any
// aws.CredentialsProvider, e.g. from config.LoadDefaultConfig), so the
// client can call an IAM-authorized API Gateway.
func WithSigV4(creds aws.CredentialsProvider, region string) Option {
	return func(c *Client) {
		c.creds, c.region, c.signer = aws.NewCredentialsCache(creds), region, v4.NewSigner()
	}
}

// New returns a client for the hasp endpoint, e.g. "http://127.0.0.1:8080"
// or an API Gateway URL.
func New(endpoint string, opts ...Option) (*Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: endpoint %q is not an http(s) URL", endpoint)
	}
	c := &Client{base: strings.TrimRight(endpoint, "/"), hc: &http.Client{}, header: http.Header{}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Error is an HTTP error answer that no more specific error describes. It
// matches the lock package's sentinel for its code with errors.Is.
type Error struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is the body's error code ("lease_lost", "unavailable", ...), or
	// empty when the body was not an API v1 error.
	Code string
	// Message is the body's message.
	Message string
	// Field is the field at fault, for invalid_argument.
	Field string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d: %s", e.StatusCode, e.Message)
	}
	return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.StatusCode, e.Message)
}

// Unwrap returns the sentinel for the error's code or status.
func (e *Error) Unwrap() error {
	switch {
	case e.Code == "lease_lost":
		return lock.ErrLeaseLost
	case e.Code == "lock_held":
		return lock.ErrHeld
	case e.Code == "permits_mismatch":
		return lock.ErrPermitsMismatch
	case e.Code == "record_too_large":
		return lock.ErrRecordTooLarge
	case e.Code == "invalid_argument" || e.StatusCode == http.StatusRequestEntityTooLarge:
		return lock.ErrInvalidArgument
	case e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden:
		return lock.ErrUnauthenticated
	case e.StatusCode == http.StatusTooManyRequests:
		return lock.ErrThrottled
	case e.StatusCode == http.StatusServiceUnavailable || e.StatusCode == http.StatusBadGateway || e.StatusCode == http.StatusGatewayTimeout:
		return lock.ErrUnavailable
	}
	return nil
}

// call sends one request and decodes a 200 answer into out.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	for k, v := range c.header {
		req.Header[k] = append([]string(nil), v...)
	}
	for _, h := range c.hooks {
		if err := h(req); err != nil {
			return fmt.Errorf("client: request hook: %w", err)
		}
	}
	if c.signer != nil {
		if err := c.sign(ctx, req, body); err != nil {
			return err
		}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The request may have reached the service: the outcome is unknown.
		return &lock.RetryableError{Err: fmt.Errorf("%w: %w", lock.ErrUnavailable, err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &lock.RetryableError{Err: fmt.Errorf("%w: reading the answer: %w", lock.ErrUnavailable, err)}
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("hasp: undecodable answer: %w", err)
		}
		return nil
	}
	return decodeError(resp, raw)
}

func (c *Client) sign(ctx context.Context, req *http.Request, body []byte) error {
	creds, err := c.creds.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("client: AWS credentials: %w", err)
	}
	sum := sha256.Sum256(body)
	return c.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "execute-api", c.region, time.Now())
}

// decodeError turns an error answer into the matching error value.
func decodeError(resp *http.Response, raw []byte) error {
	var body struct {
		Error        wire.ErrorBody   `json:"error"`
		Holder       *wire.HolderBody `json:"holder"`
		RetryAfterMs int64            `json:"retry_after_ms"`
		Permits      int              `json:"permits"`
		DelayedUntil string           `json:"delayed_until"`
		Message      string           `json:"message"` // API Gateway's own errors
	}
	_ = json.Unmarshal(raw, &body)
	if body.Error.Code == "lock_held" && body.Holder != nil {
		exp, _ := lock.ParseTime(body.Holder.ExpiresAt)
		held := &lock.HeldError{
			Holder:     lock.Holder{Owner: body.Holder.Owner, FencingToken: body.Holder.FencingToken, ExpiresAt: exp},
			RetryAfter: time.Duration(body.RetryAfterMs) * time.Millisecond,
			Permits:    body.Permits,
		}
		if body.DelayedUntil != "" {
			held.DelayedUntil, _ = lock.ParseTime(body.DelayedUntil)
		}
		return held
	}
	if body.Error.Code == "permits_mismatch" {
		return &lock.PermitsMismatchError{Permits: body.Permits}
	}
	e := &Error{StatusCode: resp.StatusCode, Code: body.Error.Code, Message: body.Error.Message, Field: body.Error.Field}
	if e.Message == "" {
		e.Message = body.Message
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	if e.Code == "invalid_argument" {
		return &lock.InvalidArgumentError{Field: e.Field, Message: e.Message}
	}
	if s := resp.StatusCode; s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable || s == http.StatusBadGateway || s == http.StatusGatewayTimeout {
		return &lock.RetryableError{Err: e, RetryAfter: retryAfterHeader(resp.Header.Get("Retry-After"))}
	}
	return e
}

func retryAfterHeader(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// retryable reports whether err may go away by itself (throttling, an
// unreachable or overloaded service).
func retryable(err error) bool {
	return errors.Is(err, lock.ErrUnavailable) || errors.Is(err, lock.ErrThrottled)
}

// AcquireOnce sends one acquire with the given server-side wait and returns
// the granted lease's fields, without starting renewals. Most callers want
// Acquire or TryAcquire.
func (c *Client) AcquireOnce(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	var out wire.LeaseResponse
	body := wire.AcquireRequest{
		Name: req.Name, Owner: req.Owner, TTLMs: req.TTL.Milliseconds(), WaitMs: req.Wait.Milliseconds(), Metadata: req.Metadata,
		LockDelayMs: req.LockDelay.Milliseconds(),
	}
	if req.Permits > 1 {
		body.Permits = req.Permits
	}
	err := c.call(ctx, http.MethodPost, "/v1/locks/acquire", body, &out)
	if err != nil {
		var (
			held     *lock.HeldError
			mismatch *lock.PermitsMismatchError
		)
		if errors.As(err, &held) {
			held.Name = req.Name
		}
		if errors.As(err, &mismatch) {
			mismatch.Name, mismatch.Requested = req.Name, max(req.Permits, 1)
		}
		return lock.Lease{}, err
	}
	return out.Lease()
}

// RenewLease renews a lease known by its id (ttl 0 keeps the granted TTL).
func (c *Client) RenewLease(ctx context.Context, name, leaseID string, ttl time.Duration) (lock.Lease, error) {
	var out wire.LeaseResponse
	if err := c.call(ctx, http.MethodPost, "/v1/locks/renew", wire.RenewRequest{Name: name, LeaseID: leaseID, TTLMs: ttl.Milliseconds()}, &out); err != nil {
		return lock.Lease{}, err
	}
	return out.Lease()
}

// ReleaseLease releases a lease known by its id.
func (c *Client) ReleaseLease(ctx context.Context, name, leaseID string) error {
	var out wire.ReleaseResponse
	return c.call(ctx, http.MethodPost, "/v1/locks/release", wire.ReleaseRequest{Name: name, LeaseID: leaseID}, &out)
}

// Status reports who holds name; for a semaphore, every holder
// (lock.Status.Holders) and the lock-delayed ones (Delayed).
func (c *Client) Status(ctx context.Context, name string) (lock.Status, error) {
	var out wire.StatusResponse
	if err := c.call(ctx, http.MethodGet, "/v1/locks?name="+url.QueryEscape(name), nil, &out); err != nil {
		return lock.Status{}, err
	}
	st, err := out.Status()
	if err != nil {
		return lock.Status{}, fmt.Errorf("hasp: undecodable status: %w", err)
	}
	return st, nil
}

// Health checks the endpoint and returns the provider name it reports.
func (c *Client) Health(ctx context.Context) (string, error) {
	var out wire.HealthResponse
	if err := c.call(ctx, http.MethodGet, "/v1/health", nil, &out); err != nil {
		return "", err
	}
	return out.Provider, nil
}

// Watch waits up to wait (at most MaxServerWait) for the holder of name to
// differ from the one with fencing token after (0: nobody), and returns
// the status then and whether it differs (GET /v1/locks/watch). With
// after 0 a held lock answers at once. Most callers want Observe.
func (c *Client) Watch(ctx context.Context, name string, after int64, wait time.Duration) (lock.Status, bool, error) {
	q := "name=" + queryEscape(name) + "&after_token=" + strconv.FormatInt(after, 10) + "&wait_ms=" + strconv.FormatInt(wait.Milliseconds(), 10)
	var out wire.WatchResponse
	if err := c.call(ctx, http.MethodGet, "/v1/locks/watch?"+q, nil, &out); err != nil {
		return lock.Status{}, false, err
	}
	st, err := out.Status()
	if err != nil {
		return lock.Status{}, false, fmt.Errorf("hasp: undecodable expires_at: %w", err)
	}
	return st, out.Changed, nil
}

// List returns one page of the locks held under prefix (GET
// /v1/locks?prefix=P): at most limit (0: the service's default, 100) and
// the token of the next page, "" when the listing is complete. Pass ""
// as pageToken for the first page. A page may hold fewer than limit locks,
// even none, and still have a next page.
func (c *Client) List(ctx context.Context, prefix string, limit int, pageToken string) ([]lock.Status, string, error) {
	q := "prefix=" + queryEscape(prefix)
	if limit > 0 {
		q += "&limit=" + strconv.Itoa(limit)
	}
	if pageToken != "" {
		q += "&page_token=" + queryEscape(pageToken)
	}
	var out wire.ListResponse
	if err := c.call(ctx, http.MethodGet, "/v1/locks?"+q, nil, &out); err != nil {
		return nil, "", err
	}
	items := make([]lock.Status, 0, len(out.Locks))
	for _, b := range out.Locks {
		st, err := b.Status()
		if err != nil {
			return nil, "", fmt.Errorf("hasp: undecodable expires_at: %w", err)
		}
		items = append(items, st)
	}
	return items, out.NextPageToken, nil
}

// queryEscape escapes a query value as API v1 reads it (RFC 3986
// percent-decoding, in which "+" is a plus, not a space).
func queryEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}
