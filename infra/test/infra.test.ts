// Assertion tests of both stacks (aws-cdk-lib/assertions), run by `node --test build/test/`.
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { App, Aspects, Stack } from "aws-cdk-lib";
import { Annotations, Match, Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { FUNCTION_NAMES, buildEnvironment, loadFunctionsFile } from "../lib/function-config";
import { DataStack, MarketplaceStack } from "../lib/marketplace-stack";
import { applyNag } from "../lib/nag";
import { ConfigError, parseMarketplaceConfig, parseValidatorConfig } from "../lib/parameters";
import { ValidatorStack } from "../lib/validator-stack";

// Compiled to build/test/; the fixtures stay in the source tree.
const FIXTURES = path.join(__dirname, "..", "..", "test", "fixtures");
const readFixture = (name: string): Record<string, unknown> => JSON.parse(fs.readFileSync(path.join(FIXTURES, name), "utf8"));

/** Stand-in build output: the tests check templates, not binaries (the CI synth uses the
 * real cargo lambda output). */
const ASSETS = fs.mkdtempSync(path.join(os.tmpdir(), "dome-infra-test-"));
for (const fn of FUNCTION_NAMES) {
  fs.mkdirSync(path.join(ASSETS, fn), { recursive: true });
  fs.writeFileSync(path.join(ASSETS, fn, "bootstrap"), `test stand-in for ${fn}\n`);
}
fs.writeFileSync(path.join(ASSETS, "cometbft"), "test stand-in\n");
fs.writeFileSync(path.join(ASSETS, "dome-abci"), "test stand-in\n");
process.on("exit", () => fs.rmSync(ASSETS, { recursive: true, force: true }));

const ENV = { account: "123456789012", region: "eu-west-1" };

function marketplace(overrides: Record<string, unknown> = {}): { stack: MarketplaceStack; template: Template } {
  const app = new App();
  const config = parseMarketplaceConfig({ ...readFixture("marketplace.json"), ...overrides }, "test");
  const stack = new MarketplaceStack(app, "Market", { env: ENV, config, lambdaAssets: ASSETS });
  applyNag(stack);
  return { stack, template: Template.fromStack(stack) };
}

function validator(overrides: Record<string, unknown> = {}): { stack: ValidatorStack; template: Template } {
  const app = new App();
  const config = parseValidatorConfig({ ...readFixture("validator.json"), ...overrides }, "test", FIXTURES);
  const stack = new ValidatorStack(app, "Validator", {
    config,
    cometbftBinary: path.join(ASSETS, "cometbft"),
    abciBinary: path.join(ASSETS, "dome-abci"),
  });
  applyNag(stack);
  return { stack, template: Template.fromStack(stack) };
}

/** Every action of every identity policy in the template (roles' inline and AWS::IAM::Policy). */
function iamActions(template: Template): string[] {
  const actions: string[] = [];
  const collect = (doc: unknown) => {
    const statements = (doc as { Statement?: { Action: string | string[] }[] } | undefined)?.Statement ?? [];
    for (const s of statements) actions.push(...([] as string[]).concat(s.Action));
  };
  for (const p of Object.values(template.findResources("AWS::IAM::Policy"))) collect(p.Properties.PolicyDocument);
  for (const r of Object.values(template.findResources("AWS::IAM::Role"))) {
    for (const p of r.Properties.Policies ?? []) collect(p.PolicyDocument);
  }
  return actions;
}

const market = marketplace();
const valid = validator();

test("no IAM policy grants a wildcard action", () => {
  for (const template of [market.template, valid.template]) {
    const actions = iamActions(template);
    assert.ok(actions.length > 0);
    const wild = actions.filter((a) => a.includes("*"));
    assert.deepEqual(wild, [], `wildcard actions: ${wild.join(", ")}`);
  }
});

test("each function's role uses only its own table actions (no Scan, no table admin)", () => {
  const actions = iamActions(market.template);
  for (const forbidden of ["dynamodb:Scan", "dynamodb:DeleteTable", "dynamodb:UpdateTable", "dynamodb:BatchWriteItem"]) {
    assert.ok(!actions.includes(forbidden), `${forbidden} granted`);
  }
});

test("queues redrive to their dead-letter queues; the replication queue is FIFO with 5 receives", () => {
  const t = market.template;
  t.hasResourceProperties("AWS::SQS::Queue", {
    FifoQueue: true,
    RedrivePolicy: { deadLetterTargetArn: { "Fn::GetAtt": [Match.stringLikeRegexp("ReplicationDlq"), "Arn"] }, maxReceiveCount: 5 },
  });
  t.hasResourceProperties("AWS::SQS::Queue", {
    RedrivePolicy: { deadLetterTargetArn: { "Fn::GetAtt": [Match.stringLikeRegexp("NotifyDlq"), "Arn"] }, maxReceiveCount: Match.anyValue() },
  });
  // Both consumers report partial batch failures, so one bad message does not retry the batch.
  const mappings = t.findResources("AWS::Lambda::EventSourceMapping", { Properties: { FunctionResponseTypes: ["ReportBatchItemFailures"] } });
  assert.equal(Object.keys(mappings).length, 2);
  t.hasResourceProperties("AWS::Lambda::EventSourceMapping", { BatchSize: 10, EventSourceArn: { "Fn::GetAtt": [Match.stringLikeRegexp("ReplicationQueue"), "Arn"] } });
});

test("data at rest is encrypted with the customer-managed key", () => {
  const t = market.template;
  t.hasResourceProperties("AWS::DynamoDB::Table", {
    SSESpecification: { SSEEnabled: true, SSEType: "KMS", KMSMasterKeyId: Match.anyValue() },
    PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    BillingMode: "PAY_PER_REQUEST",
  });
  for (const q of Object.values(t.findResources("AWS::SQS::Queue"))) {
    assert.ok(q.Properties.KmsMasterKeyId, "a queue without KMS encryption");
  }
  t.hasResourceProperties("AWS::SecretsManager::Secret", { KmsKeyId: Match.anyValue() });
  t.hasResourceProperties("AWS::KMS::Key", { EnableKeyRotation: true });
  for (const fn of Object.values(t.findResources("AWS::Lambda::Function"))) {
    assert.ok(fn.Properties.KmsKeyArn, "function environment not encrypted with the data key");
  }
  for (const instance of Object.values(valid.template.findResources("AWS::EC2::Instance"))) {
    for (const mapping of instance.Properties.BlockDeviceMappings) assert.equal(mapping.Ebs.Encrypted, true);
  }
});

test("tmf-api has a function URL with auth type NONE (the function checks JWTs)", () => {
  market.template.resourceCountIs("AWS::Lambda::Url", 1);
  market.template.hasResourceProperties("AWS::Lambda::Url", { AuthType: "NONE" });
  const fns = market.template.findResources("AWS::Lambda::Function", { Properties: { Environment: { Variables: { DOME_AUTH: "jwt" } } } });
  assert.equal(Object.keys(fns).length, 1);
});

test("the relay and the publisher run every minute with reserved concurrency 1", () => {
  const t = market.template;
  const rules = t.findResources("AWS::Events::Rule", { Properties: { ScheduleExpression: "rate(1 minute)" } });
  const targets = Object.values(rules).map((r) => JSON.stringify(r.Properties.Targets));
  assert.ok(targets.some((s) => s.includes("Relay")), "no relay schedule");
  assert.ok(targets.some((s) => s.includes("Publisher")), "no publisher schedule");
  const single = t.findResources("AWS::Lambda::Function", { Properties: { ReservedConcurrentExecutions: 1 } });
  assert.deepEqual(Object.keys(single).map((k) => k.replace(/[A-F0-9]{8}$/, "")).sort(), ["Publisher", "Relay"]);
});

test("the publisher's stream trigger only sees new outbox entries", () => {
  market.template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
    EventSourceArn: { "Fn::GetAtt": [Match.stringLikeRegexp("Table"), "StreamArn"] },
    FilterCriteria: {
      Filters: [{ Pattern: Match.serializedJson({ eventName: ["INSERT"], dynamodb: { Keys: { PK: { S: [{ prefix: "OUTBOX" }] }, SK: { S: [{ "anything-but": ["COUNTER"] }] } } } }) }],
    },
  });
});

