// One marketplace organisation's deployment: data resources, the five functions with their
// triggers, the signing key secret, alarms. Function environments come only from
// functions.json (function-config.ts).
import * as fs from "fs";
import * as path from "path";
import { CfnOutput, DefaultStackSynthesizer, Duration, RemovalPolicy, Stack, StackProps } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as cwActions from "aws-cdk-lib/aws-cloudwatch-actions";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as events from "aws-cdk-lib/aws-events";
import * as targets from "aws-cdk-lib/aws-events-targets";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as sources from "aws-cdk-lib/aws-lambda-event-sources";
import * as logs from "aws-cdk-lib/aws-logs";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import * as sns from "aws-cdk-lib/aws-sns";
import * as sqs from "aws-cdk-lib/aws-sqs";
import * as subs from "aws-cdk-lib/aws-sns-subscriptions";
import { Construct } from "constructs";
import { buildEnvironment, ConfigError, FunctionName, FunctionsFile, loadFunctionsFile } from "./function-config";
import { MarketplaceData, NOTIFIER_TIMEOUT, REPLICATION_MAX_RECEIVES, REPLICATOR_TIMEOUT } from "./marketplace-data";
import { MarketplaceConfig } from "./parameters";

/** Scheduled functions run every minute and stop after their time budget, well before the
 * next run and before their own timeout, so an invocation ends cleanly instead of being
 * killed in the middle of a batch. */
const SCHEDULED_TIMEOUT = Duration.seconds(70);
const SCHEDULED_TIME_BUDGET_MS = 50_000;

/** Item actions per function: what its store and lease code call, nothing more. DynamoDB
 * authorises each item of a TransactWriteItems as its own PutItem/DeleteItem/..., so no
 * transaction-level action is needed. */
const TABLE_ACTIONS: Record<FunctionName, string[]> = {
  "tmf-api": ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:DeleteItem"],
  notifier: ["dynamodb:GetItem", "dynamodb:Query"],
  publisher: ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"],
  relay: ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"],
  replicator: ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"],
};

export interface MarketplaceStackProps extends StackProps {
  readonly config: MarketplaceConfig;
  /** Folder with one sub-folder per binary holding its `bootstrap` (cargo lambda build's
   * --lambda-dir layout). */
  readonly lambdaAssets: string;
  readonly functionsFile?: FunctionsFile;
}

export class MarketplaceStack extends Stack {
  readonly data: MarketplaceData;
  readonly functions: Record<FunctionName, lambda.Function>;
  readonly url: lambda.FunctionUrl;
  readonly alarmTopic: sns.Topic;

