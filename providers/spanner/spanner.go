// Package spanner stores hasp leases in a Google Cloud Spanner table. Each
// acquire, renew and release is one read-write transaction, and expiry is
// judged by Spanner's own clock, so the clocks of the functions that call
// it do not matter.
//
// Table (DDL below, applied by CreateSchema or `hasp store init --store spanner://...`):
// one row per lock name, kept after release so that its counter stays:
//
//	name        the lock's name (primary key)
//	token       the fencing counter: the last token issued for the name
//	lease_id    SHA-256 of the holder's lease id, hex (NULL when free): the
//	            id itself, a secret, is never stored
//	shown_expires_at  the expiry the holder was told (see Expiry)
//	owner, metadata  as given (NULL when empty)
//	ttl_ms      the granted TTL, for renewals that keep it
//	expires_at  the holder's expiry, by Spanner's clock
//	updated_at  commit timestamp of the last write: the row's version
//	permits     the permit table of a semaphore or lock-delayed mutex
//	            (NULL for a plain row; see below)
//
// Each operation is one read-write transaction of two RPCs: a query that
// reads the row together with CURRENT_TIMESTAMP() (the transaction begins
// inline with it), and a commit that carries the write as a mutation.
// Spanner's transactions are serializable and lock what they read (the
// row, or its absence), so two acquires of one name cannot both see it
// free: one of them aborts, and the client library runs it again. A held
// lock or a lost lease writes nothing (its transaction commits empty,
// which releases its read lock).
//
//   - Acquire: the lock is free when the row is missing, has no lease, or
//     its expires_at <= CURRENT_TIMESTAMP(); then token+1 and expires_at =
//     CURRENT_TIMESTAMP() + TTL are written. A new row's token starts at
//     CURRENT_TIMESTAMP() in milliseconds × 1000, so that even a row
//     deleted by hand and created again cannot issue a smaller token.
//   - Renew: the row must carry the lease id with expires_at still ahead;
//     expires_at becomes CURRENT_TIMESTAMP() + TTL.
//   - Release: the same check, then the lease columns are cleared; the row
//     and its token stay.
//
// Fencing tokens strictly increase because the token only grows by one in
// a serializable transaction and rows are never deleted by hasp (a row is
// a few dozen bytes per name ever locked). Do not add a TTL row-deletion
// policy to the table; a row deleted by hand restarts above the time of
// its re-creation in milliseconds × 1000, beyond any token a row could
// have reached (a row takes far fewer than 1,000 commits a millisecond).
//
// Expiry is judged by Spanner's clock: a lease holds until
// CURRENT_TIMESTAMP() passes expires_at, which is CURRENT_TIMESTAMP() read
// inside the transaction that wrote it, plus TTL. The ExpiresAt reported
// to the holder (and stored as shown_expires_at, for Status) is the
// earlier of that and the service's clock before the transaction began,
// plus TTL. It is therefore never later than Spanner's expiry, whichever
// clock it is read by: if the service's clock runs behind Spanner's by d,
// its own reading is d earlier; if ahead, Spanner's is earlier. Skewed
// function clocks shorten leases as the holder sees them, never lengthen
// them.
//
// # Semaphores and lock-delay
//
// A name used as a semaphore, or as a mutex with a lock-delay, keeps its
// permit table (providers.EncodePermitTable, JSON) in its row's permits
// column, BYTES(MAX): one row per name still. Such a row has lease_id
// "permit-table" (not a hash: it matches no lease, so a mutex renew or
// release of it is lease_lost), expires_at = the table's BusyUntil (NULL
// once idle), token = the name's counter, and NULL owner, metadata,
// ttl_ms and shown_expires_at. The mutex path reads the column with the
// row: an acquire of a busy table fails with PermitTable.Blocking, one of
// an idle table takes the row over as an expired lease's (token+1, permits
// set to NULL), Status and List answer PermitTable.Status (List only the
// names with a live permit). The column counts only beside lease_id
// "permit-table": a writer that does not know the column (a version
// before semaphores, or this one before it found the column, see
// Upgrading) takes an idle table over without clearing it, and the lease
// it wrote is then the row's (TestStalePermitsIgnored).
//
// The service (package service) decides; the provider reads and writes:
//
//   - LoadPermits is one strong single-use read (one streaming RPC). Its
//     Now is the read's timestamp, Spanner's clock, by which the mutex
//     path judges expiry too (CURRENT_TIMESTAMP() in its transactions),
//     so the table's expiries and the row's expires_at are judged by one
//     clock, and a later transaction never reads an earlier time; its
//     Version is updated_at.
//   - StorePermits is one read-write transaction (two RPCs, the query
//     that begins it and the commit): it reads the row, writes the table
//     iff updated_at is still the version read, and answers
//     providers.ErrConflict otherwise, writing nothing. New permits get
//     the next tokens of the row's counter (a new row's start at
//     providers.TokenBase of Spanner's time, as the mutex path's), so
//     tokens strictly increase across mutex and semaphore use of a name.
//   - UpdatePermits (providers.PermitUpdater), which the service prefers,
//     is one read-write transaction in which the service decides on the
//     row it reads and the table is written as StorePermits writes it.
//     Spanner locks the row for the transaction, so contending writers
//     queue or are aborted and run again by the client library, instead
//     of losing compare-and-swap races round after round.
//
// So a renew or release costs two RPCs (the transaction), whatever it
// answers; an acquire costs three when it is granted (a read that
// decides, then the transaction) and one when it finds every permit
// taken (TestPermitRequestCounts). A plain acquire that meets a busy
// table costs its usual two.
//
// Why this is safe: every write of a row by hasp sets updated_at to its
// commit timestamp, and Spanner gives transactions that write one row
// distinct commit timestamps in their (serializable, externally
// consistent) order. A StorePermits transaction that finds updated_at
// unchanged holds a read lock on the row until it commits, so no other
// write can come between its check and its write: the table it writes
// is the successor of the one the service decided on. When the client
// library runs the transaction again after a commit that was in fact
// applied (an Aborted or lost answer), the run finds updated_at changed
// by that very commit and answers ErrConflict; the service reads again
// and recognises its own write (its permit, or its release mark). A
// commit whose outcome is unknown (a timeout) answers unavailable, as the
// mutex path does.
//
// Clocks: a permit's expiry is Spanner's read timestamp plus its TTL,
// whatever the service's clock says (TestPermitExpiryIsSpanners). Unlike
// a mutex lease's, the expiry told to the holder is not also bounded by
// the service's clock (the table has one expiry per permit, used both to
// judge and to show).
//
// Limits: Spanner allows 10 MiB per column value. A table of 1000 permits
// (lock.MaxPermits) takes about 150-250 bytes a permit plus its owner
// (up to 255 bytes) and metadata (up to 1,024), so typically well under
// 1.5 MB; owner and metadata made of characters that JSON escapes sixfold
// (control characters, <, >, &) reach about 7.8 MB at most, which fits a
// BYTES(MAX) value (the conformance test RecordTooLarge; a STRING(MAX) one would not:
// 2,621,440 characters). Every operation on one name reads and rewrites
// the whole row, so a big table costs its size in each read and commit.
// All operations on a name serialize on its row: each permit
// transaction holds the row's lock from its read to its commit (a few
// milliseconds in one region, more across regions), so one name takes,
// as an estimate not measured on Cloud Spanner, on the order of a hundred
// permit operations a second, fewer with big tables; contenders beyond
// that wait for the row's lock. Spread heavy use over names.
//
// Upgrading: tables created before semaphores lack the permits column. The
// provider asks INFORMATION_SCHEMA.COLUMNS whether the table has it on its
// first call (Ping, an operation or a listing: one query more, once per
// provider, again on each call while the table is missing;
// INFORMATION_SCHEMA is readable by whoever may read the database's data,
// spanner.databases.select, as in roles/spanner.databaseReader or
// databaseUser) and keeps the answer. Without the column, acquire, renew,
// release, Status, List and Ping read and write the columns they did
// before semaphores, at the same request counts, with the same answers
// (TestOldTableServesMutexes), and LoadPermits and StorePermits answer an
// error wrapping providers.ErrUnsupported (the API's 501 unsupported) that
// says to run `hasp store init --store spanner://...` (CreateSchema),
// which adds the column with AddPermitsColumn's ALTER TABLE; the column is
// nullable, so the change is instant and the rows keep their tokens. So
// this version can be deployed before or after `hasp store init`. A
// provider that found the column missing finds it added (without a
// restart) when a permit operation asks INFORMATION_SCHEMA again, at most
// once every 10 seconds (in between, such an operation reads the name's
// row instead: one RPC), or when a read of a name's row (an operation,
// Status) meets a permit table, which only a provider that found the
// column writes (TestOldTableUpgrade). Until then it treats such a table
// as a lease held until the table's BusyUntil: its acquires wait or fail
// held, never overlap a permit, as do those of the version before
// semaphores, which may still run during a rollout after `hasp store init`
// (the permits a row keeps after either takes its table over are ignored,
// by the rule above). Fine-grained access control filters
// INFORMATION_SCHEMA by the database role: a role that cannot see the
// column (no SELECT on it, and not in spanner_info_reader) is served as if
// the table lacked it.
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
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/spanner"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hasplock/hasp/lock"
	"github.com/hasplock/hasp/providers"
)