test("alarms on dead letters, relay lag, queue age and every function's errors", () => {
  const t = market.template;
  t.resourceCountIs("AWS::CloudWatch::Alarm", FUNCTION_NAMES.length + 4);
  t.hasResourceProperties("AWS::CloudWatch::Alarm", { MetricName: "RelayLagHeights", Namespace: "Dome", TreatMissingData: "breaching" });
  t.hasResourceProperties("AWS::CloudWatch::Alarm", { MetricName: "ApproximateNumberOfMessagesVisible", Threshold: 1 });
  for (const alarm of Object.values(t.findResources("AWS::CloudWatch::Alarm"))) {
    assert.ok(alarm.Properties.AlarmActions?.length, "an alarm notifies nobody");
  }
  valid.template.hasResourceProperties("AWS::CloudWatch::Alarm", {
    MetricName: "StatusCheckFailed_System",
    AlarmActions: Match.arrayWith([{ "Fn::Join": ["", Match.arrayWith([Match.stringLikeRegexp(":automate:")])] }]),
  });
  valid.template.hasResourceProperties("AWS::CloudWatch::Alarm", { MetricName: "BlockAgeSeconds", TreatMissingData: "breaching" });
});

test("function environments hold exactly names of functions.json, every required one set", () => {
  const file = loadFunctionsFile();
  const fns = market.template.findResources("AWS::Lambda::Function");
  assert.equal(Object.keys(fns).length, FUNCTION_NAMES.length);
  for (const [logicalId, fn] of Object.entries(fns)) {
    const name = FUNCTION_NAMES.find((n) => logicalId.startsWith(n.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase())));
    assert.ok(name, `unexpected function ${logicalId}`);
    const variables = Object.keys(fn.Properties.Environment.Variables);
    for (const v of variables) assert.ok(v in file.functions[name].env, `${name} sets ${v}, which is not in functions.json`);
    for (const [v, spec] of Object.entries(file.functions[name].env)) {
      if (spec.required) assert.ok(variables.includes(v), `${name} lacks required ${v}`);
    }
    if ("DOME_LOG_FORMAT" in file.functions[name].env) assert.equal(fn.Properties.Environment.Variables.DOME_LOG_FORMAT, "json");
    assert.equal(fn.Properties.Runtime, "provided.al2023");
    assert.deepEqual(fn.Properties.Architectures, ["arm64"]);
  }
});

