package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/hasplock/hasp/providers"
)

func newStoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Store administration",
	}
	var store string
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create what the store needs (a table, a container, a schema), if missing",
		Long: `Create what the store URL names and hasp needs, each part only if it is missing;
what exists is left as it is (and checked, where a wrong shape would break hasp):

  dynamodb://TABLE[?cleanup=720h]  the table (partition key pk, on-demand), with
                                   DynamoDB TTL on "gc" when cleanup is given;
                                   waits until it is active
  spanner://projects/P/instances/I/databases/D[?table=T]
                                   the database in its instance (on the emulator,
                                   SPANNER_EMULATOR_HOST, the instance too), then
                                   the lock table
  cosmos://DATABASE/CONTAINER      the database and the container, partitioned on
                                   /id (with the account key in COSMOS_KEY; Entra
                                   ID identities cannot create them)
  etcd://..., embedded:PATH, memory:
                                   nothing to create

Credentials and endpoints come from each cloud's standard environment, as for
hasp serve.`,
		Example: `  AWS_REGION=us-east-1 hasp store init --store dynamodb://hasp-locks
  SPANNER_EMULATOR_HOST=127.0.0.1:9010 hasp store init --store spanner://projects/local/instances/hasp/databases/locks
  COSMOS_ENDPOINT=https://myaccount.documents.azure.com:443/ COSMOS_KEY=... hasp store init --store cosmos://hasp/locks`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if store == "" {
				return usageError{fmt.Errorf("--store (or HASP_STORE) is required")}
			}
			return storeInit(cmd, store)
		},
	}
	initCmd.Flags().StringVar(&store, "store", os.Getenv("HASP_STORE"), "store URL (env HASP_STORE), as for hasp serve")
	cmd.AddCommand(initCmd)
	return cmd
}

// storeInit opens store and provisions it, if its provider can.
func storeInit(cmd *cobra.Command, store string) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), 6*time.Minute)
	defer cancel()
	p, err := providers.Open(ctx, store)
	if err != nil {
		return err
	}
	defer p.Close()
	pv, ok := p.(providers.Provisioner)
	if !ok {
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "store %s (%s) needs no set-up\n", redact(store), p.Name())
		return err
	}
	if err := pv.Provision(ctx); err != nil {
		return err
	}
	_, err = fmt.Fprintf(cmd.OutOrStdout(), "store %s (%s) is ready\n", redact(store), p.Name())
	return err
}

// deprecatedAlias marks an old admin command, kept for one release, as an
// alias of `hasp store init`.
func deprecatedAlias(cmd *cobra.Command) *cobra.Command {
	cmd.Deprecated = "use \"hasp store init --store URL\"; this alias goes in the next release"
	return cmd
}
