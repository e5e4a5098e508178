package main

import (
	"github.com/spf13/cobra"
)

// newSpanner is the old `hasp spanner create-schema URL`, an alias of
// `hasp store init --store URL`.
func newSpanner() *cobra.Command {
	cmd := &cobra.Command{Use: "spanner", Short: "Cloud Spanner store administration (see hasp store init)"}
	create := deprecatedAlias(&cobra.Command{
		Use:   "create-schema spanner://projects/P/instances/I/databases/D[?table=T]",
		Short: "Create the database and the lock table: hasp store init --store URL",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE:  func(cmd *cobra.Command, args []string) error { return storeInit(cmd, args[0]) },
	})
	// Kept so that old scripts still parse: store init creates a missing
	// database in any case.
	create.Flags().Bool("create-database", false, "ignored: the database is created if it is missing")
	cmd.AddCommand(create)
	return cmd
}
