package main

import (
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2authorizers"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/hasplock/hasp/infra/metrics"
)

// LambdaActions are the only DynamoDB actions the function's role gets,
// on its table only: what providers/dynamodb calls (Scan for GET
// /v1/locks?prefix=, bounded per request; see providers/dynamodb List).
var LambdaActions = []string{"dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:DescribeTable", "dynamodb:Scan"}

// StackProps configures a hasp stack.
type StackProps struct {
	awscdk.StackProps
	// Env is the environment.
	Env Env
	// AssetDir holds the Lambda's bootstrap (make build-lambda: ../dist/lambda).
	AssetDir string
	// Table, when set, is an existing table (one restored with
	// point-in-time recovery, see docs/runbook.md) that the function uses
	// instead of the stack's own, which the stack keeps as it is.
	Table string
}

// NewHaspStack is one environment's hasp: DynamoDB table, Lambda function,
// HTTP API with IAM authorization, alarms and a dashboard.
func NewHaspStack(scope constructs.Construct, id string, props StackProps) awscdk.Stack {
	e := props.Env
	stack := awscdk.NewStack(scope, jsii.String(id), &props.StackProps)
	// CloudFormation's schema (as cfn-lint knows it) has no tags on dashboards.
	tagProps := &awscdk.TagProps{ExcludeResourceTypes: jsii.Strings("AWS::CloudWatch::Dashboard")}
	awscdk.Tags_Of(stack).Add(jsii.String("app"), jsii.String("hasp"), tagProps)
	awscdk.Tags_Of(stack).Add(jsii.String("env"), jsii.String(e.Name), tagProps)

	removal := awscdk.RemovalPolicy_DESTROY
	if e.Retain {
		removal = awscdk.RemovalPolicy_RETAIN
	}
	var table awsdynamodb.ITable = awsdynamodb.NewTable(stack, jsii.String("LocksTable"), &awsdynamodb.TableProps{
		PartitionKey:        &awsdynamodb.Attribute{Name: jsii.String("pk"), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:         awsdynamodb.BillingMode_PAY_PER_REQUEST,
		Encryption:          awsdynamodb.TableEncryption_AWS_MANAGED,
		TimeToLiveAttribute: jsii.String("gc"),
		RemovalPolicy:       removal,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(e.PITR),
		},
	})

	if props.Table != "" {
		table = awsdynamodb.Table_FromTableName(stack, jsii.String("RestoredTable"), jsii.String(props.Table))
	}

	fnLogs := awslogs.NewLogGroup(stack, jsii.String("FunctionLogs"), &awslogs.LogGroupProps{
		Retention: e.LogRetention, RemovalPolicy: removal, // prod keeps its audit trail
	})
	fn := awslambda.NewFunction(stack, jsii.String("HaspFunction"), &awslambda.FunctionProps{
		Runtime:                      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:                 awslambda.Architecture_ARM_64(),
		Handler:                      jsii.String("bootstrap"),
		Code:                         awslambda.Code_FromAsset(jsii.String(props.AssetDir), nil),
		MemorySize:                   jsii.Number(e.MemoryMB),
		Timeout:                      awscdk.Duration_Seconds(jsii.Number(e.TimeoutSeconds)),
		ReservedConcurrentExecutions: jsii.Number(e.ReservedConcurrency),
		LogGroup:                     fnLogs,
		Environment: &map[string]*string{
			"HASP_STORE": awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("dynamodb://"), table.TableName(), jsii.String("?cleanup=720h")}),
		},
	})
	fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:   jsii.Strings(LambdaActions...),
		Resources: &[]*string{table.TableArn()},
	}))
	// The function already depends on its role through Fn::GetAtt; keep
	// only the DependsOn that matters, on the role's policy (cfn-lint W3005).
	fn.Node().DefaultChild().(awscdk.CfnResource).AddOverride(jsii.String("DependsOn"),
		[]*string{fn.Role().Node().TryFindChild(jsii.String("DefaultPolicy")).Node().DefaultChild().(awscdk.CfnResource).LogicalId()})

	lambdaInt := awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("Lambda"), fn, nil)
	iam := awsapigatewayv2authorizers.NewHttpIamAuthorizer()
	api := awsapigatewayv2.NewHttpApi(stack, jsii.String("HaspApi"), &awsapigatewayv2.HttpApiProps{
		ApiName:            jsii.String("hasp-" + e.Name),
		CreateDefaultStage: jsii.Bool(false),
		DefaultIntegration: lambdaInt, // unknown paths reach the function (404/405 JSON), signed
		DefaultAuthorizer:  iam,
	})
	for _, r := range []struct {
		path   string
		method awsapigatewayv2.HttpMethod
	}{
		{"/v1/locks/acquire", awsapigatewayv2.HttpMethod_POST},
		{"/v1/locks/renew", awsapigatewayv2.HttpMethod_POST},
		{"/v1/locks/release", awsapigatewayv2.HttpMethod_POST},
		{"/v1/locks", awsapigatewayv2.HttpMethod_GET},
		{"/v1/locks/watch", awsapigatewayv2.HttpMethod_GET},
	} {
		api.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
			Path: jsii.String(r.path), Methods: &[]awsapigatewayv2.HttpMethod{r.method},
			Integration: lambdaInt, Authorizer: iam,
		})
	}
	health := api.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
		Path: jsii.String("/v1/health"), Methods: &[]awsapigatewayv2.HttpMethod{awsapigatewayv2.HttpMethod_GET},
		Integration: lambdaInt, Authorizer: awsapigatewayv2.NewHttpNoneAuthorizer(),
	})
	accessLogs := awslogs.NewLogGroup(stack, jsii.String("ApiAccessLogs"), &awslogs.LogGroupProps{
		Retention: e.LogRetention, RemovalPolicy: removal,
	})
	stage := api.AddStage(jsii.String("DefaultStage"), &awsapigatewayv2.HttpStageOptions{
		StageName:  jsii.String("$default"),
		AutoDeploy: jsii.Bool(true),
		Throttle:   &awsapigatewayv2.ThrottleSettings{RateLimit: jsii.Number(e.RateLimit), BurstLimit: jsii.Number(e.BurstLimit)},
	})
	cfnStage := stage.Node().DefaultChild().(awsapigatewayv2.CfnStage)
	// The open health route gets a throttle of its own; the stage must
	// come after the route its settings name.
	cfnStage.SetRouteSettings(map[string]any{
		"GET /v1/health": map[string]any{"ThrottlingRateLimit": HealthRateLimit, "ThrottlingBurstLimit": HealthBurstLimit},
	})
	for _, r := range *health {
		stage.Node().AddDependency(r)
	}
	cfnStage.SetAccessLogSettings(&awsapigatewayv2.CfnStage_AccessLogSettingsProperty{
		DestinationArn: accessLogs.LogGroupArn(),
		Format: jsii.String(`{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","caller":"$context.identity.caller",` +
			`"method":"$context.httpMethod","path":"$context.path","status":"$context.status","latency":"$context.responseLatency",` +
			`"integrationError":"$context.integrationErrorMessage"}`),
	})

	period := awscdk.Duration_Minutes(jsii.Number(1))
	alarms := []struct {
		id, what  string
		metric    awscloudwatch.IMetric
		threshold float64
	}{
		{"Api5xx", "API 5xx answers: the backend is unavailable or the function failed (503/500)",
			api.MetricServerError(&awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("Sum")}), 5},
		{"LambdaThrottles", "Lambda throttles: reserved concurrency exhausted; raise it or find the caller",
			fn.MetricThrottles(&awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("Sum")}), 1},
		{"ApiLatencyP99", "API p99 latency over budget: DynamoDB slow or throttling, or long waits",
			api.MetricLatency(&awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("p99")}), e.P99LatencyAlarmMs},
		{"LambdaErrors", "Lambda errors: crashes or cold-start failures (check HASP_STORE and the role)",
			fn.MetricErrors(&awscloudwatch.MetricOptions{Period: period, Statistic: jsii.String("Sum")}), 1},
	}
	var widgets []awscloudwatch.IWidget
	for _, a := range alarms {
		alarm := awscloudwatch.NewAlarm(stack, jsii.String(a.id), &awscloudwatch.AlarmProps{
			AlarmName:          jsii.String("hasp-" + e.Name + "-" + a.id),
			AlarmDescription:   jsii.String(a.what),
			Metric:             a.metric,
			Threshold:          jsii.Number(a.threshold),
			EvaluationPeriods:  jsii.Number(3),
			DatapointsToAlarm:  jsii.Number(2),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		widgets = append(widgets, awscloudwatch.NewAlarmWidget(&awscloudwatch.AlarmWidgetProps{Title: jsii.String(a.id), Alarm: alarm, Width: jsii.Number(12)}))
	}
	widgets = append(widgets,
		awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{Title: jsii.String("Requests"), Width: jsii.Number(12), Left: &[]awscloudwatch.IMetric{
			api.MetricCount(&awscloudwatch.MetricOptions{Period: period}), api.MetricClientError(&awscloudwatch.MetricOptions{Period: period}),
		}}),
		awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{Title: jsii.String("DynamoDB"), Width: jsii.Number(12), Left: &[]awscloudwatch.IMetric{
			table.MetricConsumedWriteCapacityUnits(&awscloudwatch.MetricOptions{Period: period}),
			table.MetricThrottledRequestsForOperations(&awsdynamodb.OperationsMetricOptions{Period: period}),
		}}),
	)
	dash := awscloudwatch.NewDashboard(stack, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{DashboardName: jsii.String("hasp-" + e.Name)})
	addRows(dash, widgets, 2)
	dash.AddWidgets(awscloudwatch.NewTextWidget(&awscloudwatch.TextWidgetProps{
		Markdown: jsii.String("## Locks\nThe function's own metrics (CloudWatch Embedded Metric Format, namespace `" + metrics.CloudWatchNamespace +
			"`): the names `hasp serve` exports to Prometheus. What the alarms above mean: docs/runbook.md."),
		Width: jsii.Number(24), Height: jsii.Number(2),
	}))
	addRows(dash, lockWidgets(period), 3)

	awscdk.NewCfnOutput(stack, jsii.String("ApiUrl"), &awscdk.CfnOutputProps{Value: api.ApiEndpoint(), Description: jsii.String("hasp endpoint; sign requests with SigV4 (execute-api)")})
	awscdk.NewCfnOutput(stack, jsii.String("TableName"), &awscdk.CfnOutputProps{Value: table.TableName()})
	return stack
}