// DefaultTable is the table's name when none is given.
const DefaultTable = "hasp_locks"

var (
	databaseRE = regexp.MustCompile(`^projects/([^/]+)/instances/([^/]+)/databases/([^/]+)$`)
	tableRE    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,127}$`)
)

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
	database string
	table    string
	clientOp []option.ClientOption
	clock    lock.Clock
	calls    atomic.Int64 // gRPC calls to Spanner, for providers.RequestCounter

	// column is what the provider knows of the permits column
	// (columnUnknown, columnAbsent, columnPresent).
	column atomic.Int32
	// mu guards checkedAt, when the column was last asked about; recheck
	// is recheckInterval (shorter in tests).
	mu        sync.Mutex
	checkedAt time.Time
	recheck   time.Duration

	qRow    string // reads a row with Spanner's clock
	qRowOld string // the same, of a table without the permits column
}

var (
	_ providers.Provider       = (*Provider)(nil)
	_ providers.RequestCounter = (*Provider)(nil)
	_ providers.Provisioner    = (*Provider)(nil)
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

// WithClock sets the service's clock, used only to bound the reported
// ExpiresAt (default the system clock); Spanner's clock judges expiry.
func WithClock(c lock.Clock) Option { return func(p *Provider) { p.clock = c } }

// New connects to database ("projects/P/instances/I/databases/D").
func New(ctx context.Context, database string, opts ...Option) (*Provider, error) {
	p := &Provider{table: DefaultTable, clock: lock.SystemClock{}, recheck: recheckInterval}
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
	p.client, p.database = c, database
	p.qRow = `SELECT CURRENT_TIMESTAMP(), l.token, l.lease_id, l.owner, l.metadata, l.ttl_ms, l.expires_at, l.shown_expires_at, l.updated_at, l.permits
