package redis

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/hasplock/hasp/providers"
)

func init() {
	providers.Register("redis", Open)
	providers.Register("redlock", Open)
}

// DefaultPort is the port of a store URL host that names none.
const DefaultPort = "6379"

// OpenTimeout bounds Open's checks of the servers.
const OpenTimeout = 10 * time.Second

// Open opens the provider for a store URL:
//
//	redis://[USER:PASSWORD@]HOST[:PORT][/DB][?durability=none&prefix=P&insecure=true]
//	redlock://[USER:PASSWORD@]HOST:PORT,HOST:PORT,HOST:PORT[,...][/DB][?same parameters]
//
// durability=none skips the persistence check and labels the store "best
// effort" (see Durability); prefix sets the key prefix (default
// DefaultPrefix); a password is sent in clear text (this provider has no
// TLS yet), so it needs insecure=true to say that is intended. Unknown
// parameters are refused. Every Redlock node gets the same user, password
// and database.
func Open(ctx context.Context, u *url.URL) (providers.Provider, error) {
	if err := providers.CheckParams(u, "durability", "prefix", "insecure"); err != nil {
		return nil, err
	}
	q := u.Query()
	var opts []Option
	switch d := Durability(q.Get("durability")); d {
	case "":
	case DurabilityAOF, DurabilityNone:
		opts = append(opts, WithDurability(d))
	default:
		return nil, fmt.Errorf("%s: store URL %q: durability=%q (aof or none)", u.Scheme, u.Redacted(), d)
	}
	if q.Has("prefix") {
		if q.Get("prefix") == "" {
			return nil, fmt.Errorf("%s: store URL %q: empty prefix", u.Scheme, u.Redacted())
		}
		opts = append(opts, WithPrefix(q.Get("prefix")))
	}
	insecure := false
	if v := q.Get("insecure"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("%s: store URL %q: insecure=%q is not a boolean", u.Scheme, u.Redacted(), v)
		}
		insecure = b
	}
	var user, password string
	if u.User != nil {
		user = u.User.Username()
		password, _ = u.User.Password()
		if !insecure {
			return nil, fmt.Errorf("%s: store URL %q: a password would go in clear text (this provider has no TLS); add insecure=true if that is intended", u.Scheme, u.Redacted())
		}
	}
	db := 0
	if path := strings.TrimPrefix(u.Path, "/"); path != "" {
		n, err := strconv.Atoi(path)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%s: store URL %q: the path must be a database number (/0)", u.Scheme, u.Redacted())
		}
		db = n
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%s: store URL %q names no server (%s://host:6379)", u.Scheme, u.Redacted(), u.Scheme)
	}
	hosts := strings.Split(u.Host, ",")
	if u.Scheme == "redis" && len(hosts) != 1 {
		return nil, fmt.Errorf("redis: store URL %q names %d servers: use redlock:// for a majority of independent masters", u.Redacted(), len(hosts))
	}
	var clients []*goredis.Client
	closeAll := func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}
	for _, h := range hosts {
		addr := h
		if _, _, err := net.SplitHostPort(h); err != nil {
			addr = net.JoinHostPort(h, DefaultPort)
		}
		if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "" {
			closeAll()
			return nil, fmt.Errorf("%s: store URL %q: bad server %q", u.Scheme, u.Redacted(), h)
		}
		o := ClientOptions(addr)
		o.Username, o.Password, o.DB = user, password, db
		clients = append(clients, goredis.NewClient(o))
	}
	opts = append(opts, withOwnedClients())
	ctx, cancel := context.WithTimeout(ctx, OpenTimeout)
	defer cancel()
	var (
		p   providers.Provider
		err error
	)
	if u.Scheme == "redlock" {
		p, err = NewRedlock(ctx, clients, opts...)
	} else {
		p, err = New(ctx, clients[0], opts...)
	}
	if err != nil {
		closeAll()
		return nil, err
	}
	return p, nil
}

// ClientOptions returns the go-redis client options Open uses for the
// server at addr: RESP2 without client-identity or maintenance-notification
// handshakes, context deadlines honoured, dial and I/O timeouts of 2 s, one
// dial attempt per try (a server that refuses connections is reported
// unavailable at once rather than after the client's default five dials),
// and up to two retries of a command whose connection failed (every script
// is safe to run twice; see scripts.go).
func ClientOptions(addr string) *goredis.Options {
	return &goredis.Options{
		Addr:                  addr,
		Protocol:              2,
		DisableIdentity:       true,
		ContextTimeoutEnabled: true,
		DialTimeout:           2 * time.Second,
		DialerRetries:         1,
		ReadTimeout:           2 * time.Second,
		WriteTimeout:          2 * time.Second,
		MaxRetries:            2,
		MinRetryBackoff:       5 * time.Millisecond,
		MaxRetryBackoff:       50 * time.Millisecond,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	}
}
