// Package api is the one net/http handler for hasp's HTTP API v1 (see
// openapi.yaml at the repository root). Every front end serves it: `hasp
// serve` directly, and the Lambda, Cloud Function and Azure Functions entry
// points through thin adapters.
//
// It routes exactly (no path cleaning or redirects), decodes request bodies
// strictly (unknown, duplicate or mistyped fields, trailing data and invalid
// UTF-8 are 400), rejects bodies over 64 KiB with 413 before parsing, and
// maps the lock package's sentinel errors to status codes. Every response,
// errors included, is JSON. Error messages never carry backend error text
// or another holder's lease id.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hasplock/hasp/api/wire"
	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/service"
)

// MaxBodyBytes is the largest request body accepted (413 beyond).
const MaxBodyBytes = 65536

// Paths of API v1.
const (
	PathAcquire = "/v1/locks/acquire"
	PathRenew   = "/v1/locks/renew"
	PathRelease = "/v1/locks/release"
	PathStatus  = "/v1/locks"
	PathHealth  = "/v1/health"
)

// Handler serves API v1 over a lock service.
type Handler struct {
	svc    *service.Service
	log    *slog.Logger
	obs    func(route string, code int, took time.Duration)
	tokens [][]byte
}

// WithRequestObserver calls f after each request with its route (RouteName),
// status code and duration; metrics recorders use it (see package
// telemetry).
func WithRequestObserver(f func(route string, code int, took time.Duration)) Option {
	return func(h *Handler) { h.obs = f }
}

// RouteName names the route of an escaped path for metrics: "acquire",
// "renew", "release", "status", "health", or "other" for any other path
// (a bounded set, whatever callers send).
func RouteName(escapedPath string) string {
	if rt, ok := routes[escapedPath]; ok {
		return rt.name
	}
	return "other"
}

// Option configures a Handler.
type Option func(*Handler)

// WithLogger logs each request (method, path, status, duration, request id;
// never a lease id) and each internal error to l. The default discards.
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// WithBearerTokens requires "Authorization: Bearer <token>" with one of
// tokens on every lock route (the health route stays open). Tokens are
// compared in constant time. No tokens means no authentication.
func WithBearerTokens(tokens ...string) Option {
	return func(h *Handler) {
		for _, t := range tokens {
			if t = strings.TrimSpace(t); t != "" {
				h.tokens = append(h.tokens, []byte(t))
			}
		}
	}
}

// New returns the API v1 handler over svc.
func New(svc *service.Service, opts ...Option) *Handler {
	h := &Handler{svc: svc, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(h)
	}
	return h
}

type route struct {
	name   string
	allow  string
	method string
	auth   bool
	serve  func(h *Handler, w http.ResponseWriter, r *http.Request)
}

var routes = map[string]route{
	PathAcquire: {name: "acquire", allow: "POST", method: http.MethodPost, auth: true, serve: (*Handler).acquire},
	PathRenew:   {name: "renew", allow: "POST", method: http.MethodPost, auth: true, serve: (*Handler).renew},
	PathRelease: {name: "release", allow: "POST", method: http.MethodPost, auth: true, serve: (*Handler).release},
	PathStatus:  {name: "status", allow: "GET, HEAD", method: http.MethodGet, auth: true, serve: (*Handler).status},
	PathHealth:  {name: "health", allow: "GET, HEAD", method: http.MethodGet, auth: false, serve: (*Handler).health},
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			h.log.ErrorContext(r.Context(), "panic serving request", "path", r.URL.Path, "panic", v)
			if !rw.wrote {
				writeError(rw, http.StatusInternalServerError, "internal", "internal error", "")
			}
		}
		took := time.Since(start)
		h.log.InfoContext(r.Context(), "request", "method", r.Method, "path", r.URL.Path,
			"status", rw.status, "duration_ms", float64(took.Microseconds())/1000,
			"request_id", requestID(r))
		if h.obs != nil {
			h.obs(RouteName(r.URL.EscapedPath()), rw.status, took)
		}
	}()
	if r.Method == http.MethodHead {
		rw.head = true
	}
	// Route on the path as sent: "/v1/locks%2Facquire" is not a route.
	rt, ok := routes[r.URL.EscapedPath()]
	if !ok {
		writeError(rw, http.StatusNotFound, "not_found", "no such path: see /v1/health and /v1/locks", "")
		return
	}
	if r.Method != rt.method && !(rt.method == http.MethodGet && r.Method == http.MethodHead) {
		rw.Header().Set("Allow", rt.allow)
		writeError(rw, http.StatusMethodNotAllowed, "method_not_allowed", "method "+clip(r.Method)+" is not allowed here; allowed: "+rt.allow, "")
		return
	}
	if rt.auth && !h.authorized(r) {
		rw.Header().Set("WWW-Authenticate", `Bearer realm="hasp"`)
		writeError(rw, http.StatusUnauthorized, "unauthenticated", "a valid bearer token is required", "")
		return
	}
	rt.serve(h, rw, r)
}

func (h *Handler) authorized(r *http.Request) bool {
	if len(h.tokens) == 0 {
		return true
	}
	auth := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(auth) <= len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return false
	}
	got := []byte(strings.TrimSpace(auth[len(prefix):]))
	ok := 0
	for _, t := range h.tokens {
		ok |= subtle.ConstantTimeCompare(got, t)
	}
	return ok == 1
}

