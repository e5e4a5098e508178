package spanner

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"cloud.google.com/go/spanner"

	"github.com/hasplock/hasp/providers"
)

// What the provider knows of the lock table's permits column (see the
// package doc, Upgrading).
const (
	columnUnknown int32 = iota // not asked yet, or the table was missing
	columnAbsent               // a table created before semaphores
	columnPresent
)

// recheckInterval is how often, at most, a permit operation on a table
// found without the permits column asks INFORMATION_SCHEMA again, so
// that a `hasp store init` run later is picked up without a restart.
const recheckInterval = 10 * time.Second

// hasPermits reports whether the table is known to have the permits
// column.
func (p *Provider) hasPermits() bool { return p.column.Load() == columnPresent }

// knowColumn makes sure the provider knows whether the table has the
// permits column: the first call (and every call while the table is
// missing) asks INFORMATION_SCHEMA, one query; the others cost nothing.
func (p *Provider) knowColumn(ctx context.Context) error {
	if p.column.Load() != columnUnknown {
		return nil
	}
	return p.checkColumn(ctx)
}

// checkColumn asks INFORMATION_SCHEMA.COLUMNS (readable by whoever may
// read the database's data) whether the table and its permits column
// exist: one strong single-use query. A missing table leaves the answer
// unknown, to be asked again; an absent column can later be found
// present, never the reverse.
func (p *Provider) checkColumn(ctx context.Context) error {
	stmt := spanner.Statement{
		SQL: `SELECT COUNT(*), COUNTIF(LOWER(COLUMN_NAME) = @column) FROM INFORMATION_SCHEMA.COLUMNS
WHERE TABLE_CATALOG = '' AND TABLE_SCHEMA = '' AND LOWER(TABLE_NAME) = LOWER(@table)`,
		Params: map[string]any{"table": p.table, "column": permitsColumn},
	}
	var columns, permits int64
	err := p.client.Single().Query(ctx, stmt).Do(func(r *spanner.Row) error { return r.Columns(&columns, &permits) })
	if err != nil {
		return mapErr(fmt.Errorf("read the columns of %s: %w", p.table, err))
	}
	p.mu.Lock()
	p.checkedAt = time.Now()
	p.mu.Unlock()
	switch {
	case permits > 0:
		p.column.Store(columnPresent)
	case columns > 0:
		p.column.CompareAndSwap(columnUnknown, columnAbsent)
	}
	return nil
}

// recheckDue reports whether the permits column may be asked about again
// (recheckInterval has passed since it was last asked), and if so counts
// this as the asking.
func (p *Provider) recheckDue() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.checkedAt) < p.recheck {
		return false
	}
	p.checkedAt = time.Now()
	return true
}

// permitsReady returns nil when the table has the permits column (or is
// missing, which the operation then reports), else an error wrapping
// providers.ErrUnsupported that says how to add it. A table found without
// it is asked about again at most once per recheckInterval; in between,
// name's row is read (one RPC) and a permit table in it, which only a
// provider that found the column writes, shows that the column has been
// added.
func (p *Provider) permitsReady(ctx context.Context, name string) error {
	if err := p.knowColumn(ctx); err != nil {
		return err
	}
	if p.column.Load() != columnAbsent {
		return nil // present, or no table: the read fails as it should
	}
	if p.recheckDue() {
		if err := p.checkColumn(ctx); err != nil {
			return err
		}
	} else if _, err := p.read(ctx, p.client.Single(), name); err != nil {
		return mapErr(err)
	}
	if p.hasPermits() {
		return nil
	}
	return p.unsupported()
}

// unsupported is the error of a permit operation on a table without the
// permits column.
func (p *Provider) unsupported() error {
	store := "spanner://" + p.database
	if !strings.EqualFold(p.table, DefaultTable) {
		store += "?" + url.Values{"table": {p.table}}.Encode()
	}
	return fmt.Errorf("spanner: semaphores and lock-delay: table %s has no %s column (it was created before them); run `hasp store init --store %s`, or %s: %w",
		p.table, permitsColumn, store, AddPermitsColumn(p.table), providers.ErrUnsupported)
}
