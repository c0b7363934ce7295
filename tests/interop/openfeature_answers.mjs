// Every kind of answer through the real, unmodified OpenFeature Node SDKs: the server SDK with the
// flagd provider (RPC) and the OFREP provider (single evaluations), and the web SDK with the OFREP
// web provider (bulk evaluation, then answers from its copy). Same protocol as openfeature_answers.py.
import { createRequire } from "node:module";
import path from "node:path";
import fs from "node:fs";
import readline from "node:readline";

const require = createRequire(path.join(process.env.INTEROP_NODE, "package.json"));
const server = require("@openfeature/server-sdk");
const web = require("@openfeature/web-sdk");
const { FlagdProvider } = require("@openfeature/flagd-provider");
const { OFREPProvider } = require("@openfeature/ofrep-provider");
const { OFREPWebProvider } = require("@openfeature/ofrep-web-provider");

const [host, port, ofrepUrl] = process.argv.slice(2);
const cases = JSON.parse(fs.readFileSync(new URL("./answer_cases.json", import.meta.url)));
const print = (value) => console.log(JSON.stringify(value));
const method = { boolean: "Boolean", integer: "Number", string: "String" };

function record(details) {
  return { value: details.value, reason: details.reason ?? null, error: details.errorCode ?? null };
}

async function evaluateServer(client) {
  const results = {};
  for (const c of cases) {
    results[c.case] = record(await client[`get${method[c.type]}Details`](c.key, c.default, c.context));
  }
  return results;
}

// The web SDK holds one context at a time: set it (a bulk evaluation), then read each flag from the copy.
async function evaluateWeb() {
  const results = {};
  const client = web.OpenFeature.getClient("web");
  for (const c of cases) {
    await web.OpenFeature.setContext("web", c.context);
    results[c.case] = record(client[`get${method[c.type]}Details`](c.key, c.default));
  }
  return results;
}

await server.OpenFeature.setProviderAndWait(
  "flagd", new FlagdProvider({ host, port: Number(port), resolverType: "rpc", cache: "disabled" }));
await server.OpenFeature.setProviderAndWait("ofrep", new OFREPProvider({ baseUrl: ofrepUrl }));
await web.OpenFeature.setProviderAndWait("web", new OFREPWebProvider({ baseUrl: ofrepUrl, pollInterval: 0 }),
  cases[0].context);
const lines = readline.createInterface({ input: process.stdin });
const next = lines[Symbol.asyncIterator]();
for (const phase of ["fresh", "stale"]) {
  if (phase === "stale") await next.next();
  print({
    phase,
    "node-flagd": await evaluateServer(server.OpenFeature.getClient("flagd")),
    "node-ofrep": await evaluateServer(server.OpenFeature.getClient("ofrep")),
    "node-ofrep-web": await evaluateWeb(),
  });
}
await server.OpenFeature.close();
await web.OpenFeature.close();
process.exit(0);