// readBody reads at most MaxBodyBytes; it answers 413 and returns false
// beyond that.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "payload_too_large", "request body is over 65536 bytes", "")
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_argument", "could not read the request body", "")
		return nil, false
	}
	if len(body) > MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "payload_too_large", "request body is over 65536 bytes", "")
		return nil, false
	}
	return body, true
}

func (h *Handler) acquire(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	req, err := DecodeAcquire(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	l, err := h.svc.Acquire(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.FromLease(l))
}

func (h *Handler) renew(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	req, err := DecodeRenew(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	l, err := h.svc.Renew(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.FromLease(l))
}

func (h *Handler) release(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	req, err := DecodeRelease(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.svc.Release(r.Context(), req); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.ReleaseResponse{Name: req.Name, Released: true})
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	name, err := statusQuery(r.URL.RawQuery)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	st, err := h.svc.Status(r.Context(), name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	resp := wire.StatusResponse{Name: st.Name, Held: st.Held}
	if st.Held {
		tok := st.Holder.FencingToken
		owner := st.Holder.Owner
		resp.Owner, resp.FencingToken, resp.ExpiresAt, resp.Metadata = &owner, &tok, lock.FormatTime(st.Holder.ExpiresAt), st.Holder.Metadata
	}
	writeJSON(w, http.StatusOK, resp)
}

// statusQuery parses "name=NAME": exactly one name, no other parameter.
// Values are percent-decoded as in a URI (RFC 3986): "+" stays "+", a
// character lock names may contain.
func statusQuery(raw string) (string, error) {
	var name string
	found := false
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		key, err1 := url.PathUnescape(k)
		val, err2 := url.PathUnescape(v)
		if err1 != nil || err2 != nil {
			return "", lock.Invalid("", "malformed query string")
		}
		if key != "name" {
			return "", lock.Invalid(clip(key), "unknown query parameter")
		}
		if found {
			return "", lock.Invalid("name", "given more than once")
		}
		name, found = val, true
	}
	if !found {
		return "", lock.Invalid("name", "is required (GET /v1/locks?name=NAME)")
	}
	return name, lock.ValidateName(name)
}

func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := h.svc.Ping(ctx); err != nil {
		h.log.WarnContext(r.Context(), "health check failed", "error", err.Error())
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, wire.HealthResponse{Status: "unavailable", Provider: h.svc.ProviderName(), Guarantee: providers.GuaranteeOf(h.svc.Provider())})
		return
	}
	writeJSON(w, http.StatusOK, wire.HealthResponse{Status: "ok", Provider: h.svc.ProviderName(), Guarantee: providers.GuaranteeOf(h.svc.Provider())})
}

// fail maps an error from decoding or the service to its response.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		inv  *lock.InvalidArgumentError
		held *lock.HeldError
	)
	switch {
	case errors.As(err, &inv):
		msg := inv.Message
		if inv.Field != "" {
			msg = inv.Field + ": " + msg
		}
		writeError(w, http.StatusBadRequest, "invalid_argument", msg, inv.Field)
	case errors.As(err, &held):
		writeJSON(w, http.StatusConflict, wire.HeldResponse{
			Error:        wire.ErrorBody{Code: "lock_held", Message: "the lock is held by another lease"},
			Holder:       wire.HolderBody{Owner: held.Holder.Owner, FencingToken: held.Holder.FencingToken, ExpiresAt: lock.FormatTime(held.Holder.ExpiresAt)},
			RetryAfterMs: floorMillis(held.RetryAfter),
		})
	case errors.Is(err, lock.ErrLeaseLost):
		writeError(w, http.StatusConflict, "lease_lost", "the lease no longer holds the lock (expired, released or taken over)", "")
	case errors.Is(err, lock.ErrThrottled):
		h.log.WarnContext(r.Context(), "backend throttled", "path", r.URL.Path, "error", err.Error())
		w.Header().Set("Retry-After", retryAfterSeconds(err))
		writeError(w, http.StatusTooManyRequests, "throttled", "the backend is throttling requests; retry later", "")
	case errors.Is(err, lock.ErrUnavailable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		h.log.WarnContext(r.Context(), "backend unavailable", "path", r.URL.Path, "error", err.Error())
		w.Header().Set("Retry-After", retryAfterSeconds(err))
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the backend is unavailable or timed out; the outcome is unknown, retry later", "")
	default:
		h.log.ErrorContext(r.Context(), "internal error", "path", r.URL.Path, "error", err.Error())
		writeError(w, http.StatusInternalServerError, "internal", "internal error", "")
	}
}

func retryAfterSeconds(err error) string {
	d := lock.RetryAfter(err)
	s := int64(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}

// floorMillis rounds a retry hint down: it must never overstate the wait.
func floorMillis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(d / time.Millisecond)
}

func requestID(r *http.Request) string {
	for _, h := range []string{"X-Request-Id", "X-Amzn-Trace-Id", "X-Cloud-Trace-Context"} {
		if v := r.Header.Get(h); v != "" {
			return clip(v)
		}
	}
	return ""
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
	head   bool // HEAD: headers only, whatever the front end's adapter does
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.head {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// WriteError writes an API v1 error response: status, and the JSON error
// body with code and message. Front ends use it for failures outside the
// handler (a store that could not be opened: 503 "unavailable").
func WriteError(w http.ResponseWriter, status int, code, message string) {
	writeError(w, status, code, message, "")
}

func writeError(w http.ResponseWriter, status int, code, msg, field string) {
	writeJSON(w, status, wire.ErrorResponse{Error: wire.ErrorBody{Code: code, Message: msg, Field: field}})
}
