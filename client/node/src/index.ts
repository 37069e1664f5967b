// A thin layer over the generated mlsdm.v1 descriptors: a client on Connect's
// gRPC transport (Node http2), the request headers the server reads, and the
// google.rpc.ErrorInfo of a failed call.
import { createClient, ConnectError, type CallOptions, type Client, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CognitiveService } from "./gen/mlsdm/v1/cognitive_service_pb.js";
import { AdminService } from "./gen/mlsdm/v1/admin_service_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { MemoryService, type MemoryFilterSchema } from "./gen/mlsdm/v1/memory_service_pb.js";
import type { Memory } from "./gen/mlsdm/v1/types_pb.js";
import { ErrorInfoSchema, type ErrorInfo } from "./gen/google/rpc/error_details_pb.js";

export * from "./gen/mlsdm/v1/cognitive_service_pb.js";
export * from "./gen/mlsdm/v1/admin_service_pb.js";
export * from "./gen/mlsdm/v1/memory_service_pb.js";
export * from "./gen/mlsdm/v1/types_pb.js";
export * from "./gen/mlsdm/v1/errors_pb.js";
export {
  ErrorInfoSchema,
  BadRequestSchema,
  RetryInfoSchema,
  QuotaFailureSchema,
  type ErrorInfo,
  type BadRequest,
  type RetryInfo,
  type QuotaFailure,
} from "./gen/google/rpc/error_details_pb.js";

export const HEADER_TENANT = "x-mlsdm-tenant";
export const HEADER_PRIORITY = "x-mlsdm-priority";
export const HEADER_REQUEST_ID = "x-request-id";
export const HEADER_VERSION = "x-mlsdm-version";
/** ErrorInfo.domain of every error the server sends. */
export const ERROR_DOMAIN = "mlsdm.io";

export type Priority = "low" | "normal" | "high" | "critical";

/** A plaintext gRPC transport to host:port (the server's loopback default). */
export function grpcTransport(addr: string): Transport {
  return createGrpcTransport({ baseUrl: `http://${addr}` });
}

export function cognitiveClient(transport: Transport): Client<typeof CognitiveService> {
  return createClient(CognitiveService, transport);
}

/**
 * The tenant's memory as a memory layer: remember, recall (stores nothing),
 * listMemories, getMemory, forgetMemory, forgetMemories. No LLM call.
 */
export function memoryClient(transport: Transport): Client<typeof MemoryService> {
  return createClient(MemoryService, transport);
}

/**
 * Every memory matching `filter`, newest first, one ListMemories call per page
 * of `pageSize` (0: the server's default); each call gets `options` (headers,
 * timeoutMs). The first error ends the walk by throwing.
 */
export async function* allMemories(
  client: Client<typeof MemoryService>,
  filter: MessageInitShape<typeof MemoryFilterSchema> = {},
  pageSize = 0,
  options: CallOptions = {},
): AsyncGenerator<Memory> {
  let pageToken = "";
  do {
    const page = await client.listMemories({ pageSize, pageToken, filter }, options);
    yield* page.memories;
    pageToken = page.nextPageToken;
  } while (pageToken);
}

export function adminClient(transport: Transport): Client<typeof AdminService> {
  return createClient(AdminService, transport);
}

/** Request headers selecting the tenant and priority of a call. */
export function callHeaders(tenant?: string, priority?: Priority | string): Record<string, string> {
  const headers: Record<string, string> = {};
  if (tenant) headers[HEADER_TENANT] = tenant;
  if (priority) headers[HEADER_PRIORITY] = priority;
  return headers;
}

/**
 * Every ErrorInfo in the error's grpc-status-details-bin (the contract says
 * exactly one for server errors; none means the error was produced locally,
 * e.g. a client-side deadline).
 */
export function errorInfos(err: unknown): ErrorInfo[] {
  return ConnectError.from(err).findDetails(ErrorInfoSchema);
}

/** ErrorInfo.reason (e.g. "DIMENSION_MISMATCH"), or undefined. */
export function errorReason(err: unknown): string | undefined {
  return errorInfos(err)[0]?.reason;
}