FROM (SELECT 1) AS one LEFT JOIN ` + p.table + ` AS l ON l.name = @name`
	p.qRowOld = `SELECT CURRENT_TIMESTAMP(), l.token, l.lease_id, l.owner, l.metadata, l.ttl_ms, l.expires_at, l.shown_expires_at
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
	expiresAt time.Time // Spanner's expiry
	shown     time.Time // the expiry the holder was told
	updated   time.Time // commit timestamp of the row's last write: its version
	// table is the row's permit table (lease_id is then tableLease and
	// expires_at the table's BusyUntil); nil for a plain row, and for
	// every row of a table without the permits column. A permits value
	// beside another lease_id is stale (left by a writer that did not
	// know the column) and ignored.
	table *providers.PermitTable
}

func (r row) heldAt() bool { return r.leaseID != "" && r.expiresAt.After(r.now) }

func (r row) held(name string) *lock.HeldError {
	return &lock.HeldError{
		Name:       name,
		Holder:     lock.Holder{Owner: r.owner, FencingToken: r.token, ExpiresAt: r.shownExpiry(), Metadata: r.metadata},
		RetryAfter: max(r.expiresAt.Sub(r.now), 0),
	}
}

// shownExpiry is the expiry the holder was told.
func (r row) shownExpiry() time.Time {
	if r.shown.IsZero() {
		return r.expiresAt.UTC().Truncate(time.Millisecond)
	}
	return r.shown.UTC()
}

// ownedBy reports whether lease id holds the row now.
func (r row) ownedBy(id string) bool { return r.leaseID == providers.HashLeaseID(id) && r.heldAt() }

// expiry is the ExpiresAt reported for a lease of ttl written in a
// transaction that read Spanner's time now and began after start by the
// service's clock: the earlier of the two readings, plus ttl.
func expiry(start, now time.Time, ttl time.Duration) time.Time {
	a, b := lock.ExpiresAt(start, ttl), lock.ExpiresAt(now, ttl)
	if a.Before(b) {
		return a
	}
	return b
}

