import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { Client as RpcClient } from "@connectrpc/connect";
import { createClient } from "@connectrpc/connect";
import { Http2SessionManager, createGrpcTransport } from "@connectrpc/connect-node";

import { valueOf, wellFormed } from "./decide.js";
import type { CheckEntitlementResponse, EntitlementSet } from "./gen/entitlements/v1/entitlements_pb.js";
import type { Stream } from "./local.js";
import { LocalStates } from "./local.js";
import {
  CheckEntitlementRequestSchema,
  EntitlementService,
  Reason as WireReason,
  Source,
} from "./gen/entitlements/v1/entitlements_pb.js";
import type { Check, CheckResult, Reason, Subject } from "./types.js";
import { ItemError } from "./types.js";

/** Each call's deadline when none is given: the sidecar is next door. */
export const DEFAULT_TIMEOUT_MS = 250;
const WATCH_RETRY_MS = [50, 100, 200, 400]; // reopening a broken Watch, capped at the last
/** The interval of the heartbeats a watch asks for, when none is given. */
export const DEFAULT_HEARTBEAT_MS = 2000;
/** How many heartbeat intervals a stream may be silent before its subjects' answers are marked stale. */
export const SILENT_BEATS = 3;

export interface ClientOptions {
  /** The deadline of every call, in milliseconds. */
  timeoutMs?: number;
  /** The heartbeat interval a watch asks for (the sidecar takes 500 to 60,000 ms). */
  heartbeatMs?: number;
}

/**
 * A client of one sidecar: check, checkMany and get over one HTTP/2 connection with a deadline on every
 * call, and watch, which keeps the named subjects' entitlements in the process (fed by WatchEntitlements)
 * so their checks are answered without an RPC, by the sidecar's rules, until the stream breaks; then
 * they go to the sidecar again while the stream reconnects. The stream carries heartbeats: when it has said
 * nothing for SILENT_BEATS intervals (a frozen sidecar, a cut network), its subjects' answers are marked
 * stale until it speaks again. Close it when done.
 */
export class Client {
  private readonly session: Http2SessionManager;
  private readonly rpc: RpcClient<typeof EntitlementService>;
  private readonly timeoutMs: number;
  private readonly heartbeatMs: number;
  private readonly local: LocalStates;
  private readonly watches = new Set<AbortController>();
  private readonly running = new Set<Promise<void>>();

  /** `baseUrl`: "http://127.0.0.1:50051" (plaintext, for a sidecar next door). */
  constructor(baseUrl: string, options: ClientOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.local = new LocalStates(SILENT_BEATS * this.heartbeatMs);
    // Pings find a sidecar that stopped answering (it allows one every 5 s).
    this.session = new Http2SessionManager(baseUrl, { pingIntervalMs: 20_000, pingTimeoutMs: 5_000 });
    const transport = createGrpcTransport({ baseUrl, sessionManager: this.session });
    this.rpc = createClient(EntitlementService, transport);
  }

  /** One check: in process for a watched subject, else from the sidecar (a ConnectError on failure). */
  async check(check: Check): Promise<CheckResult> {
    const local = this.lookup(check);
    if (local !== undefined) return local;
    return resultOf(await this.rpc.checkEntitlement(request(check), { timeoutMs: this.timeoutMs }));
  }

  /** Checks in order: watched subjects in process, the others in one CheckEntitlements call. */
  async checkMany(checks: Check[]): Promise<(CheckResult | ItemError)[]> {
    const results: (CheckResult | ItemError | undefined)[] = checks.map((c) => this.lookup(c));
    const remote = results.flatMap((r, i) => (r === undefined ? [i] : []));
    if (remote.length > 0) {
      const batch = remote.map((i) => request(checks[i]));
      const response = await this.rpc.checkEntitlements({ checks: batch }, { timeoutMs: this.timeoutMs });
      if (response.results.length !== remote.length) {
        throw new Error("the sidecar answered a different number of checks than were asked");
      }
      response.results.forEach((item, j) => {
        const outcome = item.outcome;
        results[remote[j]] =
          outcome.case === "error"
            ? new ItemError(outcome.value.code, outcome.value.message, outcome.value.field)
            : resultOf(outcome.value as CheckEntitlementResponse);
      });
    }
    return results as (CheckResult | ItemError)[];
  }