  constructor(scope: Construct, id: string, props: MarketplaceStackProps) {
    super(scope, id, props);
    const { config } = props;
    const functionsFile = props.functionsFile ?? loadFunctionsFile();
    checkAssets(props.lambdaAssets, functionsFile);

    this.data = new MarketplaceData(this, "Data");
    const { key, table } = this.data;

    const signingKey = config.signingKeySecretArn
      ? secretsmanager.Secret.fromSecretCompleteArn(this, "SigningKey", config.signingKeySecretArn)
      : new secretsmanager.Secret(this, "SigningKey", {
          description: `dome member ${config.memberId}: base64 ed25519 seed of the member signing key (put the real seed before the first publish; docs/deploy.md)`,
          encryptionKey: key,
          removalPolicy: RemovalPolicy.RETAIN,
        });

    const vpcPlacement = config.vpc ? this.vpcPlacement(config) : undefined;
    const common: Record<string, string> = {
      DOME_TABLE: table.tableName,
      DOME_LOG_FORMAT: "json",
    };
    const bus = { DOME_MEMBER_ID: config.memberId, DOME_BUS_RPC: config.busRpc.join(",") };
    const auth: Record<string, string> =
      config.auth.mode === "jwt"
        ? {
            DOME_AUTH: "jwt",
            DOME_JWT_ISSUER: config.auth.issuer,
            DOME_JWT_AUDIENCE: config.auth.audience,
            DOME_JWKS_URL: config.auth.jwksUrl,
          }
        : {
            DOME_AUTH: "tokens",
            // Resolved by CloudFormation at deploy time; the value is visible to whoever may
            // read the function's configuration (docs/deploy.md prefers jwt for that reason).
            DOME_API_TOKENS: secretsmanager.Secret.fromSecretCompleteArn(this, "ApiTokens", config.auth.tokensSecretArn).secretValue.unsafeUnwrap(),
          };
    const computed: Record<FunctionName, Record<string, string>> = {
      "tmf-api": {
        ...common,
        ...bus,
        ...auth,
        DOME_STORE: "dynamodb",
        DOME_NOTIFY_QUEUE_URL: this.data.notifyQueue.queueUrl,
        ...(config.publicBaseUrl ? { DOME_PUBLIC_BASE_URL: config.publicBaseUrl } : {}),
      },
      // The notifier picks JSON logs on Lambda by itself and reads no DOME_LOG_FORMAT.
      notifier: { DOME_TABLE: table.tableName },
      publisher: {
        ...common,
        ...bus,
        DOME_SIGNING_KEY_SECRET: signingKey.secretArn,
        DOME_TIME_BUDGET_MS: String(SCHEDULED_TIME_BUDGET_MS),
      },
      relay: {
        ...common,
        ...bus,
        DOME_REPLICATION_QUEUE_URL: this.data.replicationQueue.queueUrl,
        DOME_TIME_BUDGET_MS: String(SCHEDULED_TIME_BUDGET_MS),
      },
      // No DOME_BUS_RPC: the replicator trusts the event it was handed and checks the
      // fetched version against its hash; the relay is the one that reads the bus.
      replicator: {
        ...common,
        DOME_MEMBER_ID: config.memberId,
        DOME_SIGNING_KEY_SECRET: signingKey.secretArn,
        DOME_REPLICATION_DLQ_URL: this.data.replicationDlq.queueUrl,
        DOME_MAX_ATTEMPTS: String(REPLICATION_MAX_RECEIVES),
      },
    };

    const make = (name: FunctionName, opts: { timeout: Duration; memoryMiB: number; reservedConcurrency?: number }) => {
      const spec = functionsFile.functions[name];
      const overrides = config.functionEnv[name] ?? {};
      for (const variable of Object.keys(overrides)) {
        if (variable in computed[name]) {
          throw new ConfigError(`parameter functionEnv.${name}.${variable} is set by the stack and cannot be overridden`);
        }
      }
      const environment = buildEnvironment(functionsFile, name, { ...computed[name], ...overrides });
      const logGroup = new logs.LogGroup(this, `${pascal(name)}Logs`, {
        retention: config.logRetentionDays,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      const role = new iam.Role(this, `${pascal(name)}Role`, {
        assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
        description: `dome ${name}: exactly the actions it uses`,
      });
      // Written out instead of AWSLambdaBasicExecutionRole, which allows every log group.
      role.addToPolicy(
        new iam.PolicyStatement({
          actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
          resources: [logGroup.logGroupArn],
        }),
      );
      if (vpcPlacement) {
        role.addManagedPolicy(iam.ManagedPolicy.fromAwsManagedPolicyName("service-role/AWSLambdaVPCAccessExecutionRole"));
      }
      table.grant(role, ...TABLE_ACTIONS[name]);
      this.data.grantKey(role, "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey");
      const fn = new lambda.Function(this, pascal(name), {
        description: `dome ${name} (${spec.trigger})`,
        runtime: lambda.Runtime.PROVIDED_AL2023,
        architecture: config.architecture === "arm64" ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64,
        handler: "bootstrap",
        code: lambda.Code.fromAsset(path.join(props.lambdaAssets, spec.binary)),
        memorySize: opts.memoryMiB,
        timeout: opts.timeout,
        role,
        logGroup,
        environment,
        environmentEncryption: key,
        reservedConcurrentExecutions: opts.reservedConcurrency,
        ...(vpcPlacement ?? {}),
      });
      return fn;
    };

    this.functions = {
      "tmf-api": make("tmf-api", { timeout: Duration.seconds(29), memoryMiB: 512 }),
      notifier: make("notifier", { timeout: NOTIFIER_TIMEOUT, memoryMiB: 256 }),
      // One publisher and one relay at a time: they keep the outbox and the chain in order
      // (the DynamoDB lease guards the same invariant across accounts or manual runs).
      publisher: make("publisher", { timeout: SCHEDULED_TIMEOUT, memoryMiB: 256, reservedConcurrency: 1 }),
      relay: make("relay", { timeout: SCHEDULED_TIMEOUT, memoryMiB: 256, reservedConcurrency: 1 }),
      replicator: make("replicator", { timeout: REPLICATOR_TIMEOUT, memoryMiB: 512 }),
    };
    const fns = this.functions;

    // Writes are authenticated by the function (JWT or tokens) and reads are public, so the
    // URL itself has no AWS auth (functions/tmf-api/README.md, "AWS choice").
    this.url = fns["tmf-api"].addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE });
    sendTo(fns["tmf-api"], this.data.notifyQueue);

    fns.notifier.addEventSource(
      new sources.SqsEventSource(this.data.notifyQueue, { batchSize: 10, reportBatchItemFailures: true }),
    );

    // The stream only wakes the publisher early; the schedule covers a missed or failed wake-up.
    fns.publisher.addEventSource(
      new sources.DynamoEventSource(table, {
        startingPosition: lambda.StartingPosition.LATEST,
        batchSize: 100,
        maxBatchingWindow: Duration.seconds(1),
        retryAttempts: 2,
        filters: [
          lambda.FilterCriteria.filter({
            eventName: lambda.FilterRule.isEqual("INSERT"),
            dynamodb: { Keys: { PK: { S: lambda.FilterRule.beginsWith("OUTBOX") }, SK: { S: [{ "anything-but": ["COUNTER"] }] } } },
          }),
        ],
      }),
    );
    signingKey.grantRead(fns.publisher);
    new events.Rule(this, "PublisherSchedule", {
      description: "dome publisher safety net: runs even when no stream record woke it",
      schedule: events.Schedule.rate(Duration.minutes(1)),
      targets: [new targets.LambdaFunction(fns.publisher, { retryAttempts: 0 })],
    });

    new events.Rule(this, "RelaySchedule", {
      description: "dome relay: follows the chain for its time budget every minute",
      schedule: events.Schedule.rate(Duration.minutes(1)),
      targets: [new targets.LambdaFunction(fns.relay, { retryAttempts: 0 })],
    });
    sendTo(fns.relay, this.data.replicationQueue);

    fns.replicator.addEventSource(
      new sources.SqsEventSource(this.data.replicationQueue, { batchSize: 10, reportBatchItemFailures: true }),
    );
    signingKey.grantRead(fns.replicator);
    sendTo(fns.replicator, this.data.replicationDlq);

    this.alarmTopic = new sns.Topic(this, "Alarms", { masterKey: key, enforceSSL: true });
    // CloudWatch publishes to the encrypted topic with the data key.
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal("cloudwatch.amazonaws.com")],
        actions: ["kms:Decrypt", "kms:GenerateDataKey"],
        resources: ["*"],
        conditions: { StringEquals: { "aws:SourceAccount": this.account } },
      }),
    );
    if (config.alarmEmail) {
      this.alarmTopic.addSubscription(new subs.EmailSubscription(config.alarmEmail));
    }
    this.addAlarms(config, functionsFile);

    new CfnOutput(this, "FunctionUrl", { value: this.url.url, description: "TMF620 API base: <url>tmf-api/productCatalogManagement/v4/" });
    new CfnOutput(this, "TableName", { value: table.tableName });
    new CfnOutput(this, "SigningKeySecretArn", { value: signingKey.secretArn });
    new CfnOutput(this, "AlarmTopicArn", { value: this.alarmTopic.topicArn });
  }

  private vpcPlacement(config: MarketplaceConfig): Pick<lambda.FunctionProps, "vpc" | "vpcSubnets" | "securityGroups"> {
    const vpcConfig = config.vpc!;
    const vpc = ec2.Vpc.fromVpcAttributes(this, "Vpc", {
      vpcId: vpcConfig.vpcId,
      availabilityZones: [...vpcConfig.availabilityZones],
      privateSubnetIds: [...vpcConfig.privateSubnetIds],
    });
    // Outbound only: HTTPS to other marketplaces, the IdP and AWS APIs, and the validators'
    // RPC (CometBFT's default port or HTTPS in front of it).
    const sg = new ec2.SecurityGroup(this, "FunctionsSg", { vpc, allowAllOutbound: false, description: "dome functions: outbound HTTPS and CometBFT RPC" });
    sg.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), "HTTPS");
    sg.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(26657), "CometBFT RPC");
    return { vpc, vpcSubnets: { subnets: vpc.privateSubnets }, securityGroups: [sg] };
  }

  private addAlarms(config: MarketplaceConfig, functionsFile: FunctionsFile): void {
    const action = new cwActions.SnsAction(this.alarmTopic);
    const alarm = (id: string, props: cloudwatch.AlarmProps) => {
      const a = new cloudwatch.Alarm(this, id, props);
      a.addAlarmAction(action);
      a.addOkAction(action);
      return a;
    };
    for (const [name, fn] of Object.entries(this.functions)) {
      alarm(`${pascal(name)}Errors`, {
        alarmDescription: `dome ${name}: invocations failed`,
        metric: fn.metricErrors({ period: Duration.minutes(5), statistic: "Sum" }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }
    for (const [id, queue] of [
      ["ReplicationDlqDepth", this.data.replicationDlq],
      ["NotifyDlqDepth", this.data.notifyDlq],
    ] as const) {
      alarm(id, {
        alarmDescription: `dome: messages in ${id.replace("Depth", "")} (given up on; see docs/deploy.md)`,
        metric: queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: "Maximum" }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }
    // The relay logs this metric in CloudWatch embedded metric format after every run
    // (functions/replication-aws/src/metrics.rs); namespace, name and dimensions come from
    // the same functions.json entry its test checks. Missing data is breaching: a relay that
    // stopped reporting is as bad as one far behind.
    const lag = functionsFile.metrics.relay_lag;
    const dimensionValues: Record<string, string> = { Member: config.memberId };
    const dimensionsMap: Record<string, string> = {};
    for (const dimension of lag.dimensions) {
      if (!(dimension in dimensionValues)) {
        throw new ConfigError(`functions.json metrics.relay_lag: dimension ${dimension} has no value in this stack (known: ${Object.keys(dimensionValues).join(", ")})`);
      }
      dimensionsMap[dimension] = dimensionValues[dimension];
    }
    alarm("RelayLag", {
      alarmDescription: `dome relay: more than ${config.relayLagAlarmHeights} bus heights behind, or not reporting`,
      metric: new cloudwatch.Metric({
        namespace: lag.namespace,
        metricName: lag.name,
        dimensionsMap,
        period: Duration.minutes(5),
        statistic: "Maximum",
      }),
      threshold: config.relayLagAlarmHeights,
      evaluationPeriods: 2,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    alarm("ReplicationQueueAge", {
      alarmDescription: "dome replicator: oldest replication message older than 15 minutes",
      metric: this.data.replicationQueue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(5), statistic: "Maximum" }),
      threshold: 900,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }
}

/** Only the data resources, without bootstrap checks: what the smoke test deploys into moto. */
export class DataStack extends Stack {
  readonly data: MarketplaceData;

  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, { ...props, synthesizer: new DefaultStackSynthesizer({ generateBootstrapVersionRule: false }) });
    this.data = new MarketplaceData(this, "Data");
    new CfnOutput(this, "TableName", { value: this.data.table.tableName });
    new CfnOutput(this, "NotifyQueueUrl", { value: this.data.notifyQueue.queueUrl });
    new CfnOutput(this, "ReplicationQueueUrl", { value: this.data.replicationQueue.queueUrl });
    new CfnOutput(this, "ReplicationDlqUrl", { value: this.data.replicationDlq.queueUrl });
  }
}

function checkAssets(dir: string, file: FunctionsFile): void {
  for (const [name, spec] of Object.entries(file.functions)) {
    const bootstrap = path.join(dir, spec.binary, "bootstrap");
    if (!fs.existsSync(bootstrap)) {
      throw new ConfigError(`context lambdaAssets: ${bootstrap} (function ${name}) does not exist; build it with local/infra-check.sh --build-only`);
    }
  }
}

/** sqs:SendMessage (which also covers SendMessageBatch) on one queue. Written out because the
 * queue's own grant adds kms:ReEncrypt* and kms:GenerateDataKey*; the roles already hold the
 * exact KMS actions on the data key. */
function sendTo(fn: lambda.Function, queue: sqs.IQueue): void {
  fn.addToRolePolicy(new iam.PolicyStatement({ actions: ["sqs:SendMessage"], resources: [queue.queueArn] }));
}

function pascal(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase());
}
