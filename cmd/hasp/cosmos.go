package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hasplock/hasp/providers/cosmos"
)

func newCosmos() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cosmos",
		Short: "Azure Cosmos DB store administration",
	}
	create := &cobra.Command{
		Use:   "create-container DATABASE CONTAINER",
		Short: "Create the database (if missing) and the lock container, partitioned on /id",
		Long: `Create the database and the lock container that the store URL
cosmos://DATABASE/CONTAINER names, partitioned on /id, on the account in
COSMOS_ENDPOINT, authenticating with the account key in COSMOS_KEY. (Without a
key it tries Entra ID, DefaultAzureCredential; but Cosmos DB does not let Entra
ID identities create databases or containers through the data plane: create
them with "az cosmosdb sql container create --partition-key-path /id" instead.)
An existing database or container is left as it is; a container that exists must
be partitioned on /id.`,
		Example: `  COSMOS_ENDPOINT=https://myaccount.documents.azure.com:443/ COSMOS_KEY=... hasp cosmos create-container hasp locks`,
		Args:    usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			cfg, err := cosmos.ConfigFromEnv(args[0], args[1])
			if err != nil {
				return err
			}
			if err := cosmos.CreateContainer(ctx, cfg); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "container %s/%s is ready (partition key /id)\n", args[0], args[1])
			return err
		},
	}
	cmd.AddCommand(create)
	return cmd
}
