/**
 * A TypeScript client of entitlements-sidecar. `Client` checks over gRPC and answers watched subjects in
 * process; `decideLocally` is the check rules it applies (held to conformance/vectors.json).
 */
export { Client, DEFAULT_HEARTBEAT_MS, DEFAULT_TIMEOUT_MS, SILENT_BEATS } from "./client.js";
export type { ClientOptions } from "./client.js";
export { decideLocally, wellFormed } from "./decide.js";
export { ItemError } from "./types.js";
export type { Check, CheckResult, PrivilegeValue, Reason, Subject } from "./types.js";
export * as wire from "./gen/entitlements/v1/entitlements_pb.js";
