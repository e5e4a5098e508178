package main

import (
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
)

// LambdaActions are the only DynamoDB actions the function's role gets,
// on its table only: what providers/dynamodb calls.
var LambdaActions = []string{"dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:DescribeTable"}

// StackProps configures a hasp stack.
type StackProps struct {
	awscdk.StackProps
	// Env is the environment.
	Env Env
	// AssetDir holds the Lambda's bootstrap (make build-lambda: ../dist/lambda).
	AssetDir string
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
	table := awsdynamodb.NewTable(stack, jsii.String("LocksTable"), &awsdynamodb.TableProps{
		PartitionKey:        &awsdynamodb.Attribute{Name: jsii.String("pk"), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:         awsdynamodb.BillingMode_PAY_PER_REQUEST,
		Encryption:          awsdynamodb.TableEncryption_AWS_MANAGED,
		TimeToLiveAttribute: jsii.String("gc"),
		RemovalPolicy:       removal,
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(e.PITR),
		},
	})

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
	} {
		api.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
			Path: jsii.String(r.path), Methods: &[]awsapigatewayv2.HttpMethod{r.method},
			Integration: lambdaInt, Authorizer: iam,
		})
	}
	api.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
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
	stage.Node().DefaultChild().(awsapigatewayv2.CfnStage).SetAccessLogSettings(&awsapigatewayv2.CfnStage_AccessLogSettingsProperty{
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
	for i := 0; i < len(widgets); i += 2 {
		dash.AddWidgets(widgets[i:min(i+2, len(widgets))]...)
	}

	awscdk.NewCfnOutput(stack, jsii.String("ApiUrl"), &awscdk.CfnOutputProps{Value: api.ApiEndpoint(), Description: jsii.String("hasp endpoint; sign requests with SigV4 (execute-api)")})
	awscdk.NewCfnOutput(stack, jsii.String("TableName"), &awscdk.CfnOutputProps{Value: table.TableName()})
	return stack
}
