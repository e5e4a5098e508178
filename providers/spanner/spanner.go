// Package spanner stores hasp leases in a Google Cloud Spanner table. Each
// acquire, renew and release is one read-write transaction, and expiry is
// judged by Spanner's own clock, so the clocks of the functions that call
// it do not matter.
//
// Table (DDL below, applied by CreateSchema or `hasp spanner create-schema`):
// one row per lock name, kept after release so that its counter stays:
//
//	name        the lock's name (primary key)
//	token       the fencing counter: the last token issued for the name
//	lease_id    the holder's lease id (NULL when free)
//	owner, metadata  as given (NULL when empty)
//	ttl_ms      the granted TTL, for renewals that keep it
//	expires_at  the holder's expiry, by Spanner's clock
//	updated_at  commit timestamp of the last write
//
// Each operation is one read-write transaction of two RPCs: a query that
// reads the row together with CURRENT_TIMESTAMP() (the transaction begins
// inline with it), and a commit that carries the write as a mutation.
// Spanner's transactions are serializable and lock what they read (the
// row, or its absence), so two acquires of one name cannot both see it
// free: one of them aborts, and the client library runs it again. A held
// lock or a lost lease commits nothing.
//
//   - Acquire: the lock is free when the row is missing, has no lease, or
//     its expires_at <= CURRENT_TIMESTAMP(); then token+1 (1 for a new row)
//     and expires_at = CURRENT_TIMESTAMP() + TTL are written.
//   - Renew: the row must carry the lease id with expires_at still ahead;
//     expires_at becomes CURRENT_TIMESTAMP() + TTL.
//   - Release: the same check, then the lease columns are cleared; the row
//     and its token stay.
//
// Fencing tokens strictly increase because the token only grows by one in
// a serializable transaction and rows are never deleted by hasp (a row is
// a few dozen bytes per name ever locked). Do not add a TTL row-deletion
// policy to the table.
//
// Expiry: a lease's ExpiresAt is CURRENT_TIMESTAMP() read inside the
// transaction that wrote it, plus TTL (truncated to the millisecond), and
// the lease holds until Spanner's clock passes it. That read happens after
// the request left the caller and before the commit, so a caller that
// counts the TTL from the moment it sent its request never believes it
// holds a lease that Spanner has let go; TrueTime keeps CURRENT_TIMESTAMP()
// honest. The service's own clock plays no part.
//
// Store URL: "spanner://projects/P/instances/I/databases/D[?table=T]", with
// credentials from Application Default Credentials, or the emulator named
// by SPANNER_EMULATOR_HOST.
package spanner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/url"
	"os"
	"regexp"
	"sync/atomic"
	"time"

	"cloud.google.com/go/spanner"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

func init() {
	providers.Register("spanner", Open)
}

// DefaultTable is the table's name when none is given.
const DefaultTable = "hasp_locks"