test("cdk-nag AwsSolutions reports no unsuppressed error or warning", () => {
  for (const stack of [market.stack, valid.stack]) {
    const errors = Annotations.fromStack(stack).findError("*", Match.stringLikeRegexp("AwsSolutions-.*"));
    const warnings = Annotations.fromStack(stack).findWarning("*", Match.stringLikeRegexp("AwsSolutions-.*"));
    assert.deepEqual([...errors, ...warnings].map((e) => `${e.id}: ${String(e.entry.data).slice(0, 80)}`), []);
  }
});

test("cdk-nag would flag the data stack if the table lost point-in-time recovery (the check can fail)", () => {
  const app = new App();
  const stack = new DataStack(app, "Data");
  (stack.data.table.node.defaultChild as unknown as { pointInTimeRecoverySpecification?: unknown }).pointInTimeRecoverySpecification = undefined;
  Aspects.of(stack).add(new AwsSolutionsChecks());
  const errors = [
    ...Annotations.fromStack(stack).findError("*", Match.stringLikeRegexp("AwsSolutions-DDB3")),
    ...Annotations.fromStack(stack).findWarning("*", Match.stringLikeRegexp("AwsSolutions-DDB3")),
  ];
  assert.ok(errors.length > 0);
});

test("the validator's RPC port is closed by default and p2p is open only to the peers", () => {
  const ingress = (t: Template) => Object.values(t.findResources("AWS::EC2::SecurityGroup")).flatMap((sg) => sg.Properties.SecurityGroupIngress ?? []);
  const closed = ingress(valid.template);
  assert.ok(closed.every((r: { FromPort: number }) => r.FromPort !== 26657), "RPC open without rpcAllowedCidrs");
  assert.deepEqual(closed.map((r: { CidrIp: string; FromPort: number }) => `${r.CidrIp}:${r.FromPort}`).sort(), ["198.51.100.11/32:26656", "198.51.100.12/32:26656"]);
  const open = ingress(validator({ rpcAllowedCidrs: ["203.0.113.7/32"] }).template);
  assert.ok(open.some((r: { CidrIp: string; FromPort: number }) => r.FromPort === 26657 && r.CidrIp === "203.0.113.7/32"));
  const userData = JSON.stringify(valid.template.findResources("AWS::EC2::Instance"));
  assert.ok(userData.includes("tcp://127.0.0.1:26657"), "RPC should listen on loopback without allowed CIDRs");
  valid.template.hasResourceProperties("AWS::EC2::Instance", { DisableApiTermination: true });
});

