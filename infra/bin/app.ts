#!/usr/bin/env node
// The dome CDK app. Which stacks it synthesizes depends on the context given:
//   -c marketplaceConfig=<file> -c lambdaAssets=<dir>        the marketplace stack
//   -c validatorConfig=<file> -c cometbftBinary=<file> -c abciBinary=<file>   the validator stack
//   -c dataOnly=true                                         the data resources alone (smoke test)
// Context values may also come from DOME_* environment variables of the same meaning.
import * as path from "path";
import { App } from "aws-cdk-lib";
import { ConfigError, loadMarketplaceConfig, loadValidatorConfig } from "../lib/parameters";
import { DataStack, MarketplaceStack } from "../lib/marketplace-stack";
import { ValidatorStack } from "../lib/validator-stack";
import { applyNag } from "../lib/nag";

function context(app: App, key: string, envName: string): string | undefined {
  const value = app.node.tryGetContext(key) ?? process.env[envName];
  return typeof value === "string" && value.length > 0 ? value : undefined;
}

function required(app: App, key: string, envName: string, purpose: string): string {
  const value = context(app, key, envName);
  if (!value) throw new ConfigError(`context ${key} (or ${envName}) is required for ${purpose}`);
  return path.resolve(value);
}

function main(): void {
  const app = new App();
  const env = { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION };
  let stacks = 0;

  if (context(app, "dataOnly", "DOME_DATA_ONLY") === "true") {
    new DataStack(app, "DomeData", { env });
    stacks++;
  }

  const marketplaceFile = context(app, "marketplaceConfig", "DOME_MARKETPLACE_CONFIG");
  if (marketplaceFile) {
    const config = loadMarketplaceConfig(path.resolve(marketplaceFile));
    const architecture = (context(app, "architecture", "DOME_LAMBDA_ARCH") ?? config.architecture) as string;
    if (architecture !== "arm64" && architecture !== "x86_64") {
      throw new ConfigError(`context architecture must be arm64 or x86_64, got ${JSON.stringify(architecture)}`);
    }
    const stack = new MarketplaceStack(app, `DomeMarketplace-${config.memberId.replace(/[._]/g, "-")}`, {
      env,
      config: { ...config, architecture },
      lambdaAssets: required(app, "lambdaAssets", "DOME_LAMBDA_ASSETS", "the marketplace stack (cargo lambda build output)"),
      description: `dome marketplace ${config.memberId}`,
    });
    applyNag(stack);
    stacks++;
  }

  const validatorFile = context(app, "validatorConfig", "DOME_VALIDATOR_CONFIG");
  if (validatorFile) {
    const config = loadValidatorConfig(path.resolve(validatorFile));
    // Environment-agnostic on purpose: the VPC then takes the region's first zone without
    // an account lookup, so synth needs no AWS credentials (CI synthesizes offline).
    const stack = new ValidatorStack(app, `DomeValidator-${config.moniker}`, {
      config,
      cometbftBinary: required(app, "cometbftBinary", "DOME_COMETBFT_BINARY", "the validator stack"),
      abciBinary: required(app, "abciBinary", "DOME_ABCI_BINARY", "the validator stack"),
      description: `dome validator ${config.moniker} (CometBFT and dome-abci)`,
    });
    applyNag(stack);
    stacks++;
  }

  if (stacks === 0) {
    throw new ConfigError("no stack selected: give -c marketplaceConfig=<file>, -c validatorConfig=<file> or -c dataOnly=true (docs/deploy.md)");
  }
  app.synth();
}

try {
  main();
} catch (e) {
  if (e instanceof ConfigError) {
    process.stderr.write(`dome-infra: ${e.message}\n`);
    process.exit(1);
  }
  throw e;
}