type querier interface {
	Query(ctx context.Context, stmt spanner.Statement) *spanner.RowIterator
}

// read reads name's row, with the permits column when the table has it.
// Without it, a row that holds a permit table reads as a lease held until
// the table's BusyUntil, and shows that the column has been added since it
// was found missing.
func (p *Provider) read(ctx context.Context, q querier, name string) (row, error) {
	has := p.hasPermits()
	sql := p.qRowOld
	if has {
		sql = p.qRow
	}
	it := q.Query(ctx, spanner.Statement{SQL: sql, Params: map[string]any{"name": name}})
	defer it.Stop()
	sr, err := it.Next()
	if err != nil {
		return row{}, err
	}
	var (
		r                        row
		token, ttl               spanner.NullInt64
		leaseID, owner, metadata spanner.NullString
		exp, shown, updated      spanner.NullTime
		table                    []byte
	)
	cols := []any{&r.now, &token, &leaseID, &owner, &metadata, &ttl, &exp, &shown}
	if has {
		cols = append(cols, &updated, &table)
	}
	if err := sr.Columns(cols...); err != nil {
		return row{}, err
	}
	r.exists = token.Valid
	r.token, r.leaseID, r.owner, r.metadata = token.Int64, leaseID.StringVal, owner.StringVal, metadata.StringVal
	r.ttl, r.expiresAt, r.shown, r.updated = time.Duration(ttl.Int64)*time.Millisecond, exp.Time, shown.Time, updated.Time
	if r.leaseID != tableLease {
		return r, nil
	}
	if !has {
		p.column.Store(columnPresent)
		return r, nil
	}
	if r.table, err = decodeTable(table); err != nil {
		return row{}, err
	}
	return r, nil
}

// decodeTable decodes a permits column; nil when the column is NULL.
func decodeTable(b []byte) (*providers.PermitTable, error) {
	if b == nil {
		return nil, nil
	}
	t, err := providers.DecodePermitTable(string(b), 0)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

func nullable(s string) spanner.NullString { return spanner.NullString{StringVal: s, Valid: s != ""} }

var (
	leaseColumns    = []string{"name", "token", "lease_id", "owner", "metadata", "ttl_ms", "expires_at", "shown_expires_at", "updated_at", permitsColumn}
	oldLeaseColumns = leaseColumns[: len(leaseColumns)-1 : len(leaseColumns)-1] // of a table without the permits column
)

// write buffers l as its name's row, with Spanner's expiry now + l.TTL; a
// lease without id frees the lock and keeps the token.
func (p *Provider) write(tx *spanner.ReadWriteTransaction, l lock.Lease, now time.Time) error {
	held := l.LeaseID != ""
	id := ""
	if held {
		id = providers.HashLeaseID(l.LeaseID)
	}
	vals := []any{l.Name, l.FencingToken, nullable(id), nullable(l.Owner), nullable(l.Metadata),
		spanner.NullInt64{Int64: l.TTL.Milliseconds(), Valid: held},
		spanner.NullTime{Time: lock.ExpiresAt(now, l.TTL), Valid: held},
		spanner.NullTime{Time: l.ExpiresAt, Valid: held}, spanner.CommitTimestamp}
	cols := oldLeaseColumns
	if p.hasPermits() {
		cols, vals = leaseColumns, append(vals, []byte(nil))
	}
	return tx.BufferWrite([]*spanner.Mutation{spanner.InsertOrUpdate(p.table, cols, vals)})
}

// transact runs f in a read-write transaction over name's row. f sees the
// row read with Spanner's clock and returns its outcome; held, lost and
// conflict outcomes commit the transaction with no write.
func (p *Provider) transact(ctx context.Context, name string, f func(tx *spanner.ReadWriteTransaction, r row) error) error {
	if err := p.knowColumn(ctx); err != nil {
		return err
	}
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
		if outcome != nil && !errors.As(outcome, &held) && !errors.Is(outcome, lock.ErrLeaseLost) && !errors.Is(outcome, providers.ErrConflict) {
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
	start := p.clock.Now()
	var l lock.Lease
	err := p.transact(ctx, req.Name, func(tx *spanner.ReadWriteTransaction, r row) error {
		if r.ownedBy(req.LeaseID) {
			// A retried commit that had succeeded: the lock is ours.
			l = lock.Lease{
				Name: req.Name, Owner: r.owner, LeaseID: req.LeaseID, FencingToken: r.token,
				TTL: r.ttl, ExpiresAt: r.shownExpiry(), Metadata: r.metadata,
			}
			return nil
		}
		if r.table != nil && r.table.Busy(r.now) {
			return r.table.Blocking(req.Name, r.now, 0)
		}
		if r.table == nil && r.heldAt() {
			return r.held(req.Name)
		}
		// Free, expired, or an idle permit table, which this write
		// replaces (its token counter stays).
		token := r.token + 1
		if !r.exists {
			token = providers.TokenBase(r.now) + 1
		}
		if token >= lock.MaxFencingToken {
			return fmt.Errorf("spanner: fencing token of %q exhausted", req.Name)
		}
		l = lock.Lease{
			Name: req.Name, Owner: req.Owner, LeaseID: req.LeaseID, FencingToken: token,
			TTL: req.TTL, ExpiresAt: expiry(start, r.now, req.TTL), Metadata: req.Metadata,
		}
		return p.write(tx, l, r.now)
	})
	if err != nil {
		return lock.Lease{}, err
	}
	return l, nil
}

// Renew implements providers.Provider: one read-write transaction.
//
// A run again after a commit that was applied finds the lease still
// holding the row (the applied run extended it) and extends it again with
// the same token; a renew never frees the row, so a run that finds the
// lease gone reports the truth: lease_lost.
func (p *Provider) Renew(ctx context.Context, req lock.RenewRequest) (lock.Lease, error) {
	start := p.clock.Now()
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
			TTL: ttl, ExpiresAt: expiry(start, r.now, ttl), Metadata: r.metadata,
		}
		return p.write(tx, l, r.now)
	})
	if err != nil {
		return lock.Lease{}, err
	}
	return l, nil
}