function assertConfigError(fn: () => unknown, ...needles: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `not a ConfigError: ${e}`);
    for (const needle of needles) assert.ok(e.message.includes(needle), `message ${JSON.stringify(e.message)} does not name ${needle}`);
    return true;
  });
}

test("a missing or malformed parameter fails naming it", () => {
  const base = readFixture("marketplace.json");
  const without = (key: string) => Object.fromEntries(Object.entries(base).filter(([k]) => k !== key));
  assertConfigError(() => parseMarketplaceConfig(without("memberId"), "m.json"), "memberId", "required");
  assertConfigError(() => parseMarketplaceConfig(without("busRpc"), "m.json"), "busRpc", "required");
  assertConfigError(() => parseMarketplaceConfig({ ...base, memberId: "Member A" }, "m.json"), "memberId", "malformed");
  assertConfigError(() => parseMarketplaceConfig({ ...base, busRpc: ["http://rpc.example.org"] }, "m.json"), "busRpc[0]", "https");
  assertConfigError(() => parseMarketplaceConfig({ ...base, busRpc: [] }, "m.json"), "busRpc", "empty");
  assertConfigError(() => parseMarketplaceConfig({ ...base, auth: { mode: "jwt", issuer: "https://idp" } }, "m.json"), "auth.audience");
  assertConfigError(() => parseMarketplaceConfig({ ...base, auth: { mode: "none" } }, "m.json"), "auth.mode");
  assertConfigError(() => parseMarketplaceConfig({ ...base, logRetentionDays: 10 }, "m.json"), "logRetentionDays");
  assertConfigError(() => parseMarketplaceConfig({ ...base, memberid: "x" }, "m.json"), "memberid", "not a known parameter");
  assertConfigError(() => marketplace({ functionEnv: { "tmf-api": { DOME_TABEL: "x" } } }), "DOME_TABEL", "not read");
  assertConfigError(() => marketplace({ functionEnv: { "tmf-api": { DOME_LISTEN: "0.0.0.0:80" } } }), "DOME_LISTEN", "local runs only");
  assertConfigError(() => marketplace({ functionEnv: { relay: { DOME_TABLE: "other" } } }), "functionEnv.relay.DOME_TABLE");

  const v = readFixture("validator.json");
  assertConfigError(() => parseValidatorConfig({ ...v, p2pPeerCidrs: ["0.0.0.0/0"] }, "v.json", FIXTURES), "p2pPeerCidrs[0]", "whole Internet");
  assertConfigError(() => parseValidatorConfig({ ...v, rpcAllowedCidrs: ["10.0.0.300/32"] }, "v.json", FIXTURES), "rpcAllowedCidrs[0]");
  assertConfigError(() => parseValidatorConfig({ ...v, chainId: "other-chain" }, "v.json", FIXTURES), "genesisFile", "chainId");
  assertConfigError(() => parseValidatorConfig({ ...v, persistentPeers: ["peer@host:1"] }, "v.json", FIXTURES), "persistentPeers[0]");
  assertConfigError(() => parseValidatorConfig({ ...v, instanceType: "m7i.large" }, "v.json", FIXTURES), "instanceType", "architecture");
  assertConfigError(() => parseValidatorConfig({ ...v, nodeKeySecretArn: "node-key" }, "v.json", FIXTURES), "nodeKeySecretArn");
});

test("a required variable without value fails naming it", () => {
  const file = loadFunctionsFile();
  assertConfigError(() => buildEnvironment(file, "relay", { DOME_TABLE: "t", DOME_LOG_FORMAT: "json" }), "relay", "DOME_MEMBER_ID");
});

test("missing build output fails naming the binary", () => {
  const app = new App();
  const config = parseMarketplaceConfig(readFixture("marketplace.json"), "test");
  assertConfigError(() => new MarketplaceStack(app, "M", { env: ENV, config, lambdaAssets: path.join(ASSETS, "nope") }), "lambdaAssets", "tmf-api/bootstrap");
});

