package spanner

import (
	"context"
	"fmt"
	"os"
	"strings"

	database "cloud.google.com/go/spanner/admin/database/apiv1"
	"cloud.google.com/go/spanner/admin/database/apiv1/databasepb"
	instance "cloud.google.com/go/spanner/admin/instance/apiv1"
	"cloud.google.com/go/spanner/admin/instance/apiv1/instancepb"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DDL returns the statements that create the lock table named table.
func DDL(table string) []string {
	return []string{`CREATE TABLE ` + table + ` (
  name STRING(1024) NOT NULL,
  token INT64 NOT NULL,
  lease_id STRING(256),
  owner STRING(1024),
  metadata STRING(MAX),
  ttl_ms INT64,
  expires_at TIMESTAMP,
  shown_expires_at TIMESTAMP,
  updated_at TIMESTAMP NOT NULL OPTIONS (allow_commit_timestamp = true),
  permits BYTES(MAX),
) PRIMARY KEY (name)`}
}

// permitsColumn is the column that holds a row's permit table; tables
// created before semaphores lack it (see AddPermitsColumn).
const permitsColumn = "permits"

// AddPermitsColumn returns the statement that adds the permit-table
// column to a lock table created before semaphores and lock-delay.
func AddPermitsColumn(table string) string {
	return `ALTER TABLE ` + table + ` ADD COLUMN ` + permitsColumn + ` BYTES(MAX)`
}

// hasColumn reports whether the CREATE TABLE statement st declares column.
func hasColumn(st, column string) bool {
	for _, line := range strings.Split(st, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.EqualFold(strings.Trim(f[0], "`"), column) {
			return true
		}
	}
	return false
}

// CreateSchema creates the lock table in database
// ("projects/P/instances/I/databases/D") unless a table of that name is
// already there, in which case it adds the permits column if the table
// lacks it (a table created before semaphores: AddPermitsColumn); created
// reports only whether the table was created. The database must exist.
func CreateSchema(ctx context.Context, db string, table string, opts ...option.ClientOption) (created bool, err error) {
	if !tableRE.MatchString(table) {
		return false, fmt.Errorf("spanner: bad table name %q", table)
	}
	dc, err := database.NewDatabaseAdminClient(ctx, opts...)
	if err != nil {
		return false, err
	}
	defer dc.Close()
	st, err := tableDDL(ctx, dc, db, table)
	switch {
	case err != nil:
		return false, err
	case st == "":
		if err := updateDDL(ctx, dc, db, "create table "+table, DDL(table)); err != nil {
			return false, err
		}
		return true, nil
	case hasColumn(st, permitsColumn):
		return false, nil
	}
	if err := updateDDL(ctx, dc, db, "add column "+permitsColumn+" to "+table, []string{AddPermitsColumn(table)}); err != nil {
		// Another `hasp store init` may have added it meanwhile.
		if st, err2 := tableDDL(ctx, dc, db, table); err2 != nil || !hasColumn(st, permitsColumn) {
			return false, err
		}
	}
	return false, nil
}

// tableDDL returns the CREATE TABLE statement of table in db; "" when
// there is none.
func tableDDL(ctx context.Context, dc *database.DatabaseAdminClient, db, table string) (string, error) {
	cur, err := dc.GetDatabaseDdl(ctx, &databasepb.GetDatabaseDdlRequest{Database: db})
	if err != nil {
		return "", fmt.Errorf("spanner: read the schema of %s: %w", db, err)
	}
	for _, st := range cur.Statements {
		if f := strings.Fields(st); len(f) >= 3 && strings.EqualFold(f[0], "CREATE") && strings.EqualFold(f[1], "TABLE") && strings.EqualFold(strings.Trim(f[2], "`"), table) {
			return st, nil
		}
	}
	return "", nil
}

// updateDDL applies statements to db and waits for them.
func updateDDL(ctx context.Context, dc *database.DatabaseAdminClient, db, what string, statements []string) error {
	op, err := dc.UpdateDatabaseDdl(ctx, &databasepb.UpdateDatabaseDdlRequest{Database: db, Statements: statements})
	if err == nil {
		err = op.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("spanner: %s: %w", what, err)
	}
	return nil
}

// CreateDatabase creates db ("projects/P/instances/I/databases/D") in its
// existing instance, unless it exists.
func CreateDatabase(ctx context.Context, db string, opts ...option.ClientOption) error {
	if !databaseRE.MatchString(db) {
		return fmt.Errorf("spanner: %q is not projects/P/instances/I/databases/D", db)
	}
	dc, err := database.NewDatabaseAdminClient(ctx, opts...)
	if err != nil {
		return err
	}
	defer dc.Close()
	i := strings.LastIndex(db, "/databases/")
	op, err := dc.CreateDatabase(ctx, &databasepb.CreateDatabaseRequest{
		Parent:          db[:i],
		CreateStatement: "CREATE DATABASE `" + db[i+len("/databases/"):] + "`",
	})
	if err == nil {
		_, err = op.Wait(ctx)
	}
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("spanner: create database %s: %w", db, err)
	}
	return nil
}

// CreateEmulatorInstance creates inst ("projects/P/instances/I") with the
// Cloud Spanner emulator's instance configuration, unless it exists: for
// local development on the emulator only.
func CreateEmulatorInstance(ctx context.Context, inst string, opts ...option.ClientOption) error {
	project, id, ok := strings.Cut(strings.TrimPrefix(inst, "projects/"), "/instances/")
	if !ok || !strings.HasPrefix(inst, "projects/") {
		return fmt.Errorf("spanner: %q is not projects/P/instances/I", inst)
	}
	ic, err := instance.NewInstanceAdminClient(ctx, opts...)
	if err != nil {
		return err
	}
	defer ic.Close()
	op, err := ic.CreateInstance(ctx, &instancepb.CreateInstanceRequest{
		Parent:     "projects/" + project,
		InstanceId: id,
		Instance:   &instancepb.Instance{Config: "projects/" + project + "/instanceConfigs/emulator-config", DisplayName: id, NodeCount: 1},
	})
	if err == nil {
		_, err = op.Wait(ctx)
	}
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("spanner: create instance %s: %w", inst, err)
	}
	return nil
}

// Provision implements providers.Provisioner (`hasp store init`): on the
// emulator (SPANNER_EMULATOR_HOST) it creates the instance, and it creates
// the database, then the lock table, each only if missing. On Cloud
// Spanner the instance must exist, and creating a database needs
// spanner.databases.create.
func (p *Provider) Provision(ctx context.Context) error {
	if os.Getenv("SPANNER_EMULATOR_HOST") != "" {
		if err := CreateEmulatorInstance(ctx, p.database[:strings.LastIndex(p.database, "/databases/")], p.clientOp...); err != nil {
			return err
		}
	}
	if err := CreateDatabase(ctx, p.database, p.clientOp...); err != nil {
		return err
	}
	_, err := CreateSchema(ctx, p.database, p.table, p.clientOp...)
	return err
}
