"""The CPU one Lago GET costs the sidecar's process, by HTTP client (docs/adr/0012, "The Lago client").

The Lago emulator runs in a child process (its CPU is not counted); this process sends `GET
/api/v1/subscriptions/{id}` for seeded subscriptions, with the sidecar's client (aiohttp, sources/lago/
http.py) and with httpx's AsyncClient, which it used before, at 1 and 16 requests in flight. Printed: CPU
microseconds of this process per request (time.process_time) and requests per second of wall time.
`python -m bench.lago_http_cost [--requests N]`; results in bench/results/<date>-<commit>-lago-http.json.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from typing import Any

import httpx

from bench.provenance import provenance, write_results
from entitlements_sidecar.sources.lago.http import LagoHttp
from tests.lago_emulator.server import LagoEmulator

SUBSCRIPTIONS = 200


def _emulator(conn: Connection) -> None:
    lago = LagoEmulator().start()
    lago.state.create_feature("seats", [{"code": "max", "value_type": "integer"}])
    lago.state.create_plan("pro", 1000)
    lago.state.write_plan_entitlements("pro", {"seats": {"max": 10}}, replace=True)
    for index in range(SUBSCRIPTIONS):
        lago.state.create_subscription(f"sub_{index}", f"cust_{index}", "pro")
    conn.send((lago.url, lago.api_key))
    conn.recv()  # until the parent is done
    lago.stop()


async def _measure(get: Callable[[str], Awaitable[int]], requests: int, in_flight: int) -> dict[str, float]:
    gate = asyncio.Semaphore(in_flight)

    async def one(index: int) -> None:
        async with gate:
            assert await get(f"subscriptions/sub_{index % SUBSCRIPTIONS}") == 200

    await asyncio.gather(*(one(i) for i in range(min(requests, 50))))  # warm-up: connections, first calls
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_us_per_request": round(cpu / requests * 1e6, 1), "requests_per_second": round(requests / wall, 1)}


async def _run(url: str, api_key: str, requests: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for in_flight in (1, 16):
        ours = LagoHttp(url, api_key, 10.0)

        async def aiohttp_get(path: str, ours: LagoHttp = ours) -> int:
            return (await ours.get(path)).status

        results[f"aiohttp, {in_flight} in flight"] = await _measure(aiohttp_get, requests, in_flight)
        await ours.close()
        headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        async with httpx.AsyncClient(base_url=url + "/api/v1/", headers=headers, timeout=10.0) as theirs:

            async def httpx_get(path: str) -> int:
                return (await theirs.get(path)).status_code

            results[f"httpx, {in_flight} in flight"] = await _measure(httpx_get, requests, in_flight)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--dirty", action="store_true", help="measure a tree with uncommitted changes")
    args = parser.parse_args()
    origin = provenance(allow_dirty=args.dirty)
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.get_context("spawn").Process(target=_emulator, args=(theirs,), daemon=True)
    child.start()
    try:
        url, api_key = ours.recv()
        results = asyncio.run(_run(url, api_key, args.requests))
    finally:
        ours.send("stop")
        child.join(timeout=15)
    for name, figures in results.items():
        cpu, rate = figures["cpu_us_per_request"], figures["requests_per_second"]
        print(f"{name:22} {cpu:8.1f} µs CPU/request {rate:8.1f} req/s")
    body: dict[str, Any] = {"requests": args.requests, "results": results}
    print(write_results("lago-http", origin, body))


if __name__ == "__main__":
    main()
