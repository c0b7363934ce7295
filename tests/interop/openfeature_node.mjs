// The real, unmodified OpenFeature Node server SDK with the flagd provider (RPC mode, gRPC) against
// the sidecar. Prints one JSON object per line; tests/integration/test_node_interop.py drives it.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.INTEROP_NODE, "package.json"));
const { OpenFeature, ProviderEvents } = require("@openfeature/server-sdk");
const { FlagdProvider } = require("@openfeature/flagd-provider");

const [host, port] = process.argv.slice(2);
const print = (value) => console.log(JSON.stringify(value));
const subjects = ["sub_acme_main", "sub_globex"];

async function evaluate(client) {
  const results = {};
  for (const subject of subjects) {
    const context = { targetingKey: subject };
    const seats = await client.getBooleanDetails("seats", false, context);
    const max = await client.getNumberDetails("seats:max", -1, context);
    const provider = await client.getStringDetails("sso:provider", "none", context);
    results[subject] = {
      "seats": { value: seats.value, error: seats.errorCode ?? null },
      "seats:max": { value: max.value, error: max.errorCode ?? null },
      "sso:provider": { value: provider.value, error: provider.errorCode ?? null },
    };
  }
  const missing = await client.getNumberDetails("seats:nope", -1, { targetingKey: "sub_globex" });
  results.errors = { not_found: { value: missing.value, error: missing.errorCode ?? null } };
  return results;
}

let changed = null;
const changeSeen = new Promise((resolve) => { changed = resolve; });
OpenFeature.addHandler(ProviderEvents.ConfigurationChanged, (details) => changed(details?.flagsChanged ?? []));
await OpenFeature.setProviderAndWait(new FlagdProvider({ host, port: Number(port), resolverType: "rpc", cache: "disabled" }));
const client = OpenFeature.getClient();
print({ phase: "before", flagd: await evaluate(client) });
print({ phase: "waiting" });
const timer = setTimeout(() => { print({ phase: "no_change_event" }); process.exit(1); }, 30000);
const flags = await changeSeen;
clearTimeout(timer);
print({ phase: "changed", flags_changed: [...flags].sort() });
print({ phase: "after", flagd: await evaluate(client) });
await OpenFeature.close();
process.exit(0);
