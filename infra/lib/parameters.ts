// Parameters of the two stacks, read from JSON files and checked before any construct is
// created: a missing or malformed parameter fails synth with a message that names it.
import * as fs from "fs";
import * as path from "path";
import { ConfigError, FUNCTION_NAMES, FunctionName } from "./function-config";

export { ConfigError };

export type Architecture = "arm64" | "x86_64";

/** How tmf-api authenticates writes (reads are public; see functions/tmf-api/README.md). */
export type AuthConfig =
  | { readonly mode: "jwt"; readonly issuer: string; readonly audience: string; readonly jwksUrl: string }
  | { readonly mode: "tokens"; readonly tokensSecretArn: string };

/** Functions placed in an existing VPC, e.g. when the validators' RPC is private. */
export interface VpcConfig {
  readonly vpcId: string;
  readonly availabilityZones: readonly string[];
  readonly privateSubnetIds: readonly string[];
}

export interface MarketplaceConfig {
  readonly memberId: string;
  readonly busRpc: readonly string[];
  readonly auth: AuthConfig;
  readonly architecture: Architecture;
  readonly publicBaseUrl?: string;
  readonly signingKeySecretArn?: string;
  readonly alarmEmail?: string;
  readonly logRetentionDays: number;
  readonly vpc?: VpcConfig;
  /** Optional variables of functions.json to set, per function (e.g. DOME_MAX_LIMIT). */
  readonly functionEnv: Readonly<Partial<Record<FunctionName, Readonly<Record<string, string>>>>>;
  /** Relay lag (bus heights behind the chain head) above which the lag alarm fires. */
  readonly relayLagAlarmHeights: number;
}

export interface ValidatorConfig {
  readonly moniker: string;
  readonly chainId: string;
  readonly genesisFile: string;
  readonly persistentPeers: readonly string[];
  readonly p2pPeerCidrs: readonly string[];
  readonly rpcAllowedCidrs: readonly string[];
  readonly architecture: Architecture;
  readonly instanceType: string;
  readonly dataVolumeGiB: number;
  readonly nodeKeySecretArn: string;
  readonly validatorKeySecretArn: string;
  readonly alarmEmail?: string;
  readonly externalAddress?: string;
}

/** CloudWatch Logs accepts only these retention periods (days). */
const LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

/** The bus's member id rule (events/src/model.rs). */
const MEMBER_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/;
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
/** CometBFT node ids are 40 hex characters (the address of the node key). */
const PEER = /^[0-9a-f]{40}@[A-Za-z0-9.-]+:\d{1,5}$/;
const CHAIN_ID = /^[A-Za-z0-9._-]{1,50}$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Field readers that name the parameter in every error. */
class Reader {
  constructor(
    private readonly source: string,
    private readonly raw: Record<string, unknown>,
    private readonly prefix = "",
  ) {}

  private fail(key: string, problem: string): never {
    throw new ConfigError(`${this.source}: parameter ${this.prefix}${key} ${problem}`);
  }

  private get(key: string, required: boolean): unknown {
    const value = this.raw[key];
    if (value === undefined || value === null) {
      if (required) this.fail(key, "is required");
      return undefined;
    }
    return value;
  }

  string(key: string, pattern?: RegExp, hint?: string): string {
    return this.optString(key, pattern, hint, true) as string;
  }

  optString(key: string, pattern?: RegExp, hint?: string, required = false): string | undefined {
    const value = this.get(key, required);
    if (value === undefined) return undefined;
    if (typeof value !== "string" || value.length === 0) this.fail(key, "must be a non-empty string");
    if (pattern && !pattern.test(value)) this.fail(key, `is malformed: ${JSON.stringify(value)} (${hint ?? `expected ${pattern}`})`);
    return value;
  }

