// The local copy without a sidecar: a stream's silence marks its answers stale, and a subject that two
// watch calls name outlives one of their streams.
import assert from "node:assert/strict";
import { test } from "node:test";

import { create } from "@bufbuild/protobuf";

import { EntitlementSetSchema } from "../src/gen/entitlements/v1/entitlements_pb.js";
import type { Stream } from "../src/local.js";
import { LocalStates } from "../src/local.js";

const check = { subscriptionId: "s", feature: "seats" };

function state(version: bigint, found: boolean) {
  return create(EntitlementSetSchema, { subject: { subscriptionId: "s" }, found, freshness: { version } });
}

void test("a silent stream's answers are stale, and fresh once it speaks", () => {
  const local = new LocalStates(1000);
  const stream: Stream = { heardAt: 0 };
  local.put("s", { state: state(1n, true), stream });
  assert.equal(local.decide("s", check, 1000)?.stale, false); // within the bound
  assert.equal(local.decide("s", check, 1001)?.stale, true);
  stream.heardAt = 1001; // a heartbeat
  assert.equal(local.decide("s", check, 1500)?.stale, false);
});

void test("a subject in two watches outlives one of their streams", () => {
  const local = new LocalStates(1000);
  const first: Stream = { heardAt: 0 };
  const second: Stream = { heardAt: 0 };
  local.put("s", { state: state(1n, true), stream: first });
  local.put("s", { state: state(2n, false), stream: second }); // the newer state, from the other call's stream
  assert.deepEqual([local.decide("s", check, 10)?.version, local.decide("s", check, 10)?.reason], [2n, "subscription_not_found"]);
  first.heardAt = 1500; // the second one went silent
  assert.deepEqual([local.decide("s", check, 1600)?.version, local.decide("s", check, 1600)?.stale], [1n, false]);
  local.drop("s", first); // the live one's stream broke
  assert.deepEqual([local.decide("s", check, 1600)?.version, local.decide("s", check, 1600)?.stale], [2n, true]);
  local.drop("s", second);
  assert.equal(local.decide("s", check, 1600), undefined);
  assert.equal(local.has("s"), false);
});
