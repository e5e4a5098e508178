package main

import (
	"github.com/spf13/cobra"
)

// newCosmos is the old `hasp cosmos create-container DATABASE CONTAINER`,
// an alias of `hasp store init --store cosmos://DATABASE/CONTAINER`.
func newCosmos() *cobra.Command {
	cmd := &cobra.Command{Use: "cosmos", Short: "Azure Cosmos DB store administration (see hasp store init)"}
	cmd.AddCommand(deprecatedAlias(&cobra.Command{
		Use:   "create-container DATABASE CONTAINER",
		Short: "Create the database and the lock container: hasp store init --store cosmos://DATABASE/CONTAINER",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return storeInit(cmd, "cosmos://"+args[0]+"/"+args[1])
		},
	}))
	return cmd
}
