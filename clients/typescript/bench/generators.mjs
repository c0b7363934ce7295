// protobuf-es against ts-proto on what the client decodes most: a WatchEntitlements message (docs/adr/0013).
// Run by bench/ts_generators.py, which generates ts-proto's code for this run (it is not checked in),
// compiles it beside the package's own build, and passes its module path in TSPROTO_MODULE.
// Prints one JSON object: microseconds per decode for each generator, and the generated source's bytes.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

import { fromJson, toBinary, fromBinary } from "@bufbuild/protobuf";

import { WatchEntitlementsResponseSchema } from "../build/src/gen/entitlements/v1/entitlements_pb.js";

const tsproto = await import(pathToFileURL(process.env.TSPROTO_MODULE).href);
const vectors = JSON.parse(readFileSync(new URL("../../../conformance/vectors.json", import.meta.url), "utf8")).vectors;
// The largest state of the vectors (a customer with two subscriptions and every feature), as a Watch message.
const largest = vectors.map((v) => v.state).sort((a, b) => JSON.stringify(b).length - JSON.stringify(a).length)[0];
const message = fromJson(WatchEntitlementsResponseSchema, { entitlements: largest, initial: true });
const bytes = toBinary(WatchEntitlementsResponseSchema, message);

function perCall(decode, calls) {
  for (let i = 0; i < calls / 10; i++) decode(); // warm-up: the JIT
  const began = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) decode();
  return Number(process.hrtime.bigint() - began) / 1000 / calls;
}

const calls = Number(process.env.BENCH_CALLS ?? "200000");
// Both must read the same thing: the features, with their privileges' values.
const es = fromBinary(WatchEntitlementsResponseSchema, bytes);
const tp = tsproto.WatchEntitlementsResponse.decode(bytes);
if (es.entitlements.features.length !== tp.entitlements.features.length || es.entitlements.features.length === 0) {
  throw new Error("the two generators decoded different messages");
}
console.log(JSON.stringify({
  message_bytes: bytes.length,
  protobuf_es_decode_us: perCall(() => fromBinary(WatchEntitlementsResponseSchema, bytes), calls),
  ts_proto_decode_us: perCall(() => tsproto.WatchEntitlementsResponse.decode(bytes), calls),
}));
