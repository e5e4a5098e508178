package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/hasplock/hasp/lock"
)

// kind is the JSON type a request field must have.
type kind int

const (
	kString kind = iota
	kMillis      // a JSON integer literal, in milliseconds
	kInt         // a JSON integer literal
)

// field binds one JSON field of a request to a Go value.
type field struct {
	name string
	kind kind
	str  *string
	dur  *time.Duration
	num  *int
	set  *bool // optional: reports that the field was present
}

// DecodeAcquire decodes and validates an acquire request body. Absent
// optional fields take their defaults when the service validates.
func DecodeAcquire(body []byte) (lock.AcquireRequest, error) {
	var r lock.AcquireRequest
	var hasTTL, hasPermits bool
	err := decodeObject(body, []field{
		{name: "name", kind: kString, str: &r.Name},
		{name: "owner", kind: kString, str: &r.Owner},
		{name: "ttl_ms", kind: kMillis, dur: &r.TTL, set: &hasTTL},
		{name: "wait_ms", kind: kMillis, dur: &r.Wait},
		{name: "metadata", kind: kString, str: &r.Metadata},
		{name: "permits", kind: kInt, num: &r.Permits, set: &hasPermits},
		{name: "lock_delay_ms", kind: kMillis, dur: &r.LockDelay},
	}, "name")
	if err != nil {
		return r, err
	}
	if hasPermits && r.Permits == 0 {
		return r, lock.Invalid("permits", "must be between 1 and %d", lock.MaxPermits)
	}
	if hasTTL {
		if err := lock.ValidateTTL(r.TTL); err != nil {
			return r, err
		}
	}
	return r, r.Validate()
}

// DecodeRenew decodes and validates a renew request body.
func DecodeRenew(body []byte) (lock.RenewRequest, error) {
	var r lock.RenewRequest
	var hasTTL bool
	err := decodeObject(body, []field{
		{name: "name", kind: kString, str: &r.Name},
		{name: "lease_id", kind: kString, str: &r.LeaseID},
		{name: "ttl_ms", kind: kMillis, dur: &r.TTL, set: &hasTTL},
	}, "name", "lease_id")
	if err != nil {
		return r, err
	}
	if hasTTL {
		if err := lock.ValidateTTL(r.TTL); err != nil {
			return r, err
		}
	}
	return r, r.Validate()
}

// DecodeRelease decodes and validates a release request body.
func DecodeRelease(body []byte) (lock.ReleaseRequest, error) {
	var r lock.ReleaseRequest
	err := decodeObject(body, []field{
		{name: "name", kind: kString, str: &r.Name},
		{name: "lease_id", kind: kString, str: &r.LeaseID},
	}, "name", "lease_id")
	if err != nil {
		return r, err
	}
	return r, r.Validate()
}

// decodeObject decodes body, which must be one JSON object whose keys are
// among fields (matched exactly, each at most once) and include required,
// with nothing after it but white space. Strings must be valid UTF-8 (no
// lone surrogate escapes); durations must be integer literals.
func decodeObject(body []byte, fields []field, required ...string) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return lock.Invalid("", "request body is empty: expected a JSON object")
	}
	if !utf8.Valid(body) {
		return lock.Invalid("", "request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return malformed(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return lock.Invalid("", "request body must be a JSON object")
	}
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return malformed(err)
		}
		key, _ := tok.(string) // inside an object, a token here is a key
		f := lookup(fields, key)
		if f == nil {
			return lock.Invalid(clip(key), "unknown field")
		}
		if seen[key] {
			return lock.Invalid(key, "given more than once")
		}
		seen[key] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return malformed(err)
		}
		if err := f.assign(raw); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return malformed(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return lock.Invalid("", "unexpected data after the JSON object")
	}
	for _, name := range required {
		if !seen[name] {
			return lock.Invalid(name, "is required")
		}
	}
	return nil
}

func lookup(fields []field, key string) *field {
	for i := range fields {
		if fields[i].name == key {
			return &fields[i]
		}
	}
	return nil
}

func (f *field) assign(raw json.RawMessage) error {
	if f.set != nil {
		*f.set = true
	}
	switch f.kind {
	case kString:
		if len(raw) == 0 || raw[0] != '"' {
			return lock.Invalid(f.name, "must be a string")
		}
		if loneSurrogate(raw) {
			return lock.Invalid(f.name, "must be valid UTF-8 (lone surrogate escape)")
		}
		if err := json.Unmarshal(raw, f.str); err != nil {
			return lock.Invalid(f.name, "must be a string")
		}
	case kInt:
		if !isIntLiteral(raw) {
			return lock.Invalid(f.name, "must be an integer")
		}
		*f.num = int(clamped(raw))
	case kMillis:
		if !isIntLiteral(raw) {
			return lock.Invalid(f.name, "must be an integer number of milliseconds")
		}
		*f.dur = time.Duration(clamped(raw)) * time.Millisecond
	}
	return nil
}

// clamped parses an integer literal, clamping far out-of-range values
// (even past int64) so that the field's own validation reports its range.
func clamped(raw []byte) int64 {
	const bound = int64(1e12)
	n, err := strconv.ParseInt(string(raw), 10, 64)
	switch {
	case err != nil && raw[0] == '-', n < -bound:
		n = -bound
	case err != nil, n > bound:
		n = bound
	}
	return n
}

// isIntLiteral reports whether raw is a JSON number without fraction or
// exponent.
func isIntLiteral(raw []byte) bool {
	s := raw
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) == 0 || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// loneSurrogate reports whether a raw JSON string holds a \u escape of a
// UTF-16 surrogate that is not part of a valid pair (encoding/json would
// silently replace it with U+FFFD).
func loneSurrogate(raw []byte) bool {
	hex := func(i int) (rune, bool) {
		if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
			return 0, false
		}
		v, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 16)
		return rune(v), err == nil
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if i+1 < len(raw) && raw[i+1] != 'u' {
			i++ // skip the escaped character, which may be a backslash
			continue
		}
		r, ok := hex(i)
		if !ok {
			return false // malformed: json.Unmarshal reports it
		}
		switch {
		case 0xD800 <= r && r < 0xDC00:
			lo, ok := hex(i + 6)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 11
		case 0xDC00 <= r && r <= 0xDFFF:
			return true
		default:
			i += 5
		}
	}
	return false
}

func malformed(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return lock.Invalid("", "malformed JSON at byte %d", se.Offset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return lock.Invalid("", "malformed JSON: unexpected end of input")
	}
	return lock.Invalid("", "malformed JSON")
}

// clip bounds a caller-supplied key echoed in an error message.
func clip(s string) string {
	if len(s) > 64 {
		s = s[:64]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		return s + "…"
	}
	return s
}
