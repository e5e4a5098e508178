package main

import (
	"github.com/spf13/cobra"
)

// newDynamoDB is the old `hasp dynamodb create-table TABLE [--cleanup]`,
// an alias of `hasp store init --store dynamodb://TABLE[?cleanup=720h]`.
func newDynamoDB() *cobra.Command {
	cmd := &cobra.Command{Use: "dynamodb", Short: "DynamoDB store administration (see hasp store init)"}
	var cleanup bool
	create := deprecatedAlias(&cobra.Command{
		Use:   "create-table TABLE",
		Short: "Create the lock table: hasp store init --store dynamodb://TABLE",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			store := "dynamodb://" + args[0]
			if cleanup {
				store += "?cleanup=720h"
			}
			return storeInit(cmd, store)
		},
	})
	create.Flags().BoolVar(&cleanup, "cleanup", false, `enable DynamoDB TTL on "gc" to delete idle locks`)
	cmd.AddCommand(create)
	return cmd
}