// Release implements providers.Provider: one read-write transaction that
// keeps the row (and its token).
//
// The client library runs the transaction again after some errors, and a
// commit it retries may already have been applied; meanwhile another
// instance may have taken the freed lock. A run that follows one which
// released the lease at token T, live until Spanner's time E, decides by
// what it reads (by Spanner's clock, which orders the transactions):
//   - the row freed at token T: only a release frees a row and only an
//     acquire changes its token, so the release went through;
//   - a token above T read before E: the lock was taken while the lease
//     was still live, which only a release of it allows: released too;
//   - a token above T read at or after E: the lease may have expired and
//     been taken over without the release: the outcome is unknown
//     (unavailable), never a false lease_lost;
//   - the lease still holding the row at token T: the earlier commit was
//     not applied, and this run releases it.
func (p *Provider) Release(ctx context.Context, req lock.ReleaseRequest) error {
	var (
		earlier *row  // what an earlier run of this call read and released
		unknown error // the last run's verdict when the outcome is unknown
	)
	err := p.transact(ctx, req.Name, func(tx *spanner.ReadWriteTransaction, r row) error {
		unknown = nil
		if earlier != nil {
			switch {
			case r.exists && r.token == earlier.token && r.leaseID == "":
				return nil
			case r.token > earlier.token && r.now.Before(earlier.expiresAt):
				return nil
			case r.token > earlier.token:
				unknown = lock.Unavailable(fmt.Errorf("spanner: release of %q was run again after the lease could have expired: whether the first run was applied is unknown", req.Name), 0)
				return nil
			}
		}
		if !r.ownedBy(req.LeaseID) {
			return lock.ErrLeaseLost
		}
		earlier = &r
		return p.write(tx, lock.Lease{Name: req.Name, FencingToken: r.token}, r.now)
	})
	if err != nil {
		return err
	}
	return unknown
}

// Status implements providers.Provider with one strong single-use read.
func (p *Provider) Status(ctx context.Context, name string) (lock.Status, error) {
	if err := p.knowColumn(ctx); err != nil {
		return lock.Status{}, err
	}
	r, err := p.read(ctx, p.client.Single(), name)
	if err != nil {
		return lock.Status{}, mapErr(err)
	}
	if r.table != nil {
		return r.table.Status(name, r.now), nil
	}
	if !r.heldAt() {
		return lock.Status{Name: name}, nil
	}
	return lock.Status{Name: name, Held: true, Holder: r.held(name).Holder}, nil
}

