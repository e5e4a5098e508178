package main

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	awsdb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/spf13/cobra"

	"github.com/hasplock/hasp/providers/dynamodb"
)

func newDynamoDB() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dynamodb",
		Short: "DynamoDB store administration",
	}
	var cleanup bool
	create := &cobra.Command{
		Use:   "create-table TABLE",
		Short: "Create the lock table (partition key pk, on-demand) and wait until it is active",
		Long: `Create the lock table for --store dynamodb://TABLE, with region, credentials and
endpoint from the standard AWS environment (AWS_REGION, the default credential
chain, AWS_ENDPOINT_URL_DYNAMODB for an emulator). An existing table is left as
it is. With --cleanup, DynamoDB TTL is enabled on the attribute "gc" (use with
dynamodb://TABLE?cleanup=720h).`,
		Example: `  AWS_REGION=us-east-1 AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:5000 hasp dynamodb create-table locks`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 6*time.Minute)
			defer cancel()
			cfg, err := config.LoadDefaultConfig(ctx)
			if err != nil {
				return err
			}
			if err := dynamodb.CreateTable(ctx, awsdb.NewFromConfig(cfg), args[0], cleanup); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "table %s is active\n", args[0])
			return err
		},
	}
	create.Flags().BoolVar(&cleanup, "cleanup", false, `enable DynamoDB TTL on "gc" to delete idle locks`)
	cmd.AddCommand(create)
	return cmd
}