  /** Everything a subject is entitled to, from the sidecar. */
  async get(subject: Subject): Promise<EntitlementSet | undefined> {
    const response = await this.rpc.getEntitlements(
      { subscriptionId: subject.subscriptionId ?? "", customerId: subject.customerId ?? "" },
      { timeoutMs: this.timeoutMs },
    );
    return response.entitlements;
  }

  /** Whether checks on the subject are answered in process now. */
  watched(subject: Subject): boolean {
    return this.local.has(key(subject));
  }

  /**
   * Keep the subjects' entitlements in process until the client closes: their checks are answered from the
   * stream's latest state. When the stream breaks, the states it sent are dropped (checks go to the sidecar,
   * unless another watch call's stream has the subject too) and the stream is reopened, with its initial
   * states, after a short wait. Returns at once.
   */
  watch(subjects: Subject[]): void {
    const stop = new AbortController();
    this.watches.add(stop);
    const keys = subjects.map(key);
    const subjectsOnWire = subjects.map((s) => ({ subscriptionId: s.subscriptionId ?? "", customerId: s.customerId ?? "" }));
    const request = { subjects: subjectsOnWire, heartbeatInterval: durationFromMs(this.heartbeatMs) };
    const stream: Stream = { heardAt: performance.now() };
    const loop = (async () => {
      for (let attempt = 0; !stop.signal.aborted; attempt++) {
        try {
          for await (const message of this.rpc.watchEntitlements(request, { signal: stop.signal })) {
            stream.heardAt = performance.now();
            const state = message.entitlements;
            if (!message.heartbeat && state !== undefined) this.local.put(key(state.subject ?? {}), { state, stream });
            attempt = 0; // it delivered: the next break starts the backoff over
          }
        } catch {
          // broken (or closed): dropped below, reopened after a wait
        }
        for (const k of keys) this.local.drop(k, stream);
        if (stop.signal.aborted) break;
        await sleep(WATCH_RETRY_MS[Math.min(attempt, WATCH_RETRY_MS.length - 1)], stop.signal);
      }
    })();
    this.running.add(loop);
    void loop.finally(() => this.running.delete(loop));
  }

  /** Stop the watches and close the connection. */
  async close(): Promise<void> {
    for (const stop of this.watches) stop.abort();
    this.watches.clear();
    await Promise.all([...this.running]);
    this.local.clear();
    this.session.abort();
  }

  private lookup(check: Check): CheckResult | undefined {
    if (check.requestedUsage !== undefined) return undefined; // usage is live: only the sidecar can answer
    if (!wellFormed(check)) return undefined; // the sidecar rejects a malformed check, naming the field
    return this.local.decide(key(check), check, performance.now());
  }
}

function key(subject: Subject): string {
  return `${subject.subscriptionId ?? ""}\u0000${subject.customerId ?? ""}`;
}

function request(check: Check) {
  return create(CheckEntitlementRequestSchema, {
    subscriptionId: check.subscriptionId ?? "",
    customerId: check.customerId ?? "",
    featureCode: check.feature,
    privilegeCode: check.privilege ?? "",
    ...(check.quantity !== undefined ? { quantity: BigInt(check.quantity) } : {}),
    ...(check.value !== undefined ? { value: check.value } : {}),
    ...(check.requestedUsage !== undefined ? { requestedUsage: BigInt(check.requestedUsage) } : {}),
  });
}

function resultOf(response: CheckEntitlementResponse): CheckResult {
  return {
    allowed: response.allowed,
    reason: WireReason[response.reason].toLowerCase() as Reason,
    value: response.value === undefined ? null : valueOf(response.value),
    subscriptionId: response.subscriptionId,
    version: response.freshness?.version ?? 0n,
    source: (Source[response.freshness?.source ?? Source.UNSPECIFIED] ?? "").toLowerCase(),
    stale: response.freshness?.stale ?? false,
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}
