package ssm

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	awsssm "github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
	"github.com/hasplock/hasp/providers/internal/awsconfig"
)

func init() {
	providers.Register("ssm", Open)
}

// Open opens the provider for "ssm:///PREFIX" (three slashes: the prefix
// is a parameter path, such as ssm:///hasp/locks), with region,
// credentials and endpoint from the standard AWS environment. The URL takes
// no query parameters.
func Open(ctx context.Context, u *url.URL) (providers.Provider, error) {
	if err := providers.CheckParams(u); err != nil {
		return nil, err
	}
	if u.Opaque != "" || u.Host != "" || u.User != nil {
		return nil, fmt.Errorf("ssm: store URL %q: write ssm:///PREFIX, with three slashes (the prefix is a parameter path such as /hasp/locks)", u.Redacted())
	}
	prefix := strings.TrimSuffix(u.Path, "/")
	if err := CheckPrefix(prefix); err != nil {
		return nil, fmt.Errorf("ssm: store URL %q: %w", u.Redacted(), err)
	}
	cfg, err := awsconfig.Load(ctx, "SSM")
	if err != nil {
		return nil, fmt.Errorf("ssm: AWS configuration: %w", err)
	}
	return New(awsssm.NewFromConfig(cfg), prefix)
}

// MaxPrefixLen is the longest prefix accepted, in bytes, so that the
// parameter of the longest lock name (255 bytes, escaped to at most 765)
// stays within Parameter Store's limit of 1,011 characters, the parameter's
// ARN included.
const MaxPrefixLen = 128

// CheckPrefix reports whether prefix can hold lock parameters: a path of 1
// to 14 levels ("/hasp/locks"; Parameter Store allows 15, the lock name is
// the last), each of A-Z a-z 0-9 _ . -, at most MaxPrefixLen bytes, not
// starting with "aws" or "ssm" (reserved by Parameter Store).
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return fmt.Errorf("no prefix: name a parameter path, such as ssm:///hasp/locks")
	}
	if !strings.HasPrefix(prefix, "/") {
		return fmt.Errorf("prefix %q must start with /", prefix)
	}
	if len(prefix) > MaxPrefixLen {
		return fmt.Errorf("prefix is %d bytes, more than %d", len(prefix), MaxPrefixLen)
	}
	levels := strings.Split(prefix[1:], "/")
	if len(levels) > 14 {
		return fmt.Errorf("prefix has %d levels, more than 14", len(levels))
	}
	for _, l := range levels {
		if l == "" {
			return fmt.Errorf("prefix %q has an empty level", prefix)
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !keep(c) && c != '_' {
				return fmt.Errorf("prefix %q may contain only A-Z a-z 0-9 _ . - and /", prefix)
			}
		}
	}
	if first := strings.ToLower(levels[0]); strings.HasPrefix(first, "aws") || strings.HasPrefix(first, "ssm") {
		return fmt.Errorf("prefix %q starts with aws or ssm, which Parameter Store reserves", prefix)
	}
	return nil
}

// keep reports whether a byte of a lock name stands for itself in its
// parameter's name.
func keep(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-'
}

// Escape returns the last level of lock name's parameter: A-Z a-z 0-9 . -
// as they are, every other byte, and a leading ".", as _XX (upper-case
// hex). It is one-to-one, and every "_" it writes is followed by two hex
// digits, which leaves names such as the health check's "_ping" free.
func Escape(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		if keep(c) && (c != '.' || i > 0) {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "_%02X", c)
	}
	return b.String()
}

// Unescape returns the lock name whose parameter's last level is s, and
// whether there is one: s must be exactly what Escape writes for that name
// (so "_ping", lower-case hex, or an escaped byte Escape keeps are not),
// and the name a valid lock name.
func Unescape(s string) (string, bool) {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		hi, lo := unhex(s[i+1]), unhex(s[i+2])
		if hi < 0 || lo < 0 {
			return "", false
		}
		b = append(b, byte(hi<<4|lo))
		i += 2
	}
	name := string(b)
	if Escape(name) != s || lock.ValidateName(name) != nil {
		return "", false
	}
	return name, true
}

// unhex is the value of an upper-case hex digit, or -1.
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
