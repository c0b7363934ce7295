"""protobuf-es against ts-proto for the TypeScript client (docs/adr/0013): the time to decode a
WatchEntitlements message, and the size of the generated source. `python -m bench.ts_generators`; results
in bench/results/<date>-<commit>-ts-generators.json.

ts-proto's code is generated for the run only (into clients/typescript/build/, by the pinned ts-proto in
the package's devDependencies through buf, with int64 as bigint like protobuf-es), compiled there, and
loaded by clients/typescript/bench/generators.mjs beside the package's own protobuf-es code.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.provenance import provenance, write_results

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "clients" / "typescript"
BUF = ROOT / ".tools" / "npm" / "node_modules" / ".bin" / "buf"
TEMPLATE = """version: v2
plugins:
  - local: protoc-gen-ts_proto
    out: tsproto-src
    opt: [esModuleInterop=true, forceLong=bigint, outputServices=false, importSuffix=.js, env=node]
"""
TSCONFIG = {
    "compilerOptions": {"target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext",
                        "skipLibCheck": True, "outDir": "../tsproto"},
    "include": ["."],
}  # fmt: skip


def run(command: list[str], cwd: Path, **env: str) -> str:
    path = f"{PACKAGE / 'node_modules' / '.bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    done = subprocess.run(command, cwd=cwd, env={**os.environ, "PATH": path, **env}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def measure(calls: int) -> dict[str, Any]:
    build = PACKAGE / "build"
    run([str(PACKAGE / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"], PACKAGE)
    for stale in ("tsproto-src", "tsproto"):
        shutil.rmtree(build / stale, ignore_errors=True)
    template = build / "buf.tsproto.yaml"
    template.write_text(TEMPLATE)
    run([str(BUF), "generate", "protos", "--template", str(template), "--path", "protos/entitlements/v1",
         "-o", str(build)], ROOT)  # fmt: skip
    (build / "tsproto-src" / "tsconfig.json").write_text(json.dumps(TSCONFIG))
    run([str(PACKAGE / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"], build / "tsproto-src")
    module = build / "tsproto" / "entitlements" / "v1" / "entitlements.js"
    figures: dict[str, Any] = json.loads(
        run(["node", "bench/generators.mjs"], PACKAGE, TSPROTO_MODULE=str(module), BENCH_CALLS=str(calls))
    )
    es = PACKAGE / "src" / "gen" / "entitlements" / "v1" / "entitlements_pb.ts"
    figures["protobuf_es_source_bytes"] = es.stat().st_size
    figures["ts_proto_source_bytes"] = (
        (build / "tsproto-src" / "entitlements" / "v1" / "entitlements.ts").stat().st_size
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--dirty", action="store_true", help="measure a tree with uncommitted changes")
    args = parser.parse_args()
    origin = provenance(allow_dirty=args.dirty)
    figures = measure(args.calls)
    es, theirs = figures["protobuf_es_decode_us"], figures["ts_proto_decode_us"]
    print(f"decode a {figures['message_bytes']}-byte Watch message: protobuf-es {es:.3f} µs, ts-proto {theirs:.3f} µs")
    print(f"generated source: protobuf-es {figures['protobuf_es_source_bytes']:,} B, "
          f"ts-proto {figures['ts_proto_source_bytes']:,} B")  # fmt: skip
    print(write_results("ts-generators", origin, figures))


if __name__ == "__main__":
    main()
