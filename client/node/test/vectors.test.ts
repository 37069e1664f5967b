// Runs the shared vectors (tests/vectors/vectors.json) against the server at
// MLSDM_ADDR through the generated descriptors and Connect's gRPC transport.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { create, fromJson, toJson, type DescMessage, type JsonValue } from "@bufbuild/protobuf";
import { ConnectError, Code, type CallOptions } from "@connectrpc/connect";
import { cognitiveClient, grpcTransport, HEADER_TENANT, memoryClient } from "../src/index.js";
import {
  GenerateRequestSchema,
  GenerateResponseSchema,
  GetStateRequestSchema,
  GetStateResponseSchema,
  ProcessEventRequestSchema,
  ProcessEventResponseSchema,
} from "../src/gen/mlsdm/v1/cognitive_service_pb.js";
import {
  ForgetMemoriesRequestSchema,
  ForgetMemoriesResponseSchema,
  ForgetMemoryRequestSchema,
  ForgetMemoryResponseSchema,
  GetMemoryRequestSchema,
  GetMemoryResponseSchema,
  ListMemoriesRequestSchema,
  ListMemoriesResponseSchema,
  RecallRequestSchema,
  RecallResponseSchema,
  RememberRequestSchema,
  RememberResponseSchema,
  RememberResultSchema,
} from "../src/gen/mlsdm/v1/memory_service_pb.js";
import { ContextItemSchema, RefusalReason } from "../src/gen/mlsdm/v1/types_pb.js";
import { ErrorInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";
import { check, codeName, expand, KNOWN_EXPECT_KEYS, loadVectors, saveFrom, type Outcome, type Vector } from "./lib/check.js";

const LANGUAGE = "node";
const vectors = loadVectors();

const SCHEMAS: Record<string, { request: DescMessage; response: DescMessage }> = {
  Generate: { request: GenerateRequestSchema, response: GenerateResponseSchema },
  ProcessEvent: { request: ProcessEventRequestSchema, response: ProcessEventResponseSchema },
  GetState: { request: GetStateRequestSchema, response: GetStateResponseSchema },
  Remember: { request: RememberRequestSchema, response: RememberResponseSchema },
  Recall: { request: RecallRequestSchema, response: RecallResponseSchema },
  ListMemories: { request: ListMemoriesRequestSchema, response: ListMemoriesResponseSchema },
  GetMemory: { request: GetMemoryRequestSchema, response: GetMemoryResponseSchema },
  ForgetMemory: { request: ForgetMemoryRequestSchema, response: ForgetMemoryResponseSchema },
  ForgetMemories: { request: ForgetMemoriesRequestSchema, response: ForgetMemoriesResponseSchema },
};

describe("vectors file", () => {
  test("every request parses into its stub type and every expect key is known", () => {
    const names = new Set<string>();
    for (const v of vectors) {
      assert.ok(!names.has(v.name), `duplicate vector ${v.name}`);
      names.add(v.name);
      const schemas = SCHEMAS[v.rpc];
      assert.ok(schemas, `${v.name}: unknown rpc ${v.rpc}`);
      fromJson(schemas.request, v.request); // throws on unknown fields
      for (const call of v.setup ?? []) {
        assert.ok(SCHEMAS[call.rpc], `${v.name}: unknown setup rpc ${call.rpc}`);
        fromJson(SCHEMAS[call.rpc].request, call.request);
      }
      assert.ok(v.tenant, `${v.name}: no tenant`);
      for (const k of Object.keys(v.expect)) assert.ok(KNOWN_EXPECT_KEYS.has(k), `${v.name}: unknown expect key ${k}`);
    }
  });

  test("the comparator rejects wrong expectations", () => {
    const msg = create(GenerateResponseSchema, { accepted: false, refusalReason: RefusalReason.MORAL, step: 1n });
    const outcome: Outcome = {
      response: toJson(GenerateResponseSchema, msg, { alwaysEmitImplicit: true }),
      headers: new Headers({ "x-mlsdm-version": "1.2.3" }),
    };
    const mk = (expect: Record<string, JsonValue>): Vector => ({ name: "t", rpc: "Generate", tenant: "t", request: {}, expect });
    assert.deepEqual(
      check(mk({ code: "OK", fields: { accepted: false, refusalReason: "REFUSAL_REASON_MORAL", step: "1", response: "" }, headers_non_empty: ["x-mlsdm-version"], headers: { "x-mlsdm-version": "1.2.3" } }), "t", outcome),
      [],
    );
    const wrong: Record<string, JsonValue>[] = [
      { code: "INVALID_ARGUMENT" },
      { code: "OK", fields: { accepted: true } },
      { code: "OK", fields: { refusalReason: "REFUSAL_REASON_SLEEP" } },
      { code: "OK", fields: { step: "2" } },
      { code: "OK", fields: { noSuchField: 1 } },
      { code: "OK", non_empty: ["response"] },
      { code: "OK", headers_non_empty: ["x-request-id"] },
      { code: "OK", headers: { "x-mlsdm-version": "1.2.4" } },
      { code: "OK", headers: { "x-request-id": "" } },
      { code: "OK", error_info: { reason: "X" } },
      { code: "OK", surprise: 1 },
    ];
    for (const e of wrong) assert.notDeepEqual(check(mk(e), "t", outcome), [], `wrong expectation ${JSON.stringify(e)} passed`);
    const item = create(ContextItemSchema, { prompt: "p", response: "r", step: 1n, ageSteps: 1n });
    const recalled: Outcome = {
      response: toJson(GenerateResponseSchema, create(GenerateResponseSchema, { contextItems: [item] }), { alwaysEmitImplicit: true }),
      headers: new Headers(),
    };
    assert.deepEqual(check(mk({ code: "OK", non_empty: ["contextItems.0.response"] }), "t", recalled), []);
    for (const p of ["contextItems.1.response", "contextItems.0.text", "contextItems.x.response"]) {
      assert.notDeepEqual(check(mk({ code: "OK", non_empty: [p] }), "t", recalled), [], `non_empty ${p} passed`);
    }
    assert.notDeepEqual(check(mk({ code: "OK", non_empty: ["contextItems.0.response"] }), "t", outcome), []);
    const late: Outcome = { error: new ConnectError("late", Code.DeadlineExceeded), headers: new Headers() };
    assert.deepEqual(check(mk({ code: "DEADLINE_EXCEEDED" }), "t", late), []);
    assert.notDeepEqual(check(mk({ code: "DEADLINE_EXCEEDED", error_info: { reason: "DEADLINE_EXPIRED" } }), "t", late), []);
    assert.equal(ErrorInfoSchema.typeName, "google.rpc.ErrorInfo");
    const remembered = toJson(RememberResponseSchema, create(RememberResponseSchema, { results: [create(RememberResultSchema, { stored: true, id: "m-1" })] }), { alwaysEmitImplicit: true });
    const saved = saveFrom({ rpc: "Remember", request: {}, save: { id: "results.0.id" } }, remembered);
    assert.deepEqual(saved, { id: "m-1" });
    for (const p of ["results.1.id", "results.0.stored", "storedCount"]) {
      assert.throws(() => saveFrom({ rpc: "Remember", request: {}, save: { id: p } }, remembered), `save of ${p} passed`);
    }
    assert.deepEqual(expand({ id: "${id}", n: [1, "x${id}"], t: "${tenant}" }, saved), { id: "m-1", n: [1, "xm-1"], t: "${tenant}" });
  });
});

const addr = process.env.MLSDM_ADDR;
describe("shared vectors against MLSDM_ADDR", { skip: addr ? false : "MLSDM_ADDR not set: no server to run the shared vectors against (tests/vectors/test_polyglot_clients.py starts one and sets it)" }, () => {
  const run = randomBytes(4).toString("hex");
  for (const v of vectors) {
    test(v.name, async () => {
      const transport = grpcTransport(addr!);
      const client = cognitiveClient(transport);
      const memory = memoryClient(transport);
      const schemas = SCHEMAS[v.rpc];
      const tenant = `${v.tenant}-${LANGUAGE}-${run}`;
      const headers = new Headers({ [HEADER_TENANT]: tenant });
      for (const [k, val] of Object.entries(v.metadata ?? {})) headers.set(k, val.replaceAll("${tenant}", tenant));
      // "headers" in the vectors means response metadata: a unary reply
      // carries the server's keys in its trailers.
      const responseHeaders = new Headers();
      const keep = (h: Headers) => h.forEach((val, k) => responseHeaders.set(k, val));
      const options = { headers, timeoutMs: v.timeout_ms ?? 20_000, onHeader: keep, onTrailer: keep };
      const call = async (rpc: string, request: JsonValue, opts: CallOptions) => {
        switch (rpc) {
          case "Generate":
            return client.generate(fromJson(GenerateRequestSchema, request), opts);
          case "ProcessEvent":
            return client.processEvent(fromJson(ProcessEventRequestSchema, request), opts);
          case "GetState":
            return client.getState(fromJson(GetStateRequestSchema, request), opts);
          case "Remember":
            return memory.remember(fromJson(RememberRequestSchema, request), opts);
          case "Recall":
            return memory.recall(fromJson(RecallRequestSchema, request), opts);
          case "ListMemories":
            return memory.listMemories(fromJson(ListMemoriesRequestSchema, request), opts);
          case "GetMemory":
            return memory.getMemory(fromJson(GetMemoryRequestSchema, request), opts);
          case "ForgetMemory":
            return memory.forgetMemory(fromJson(ForgetMemoryRequestSchema, request), opts);
          case "ForgetMemories":
            return memory.forgetMemories(fromJson(ForgetMemoriesRequestSchema, request), opts);
          default:
            throw new Error(`unknown rpc ${rpc}`);
        }
      };
      // setup: earlier calls on the same tenant, each of which must end OK;
      // their saved values fill the later requests and expect.
      const saved: Record<string, string> = {};
      for (const [i, earlier] of (v.setup ?? []).entries()) {
        let response;
        try {
          response = await call(earlier.rpc, expand(earlier.request, saved), { headers, timeoutMs: options.timeoutMs });
        } catch (err) {
          assert.fail(`${v.name}: setup[${i}] ${earlier.rpc}: expected OK, got ${codeName(err)} (${String(err)})`);
        }
        const json = toJson(SCHEMAS[earlier.rpc].response, response, { alwaysEmitImplicit: true });
        Object.assign(saved, saveFrom(earlier, json));
      }
      const outcome: Outcome = { headers: responseHeaders };
      try {
        const response = await call(v.rpc, expand(v.request, saved), options);
        outcome.response = toJson(schemas.response, response, { alwaysEmitImplicit: true });
      } catch (err) {
        outcome.error = err;
        if (err instanceof ConnectError) keep(err.metadata);
      }
      outcome.headers = responseHeaders;
      const problems = check({ ...v, expect: expand(v.expect, saved) as Record<string, JsonValue> }, tenant, outcome);
      assert.deepEqual(problems, [], `${v.name}:\n  ${problems.join("\n  ")}`);
    });
  }
});
