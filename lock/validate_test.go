package lock_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hasplock/hasp/lock"
)

func TestValidate(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name  string
		req   lock.AcquireRequest
		field string // "" means valid
	}{
		{"minimal", lock.AcquireRequest{Name: "a"}, ""},
		{"all name bytes", lock.AcquireRequest{Name: "AZaz09._-:/@=+~"}, ""},
		{"name 255", lock.AcquireRequest{Name: long(255)}, ""},
		{"name 256", lock.AcquireRequest{Name: long(256)}, "name"},
		{"name empty", lock.AcquireRequest{}, "name"},
		{"name space", lock.AcquireRequest{Name: "a b"}, "name"},
		{"name non-ascii", lock.AcquireRequest{Name: "é"}, "name"},
		{"name star", lock.AcquireRequest{Name: "a*"}, "name"},
		{"owner 255", lock.AcquireRequest{Name: "a", Owner: long(255)}, ""},
		{"owner 256", lock.AcquireRequest{Name: "a", Owner: long(256)}, "owner"},
		{"owner unicode", lock.AcquireRequest{Name: "a", Owner: "Zoë 🔒"}, ""},
		{"owner control", lock.AcquireRequest{Name: "a", Owner: "a\x01"}, "owner"},
		{"owner DEL", lock.AcquireRequest{Name: "a", Owner: "\x7f"}, "owner"},
		{"owner C1", lock.AcquireRequest{Name: "a", Owner: "\u0085"}, "owner"},
		{"owner invalid utf8", lock.AcquireRequest{Name: "a", Owner: "\xff"}, "owner"},
		{"owner line separator", lock.AcquireRequest{Name: "a", Owner: "a\u2028b"}, "owner"},
		{"owner bidi override", lock.AcquireRequest{Name: "a", Owner: "a\u202eb"}, "owner"},
		{"owner nbsp", lock.AcquireRequest{Name: "a", Owner: "a\u00a0b"}, ""},
		{"ttl min", lock.AcquireRequest{Name: "a", TTL: time.Second}, ""},
		{"ttl max", lock.AcquireRequest{Name: "a", TTL: time.Hour}, ""},
		{"ttl below", lock.AcquireRequest{Name: "a", TTL: 999 * time.Millisecond}, "ttl_ms"},
		{"ttl above", lock.AcquireRequest{Name: "a", TTL: time.Hour + time.Millisecond}, "ttl_ms"},
		{"ttl sub-ms", lock.AcquireRequest{Name: "a", TTL: time.Second + 1}, "ttl_ms"},
		{"ttl negative", lock.AcquireRequest{Name: "a", TTL: -time.Second}, "ttl_ms"},
		{"wait max", lock.AcquireRequest{Name: "a", Wait: 20 * time.Second}, ""},
		{"wait above", lock.AcquireRequest{Name: "a", Wait: 20*time.Second + time.Millisecond}, "wait_ms"},
		{"wait negative", lock.AcquireRequest{Name: "a", Wait: -1}, "wait_ms"},
		{"metadata 1024", lock.AcquireRequest{Name: "a", Metadata: long(1024)}, ""},
		{"metadata 1025", lock.AcquireRequest{Name: "a", Metadata: long(1025)}, "metadata"},
		{"metadata invalid utf8", lock.AcquireRequest{Name: "a", Metadata: "\xc3("}, "metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			err := req.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if tt.req.TTL == 0 && req.TTL != lock.DefaultTTL {
					t.Errorf("default TTL = %v", req.TTL)
				}
				return
			}
			var inv *lock.InvalidArgumentError
			if !errors.As(err, &inv) || !errors.Is(err, lock.ErrInvalidArgument) {
				t.Fatalf("Validate() = %v, want an invalid argument", err)
			}
			if inv.Field != tt.field {
				t.Errorf("field = %q, want %q", inv.Field, tt.field)
			}
		})
	}
}

func TestValidateRenewRelease(t *testing.T) {
	tests := []struct {
		req   lock.RenewRequest
		field string
	}{
		{lock.RenewRequest{Name: "a", LeaseID: "x"}, ""},
		{lock.RenewRequest{Name: "a", LeaseID: "x", TTL: 2 * time.Second}, ""},
		{lock.RenewRequest{Name: "a"}, "lease_id"},
		{lock.RenewRequest{Name: "a", LeaseID: strings.Repeat("x", 129)}, "lease_id"},
		{lock.RenewRequest{Name: "a", LeaseID: "\xff"}, "lease_id"},
		{lock.RenewRequest{LeaseID: "x"}, "name"},
		{lock.RenewRequest{Name: "a", LeaseID: "x", TTL: 10 * time.Millisecond}, "ttl_ms"},
	}
	for _, tt := range tests {
		for _, err := range []error{tt.req.Validate(), (&lock.ReleaseRequest{Name: tt.req.Name, LeaseID: tt.req.LeaseID}).Validate()} {
			var inv *lock.InvalidArgumentError
			switch {
			case tt.field == "ttl_ms" && err == nil: // release has no ttl
			case tt.field == "" && err != nil:
				t.Errorf("%+v: %v", tt.req, err)
			case tt.field != "" && (!errors.As(err, &inv) || inv.Field != tt.field):
				t.Errorf("%+v: got %v, want field %s", tt.req, err, tt.field)
			}
		}
	}
}

func TestTimes(t *testing.T) {
	start := time.Date(2026, 11, 25, 22, 43, 28, 123_999_999, time.FixedZone("x", 3600))
	exp := lock.ExpiresAt(start, 1500*time.Millisecond)
	if got := lock.FormatTime(exp); got != "2026-11-25T21:43:29.623Z" {
		t.Fatalf("FormatTime = %s", got)
	}
	back, err := lock.ParseTime(lock.FormatTime(exp))
	if err != nil || !back.Equal(exp) {
		t.Fatalf("ParseTime = %v, %v", back, err)
	}
	if exp.After(start.Add(1500 * time.Millisecond)) {
		t.Fatal("ExpiresAt rounds later")
	}
}

func TestErrors(t *testing.T) {
	held := &lock.HeldError{Name: "n", RetryAfter: time.Second}
	if !errors.Is(held, lock.ErrHeld) || lock.RetryAfter(held) != time.Second {
		t.Fatal("HeldError")
	}
	r := &lock.RetryableError{Err: lock.ErrThrottled, RetryAfter: 2 * time.Second}
	if !errors.Is(r, lock.ErrThrottled) || lock.RetryAfter(r) != 2*time.Second {
		t.Fatal("RetryableError")
	}
	if lock.RetryAfter(lock.ErrLeaseLost) != 0 {
		t.Fatal("RetryAfter of a plain error")
	}
	cause := errors.New("connection reset")
	u := lock.Unavailable(cause, 3*time.Second)
	if !errors.Is(u, lock.ErrUnavailable) || !errors.Is(u, cause) || lock.RetryAfter(u) != 3*time.Second || errors.Is(u, lock.ErrThrottled) {
		t.Fatalf("Unavailable: %v", u)
	}
	th := lock.Throttled(cause, time.Second)
	if !errors.Is(th, lock.ErrThrottled) || !errors.Is(th, cause) || lock.RetryAfter(th) != time.Second {
		t.Fatalf("Throttled: %v", th)
	}
}