// addRows adds widgets to the dashboard perRow to a row.
func addRows(dash awscloudwatch.Dashboard, widgets []awscloudwatch.IWidget, perRow int) {
	for i := 0; i < len(widgets); i += perRow {
		dash.AddWidgets(widgets[i:min(i+perRow, len(widgets))]...)
	}
}

// emf returns the EMF metrics of one catalog metric, one per combination of
// its dimensions' values, with the statistic stat.
func emf(name, stat string, period awscdk.Duration) []awscloudwatch.IMetric {
	var m metrics.Metric
	for _, x := range metrics.All {
		if x.Name == name {
			m = x
		}
	}
	if m.Name == "" {
		panic("infra: no metric " + name + " in the catalog")
	}
	combos := []map[string]*string{{}}
	for _, d := range m.Dimensions {
		var next []map[string]*string
		for _, c := range combos {
			for _, v := range m.Labels[d] {
				n := map[string]*string{d: jsii.String(v)}
				for k, x := range c {
					n[k] = x
				}
				next = append(next, n)
			}
		}
		combos = next
	}
	var out []awscloudwatch.IMetric
	for _, c := range combos {
		var label []string
		for _, d := range m.Dimensions {
			label = append(label, *c[d])
		}
		out = append(out, awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace: jsii.String(metrics.CloudWatchNamespace), MetricName: jsii.String(name),
			DimensionsMap: &c, Statistic: jsii.String(stat), Period: period, Label: jsii.String(strings.Join(append(label, stat), " ")),
		}))
	}
	return out
}

