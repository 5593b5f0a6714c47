// The one source of truth for the functions' configuration: infra/functions.json names each
// function's binary, trigger and every environment variable its binary reads. Environments
// are built only from those names, so a variable the binary does not read cannot be set, and a
// required one cannot be forgotten.
import * as fs from "fs";
import * as path from "path";

export interface EnvVarSpec {
  readonly required: boolean;
  readonly description: string;
  /** Read only in local runs (plain server, tests); never set on Lambda. */
  readonly local_only?: boolean;
}

export interface FunctionSpec {
  readonly binary: string;
  readonly trigger: string;
  readonly env: Readonly<Record<string, EnvVarSpec>>;
}

/** A metric a function binary emits (CloudWatch embedded metric format) and an alarm
 * watches: the binary's tests and the stack read the same entry, so they cannot drift. */
export interface MetricSpec {
  readonly namespace: string;
  readonly name: string;
  readonly unit: string;
  /** Names of the dimensions, in the order of the emitted dimension set. */
  readonly dimensions: readonly string[];
  readonly emitted_by: string;
  readonly description: string;
}

/** The metrics the stack alarms on, by key in functions.json's `metrics`. */
export const METRIC_KEYS = ["relay_lag"] as const;
export type MetricKey = (typeof METRIC_KEYS)[number];

export interface FunctionsFile {
  readonly metrics: Readonly<Record<MetricKey, MetricSpec>>;
  readonly functions: Readonly<Record<string, FunctionSpec>>;
}

/** The functions the marketplace stack deploys, in the order of functions.json. */
export const FUNCTION_NAMES = ["tmf-api", "notifier", "publisher", "relay", "replicator"] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

export const FUNCTIONS_FILE = path.join(__dirname, "..", "..", "functions.json");

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Reads and checks functions.json; every shape error names the entry at fault. */
export function loadFunctionsFile(file: string = FUNCTIONS_FILE): FunctionsFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new ConfigError(`${file}: cannot be read as JSON: ${(e as Error).message}`);
  }
  if (!isRecord(parsed) || !isRecord(parsed.functions) || !isRecord(parsed.metrics)) {
    throw new ConfigError(`${file}: expected {"metrics": {...}, "functions": {...}}`);
  }
  for (const key of METRIC_KEYS) {
    const m = parsed.metrics[key];
    const where = `${file}: metrics.${key}`;
    if (
      !isRecord(m) ||
      typeof m.namespace !== "string" ||
      typeof m.name !== "string" ||
      typeof m.unit !== "string" ||
      typeof m.emitted_by !== "string" ||
      typeof m.description !== "string" ||
      !Array.isArray(m.dimensions) ||
      !m.dimensions.every((d) => typeof d === "string" && d.length > 0)
    ) {
      throw new ConfigError(
        `${where}: expected {"namespace": string, "name": string, "unit": string, "dimensions": [string], "emitted_by": string, "description": string}`,
      );
    }
    if (!(FUNCTION_NAMES as readonly string[]).includes(m.emitted_by)) {
      throw new ConfigError(`${where}.emitted_by: not a function this stack deploys (${FUNCTION_NAMES.join(", ")})`);
    }
  }
  const functions = parsed.functions;
  for (const name of FUNCTION_NAMES) {
    if (!(name in functions)) {
      throw new ConfigError(`${file}: function "${name}" is missing`);
    }
  }
  for (const [name, spec] of Object.entries(functions)) {
    const where = `${file}: functions.${name}`;
    if (!(FUNCTION_NAMES as readonly string[]).includes(name)) {
      throw new ConfigError(`${where}: not a function this stack deploys (${FUNCTION_NAMES.join(", ")})`);
    }
    if (!isRecord(spec) || typeof spec.binary !== "string" || typeof spec.trigger !== "string" || !isRecord(spec.env)) {
      throw new ConfigError(`${where}: expected {"binary": string, "trigger": string, "env": {...}}`);
    }
    for (const [variable, v] of Object.entries(spec.env)) {
      if (!/^[A-Z][A-Z0-9_]*$/.test(variable)) {
        throw new ConfigError(`${where}.env.${variable}: not an environment variable name`);
      }
      if (
        !isRecord(v) ||
        typeof v.required !== "boolean" ||
        typeof v.description !== "string" ||
        v.description.length === 0 ||
        (v.local_only !== undefined && typeof v.local_only !== "boolean")
      ) {
        throw new ConfigError(`${where}.env.${variable}: expected {"required": bool, "description": string, "local_only"?: bool}`);
      }
      if (v.required && v.local_only) {
        throw new ConfigError(`${where}.env.${variable}: cannot be both required and local_only`);
      }
    }
  }
  return parsed as unknown as FunctionsFile;
}

/**
 * The Lambda environment of one function: exactly the given values, each checked against
 * functions.json. Fails naming the variable when a value is given for a name the binary does
 * not read (or reads only locally), or when a required one has no value.
 */
export function buildEnvironment(
  file: FunctionsFile,
  fn: FunctionName,
  values: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const spec = file.functions[fn];
  const env: Record<string, string> = {};
  for (const [variable, value] of Object.entries(values)) {
    if (value === undefined) continue;
    const varSpec = spec.env[variable];
    if (varSpec === undefined) {
      throw new ConfigError(`${fn}: environment variable ${variable} is not read by the ${spec.binary} binary (not in functions.json)`);
    }
    if (varSpec.local_only) {
      throw new ConfigError(`${fn}: environment variable ${variable} is for local runs only and cannot be set on Lambda`);
    }
    env[variable] = value;
  }
  for (const [variable, varSpec] of Object.entries(spec.env)) {
    if (varSpec.required && (env[variable] === undefined || env[variable] === "")) {
      throw new ConfigError(`${fn}: required environment variable ${variable} has no value (${varSpec.description})`);
    }
  }
  return env;
}