var (
	databaseRE = regexp.MustCompile(`^projects/[^/]+/instances/[^/]+/databases/[^/]+$`)
	tableRE    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,127}$`)
)

// Open opens the provider for
// "spanner://projects/P/instances/I/databases/D[?table=T]".
func Open(ctx context.Context, u *url.URL) (providers.Provider, error) {
	db := u.Host + u.Path
	if !databaseRE.MatchString(db) {
		return nil, fmt.Errorf("spanner: store URL %q must be spanner://projects/P/instances/I/databases/D", u.Redacted())
	}
	var opts []Option
	if t := u.Query().Get("table"); t != "" {
		opts = append(opts, WithTable(t))
	}
	if os.Getenv("SPANNER_EMULATOR_HOST") != "" {
		EmulatorCompat()
	}
	return New(ctx, db, opts...)
}

// EmulatorCompat turns off multiplexed sessions (unless the environment
// already says otherwise): the Cloud Spanner emulator 1.5 rejects
// multiplexed read-write transactions under concurrency ("Invalid
// transaction ID"). The client library reads this only from the
// environment. Open calls it when SPANNER_EMULATOR_HOST is set; production
// keeps the library's default.
func EmulatorCompat() {
	for _, k := range []string{"GOOGLE_CLOUD_SPANNER_MULTIPLEXED_SESSIONS", "GOOGLE_CLOUD_SPANNER_MULTIPLEXED_SESSIONS_FOR_RW"} {
		if _, ok := os.LookupEnv(k); !ok {
			_ = os.Setenv(k, "false")
		}
	}
}

// Provider stores leases in one Spanner table.
type Provider struct {
	client   *spanner.Client
	table    string
	clientOp []option.ClientOption
	calls    atomic.Int64 // gRPC calls to Spanner, for providers.RequestCounter

	qRow string // reads a row with Spanner's clock
}

var (
	_ providers.Provider       = (*Provider)(nil)
	_ providers.RequestCounter = (*Provider)(nil)
)

// Option configures a Provider.
type Option func(*Provider)

// WithTable sets the table (default DefaultTable).
func WithTable(name string) Option { return func(p *Provider) { p.table = name } }

// WithClientOptions adds options to the Spanner client (an endpoint,
// credentials).
func WithClientOptions(opts ...option.ClientOption) Option {
	return func(p *Provider) { p.clientOp = append(p.clientOp, opts...) }
}

// New connects to database ("projects/P/instances/I/databases/D").
func New(ctx context.Context, database string, opts ...Option) (*Provider, error) {
	p := &Provider{table: DefaultTable}
	for _, o := range opts {
		o(p)
	}
	if !tableRE.MatchString(p.table) {
		return nil, fmt.Errorf("spanner: bad table name %q", p.table)
	}
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, o ...grpc.CallOption) error {
		p.calls.Add(1)
		return invoker(ctx, method, req, reply, cc, o...)
	}
	countStream := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, o ...grpc.CallOption) (grpc.ClientStream, error) {
		p.calls.Add(1)
		return streamer(ctx, desc, cc, method, o...)
	}
	copts := append([]option.ClientOption{
		option.WithGRPCDialOption(grpc.WithChainUnaryInterceptor(count)),
		option.WithGRPCDialOption(grpc.WithChainStreamInterceptor(countStream)),
	}, p.clientOp...)
	cfg := spanner.ClientConfig{
		// A function instance serves few requests at once: a small pool
		// keeps cold starts short.
		SessionPoolConfig:    spanner.SessionPoolConfig{MinOpened: 1, MaxOpened: 100},
		DisableNativeMetrics: true,
		Logger:               log.New(io.Discard, "", 0), // it prints its options at start
	}
	c, err := spanner.NewClientWithConfig(ctx, database, cfg, copts...)
	if err != nil {
		return nil, fmt.Errorf("spanner: connect %s: %w", database, err)
	}
	p.client = c
	p.qRow = `SELECT CURRENT_TIMESTAMP(), l.token, l.lease_id, l.owner, l.metadata, l.ttl_ms, l.expires_at