// lockWidgets graph the signals of hasp's Grafana dashboard from the
// function's EMF metrics.
func lockWidgets(period awscdk.Duration) []awscloudwatch.IWidget {
	graph := func(title string, ms ...[]awscloudwatch.IMetric) awscloudwatch.IWidget {
		var left []awscloudwatch.IMetric
		for _, m := range ms {
			left = append(left, m...)
		}
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{Title: jsii.String(title), Width: jsii.Number(8), Left: &left})
	}
	using := map[string]awscloudwatch.IMetric{"contended": emf("lock_contended_acquire_total", "Sum", period)[0]}
	sum := []string{}
	for i, m := range emf("lock_acquire_total", "Sum", period) {
		id := fmt.Sprintf("acquires%d", i)
		using[id] = m
		sum = append(sum, "FILL("+id+", 0)") // a result with no acquires in a period has no data point
	}
	contention := awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression:   jsii.String("100 * FILL(contended, 0) / (" + strings.Join(sum, " + ") + ")"),
		UsingMetrics: &using, Label: jsii.String("contended %"), Period: period,
	})
	return []awscloudwatch.IWidget{
		graph("Acquires by result", emf("lock_acquire_total", "Sum", period)),
		graph("Acquire duration p99 (s, includes wait_ms)", emf("lock_acquire_duration_seconds", "p99", period)),
		graph("Contention: acquires that found the lock held (%)", []awscloudwatch.IMetric{contention}),
		graph("Active leases (per function instance)", emf("lock_active_count", "Maximum", period)),
		graph("Hold duration (s)", emf("lock_hold_duration_seconds", "p50", period), emf("lock_hold_duration_seconds", "p99", period)),
		graph("Renews by result", emf("lock_renew_total", "Sum", period)),
		graph("Releases by result", emf("lock_release_total", "Sum", period)),
		graph("Leases lost", emf("lock_lost_total", "Sum", period)),
		graph("DynamoDB requests by op and result", emf("lock_backend_requests_total", "Sum", period)),
		graph("DynamoDB latency p99 by op (s)", emf("lock_backend_request_duration_seconds", "p99", period)),
		graph("Open watches (per function instance)", emf("lock_watches_open", "Maximum", period)),
		graph("Watch changes delivered", emf("lock_watch_changes_total", "Sum", period)),
	}
}
