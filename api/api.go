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
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hasplock/hasp/api/wire"
	"github.com/hasplock/hasp/lock"
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
	PathWatch   = "/v1/locks/watch"
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
// "renew", "release", "status" (status and list), "watch", "health", or
// "other" for any other path
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
	PathWatch:   {name: "watch", allow: "GET, HEAD", method: http.MethodGet, auth: true, serve: (*Handler).watch},
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
	q, err := parseQuery(r.URL.RawQuery, "name", "prefix", "limit", "page_token")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	name, byName := q["name"]
	if !byName {
		_, byPrefix := q["prefix"]
		_, hasLimit := q["limit"]
		_, hasPage := q["page_token"]
		if byPrefix || hasLimit || hasPage {
			h.list(w, r, q)
			return
		}
		h.fail(w, r, lock.Invalid("name", "is required (GET /v1/locks?name=NAME, or ?prefix=P to list)"))
		return
	}
	for _, k := range []string{"prefix", "limit", "page_token"} {
		if _, ok := q[k]; ok {
			h.fail(w, r, lock.Invalid(k, "cannot be combined with name"))
			return
		}
	}
	if err := lock.ValidateName(name); err != nil {
		h.fail(w, r, err)
		return
	}
	st, err := h.svc.Status(r.Context(), name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.FromStatus(st))
}

// list serves GET /v1/locks?prefix=P[&limit=L][&page_token=T].
func (h *Handler) list(w http.ResponseWriter, r *http.Request, q map[string]string) {
	limit := 0
	if v, ok := q["limit"]; ok {
		n, err := decimal(v, lock.MaxListLimit)
		if err != nil || n < 1 {
			h.fail(w, r, lock.Invalid("limit", "must be an integer between 1 and %d", lock.MaxListLimit))
			return
		}
		limit = int(n)
	}
	items, next, err := h.svc.List(r.Context(), q["prefix"], limit, q["page_token"])
	if err != nil {
		h.fail(w, r, err)
		return
	}
	resp := wire.ListResponse{Locks: make([]wire.StatusResponse, 0, len(items)), NextPageToken: next}
	for _, st := range items {
		resp.Locks = append(resp.Locks, wire.FromStatus(st))
	}
	writeJSON(w, http.StatusOK, resp)
}

// watch serves GET /v1/locks/watch?name=N[&after_token=T][&wait_ms=W].
func (h *Handler) watch(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r.URL.RawQuery, "name", "after_token", "wait_ms")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	name, ok := q["name"]
	if !ok {
		h.fail(w, r, lock.Invalid("name", "is required (GET /v1/locks/watch?name=NAME&after_token=T&wait_ms=W)"))
		return
	}
	if err := lock.ValidateName(name); err != nil {
		h.fail(w, r, err)
		return
	}
	var after, waitMs int64
	if v, ok := q["after_token"]; ok {
		if after, err = decimal(v, lock.MaxFencingToken-1); err != nil {
			h.fail(w, r, lock.Invalid("after_token", "must be an integer between 0 and %d", lock.MaxFencingToken-1))
			return
		}
	}
	if v, ok := q["wait_ms"]; ok {
		if waitMs, err = decimal(v, lock.MaxWait.Milliseconds()); err != nil {
			h.fail(w, r, lock.Invalid("wait_ms", "must be an integer between 0 and %d", lock.MaxWait.Milliseconds()))
			return
		}
	}
	st, changed, err := h.svc.Watch(r.Context(), name, after, time.Duration(waitMs)*time.Millisecond)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.WatchResponse{StatusResponse: wire.FromStatus(st), Changed: changed})
}

// parseQuery parses a query string whose keys are among allowed, each at
// most once. Values are percent-decoded as in a URI (RFC 3986): "+" stays
// "+", a character lock names may contain.
func parseQuery(raw string, allowed ...string) (map[string]string, error) {
	q := map[string]string{}
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		key, err1 := url.PathUnescape(k)
		val, err2 := url.PathUnescape(v)
		if err1 != nil || err2 != nil {
			return nil, lock.Invalid("", "malformed query string")
		}
		if !slices.Contains(allowed, key) {
			return nil, lock.Invalid(clip(key), "unknown query parameter")
		}
		if _, dup := q[key]; dup {
			return nil, lock.Invalid(key, "given more than once")
		}
		q[key] = val
	}
	return q, nil
}