  number(key: string, min: number, max: number, fallback?: number): number {
    const value = this.get(key, fallback === undefined);
    if (value === undefined) return fallback as number;
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      this.fail(key, `must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
    }
    return value;
  }

  stringList(key: string, check: (item: string) => string | undefined, opts: { required: boolean; nonEmpty: boolean }): string[] {
    const value = this.get(key, opts.required);
    if (value === undefined) return [];
    if (!Array.isArray(value)) this.fail(key, "must be a list of strings");
    if (opts.nonEmpty && value.length === 0) this.fail(key, "must not be empty");
    return value.map((item, i) => {
      if (typeof item !== "string") this.fail(`${key}[${i}]`, "must be a string");
      const problem = check(item);
      if (problem) this.fail(`${key}[${i}]`, `is malformed: ${JSON.stringify(item)} (${problem})`);
      return item;
    });
  }

  choice<T extends string>(key: string, choices: readonly T[], fallback?: T): T {
    const value = this.get(key, fallback === undefined);
    if (value === undefined) return fallback as T;
    if (typeof value !== "string" || !(choices as readonly string[]).includes(value)) {
      this.fail(key, `must be one of ${choices.join(", ")}, got ${JSON.stringify(value)}`);
    }
    return value as T;
  }

  object(key: string, required: boolean): Reader | undefined {
    const value = this.get(key, required);
    if (value === undefined) return undefined;
    if (!isRecord(value)) this.fail(key, "must be an object");
    return new Reader(this.source, value, `${this.prefix}${key}.`);
  }

  keys(): string[] {
    return Object.keys(this.raw);
  }

  rawValue(key: string): unknown {
    return this.raw[key];
  }

  refuseUnknown(known: readonly string[]): void {
    for (const key of Object.keys(this.raw)) {
      if (!known.includes(key)) this.fail(key, `is not a known parameter (known: ${known.join(", ")})`);
    }
  }
}

/** An https URL (http only for loopback, which tests use). */
export function checkUrl(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "not an absolute URL";
  }
  if (url.protocol === "https:") return undefined;
  if (url.protocol === "http:" && (url.hostname === "127.0.0.1" || url.hostname === "localhost")) return undefined;
  return "must be https:// (plain http only for 127.0.0.1)";
}

/** An IPv4 CIDR block; the whole Internet (/0) is refused because a parameter that opens a
 * port to everyone must not be a typo away. */
export function checkCidr(value: string): string | undefined {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
  if (!match) return "expected an IPv4 CIDR such as 203.0.113.10/32";
  const octets = match.slice(1, 5).map(Number);
  const prefix = Number(match[5]);
  if (octets.some((o) => o > 255) || prefix > 32) return "octet above 255 or prefix above 32";
  if (prefix === 0) return "a /0 block would open the port to the whole Internet; list the peers' addresses";
  return undefined;
}

function readJsonFile(file: string, what: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(`${what} ${file} cannot be read: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${what} ${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (!isRecord(parsed)) throw new ConfigError(`${what} ${file} must hold a JSON object`);
  return parsed;
}

const MARKETPLACE_KEYS = [
  "memberId",
  "busRpc",
  "auth",
  "architecture",
  "publicBaseUrl",
  "signingKeySecretArn",
  "alarmEmail",
  "logRetentionDays",
  "vpc",
  "functionEnv",
  "relayLagAlarmHeights",
] as const;

export function parseMarketplaceConfig(raw: unknown, source: string): MarketplaceConfig {
  if (!isRecord(raw)) throw new ConfigError(`${source}: the marketplace parameters must be a JSON object`);
  const r = new Reader(source, raw);
  r.refuseUnknown(MARKETPLACE_KEYS);
  const memberId = r.string("memberId", MEMBER_ID, "a bus member id: [a-z0-9][a-z0-9._-]*, at most 64 characters");
  const busRpc = r.stringList("busRpc", checkUrl, { required: true, nonEmpty: true });
  const authReader = r.object("auth", true) as Reader;
  const mode = authReader.choice("mode", ["jwt", "tokens"] as const);
  let auth: AuthConfig;
  if (mode === "jwt") {
    authReader.refuseUnknown(["mode", "issuer", "audience", "jwksUrl"]);
    auth = {
      mode,
      issuer: authReader.string("issuer", /^https:\/\/\S+$/, "the identity provider's https issuer URL"),
      audience: authReader.string("audience"),
      jwksUrl: authReader.string("jwksUrl", /^https:\/\/\S+$/, "an https URL"),
    };
  } else {
    authReader.refuseUnknown(["mode", "tokensSecretArn"]);
    auth = { mode, tokensSecretArn: authReader.string("tokensSecretArn", SECRET_ARN, "a Secrets Manager secret ARN") };
  }
  let vpc: VpcConfig | undefined;
  const vpcReader = r.object("vpc", false);
  if (vpcReader) {
    vpcReader.refuseUnknown(["vpcId", "availabilityZones", "privateSubnetIds"]);
    const availabilityZones = vpcReader.stringList("availabilityZones", (s) => (/^[a-z]{2}-[a-z]+-\d[a-z]$/.test(s) ? undefined : "an availability zone such as eu-west-1a"), { required: true, nonEmpty: true });
    const privateSubnetIds = vpcReader.stringList("privateSubnetIds", (s) => (/^subnet-[0-9a-f]{8,17}$/.test(s) ? undefined : "a subnet id"), { required: true, nonEmpty: true });
    if (availabilityZones.length !== privateSubnetIds.length) {
      throw new ConfigError(`${source}: parameter vpc.privateSubnetIds must have one subnet per entry of vpc.availabilityZones`);
    }
    vpc = { vpcId: vpcReader.string("vpcId", /^vpc-[0-9a-f]{8,17}$/, "a VPC id"), availabilityZones, privateSubnetIds };
  }
  const functionEnv: Partial<Record<FunctionName, Record<string, string>>> = {};
  const envReader = r.object("functionEnv", false);
  if (envReader) {
    envReader.refuseUnknown(FUNCTION_NAMES);
    for (const fn of envReader.keys() as FunctionName[]) {
      const values = envReader.rawValue(fn);
      if (!isRecord(values) || Object.values(values).some((v) => typeof v !== "string")) {
        throw new ConfigError(`${source}: parameter functionEnv.${fn} must map variable names to strings`);
      }
      functionEnv[fn] = values as Record<string, string>;
    }
  }
  const logRetentionDays = r.number("logRetentionDays", 1, 3653, 90);
  if (!LOG_RETENTION_DAYS.includes(logRetentionDays)) {
    throw new ConfigError(`${source}: parameter logRetentionDays must be one of ${LOG_RETENTION_DAYS.join(", ")}`);
  }
  return {
    memberId,
    busRpc,
    auth,
    architecture: r.choice("architecture", ["arm64", "x86_64"] as const, "arm64"),
    publicBaseUrl: r.optString("publicBaseUrl", /^https:\/\/[^/\s]+$/, "scheme://host[:port] with https and no path"),
    signingKeySecretArn: r.optString("signingKeySecretArn", SECRET_ARN, "a Secrets Manager secret ARN"),
    alarmEmail: r.optString("alarmEmail", EMAIL, "an e-mail address"),
    logRetentionDays,
    vpc,
    functionEnv,
    relayLagAlarmHeights: r.number("relayLagAlarmHeights", 1, 1_000_000, 120),
  };
}

const VALIDATOR_KEYS = [
  "moniker",
  "chainId",
  "genesisFile",
  "persistentPeers",
  "p2pPeerCidrs",
  "rpcAllowedCidrs",
  "architecture",
  "instanceType",
  "dataVolumeGiB",
  "nodeKeySecretArn",
  "validatorKeySecretArn",
  "alarmEmail",
  "externalAddress",
] as const;

/** `baseDir` resolves a relative genesisFile (relative to the parameter file). */
export function parseValidatorConfig(raw: unknown, source: string, baseDir: string): ValidatorConfig {
  if (!isRecord(raw)) throw new ConfigError(`${source}: the validator parameters must be a JSON object`);
  const r = new Reader(source, raw);
  r.refuseUnknown(VALIDATOR_KEYS);
  const chainId = r.string("chainId", CHAIN_ID, "letters, digits, . _ -, at most 50 characters");
  const genesisFile = path.resolve(baseDir, r.string("genesisFile"));
  const genesis = readJsonFile(genesisFile, "parameter genesisFile:");
  if (genesis.chain_id !== chainId) {
    throw new ConfigError(`${source}: parameter genesisFile: chain_id ${JSON.stringify(genesis.chain_id)} differs from parameter chainId ${JSON.stringify(chainId)}`);
  }
  const appState = genesis.app_state;
  if (!isRecord(appState) || !Array.isArray(appState.members) || appState.members.length === 0) {
    throw new ConfigError(`${source}: parameter genesisFile: app_state.members must list the founding members`);
  }
  const architecture = r.choice("architecture", ["arm64", "x86_64"] as const, "arm64");
  const instanceType = r.string("instanceType", /^[a-z][a-z0-9-]*\.[a-z0-9]+$/, "an EC2 instance type such as t4g.medium");
  // Graviton families carry a "g" after the generation digit (t4g, m7g, c7gn...).
  const gravitonType = /^[a-z]+\d+g[a-z]*\./.test(instanceType);
  if (gravitonType !== (architecture === "arm64")) {
    throw new ConfigError(`${source}: parameter instanceType ${instanceType} does not match parameter architecture ${architecture}`);
  }
  return {
    moniker: r.string("moniker", /^[a-z0-9][a-z0-9-]{0,62}$/, "lowercase letters, digits and -"),
    chainId,
    genesisFile,
    persistentPeers: r.stringList("persistentPeers", (s) => (PEER.test(s) ? undefined : "expected <40 hex node id>@<host>:<port>"), { required: true, nonEmpty: true }),
    p2pPeerCidrs: r.stringList("p2pPeerCidrs", checkCidr, { required: true, nonEmpty: true }),
    rpcAllowedCidrs: r.stringList("rpcAllowedCidrs", checkCidr, { required: false, nonEmpty: false }),
    architecture,
    instanceType,
    dataVolumeGiB: r.number("dataVolumeGiB", 20, 16384, 100),
    nodeKeySecretArn: r.string("nodeKeySecretArn", SECRET_ARN, "a Secrets Manager secret ARN"),
    validatorKeySecretArn: r.string("validatorKeySecretArn", SECRET_ARN, "a Secrets Manager secret ARN"),
    alarmEmail: r.optString("alarmEmail", EMAIL, "an e-mail address"),
    externalAddress: r.optString("externalAddress", /^[A-Za-z0-9.-]+:\d{1,5}$/, "host:port that peers dial"),
  };
}

export function loadMarketplaceConfig(file: string): MarketplaceConfig {
  return parseMarketplaceConfig(readJsonFile(file, "marketplace parameter file"), file);
}

export function loadValidatorConfig(file: string): ValidatorConfig {
  return parseValidatorConfig(readJsonFile(file, "validator parameter file"), file, path.dirname(file));
}