test("the data stack holds only the table, the queues and the key", () => {
  const app = new App();
  const stack = new DataStack(app, "Data");
  const types = new Set(Object.values(Template.fromStack(stack).toJSON().Resources).map((r) => (r as { Type: string }).Type));
  assert.deepEqual([...types].sort(), ["AWS::DynamoDB::Table", "AWS::KMS::Key", "AWS::SQS::Queue", "AWS::SQS::QueuePolicy"]);
  assert.ok(stack instanceof Stack);
});

test("the relay lag alarm watches exactly the metric the relay emits (functions.json metrics.relay_lag)", () => {
  const lag = loadFunctionsFile().metrics.relay_lag;
  assert.deepEqual(lag.dimensions, ["Member"], "the relay emits one dimension set: [Member]");
  const alarms = market.template.findResources("AWS::CloudWatch::Alarm", { Properties: { MetricName: lag.name } });
  assert.equal(Object.keys(alarms).length, 1);
  const props = Object.values(alarms)[0].Properties;
  assert.equal(props.Namespace, lag.namespace);
  // CloudWatch matches a metric only with exactly the same dimension set.
  assert.deepEqual(props.Dimensions, [{ Name: "Member", Value: "member-a" }]);
  assert.equal(props.TreatMissingData, "breaching");
});

/** Statements of the template's identity policies whose resource is "*". */
function anyResourceStatements(template: Template): { policy: string; actions: string[]; condition: unknown }[] {
  const found: { policy: string; actions: string[]; condition: unknown }[] = [];
  for (const [id, p] of Object.entries(template.findResources("AWS::IAM::Policy"))) {
    for (const s of p.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown; Condition?: unknown }[]) {
      if (([] as unknown[]).concat(s.Resource).includes("*")) found.push({ policy: id, actions: ([] as string[]).concat(s.Action), condition: s.Condition });
    }
  }
  return found;
}

test("IAM5 suppressions are per resource, list the wildcard they accept, and cover only the statements they describe", () => {
  for (const { stack, template } of [market, valid]) {
    const json = template.toJSON();
    const stackRules = (json.Metadata?.cdk_nag?.rules_to_suppress ?? []) as { id: string }[];
    assert.ok(!stackRules.some((r) => r.id === "AwsSolutions-IAM5"), `${stack.stackName}: IAM5 suppressed stack-wide`);
    let iam5 = 0;
    for (const resource of Object.values(json.Resources) as { Metadata?: { cdk_nag?: { rules_to_suppress: { id: string; reason: string; applies_to?: unknown[] }[] } } }[]) {
      for (const rule of resource.Metadata?.cdk_nag?.rules_to_suppress ?? []) {
        assert.ok(rule.reason.length > 40, `${rule.id}: no written reason`);
        if (rule.id !== "AwsSolutions-IAM5") continue;
        iam5 += 1;
        assert.deepEqual(rule.applies_to, ["Resource::*"], "IAM5 accepts only the listed wildcard");
      }
    }
    assert.ok(iam5 > 0, `${stack.stackName}: expected the scoped IAM5 suppression`);
  }
  // What those suppressions accept, and nothing more.
  assert.deepEqual(
    anyResourceStatements(market.template).map((s) => [s.policy.replace(/[A-F0-9]{8}$/, ""), s.actions]),
    [["PublisherRoleDefaultPolicy", ["dynamodb:ListStreams"]]],
  );
  const validatorWildcards = anyResourceStatements(valid.template);
  assert.deepEqual(validatorWildcards.map((s) => s.actions), [["cloudwatch:PutMetricData"]]);
  assert.ok(JSON.stringify(validatorWildcards[0].condition).includes("cloudwatch:namespace"), "PutMetricData without a namespace condition");
});

test("functions.json without its metrics section fails naming it", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "dome-functions-"));
  const file = path.join(dir, "functions.json");
  const real = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "functions.json"), "utf8"));
  fs.writeFileSync(file, JSON.stringify({ functions: real.functions }));
  assertConfigError(() => loadFunctionsFile(file), "metrics");
  fs.writeFileSync(file, JSON.stringify({ ...real, metrics: { relay_lag: { ...real.metrics.relay_lag, emitted_by: "nobody" } } }));
  assertConfigError(() => loadFunctionsFile(file), "metrics.relay_lag.emitted_by");
  fs.rmSync(dir, { recursive: true, force: true });
});
