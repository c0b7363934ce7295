// The conformance vectors (conformance/vectors.json): each state as the sidecar sends it, a check, and the
// answer the sidecar gives; the client's watch path must give the same, or leave a malformed check to the
// sidecar.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { fromJson } from "@bufbuild/protobuf";
import type { JsonValue } from "@bufbuild/protobuf";

import { decideLocally, wellFormed } from "../src/decide.js";
import { EntitlementSetSchema } from "../src/gen/entitlements/v1/entitlements_pb.js";
import type { Check } from "../src/types.js";

interface Vector {
  name: string;
  state: JsonValue;
  check: { subscription_id?: string; customer_id?: string; feature: string; privilege?: string; quantity?: number; value?: string };
  expect: Record<string, unknown>;
}

const vectorsFile = new URL("../../../../conformance/vectors.json", import.meta.url);
export const vectors = (JSON.parse(readFileSync(vectorsFile, "utf8")) as { vectors: Vector[] }).vectors;

export function parse(vector: Vector): { state: ReturnType<typeof fromJson<typeof EntitlementSetSchema>>; check: Check } {
  const c = vector.check;
  const check: Check = { feature: c.feature };
  if (c.subscription_id) check.subscriptionId = c.subscription_id;
  if (c.customer_id) check.customerId = c.customer_id;
  if (c.privilege !== undefined) check.privilege = c.privilege;
  if (c.quantity !== undefined) check.quantity = c.quantity;
  if (c.value !== undefined) check.value = c.value;
  return { state: fromJson(EntitlementSetSchema, vector.state), check };
}

// As JSON, so true is not 1 and 10 is not "10" (bigint values as the numbers they are).
function asJson(answer: Record<string, unknown>): string {
  const sorted = Object.fromEntries(Object.entries(answer).sort(([a], [b]) => a.localeCompare(b)));
  return JSON.stringify(sorted, (_, v: unknown) => (typeof v === "bigint" ? Number(v) : v));
}

void test("there are vectors", () => assert.ok(vectors.length >= 40));

for (const vector of vectors) {
  void test(vector.name, () => {
    const { state, check } = parse(vector);
    if ("error" in vector.expect) {
      assert.equal(wellFormed(check), false, "answered locally; the sidecar rejects it");
      return;
    }
    assert.equal(wellFormed(check), true);
    const result = decideLocally(state, check);
    const got = {
      allowed: result.allowed,
      reason: result.reason,
      value: result.value,
      subscription_id: result.subscriptionId,
      stale: result.stale,
    };
    assert.equal(asJson(got), asJson(vector.expect));
    assert.equal(result.source, "local");
  });
}
