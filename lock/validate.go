package lock

import (
	"time"
	"unicode"
	"unicode/utf8"
)

// ValidateName checks a lock name: 1 to 255 bytes of A-Z a-z 0-9 and
// . _ - : / @ = + ~
func ValidateName(name string) error {
	if name == "" {
		return Invalid("name", "is required")
	}
	if len(name) > MaxNameLen {
		return Invalid("name", "must be at most %d bytes", MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return Invalid("name", "may contain only A-Z a-z 0-9 . _ - : / @ = + ~")
		}
	}
	return nil
}

// ValidatePrefix checks a listing prefix: 0 to 255 bytes of the characters
// a name may contain ("" lists every name).
func ValidatePrefix(prefix string) error {
	if len(prefix) > MaxNameLen {
		return Invalid("prefix", "must be at most %d bytes", MaxNameLen)
	}
	for i := 0; i < len(prefix); i++ {
		if !nameByte(prefix[i]) {
			return Invalid("prefix", "may contain only A-Z a-z 0-9 . _ - : / @ = + ~")
		}
	}
	return nil
}

// ValidateListLimit checks a listing's page size: 1 to MaxListLimit.
func ValidateListLimit(limit int) error {
	if limit < 1 || limit > MaxListLimit {
		return Invalid("limit", "must be between 1 and %d", MaxListLimit)
	}
	return nil
}

func nameByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '.', '_', '-', ':', '/', '@', '=', '+', '~':
		return true
	}
	return false
}

// ValidateOwner checks an owner label: at most 255 bytes of printable
// UTF-8: letters, marks, numbers, punctuation, symbols and spaces
// (unicode.IsGraphic), so no control, format (such as bidirectional
// overrides), line-separator or private-use characters.
func ValidateOwner(owner string) error {
	if len(owner) > MaxOwnerLen {
		return Invalid("owner", "must be at most %d bytes", MaxOwnerLen)
	}
	if !utf8.ValidString(owner) {
		return Invalid("owner", "must be valid UTF-8")
	}
	for _, r := range owner {
		if !unicode.IsGraphic(r) {
			return Invalid("owner", "must be printable: no control, format or separator characters")
		}
	}
	return nil
}

// ValidateMetadata checks metadata: at most 1024 bytes of valid UTF-8.
func ValidateMetadata(md string) error {
	if len(md) > MaxMetadataLen {
		return Invalid("metadata", "must be at most %d bytes", MaxMetadataLen)
	}
	if !utf8.ValidString(md) {
		return Invalid("metadata", "must be valid UTF-8")
	}
	return nil
}

// ValidateTTL checks a requested time-to-live: 1 s to 1 h, in whole
// milliseconds.
func ValidateTTL(ttl time.Duration) error {
	if ttl < MinTTL || ttl > MaxTTL {
		return Invalid("ttl_ms", "must be between %d and %d", MinTTL.Milliseconds(), MaxTTL.Milliseconds())
	}
	if ttl%time.Millisecond != 0 {
		return Invalid("ttl_ms", "must be a whole number of milliseconds")
	}
	return nil
}

// ValidateWait checks a server-side wait: 0 to 20 s, in whole milliseconds.
func ValidateWait(wait time.Duration) error {
	if wait < 0 || wait > MaxWait {
		return Invalid("wait_ms", "must be between 0 and %d", MaxWait.Milliseconds())
	}
	if wait%time.Millisecond != 0 {
		return Invalid("wait_ms", "must be a whole number of milliseconds")
	}
	return nil
}

// ValidateLeaseID checks the shape of a lease id: 1 to 128 bytes of valid
// UTF-8. Whether it holds the lock is the provider's question.
func ValidateLeaseID(id string) error {
	if id == "" {
		return Invalid("lease_id", "is required")
	}
	if len(id) > MaxLeaseIDLen {
		return Invalid("lease_id", "must be at most %d bytes", MaxLeaseIDLen)
	}
	if !utf8.ValidString(id) {
		return Invalid("lease_id", "must be valid UTF-8")
	}
	return nil
}

// Validate checks every field and fills in defaults (TTL, Permits). A
// zero TTL means the default; a zero Wait means no waiting; zero Permits
// means 1.
func (r *AcquireRequest) Validate() error {
	if err := ValidateName(r.Name); err != nil {
		return err
	}
	if err := ValidateOwner(r.Owner); err != nil {
		return err
	}
	if r.TTL == 0 {
		r.TTL = DefaultTTL
	}
	if err := ValidateTTL(r.TTL); err != nil {
		return err
	}
	if err := ValidateWait(r.Wait); err != nil {
		return err
	}
	if r.Permits == 0 {
		r.Permits = 1
	}
	if r.Permits < 1 || r.Permits > MaxPermits {
		return Invalid("permits", "must be between 1 and %d", MaxPermits)
	}
	if r.LockDelay < 0 || r.LockDelay > MaxLockDelay {
		return Invalid("lock_delay_ms", "must be between 0 and %d", MaxLockDelay.Milliseconds())
	}
	if r.LockDelay%time.Millisecond != 0 {
		return Invalid("lock_delay_ms", "must be a whole number of milliseconds")
	}
	return ValidateMetadata(r.Metadata)
}

// Validate checks every field. A zero TTL keeps the lease's granted TTL.
func (r *RenewRequest) Validate() error {
	if err := ValidateName(r.Name); err != nil {
		return err
	}
	if err := ValidateLeaseID(r.LeaseID); err != nil {
		return err
	}
	if r.TTL != 0 {
		return ValidateTTL(r.TTL)
	}
	return nil
}

// Validate checks every field.
func (r *ReleaseRequest) Validate() error {
	if err := ValidateName(r.Name); err != nil {
		return err
	}
	return ValidateLeaseID(r.LeaseID)
}
