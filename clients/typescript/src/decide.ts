import type { EntitlementSet, Value } from "./gen/entitlements/v1/entitlements_pb.js";
import { ValueType } from "./gen/entitlements/v1/entitlements_pb.js";
import type { Check, CheckResult, PrivilegeValue, Reason } from "./types.js";

/**
 * The sidecar's check rules applied to a watched subject's entitlements (what WatchEntitlements sent): the
 * answer the sidecar would give. The rules are the conformance vectors' (conformance/vectors.json, run by
 * test/decide.test.ts).
 */
export function decideLocally(state: EntitlementSet, check: Check): CheckResult {
  const freshness = state.freshness;
  const answer = (allowed: boolean, reason: Reason, value: PrivilegeValue = null, subscriptionId = ""): CheckResult => ({
    allowed,
    reason,
    value,
    subscriptionId,
    version: freshness?.version ?? 0n,
    source: "local",
    stale: freshness?.stale ?? false,
  });
  const customer = Boolean(check.customerId);
  const own = customer ? "" : (check.subscriptionId ?? ""); // a subscription subject is named in every answer
  if (!state.found) {
    return answer(false, customer ? "customer_not_found" : "subscription_not_found");
  }
  if (!state.subscriptions.some((s) => s.status === "active")) {
    return answer(false, customer ? "no_active_subscription" : "subscription_not_active", null, own);
  }
  const feature = state.features.find((f) => f.code === check.feature);
  if (feature === undefined) {
    return answer(false, "feature_not_entitled", null, own);
  }
  if (!check.privilege) {
    return answer(true, "entitled", null, feature.subscriptionId);
  }
  const privilege = feature.privileges.find((p) => p.code === check.privilege);
  if (privilege === undefined) {
    return answer(false, "privilege_not_found", null, feature.subscriptionId);
  }
  const value = valueOf(privilege.value);
  const sub = privilege.subscriptionId;
  const quantity = check.quantity === undefined ? undefined : BigInt(check.quantity);
  if (privilege.valueType === ValueType.INTEGER) {
    if (check.value !== undefined) return answer(false, "request_type_mismatch", value, sub);
    const over = quantity !== undefined && typeof value === "bigint" && quantity > value;
    return answer(!over, over ? "quantity_exceeds_limit" : "entitled", value, sub);
  }
  if (privilege.valueType === ValueType.BOOLEAN) {
    if (quantity !== undefined || check.value !== undefined) return answer(false, "request_type_mismatch", value, sub);
    return value === true ? answer(true, "entitled", value, sub) : answer(false, "privilege_false", value, sub);
  }
  // string and select
  if (quantity !== undefined) return answer(false, "request_type_mismatch", value, sub);
  if (check.value !== undefined && check.value !== value) return answer(false, "value_mismatch", value, sub);
  return answer(true, "entitled", value, sub);
}

/** A privilege value as TypeScript sees it. */
export function valueOf(message: Value | undefined): PrivilegeValue {
  const kind = message?.kind;
  return kind?.case === undefined ? null : kind.value;
}

const MAX_ID_LENGTH = 255; // the longest id, code or value the sidecar takes (Lago caps codes at 255)

/**
 * Whether the sidecar would take the check rather than answer INVALID_ARGUMENT (its rules:
 * src/entitlements_sidecar/domain/queries.py and ids.py). Only such a check is answered locally; a
 * malformed one goes to the sidecar, whose error names the field.
 */
export function wellFormed(check: Check): boolean {
  const subscription = check.subscriptionId ?? "";
  const customer = check.customerId ?? "";
  if ((subscription === "") === (customer === "")) return false;
  if (subscription !== "" && (!validId(subscription) || subscription.includes("/"))) return false;
  if (customer !== "" && !validId(customer)) return false;
  if (!validId(check.feature) || (check.privilege && !validId(check.privilege))) return false;
  if (check.quantity !== undefined && (check.value !== undefined || BigInt(check.quantity) < 0n)) return false;
  if (check.value !== undefined && [...check.value].length > MAX_ID_LENGTH) return false;
  return (check.quantity === undefined && check.value === undefined) || Boolean(check.privilege);
}

// Python's str.strip() whitespace and Unicode's Cc category: what the sidecar refuses around and in an id.
const CONTROL = /\p{Cc}/u;

function validId(id: string): boolean {
  const length = [...id].length;
  return length > 0 && length <= MAX_ID_LENGTH && id.trim() === id && id !== "." && id !== ".." && !CONTROL.test(id);
}
