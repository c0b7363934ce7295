/** A privilege value as the sidecar sends it: integers are bigint (int64), select values are strings. */
export type PrivilegeValue = boolean | bigint | string | null;

/** Why a check was allowed or denied: the proto's Reason without its prefix, in lower case. */
export type Reason =
  | "entitled"
  | "feature_not_entitled"
  | "subscription_not_found"
  | "subscription_not_active"
  | "privilege_not_found"
  | "quantity_exceeds_limit"
  | "value_mismatch"
  | "privilege_false"
  | "customer_not_found"
  | "no_active_subscription"
  | "request_type_mismatch"
  | "failure_policy"
  | "usage_over_quota"
  | "usage_over_allowance"
  | "unspecified";

/** A subscription or a customer (Lago external ids): exactly one is set. */
export interface Subject {
  subscriptionId?: string;
  customerId?: string;
}

/** May a subject use a feature, optionally with one privilege and a quantity (integers) or a value (strings)? */
export interface Check extends Subject {
  feature: string;
  privilege?: string;
  quantity?: number | bigint;
  value?: string;
  /** Also check this many more units of a metered feature's usage: always asked of the sidecar. */
  requestedUsage?: number | bigint;
}

export interface CheckResult {
  allowed: boolean;
  reason: Reason;
  /** The privilege's effective value, when one was asked for and exists. */
  value: PrivilegeValue;
  /** The subscription whose entitlements produced the answer. */
  subscriptionId: string;
  version: bigint;
  /** "memory", "redis", "source" or "fallback" from the sidecar; "local" for a watched subject. */
  source: string;
  /** The answer may be out of date. */
  stale: boolean;
}

/** Why one check of a checkMany could not be answered. */
export class ItemError extends Error {
  constructor(
    /** A google.rpc.Code: 3 INVALID_ARGUMENT, 14 UNAVAILABLE, ... */
    readonly code: number,
    message: string,
    /** The request field that was wrong, when there is one. */
    readonly field: string,
  ) {
    super(field ? `${field}: ${message}` : message);
    this.name = "ItemError";
  }
}
