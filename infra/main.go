// Command infra is hasp's AWS CDK app: one stack per environment, chosen
// with `-c env=dev|staging|prod` (make synth ENV=… / make deploy ENV=…);
// `-c table=NAME` (TABLE=NAME) points the function at a restored table.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	name, _ := app.Node().TryGetContext(jsii.String("env")).(string)
	e, err := LookupEnv(name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hasp infra:", err)
		os.Exit(2)
	}
	asset, _ := app.Node().TryGetContext(jsii.String("assetDir")).(string)
	if asset == "" {
		asset = "../dist/lambda"
	}
	if _, err := os.Stat(asset + "/bootstrap"); err != nil {
		fmt.Fprintf(os.Stderr, "hasp infra: %s/bootstrap is missing: run `make build-lambda` first\n", asset)
		os.Exit(2)
	}
	var sp awscdk.StackProps
	if acct, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION"); acct != "" && region != "" {
		sp.Env = &awscdk.Environment{Account: jsii.String(acct), Region: jsii.String(region)}
	}
	// -c table=NAME: serve from an existing (restored) table; docs/runbook.md.
	table, _ := app.Node().TryGetContext(jsii.String("table")).(string)
	NewHaspStack(app, "hasp-"+e.Name, StackProps{StackProps: sp, Env: e, AssetDir: asset, Table: table})
	app.Synth(nil)
}