// decimal parses a query value that must be a decimal integer from 0 to
// maxVal, without sign or leading zeros.
func decimal(v string, maxVal int64) (int64, error) {
	if !isIntLiteral([]byte(v)) || v[0] == '-' {
		return 0, errors.New("not a non-negative integer")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > maxVal {
		return 0, errors.New("out of range")
	}
	return n, nil
}

func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	guarantee := h.svc.Guarantee()
	if err := h.svc.Ping(ctx); err != nil {
		h.log.WarnContext(r.Context(), "health check failed", "error", err.Error())
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, wire.HealthResponse{Status: "unavailable", Provider: h.svc.ProviderName(), Guarantee: guarantee})
		return
	}
	writeJSON(w, http.StatusOK, wire.HealthResponse{Status: "ok", Provider: h.svc.ProviderName(), Guarantee: guarantee})
}

// fail maps an error from decoding or the service to its response.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		inv      *lock.InvalidArgumentError
		held     *lock.HeldError
		mismatch *lock.PermitsMismatchError
	)
	switch {
	case errors.As(err, &inv):
		msg := inv.Message
		if inv.Field != "" {
			msg = inv.Field + ": " + msg
		}
		writeError(w, http.StatusBadRequest, "invalid_argument", msg, inv.Field)
	case errors.As(err, &held):
		resp := wire.HeldResponse{
			Error:        wire.ErrorBody{Code: "lock_held", Message: "the lock is held by another lease"},
			Holder:       wire.HolderBody{Owner: held.Holder.Owner, FencingToken: held.Holder.FencingToken, ExpiresAt: lock.FormatTime(held.Holder.ExpiresAt)},
			RetryAfterMs: floorMillis(held.RetryAfter),
			Permits:      held.Permits,
		}
		if !held.DelayedUntil.IsZero() {
			resp.Error.Message = "the lock's last lease expired without a release; its lock-delay runs until delayed_until"
			resp.DelayedUntil = lock.FormatTime(held.DelayedUntil)
		} else if held.Permits > 1 {
			resp.Error.Message = "every permit of the semaphore is held"
		}
		writeJSON(w, http.StatusConflict, resp)
	case errors.As(err, &mismatch):
		writeJSON(w, http.StatusConflict, wire.PermitsMismatchResponse{
			Error:   wire.ErrorBody{Code: "permits_mismatch", Message: fmt.Sprintf("the lock's holders hold it with permits %d; this acquire asked for %d", mismatch.Permits, mismatch.Requested)},
			Permits: mismatch.Permits,
		})
	case errors.Is(err, lock.ErrRecordTooLarge):
		h.log.WarnContext(r.Context(), "record too large for the store", "path", r.URL.Path, "error", err.Error())
		writeError(w, http.StatusConflict, "record_too_large", "this acquire would make the lock's record larger than the "+h.svc.ProviderName()+" store holds: its holders' owners and metadata take too much room (use shorter ones), or wait until holders release", "")
	case errors.Is(err, lock.ErrLeaseLost):
		writeError(w, http.StatusConflict, "lease_lost", "the lease no longer holds the lock (expired, released or taken over)", "")
	case errors.Is(err, lock.ErrThrottled):
		h.log.WarnContext(r.Context(), "backend throttled", "path", r.URL.Path, "error", err.Error())
		w.Header().Set("Retry-After", retryAfterSeconds(err))
		writeError(w, http.StatusTooManyRequests, "throttled", "the backend is throttling requests; retry later", "")
	case errors.Is(err, service.ErrUnsupported):
		// The error may say what would make the store able (a schema
		// upgrade): the log gets it, the caller a generic message.
		h.log.InfoContext(r.Context(), "unsupported by the store", "path", r.URL.Path, "error", err.Error())
		writeError(w, http.StatusNotImplemented, "unsupported", "the "+h.svc.ProviderName()+" store cannot do this", "")
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
