// The client against a real sidecar process: checks, a batch with a malformed item, a watch that answers
// in process and follows a catalog change, a sidecar killed and restarted under a watch, a frozen one.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Code, ConnectError } from "@connectrpc/connect";

import { Client } from "../src/client.js";
import { ItemError } from "../src/types.js";
import type { CheckResult } from "../src/types.js";
import { Sidecar, eventually } from "./sidecar.js";

const seats = { subscriptionId: "sub_acme_main", feature: "seats", privilege: "max" };
let sidecar: Sidecar;

before(async () => {
  sidecar = await Sidecar.start();
});
after(async () => {
  await sidecar.stop();
});

function code(error: unknown): Code | undefined {
  return error instanceof ConnectError ? error.code : undefined;
}

void test("checks, batches and get from the sidecar", { timeout: 30_000 }, async () => {
  const client = new Client(sidecar.url, { timeoutMs: 2000 });
  try {
    const result = await client.check({ ...seats, quantity: 26 });
    assert.deepEqual([result.allowed, result.reason, result.value, result.source], [false, "quantity_exceeds_limit", 25n, "memory"]);
    const [first, second, third] = await client.checkMany([seats, { subscriptionId: "sub_acme_main", feature: "" },
      { customerId: "acme", feature: "analytics_api" }]);
    assert.equal((first as CheckResult).value, 25n);
    assert.ok(second instanceof ItemError && second.code === Number(Code.InvalidArgument) && second.field !== "", "not an INVALID_ARGUMENT naming a field");
    assert.equal((third as CheckResult).subscriptionId, "sub_acme_eu");
    const set = await client.get({ customerId: "acme" });
    assert.equal(set?.found, true);
    assert.equal(set?.subscriptions.length, 2);
    await assert.rejects(client.check({ subscriptionId: "a", customerId: "b", feature: "seats" }),
      (error) => code(error) === Code.InvalidArgument);
  } finally {
    await client.close();
  }
});

void test("a watched subject is answered locally, follows changes and survives a restart", { timeout: 60_000 }, async () => {
  const client = new Client(sidecar.url, { timeoutMs: 2000 });
  try {
    client.watch([{ subscriptionId: "sub_acme_main" }, { customerId: "acme" }]);
    await eventually("the first states", () => client.watched({ subscriptionId: "sub_acme_main" }) && client.watched({ customerId: "acme" }));
    const local = await client.check(seats);
    assert.deepEqual([local.source, local.value], ["local", 25n]);
    await assert.rejects(client.check({ ...seats, quantity: -1 }), (error) => code(error) === Code.InvalidArgument,
      "a malformed check on a watched subject is the sidecar's to reject");
    const usage = await client.check({ ...seats, privilege: undefined, requestedUsage: 1 }).catch(() => undefined);
    assert.notEqual(usage?.source, "local", "a usage check was answered locally");

    sidecar.edit("seats: {max: 25}", "seats: {max: 30}");
    await eventually("the change, locally", async () => {
      const r = await client.check(seats);
      return r.source === "local" && r.value === 30n;
    });

    // The sidecar dies: the local copy is dropped (a stream that broke may be missing changes), checks go
    // to the sidecar and fail until it is back; then the watch resumes with the current state.
    await sidecar.kill();
    await eventually("the watch broken", () => !client.watched({ subscriptionId: "sub_acme_main" }));
    await assert.rejects(client.check(seats), (error) => code(error) === Code.Unavailable || code(error) === Code.DeadlineExceeded);
    sidecar.edit("seats: {max: 30}", "seats: {max: 35}");
    await sidecar.spawn();
    await eventually("the watch resumed with the new state", async () => {
      const r = await client.check(seats);
      return r.source === "local" && r.value === 35n;
    }, 20_000);
  } finally {
    await client.close();
  }
  assert.equal(client.watched({ subscriptionId: "sub_acme_main" }), false, "a closed client still answers locally");
});

void test("a frozen sidecar costs a deadline, not a hang", { timeout: 30_000 }, async () => {
  const client = new Client(sidecar.url, { timeoutMs: 300 });
  try {
    assert.equal((await client.check(seats)).allowed, true);
    sidecar.process?.kill("SIGSTOP");
    const began = Date.now();
    const failed = await client.check(seats).then(() => undefined, (error: unknown) => error);
    const waited = Date.now() - began;
    sidecar.process?.kill("SIGCONT");
    assert.equal(code(failed), Code.DeadlineExceeded, String(failed));
    assert.ok(waited < 2000, `waited ${waited} ms`);
    await eventually("answers again once it runs", async () => (await client.check(seats)).allowed);
  } finally {
    await client.close();
  }
});

void test("a watched subject's answers say stale while the sidecar is frozen", { timeout: 30_000 }, async () => {
  const client = new Client(sidecar.url, { heartbeatMs: 500 }); // stale after 1.5 s of silence
  const local = async (): Promise<CheckResult> => {
    const r = await client.check(seats);
    assert.equal(r.source, "local");
    return r;
  };
  try {
    client.watch([{ subscriptionId: "sub_acme_main" }]);
    await eventually("the watched state", () => client.watched({ subscriptionId: "sub_acme_main" }));
    // Longer than the bound on a stream with nothing to say: the heartbeats keep the answers fresh.
    const until = Date.now() + 2000;
    while (Date.now() < until) {
      assert.equal((await local()).stale, false, "a live, quiet stream's answer marked stale");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    sidecar.process?.kill("SIGSTOP");
    const frozen = Date.now();
    await eventually("local answers marked stale", async () => (await local()).stale);
    // The last beat came up to one interval before the freeze: stale no sooner than 1.5 s - 0.5 s after it.
    assert.ok(Date.now() - frozen >= 750, `stale after ${Date.now() - frozen} ms`);
    sidecar.process?.kill("SIGCONT");
    await eventually("fresh again once it speaks", async () => !(await local()).stale);
  } finally {
    sidecar.process?.kill("SIGCONT");
    await client.close();
  }
});