FROM (SELECT 1) AS one LEFT JOIN ` + p.table + ` AS l ON l.name = @name`
	return p, nil
}

// Name returns "spanner".
func (p *Provider) Name() string { return "spanner" }

// BackendRequests implements providers.RequestCounter: gRPC calls to
// Spanner, retries and session management included.
func (p *Provider) BackendRequests() int64 { return p.calls.Load() }

// row is a lock's row as read with Spanner's clock.
type row struct {
	now       time.Time
	exists    bool
	token     int64
	leaseID   string
	owner     string
	metadata  string
	ttl       time.Duration
	expiresAt time.Time
}

func (r row) heldAt() bool { return r.leaseID != "" && r.expiresAt.After(r.now) }

func (r row) held(name string) *lock.HeldError {
	return &lock.HeldError{
		Name:       name,
		Holder:     lock.Holder{Owner: r.owner, FencingToken: r.token, ExpiresAt: r.expiresAt.UTC().Truncate(time.Millisecond), Metadata: r.metadata},
		RetryAfter: max(r.expiresAt.Sub(r.now), 0),
	}
}

// ownedBy reports whether lease id holds the row now.
func (r row) ownedBy(id string) bool { return r.leaseID == id && r.heldAt() }

type querier interface {
	Query(ctx context.Context, stmt spanner.Statement) *spanner.RowIterator
}

func (p *Provider) read(ctx context.Context, q querier, name string) (row, error) {
	it := q.Query(ctx, spanner.Statement{SQL: p.qRow, Params: map[string]any{"name": name}})
	defer it.Stop()
	sr, err := it.Next()
	if err != nil {
		return row{}, err
	}
	var (
		r                        row
		token, ttl               spanner.NullInt64
		leaseID, owner, metadata spanner.NullString
		exp                      spanner.NullTime
	)
	if err := sr.Columns(&r.now, &token, &leaseID, &owner, &metadata, &ttl, &exp); err != nil {
		return row{}, err
	}
	r.exists = token.Valid
	r.token, r.leaseID, r.owner, r.metadata = token.Int64, leaseID.StringVal, owner.StringVal, metadata.StringVal
	r.ttl, r.expiresAt = time.Duration(ttl.Int64)*time.Millisecond, exp.Time
	return r, nil
}

func nullable(s string) spanner.NullString { return spanner.NullString{StringVal: s, Valid: s != ""} }

var leaseColumns = []string{"name", "token", "lease_id", "owner", "metadata", "ttl_ms", "expires_at", "updated_at"}

// write buffers l as its name's row; a lease without id frees the lock and
// keeps the token.
func (p *Provider) write(tx *spanner.ReadWriteTransaction, l lock.Lease) error {
	held := l.LeaseID != ""
	vals := []any{l.Name, l.FencingToken, nullable(l.LeaseID), nullable(l.Owner), nullable(l.Metadata),
		spanner.NullInt64{Int64: l.TTL.Milliseconds(), Valid: held},
		spanner.NullTime{Time: l.ExpiresAt, Valid: held}, spanner.CommitTimestamp}
	return tx.BufferWrite([]*spanner.Mutation{spanner.InsertOrUpdate(p.table, leaseColumns, vals)})
}

// transact runs f in a read-write transaction over name's row. f sees the
// row read with Spanner's clock and returns its outcome; a nil error from
// f with no write commits nothing.
func (p *Provider) transact(ctx context.Context, name string, f func(tx *spanner.ReadWriteTransaction, r row) error) error {
	var outcome error
	_, err := p.client.ReadWriteTransaction(ctx, func(ctx context.Context, tx *spanner.ReadWriteTransaction) error {
		r, err := p.read(ctx, tx, name)
		if err != nil {
			return err
		}
		// f may run again when Spanner aborts the transaction: only the
		// last run's outcome counts.
		outcome = f(tx, r)
		var held *lock.HeldError
		if outcome != nil && !errors.As(outcome, &held) && !errors.Is(outcome, lock.ErrLeaseLost) {
			return outcome // a failed write: roll back
		}
		return nil
	})
	if err != nil {
		return mapErr(err)
	}
	return outcome
}

// Acquire implements providers.Provider: one read-write transaction.
func (p *Provider) Acquire(ctx context.Context, req lock.AcquireRequest) (lock.Lease, error) {
	var l lock.Lease
	err := p.transact(ctx, req.Name, func(tx *spanner.ReadWriteTransaction, r row) error {
		if r.leaseID == req.LeaseID && r.heldAt() {
			// A retried commit that had succeeded: the lock is ours.
			l = lock.Lease{
				Name: req.Name, Owner: r.owner, LeaseID: req.LeaseID, FencingToken: r.token,
				TTL: r.ttl, ExpiresAt: r.expiresAt.UTC(), Metadata: r.metadata,
			}
			return nil
		}
		if r.heldAt() {
			return r.held(req.Name)
		}
		if r.token+1 >= lock.MaxFencingToken {
			return fmt.Errorf("spanner: fencing token of %q exhausted", req.Name)
		}
		l = lock.Lease{
			Name: req.Name, Owner: req.Owner, LeaseID: req.LeaseID, FencingToken: r.token + 1,
			TTL: req.TTL, ExpiresAt: lock.ExpiresAt(r.now, req.TTL), Metadata: req.Metadata,
		}
		return p.write(tx, l)
	})
	if err != nil {
		return lock.Lease{}, err
	}
	return l, nil
}

// Renew implements providers.Provider: one read-write transaction.
func (p *Provider) Renew(ctx context.Context, req lock.RenewRequest) (lock.Lease, error) {
	var l lock.Lease
	err := p.transact(ctx, req.Name, func(tx *spanner.ReadWriteTransaction, r row) error {
		if !r.ownedBy(req.LeaseID) {
			return lock.ErrLeaseLost
		}
		ttl := req.TTL
		if ttl == 0 {
			ttl = r.ttl
		}
		l = lock.Lease{
			Name: req.Name, Owner: r.owner, LeaseID: req.LeaseID, FencingToken: r.token,
			TTL: ttl, ExpiresAt: lock.ExpiresAt(r.now, ttl), Metadata: r.metadata,
		}
		return p.write(tx, l)
	})
	if err != nil {
		return lock.Lease{}, err
	}
	return l, nil
}

// Release implements providers.Provider: one read-write transaction that
// keeps the row (and its token).
func (p *Provider) Release(ctx context.Context, req lock.ReleaseRequest) error {
	return p.transact(ctx, req.Name, func(tx *spanner.ReadWriteTransaction, r row) error {
		if !r.ownedBy(req.LeaseID) {
			return lock.ErrLeaseLost
		}
		return p.write(tx, lock.Lease{Name: req.Name, FencingToken: r.token})
	})
}

// Status implements providers.Provider with one strong single-use read.
func (p *Provider) Status(ctx context.Context, name string) (lock.Status, error) {
	r, err := p.read(ctx, p.client.Single(), name)
	if err != nil {
		return lock.Status{}, mapErr(err)
	}
	if !r.heldAt() {
		return lock.Status{Name: name}, nil
	}
	return lock.Status{Name: name, Held: true, Holder: r.held(name).Holder}, nil
}

// Ping implements providers.Provider: a query of the table that reads no
// row, which also checks that the schema is there.
func (p *Provider) Ping(ctx context.Context) error {
	it := p.client.Single().Query(ctx, spanner.Statement{SQL: "SELECT 1 FROM " + p.table + " WHERE FALSE"})
	defer it.Stop()
	_, err := it.Next()
	if err != nil && !errors.Is(err, iterator.Done) {
		return mapErr(err)
	}
	return nil
}

// Close implements providers.Provider: it closes the client's sessions.
func (p *Provider) Close() error {
	p.client.Close()
	return nil
}

// mapErr maps Spanner and gRPC errors to the lock package's sentinels.
// Aborted transactions never arrive here: the client library retries them.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		// A commit may have been applied: the outcome is unknown.
		return &lock.RetryableError{Err: fmt.Errorf("%w: spanner: %w", lock.ErrUnavailable, err), RetryAfter: time.Second}
	}
	switch spanner.ErrCode(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.Canceled, codes.Internal, codes.Unknown:
		return &lock.RetryableError{Err: fmt.Errorf("%w: spanner: %w", lock.ErrUnavailable, err), RetryAfter: time.Second}
	case codes.ResourceExhausted:
		return &lock.RetryableError{Err: fmt.Errorf("%w: spanner: %w", lock.ErrThrottled, err), RetryAfter: time.Second}
	}
	// Misconfiguration (a missing table, permissions, credentials):
	// retrying will not help, so it is an internal error.
	return fmt.Errorf("spanner: %w", err)
}
