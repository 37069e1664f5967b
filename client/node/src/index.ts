// A thin layer over the generated mlsdm.v1 descriptors: a client on Connect's
// gRPC transport (Node http2), the request headers the server reads, and the
// google.rpc.ErrorInfo of a failed call.
import { createClient, ConnectError, type Client, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { CognitiveService } from "./gen/mlsdm/v1/cognitive_service_pb.js";
import { AdminService } from "./gen/mlsdm/v1/admin_service_pb.js";
import { ErrorInfoSchema, type ErrorInfo } from "./gen/google/rpc/error_details_pb.js";

export * from "./gen/mlsdm/v1/cognitive_service_pb.js";
export * from "./gen/mlsdm/v1/admin_service_pb.js";
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
