// The TypeScript client's figures for bench/clients_bench.py (`make bench-clients`): a local check of a
// watched subject and the RPC check's p50 (one call at a time), against the sidecar at
// ENTITLEMENTS_BENCH_ADDRESS ("127.0.0.1:port"). Prints one JSON object.
import { Client } from "../src/client.js";

const address = process.env.ENTITLEMENTS_BENCH_ADDRESS;
if (!address) throw new Error("ENTITLEMENTS_BENCH_ADDRESS is not set: bench/clients_bench.py sets it");
const calls = Number(process.env.ENTITLEMENTS_BENCH_CALLS ?? "3000");
const client = new Client(`http://${address}`, { timeoutMs: 2000 });
const remote = { subscriptionId: "sub_globex", feature: "seats", privilege: "max", quantity: 3 };
for (let i = 0; i < 200; i++) await client.check(remote); // connection and warm-up
const latencies: number[] = [];
for (let i = 0; i < calls; i++) {
  const began = process.hrtime.bigint();
  await client.check(remote);
  latencies.push(Number(process.hrtime.bigint() - began) / 1000);
}
latencies.sort((a, b) => a - b);

client.watch([{ subscriptionId: "sub_acme_main" }]);
const local = { subscriptionId: "sub_acme_main", feature: "seats", privilege: "max", quantity: 20 };
const deadline = Date.now() + 10_000;
while ((await client.check(local)).source !== "local") {
  if (Date.now() > deadline) throw new Error("the watch did not deliver within 10 s");
  await new Promise((resolve) => setTimeout(resolve, 10));
}
const localCalls = 200_000;
const began = process.hrtime.bigint();
for (let i = 0; i < localCalls; i++) await client.check(local);
const localUs = Number(process.hrtime.bigint() - began) / 1000 / localCalls;
await client.close();
console.log(JSON.stringify({ local_check_us: localUs, rpc_p50_us: latencies[Math.floor(latencies.length / 2)] }));
