package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/hasplock/hasp/local/spanneremu"
	"github.com/hasplock/hasp/providers/spanner"
)

func newSpanner() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "spanner",
		Short: "Cloud Spanner store administration",
	}
	var createDB bool
	create := &cobra.Command{
		Use:   "create-schema spanner://projects/P/instances/I/databases/D[?table=T]",
		Short: "Create the lock table (and with --create-database the database)",
		Long: `Create the lock table of the store URL spanner://projects/P/instances/I/databases/D
(table hasp_locks unless ?table= says otherwise), with Application Default
Credentials. An existing table is left as it is. With --create-database, a
missing database is created in the existing instance.

With SPANNER_EMULATOR_HOST set (the Cloud Spanner emulator), the instance and
the database are created as needed.`,
		Example: `  hasp spanner create-schema spanner://projects/acme/instances/main/databases/locks
  SPANNER_EMULATOR_HOST=127.0.0.1:9010 hasp spanner create-schema spanner://projects/local/instances/hasp/databases/locks`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
			defer cancel()
			u, err := url.Parse(args[0])
			if err != nil {
				return usageError{err}
			}
			store, err := spanner.ParseStore(u)
			if err != nil {
				return usageError{err}
			}
			db, table := store.Name(), store.Table
			if emu := os.Getenv("SPANNER_EMULATOR_HOST"); emu != "" {
				if _, err := spanneremu.CreateDatabase(ctx, emu, store.Project, store.Instance, store.Database, nil); err != nil {
					return err
				}
			} else if createDB {
				if err := spanner.CreateDatabase(ctx, db); err != nil {
					return err
				}
			}
			created, err := spanner.CreateSchema(ctx, db, table)
			if err != nil {
				return err
			}
			state := "already exists"
			if created {
				state = "created"
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "table %s in %s %s\n", table, db, state)
			return err
		},
	}
	create.Flags().BoolVar(&createDB, "create-database", false, "create the database if it is missing")
	cmd.AddCommand(create)
	return cmd
}
