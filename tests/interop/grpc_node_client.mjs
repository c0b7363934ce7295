// A Node application calling the sidecar with @grpc/grpc-js and @grpc/proto-loader, loading our
// .proto at run time. Prints one JSON object per line; tests/integration/test_node_interop.py drives it.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.INTEROP_NODE, "package.json"));
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const [address, protoRoot] = process.argv.slice(2);
const definition = protoLoader.loadSync("entitlements/v1/entitlements.proto", {
  includeDirs: [protoRoot],
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
});
const api = grpc.loadPackageDefinition(definition).entitlements.v1;
const client = new api.EntitlementService(address, grpc.credentials.createInsecure());
const print = (value) => console.log(JSON.stringify(value));
const unary = (method, request) =>
  new Promise((resolve, reject) =>
    client[method](request, { deadline: Date.now() + 5000 }, (error, response) => (error ? reject(error) : resolve(response))),
  );

const check = await unary("CheckEntitlement", {
  subscription_id: "sub_acme_main", feature_code: "seats", privilege_code: "max",
});
print({ phase: "check", allowed: check.allowed, reason: check.reason, value: Number(check.value?.int_value ?? -1) });

const batch = await unary("CheckEntitlements", {
  checks: [
    { subscription_id: "sub_acme_main", feature_code: "sso" },
    { subscription_id: "sub_globex", feature_code: "sso" },
    { subscription_id: "", feature_code: "sso" },
  ],
});
print({
  phase: "batch",
  results: batch.results.map((r) => (r.response ? { allowed: r.response.allowed, reason: r.response.reason } : { error: r.error.field })),
});

const got = await unary("GetEntitlements", { customer_id: "acme" });
print({ phase: "get", found: got.entitlements.found, features: got.entitlements.features.map((f) => f.code).sort() });

let invalid = null;
try {
  await unary("CheckEntitlement", { subscription_id: "sub_acme_main", feature_code: "" });
} catch (error) {
  invalid = { code: error.code, details: error.details };
}
print({ phase: "invalid", ...invalid });

const stream = client.WatchEntitlements({ subjects: [{ subscription_id: "sub_acme_main" }] });
stream.on("data", (message) => {
  const seats = message.entitlements.features.find((f) => f.code === "seats");
  const max = seats?.privileges.find((p) => p.code === "max");
  print({ phase: message.initial ? "watch_initial" : "watch_update", max: Number(max?.value?.int_value ?? -1) });
  if (!message.initial) {
    stream.cancel();
    client.close();
  }
});
stream.on("error", (error) => {
  if (error.code !== grpc.status.CANCELLED) {
    print({ phase: "watch_error", code: error.code, details: error.details });
    process.exit(1);
  }
});
setTimeout(() => { print({ phase: "timeout" }); process.exit(2); }, 30000).unref();