// Ping implements providers.Provider: a query of the table that reads no
// row, which also checks that the schema is there, its permits column
// included once the provider has found it (a table created before
// semaphores passes, as it did before them).
func (p *Provider) Ping(ctx context.Context) error {
	if err := p.knowColumn(ctx); err != nil {
		return err
	}
	col := "1"
	if p.hasPermits() {
		col = permitsColumn
	}
	it := p.client.Single().Query(ctx, spanner.Statement{SQL: "SELECT " + col + " FROM " + p.table + " WHERE FALSE"})
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
		return lock.Unavailable(fmt.Errorf("spanner: %w", err), time.Second)
	}
	if _, ok := status.FromError(err); !ok {
		// Not an RPC error: a bug or a bad row, not something to retry.
		return fmt.Errorf("spanner: %w", err)
	}
	switch spanner.ErrCode(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.Canceled, codes.Internal, codes.Unknown:
		return lock.Unavailable(fmt.Errorf("spanner: %w", err), time.Second)
	case codes.ResourceExhausted:
		return lock.Throttled(fmt.Errorf("spanner: %w", err), time.Second)
	}
	// Misconfiguration (a missing table, permissions, credentials):
	// retrying will not help, so it is an internal error.
	return fmt.Errorf("spanner: %w", err)
}

var _ providers.Lister = (*Provider)(nil)

// List implements providers.Lister: one strong single-use query (one
// streaming RPC, plus session management) over the primary key,
//
//	WHERE STARTS_WITH(name, @prefix) AND name > @after AND <held now> ORDER BY name LIMIT @limit
//
// a range scan of the key from max(prefix, after) that reads the rows under
// the prefix in key order until limit held ones are found: O(limit) when
// most names under the prefix are held, at worst every row under the prefix
// (released rows stay, to keep their tokens). Expiry is judged by
// Spanner's clock, as for Status. The continuation is the last name
// read.
//
// A busy permit table passes the query's test (its expires_at is the
// table's BusyUntil) but is listed only if a permit of it is live (not
// only lock-delayed), with PermitTable.Status; so a page may hold fewer
// than limit names and still have a continuation. A table without the
// permits column is listed as before semaphores (a permit table, which
// only a provider that found the column writes, then shows as a lease
// held until its BusyUntil).
func (p *Provider) List(ctx context.Context, prefix string, limit int, after string) ([]lock.Status, string, error) {
	if err := p.knowColumn(ctx); err != nil {
		return nil, "", err
	}
	has := p.hasPermits()
	tableCol := ""
	if has {
		tableCol = `, IF(lease_id = @tableLease, ` + permitsColumn + `, NULL)`
	}
	stmt := spanner.Statement{
		SQL: `SELECT CURRENT_TIMESTAMP(), name, token, owner, metadata, expires_at, shown_expires_at` + tableCol + ` FROM ` + p.table + `
WHERE STARTS_WITH(name, @prefix) AND name > @after AND lease_id IS NOT NULL AND expires_at > CURRENT_TIMESTAMP()
ORDER BY name LIMIT @limit`,
		Params: map[string]any{"prefix": prefix, "after": after, "limit": int64(limit)},
	}
	if has {
		stmt.Params["tableLease"] = tableLease
	}
	it := p.client.Single().Query(ctx, stmt)
	defer it.Stop()
	var (
		out  []lock.Status
		read int
		last string
	)
	for {
		sr, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, "", mapErr(err)
		}
		var (
			r               row
			name            string
			owner, metadata spanner.NullString
			exp, shown      spanner.NullTime
			table           []byte
		)
		cols := []any{&r.now, &name, &r.token, &owner, &metadata, &exp, &shown}
		if has {
			cols = append(cols, &table)
		}
		if err := sr.Columns(cols...); err != nil {
			return nil, "", mapErr(err)
		}
		read, last = read+1, name
		t, err := decodeTable(table)
		if err != nil {
			return nil, "", err
		}
		if t != nil {
			if st := t.Status(name, r.now); st.Held {
				out = append(out, st)
			}
			continue
		}
		r.owner, r.metadata, r.expiresAt, r.shown = owner.StringVal, metadata.StringVal, exp.Time, shown.Time
		out = append(out, lock.Status{Name: name, Held: true, Holder: r.held(name).Holder})
	}
	next := ""
	if read == limit {
		next = last
	}
	return out, next, nil
}
