"""The clients side by side (issue 16): a local check of a watched subject and the RPC check's p50, from the
Python, Go (clients/go) and TypeScript (clients/typescript) clients, against one sidecar process on the
example catalog.

Targets: a local check <= 1 µs in Go, <= 5 µs in TypeScript and in Python (P8 of `make bench` is the same
figure), printed with PASS/MISS; the RPC p50s are shown side by side (no target: the sidecar's work is the
same for all). The Go figures come from `go test -bench` in clients/go (bench_test.go): BenchmarkLocalCheck
runs Client.Check on a watched subject's state (a conformance vector's), BenchmarkRPCCheck one call at a
time against the sidecar; TypeScript's from clients/typescript/bench/clients.ts (a watch, then awaited
Client.check calls). `make bench-clients`; results in bench/results/<date>-<commit>-clients.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.provenance import provenance, write_results
from entitlements_sidecar.client import EntitlementsClient
from tests.support.processes import REPO, free_port, start_sidecar

GO_LOCAL_US, TS_LOCAL_US, PYTHON_LOCAL_US = 1.0, 5.0, 5.0
_LINE = re.compile(r"^Benchmark(\w+)-\d+\s+\d+\s+([\d.]+) ns/op(?:.*?([\d.]+) p50-µs)?", re.MULTILINE)


def python_figures(address: str, calls: int) -> dict[str, float]:
    client = EntitlementsClient(address, timeout=2)
    try:
        for _ in range(200):  # connection and warm-up
            client.check("seats", subscription_id="sub_globex", privilege="max", quantity=3)
        latencies = []
        for _ in range(calls):
            began = time.perf_counter()
            client.check("seats", subscription_id="sub_globex", privilege="max", quantity=3)
            latencies.append(time.perf_counter() - began)
        client.watch(subscription_ids=["sub_acme_main"])
        deadline = time.monotonic() + 10
        while client.check("seats", subscription_id="sub_acme_main", privilege="max").source != "local":
            if time.monotonic() > deadline:
                raise SystemExit("the Python client's watch did not deliver within 10 s")
            time.sleep(0.01)
        local_calls = 200_000
        began = time.perf_counter()
        for _ in range(local_calls):
            client.check("seats", subscription_id="sub_acme_main", privilege="max", quantity=20)
        local_us = 1e6 * (time.perf_counter() - began) / local_calls
    finally:
        client.close()
    return {"local_check_us": local_us, "rpc_p50_us": 1e6 * statistics.median(latencies)}


def go_figures(address: str, seconds: float) -> dict[str, float]:
    run = subprocess.run(
        ["go", "test", "-run", "^$", "-bench", "LocalCheck|RPCCheck", "-benchtime", f"{seconds}s", "-count", "1", "."],
        cwd=REPO / "clients" / "go", env={**os.environ, "ENTITLEMENTS_BENCH_ADDRESS": address},
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    found = {name: (float(ns), p50) for name, ns, p50 in _LINE.findall(run.stdout)}
    if run.returncode != 0 or {"LocalCheck", "RPCCheck"} - set(found):
        raise SystemExit(f"go test -bench failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    return {"local_check_us": found["LocalCheck"][0] / 1000, "rpc_p50_us": float(found["RPCCheck"][1])}


def typescript_figures(address: str, calls: int) -> dict[str, float]:
    package = REPO / "clients" / "typescript"
    subprocess.run([str(package / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"], cwd=package, check=True)
    run = subprocess.run(
        ["node", "build/bench/clients.js"], cwd=package, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "ENTITLEMENTS_BENCH_ADDRESS": address, "ENTITLEMENTS_BENCH_CALLS": str(calls)},
    )  # fmt: skip
    if run.returncode != 0:
        raise SystemExit(f"the TypeScript bench failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    figures: dict[str, float] = json.loads(run.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="RPC checks from the Python client")
    parser.add_argument("--go-seconds", type=float, default=3.0, help="-benchtime of each Go benchmark")
    parser.add_argument("--dirty", action="store_true", help="measure a tree with uncommitted changes")
    args = parser.parse_args()
    origin = provenance(allow_dirty=args.dirty)
    tmp = Path(tempfile.mkdtemp(prefix="bench-clients-"))
    catalog = tmp / "catalog.yaml"
    catalog.write_text((REPO / "examples" / "catalog.yaml").read_text())
    sidecar = start_sidecar(tmp, catalog, ["--http-address", f"127.0.0.1:{free_port()}", "--log-level", "warning"])
    try:
        results: dict[str, Any] = {
            "python": python_figures(sidecar.address, args.calls),
            "go": go_figures(sidecar.address, args.go_seconds),
            "typescript": typescript_figures(sidecar.address, args.calls),
        }
    finally:
        sidecar.terminate()
    for line in lines(results):
        print(line)
    print(write_results("clients", origin, results))


def lines(results: dict[str, Any]) -> list[str]:
    go, python, ts = results["go"], results["python"], results["typescript"]

    def verdict(value: float, limit: float) -> str:
        return "PASS" if value <= limit else "MISS"

    return [
        f"Go local check of a watched subject: {go['local_check_us']:.3f} µs (<= {GO_LOCAL_US}) "
        f"{verdict(go['local_check_us'], GO_LOCAL_US)}",
        f"TypeScript local check of a watched subject: {ts['local_check_us']:.3f} µs (<= {TS_LOCAL_US}) "
        f"{verdict(ts['local_check_us'], TS_LOCAL_US)}",
        f"Python local check of a watched subject: {python['local_check_us']:.3f} µs (<= {PYTHON_LOCAL_US}) "
        f"{verdict(python['local_check_us'], PYTHON_LOCAL_US)}",
        f"RPC check p50, one call at a time: Go {go['rpc_p50_us']:.0f} µs, TypeScript {ts['rpc_p50_us']:.0f} µs, "
        f"Python {python['rpc_p50_us']:.0f} µs",
    ]


if __name__ == "__main__":
    main()
