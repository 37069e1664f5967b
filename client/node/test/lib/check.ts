// The shared-vector comparator for TypeScript: the same rules as the Go, Java
// and Python runners (see tests/vectors/vectors.json "about").
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { ConnectError, Code } from "@connectrpc/connect";
import { toJson, type JsonValue } from "@bufbuild/protobuf";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";

/** A call made before the checked one, on the same tenant; it must end OK. */
export interface SetupCall {
  rpc: string;
  request: JsonValue;
  /** Response values (dotted paths) saved for later calls as ${name}. */
  save?: Record<string, string>;
}

export interface Vector {
  name: string;
  rpc: string;
  tenant: string;
  metadata?: Record<string, string>;
  timeout_ms?: number;
  setup?: SetupCall[];
  request: JsonValue;
  expect: Record<string, JsonValue>;
}

export const KNOWN_EXPECT_KEYS = new Set(["code", "fields", "non_empty", "headers_non_empty", "headers", "error_info"]);

export function vectorsPath(): string {
  if (process.env.MLSDM_VECTORS) return process.env.MLSDM_VECTORS;
  // dist/test/lib/check.js -> repo root is five levels up.
  const here = path.dirname(fileURLToPath(import.meta.url));
  return path.resolve(here, "..", "..", "..", "..", "..", "tests", "vectors", "vectors.json");
}

export function loadVectors(): Vector[] {
  const file = JSON.parse(readFileSync(vectorsPath(), "utf8")) as { format: number; vectors: Vector[] };
  if (file.format !== 1 || !Array.isArray(file.vectors) || file.vectors.length === 0) {
    throw new Error(`unsupported vectors file ${vectorsPath()}`);
  }
  return file.vectors;
}

/** Outcome of one call: the response as proto JSON (unpopulated fields included) or the error. */
export interface Outcome {
  response?: JsonValue;
  error?: unknown;
  headers: Headers;
}

function isObject(v: unknown): v is Record<string, JsonValue> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function subset(expected: JsonValue, actual: JsonValue | undefined, at: string, tenant: string): string[] {
  if (isObject(expected)) {
    if (!isObject(actual)) return [`${at}: expected an object, got ${JSON.stringify(actual)}`];
    const out: string[] = [];
    for (const key of Object.keys(expected).sort()) {
      if (!(key in actual)) out.push(`${at}.${key}: missing`);
      else out.push(...subset(expected[key], actual[key], `${at}.${key}`, tenant));
    }
    return out;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      return [`${at}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`];
    }
    return expected.flatMap((e, i) => subset(e, actual[i], `${at}[${i}]`, tenant));
  }
  if (typeof expected === "number") {
    return typeof actual === "number" && Math.abs(actual - expected) <= 1e-9
      ? []
      : [`${at}: expected ${expected}, got ${JSON.stringify(actual)}`];
  }
  const want = typeof expected === "string" ? expected.replaceAll("${tenant}", tenant) : expected;
  return actual === want ? [] : [`${at}: expected ${JSON.stringify(want)}, got ${JSON.stringify(actual)}`];
}

/** `value` with every ${name} of `saved` replaced in its strings. */
export function expand(value: JsonValue, saved: Record<string, string>): JsonValue {
  if (Array.isArray(value)) return value.map((v) => expand(v, saved));
  if (isObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expand(v, saved)]));
  if (typeof value === "string") {
    return Object.entries(saved).reduce((text, [name, val]) => text.replaceAll("${" + name + "}", val), value);
  }
  return value;
}

/** The values a setup call's save names, read from its response (proto JSON); throws on a missing or empty one. */
export function saveFrom(call: SetupCall, response: JsonValue): Record<string, string> {
  const saved: Record<string, string> = {};
  for (const [name, path] of Object.entries(call.save ?? {})) {
    const val = lookup(response, path);
    if (typeof val !== "string" || val === "") {
      throw new Error(`save ${name}: response.${path} is ${JSON.stringify(val)}, not a non-empty string`);
    }
    saved[name] = val;
  }
  return saved;
}

/** The value at a dotted path; a segment that is a number indexes a list. */
function lookup(doc: JsonValue | undefined, dotted: string): JsonValue | undefined {
  let cur: JsonValue | undefined = doc;
  for (const part of dotted.split(".")) {
    if (Array.isArray(cur) && /^\d+$/.test(part)) cur = cur[Number(part)];
    else if (isObject(cur) && part in cur) cur = cur[part];
    else return undefined;
  }
  return cur;
}

function nonEmpty(v: JsonValue | undefined): boolean {
  if (v === undefined || v === null || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  if (isObject(v)) return Object.keys(v).length > 0;
  return true;
}

/** "INVALID_ARGUMENT" for Code.InvalidArgument; "OK" when there is no error. */
export function codeName(err: unknown): string {
  if (err === undefined) return "OK";
  const code = ConnectError.from(err).code;
  if (code === Code.Canceled) return "CANCELLED";
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

export function check(v: Vector, tenant: string, outcome: Outcome): string[] {
  const problems: string[] = [];
  for (const key of Object.keys(v.expect)) {
    if (!KNOWN_EXPECT_KEYS.has(key)) problems.push(`unknown expect key "${key}"`);
  }
  const wantCode = v.expect.code;
  if (typeof wantCode !== "string") return [...problems, "expect.code missing or not a string"];
  const gotCode = codeName(outcome.error);
  if (gotCode !== wantCode) {
    return [...problems, `code: expected ${wantCode}, got ${gotCode} (${String(outcome.error)})`];
  }
  if ("fields" in v.expect) {
    if (outcome.response === undefined) problems.push("fields: no response");
    else problems.push(...subset(v.expect.fields, outcome.response, "response", tenant));
  }
  if ("non_empty" in v.expect) {
    for (const p of v.expect.non_empty as string[]) {
      const val = lookup(outcome.response, p);
      if (!nonEmpty(val)) problems.push(`response.${p}: expected non-empty, got ${JSON.stringify(val)}`);
    }
  }
  if ("headers_non_empty" in v.expect) {
    for (const k of v.expect.headers_non_empty as string[]) {
      const val = outcome.headers.get(k);
      if (!val) problems.push(`header ${k}: expected non-empty, got ${JSON.stringify(val)}`);
    }
  }
  if ("headers" in v.expect) {
    const want = v.expect.headers as Record<string, string>;
    for (const k of Object.keys(want).sort()) {
      const w = want[k].replaceAll("${tenant}", tenant);
      const val = outcome.headers.get(k);
      if (val !== w) problems.push(`header ${k}: expected ${JSON.stringify(w)}, got ${JSON.stringify(val)}`);
    }
  }
  if ("error_info" in v.expect) {
    const infos = outcome.error === undefined ? [] : ConnectError.from(outcome.error).findDetails(ErrorInfoSchema);
    if (infos.length !== 1) {
      problems.push(`error_info: expected exactly one ErrorInfo, got ${infos.length}`);
    } else {
      const actual = toJson(ErrorInfoSchema, infos[0], { alwaysEmitImplicit: true });
      problems.push(...subset(v.expect.error_info, actual, "error_info", tenant));
    }
  }
  return problems;
}
