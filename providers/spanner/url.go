package spanner

import (
	"context"
	"fmt"
	"net/url"
	"os"

	"github.com/hasplock/hasp/providers"
)

func init() {
	providers.Register("spanner", Open)
}

// Store is a parsed store URL
// "spanner://projects/P/instances/I/databases/D[?table=T]".
type Store struct {
	Project, Instance, Database string
	// Table is the lock table (DefaultTable unless ?table= says).
	Table string
}

// Name is the database's name, "projects/P/instances/I/databases/D".
func (s Store) Name() string {
	return "projects/" + s.Project + "/instances/" + s.Instance + "/databases/" + s.Database
}

// ParseStore parses a spanner:// store URL.
func ParseStore(u *url.URL) (Store, error) {
	m := databaseRE.FindStringSubmatch(u.Host + u.Path)
	if u.Scheme != "spanner" || m == nil {
		return Store{}, fmt.Errorf("spanner: store URL %q must be spanner://projects/P/instances/I/databases/D[?table=T]", u.Redacted())
	}
	if err := providers.CheckParams(u, "table"); err != nil {
		return Store{}, err
	}
	s := Store{Project: m[1], Instance: m[2], Database: m[3], Table: DefaultTable}
	if t := u.Query().Get("table"); t != "" {
		s.Table = t
	}
	if !tableRE.MatchString(s.Table) {
		return Store{}, fmt.Errorf("spanner: bad table name %q", s.Table)
	}
	return s, nil
}

// Open opens the provider for
// "spanner://projects/P/instances/I/databases/D[?table=T]".
func Open(ctx context.Context, u *url.URL) (providers.Provider, error) {
	s, err := ParseStore(u)
	if err != nil {
		return nil, err
	}
	if os.Getenv("SPANNER_EMULATOR_HOST") != "" {
		EmulatorCompat()
	}
	return New(ctx, s.Name(), WithTable(s.Table))
}
