"""`make bench-scale`: S1-S6 of the scale issue, at N = 10,000, 100,000 and 1,000,000 subscriptions where the
machine allows (`--sizes`), printed with PASS/MISS and written to `bench/results/<date>-<commit>-scale.json`.

Subscriptions are on 4 plans of 10 features (3 privileges each), 1 in 20 with an override. The map is
written straight into a real redis-server through the store (as a full sync would write it): a Lago
emulator with a million subscriptions would measure the emulator. Lago is the emulator for S3, holding the
plans; the syncer finds the map loaded (as after a full sync) and only serves webhooks.

- S1 Redis bytes per subscription (used_memory delta / N) <= 400.
- S2 a reader sidecar's RSS per cached subscription ((RSS with N in the L1 - idle) / N) <= 400 B, and with
  the largest N in the L1 within 1 GiB RSS.
- S3 `plan.updated` on a plan holding N / 4 subscriptions: both of 2 reader sidecars answer the new value
  (one polled per reader; then all 1,000 on it, read before from their L1s) within 1 s, <= 2 Lago
  requests, and the map writes it took (PUBLISH calls: one per write) the same at the smallest and largest N.
- S4, S5: bench/sync_scale.py, against the emulator (in a process of its own), each on a redis-server of
  its own (S4 up to N = 20,000 at 150 requests/s: see S4_RATE).
- S6 (P1-P8 side by side with the commit before) is `make bench` on both commits, then `python -m
  bench.compare` of the two results files; not run here.
Steps run S4 and S5 first (the bench process is fresh), then S1 (which fills the map S2 and S3 read).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from bench import scale_summary, sync_scale
from bench.memory_bench import catalog, plan, rss_kib
from bench.provenance import changed_since, provenance, write_results
from entitlements_sidecar.domain.model import SubscriptionDefinition, SubscriptionStatus
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from entitlements_sidecar.store.map_meta_redis import RedisMapMeta
from entitlements_sidecar.store.redis_store import RedisStore
from tests.lago_emulator.server import LagoEmulator
from tests.support.processes import RedisServer, Sidecar, free_port, start_redis, start_sidecar
from tests.support.wait import eventually

PLANS = ("basic", "pro", "team", "enterprise")
SAMPLE = 1_000  # subscriptions S3 watches on the changed plan
# S4 runs at 150 requests/s: a syncer here reached 187 reads/s with a limit of 1,000/s (one core nearly busy,
# the emulator on the other), so a higher limit would measure the machine. A million at that rate is 1.9
# hours: S4's largest N is 20,000 (about 140 s) to keep the whole command within 15 minutes.
S4_RATE, S4_LARGEST = 150, 20_000
STEPS = ("S1", "S2", "S3", "S4", "S5")


def definition(index: int) -> SubscriptionDefinition:
    return SubscriptionDefinition(
        f"sub_{index:07d}",
        f"cust_{index:07d}",
        PLANS[index % len(PLANS)],
        SubscriptionStatus.ACTIVE,
        datetime(2026, 8, 1, tzinfo=UTC),
        {"feature_3": {"max": 100 + index % 7}} if index % 20 == 0 else {},
    )


async def fill(server: RedisServer, prefix: str, count: int) -> float:
    """Write the catalog, the plans and `count` subscriptions; Redis bytes per subscription."""
    client = aioredis.Redis.from_url(server.url)
    store = RedisStore(client, prefix)
    before = int((await client.info("memory"))["used_memory"])
    await store.put_features(catalog())
    for code in PLANS:
        await store.put_plan(plan(code))
    for start in range(0, count, 2000):
        await store.put_subscriptions([definition(i) for i in range(start, min(count, start + 2000))])
    after = int((await client.info("memory"))["used_memory"])
    meta = RedisMapMeta(client, prefix)  # what a complete full sync records
    await meta.finish_load(await meta.begin_load(), int(time.time() * 1000))
    await client.aclose()
    return (after - before) / count


def sidecar(
    tmp: Path, server: RedisServer, prefix: str, roles: str, lago: LagoEmulator, name: str, *extra: str
) -> Sidecar:
    http_port = free_port()
    args = [
        "--source", "lago", "--roles", roles, "--store", "redis", "--redis-url", server.url,
        "--redis-key-prefix", prefix, "--http-address", f"127.0.0.1:{http_port}", "--lago-api-url", lago.url,
        "--l1-max-entries", "3000000", "--l1-max-bytes", str(4 << 30), "--reconcile-interval-seconds", "86400",
        "--log-level", "warning", *extra,
    ]  # fmt: skip
    env = {"ENTITLEMENTS_LAGO_API_KEY": lago.api_key, "ENTITLEMENTS_LAGO_HMAC_KEY": lago.signer.hmac_key}
    ready = None if "reader" in roles else (lambda s: s.process.poll() is not None or _listening(http_port))
    started = start_sidecar(tmp, None, args, env=env, name=name, ready=ready, timeout=300)
    if "syncer" in roles:
        lago.webhook_url = f"http://127.0.0.1:{http_port}/webhooks/lago"
    return started


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def checks(ids: list[int], feature: str = "feature_0") -> list[pb.CheckEntitlementsRequest]:
    requests = [pb.CheckEntitlementRequest(subscription_id=f"sub_{i:07d}", feature_code=feature, privilege_code="max")
                for i in ids]  # fmt: skip
    return [pb.CheckEntitlementsRequest(checks=requests[i : i + 1000]) for i in range(0, len(requests), 1000)]


def values(stub: pb_grpc.EntitlementServiceStub, batches: list[pb.CheckEntitlementsRequest]) -> set[int]:
    return {r.response.value.int_value for b in batches for r in stub.CheckEntitlements(b, timeout=120).results}


def seed_lago(lago: LagoEmulator) -> None:
    state = lago.state
    for code, feature in catalog().items():
        privileges = [
            {"code": p.code, "value_type": p.value_type.value, "config": {"select_options": list(p.select_options)}}
            if p.select_options
            else {"code": p.code, "value_type": p.value_type.value}
            for p in feature.privileges.values()
        ]
        state.create_feature(code, privileges)
    for code in PLANS:
        state.create_plan(code, 1000)
        state.write_plan_entitlements(code, plan(code).entitlements, replace=True)  # type: ignore[arg-type]
    lago.take_outbox()


def l1_memory(server: RedisServer, prefix: str, count: int, lago: LagoEmulator) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-s2-"))
    # The answer cache has a bound of its own (10,000 serialized answers): off here, so the figure is the L1's.
    reader = sidecar(tmp, server, prefix, "reader", lago, "s2-reader", "--answer-cache-max-entries", "0")
    try:
        idle = rss_kib(reader.process.pid)
        stub = pb_grpc.EntitlementServiceStub(reader.channel)
        answered = values(stub, checks(list(range(count))))
        if 0 in answered:
            raise SystemExit(f"S2: a check was not answered from the map ({sorted(answered)[:5]})")
        full = rss_kib(reader.process.pid)
    finally:
        reader.terminate()
    return {"rss_idle_mib": idle / 1024, "rss_full_mib": full / 1024, "bytes_per_cached": (full - idle) * 1024 / count}


def map_writes(client: redis.Redis) -> int:
    """Every write to the map publishes exactly one notification (and nothing else publishes)."""
    return int(client.info("commandstats").get("cmdstat_publish", {}).get("calls", 0))


def plan_change(server: RedisServer, prefix: str, count: int, lago: LagoEmulator) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    syncer = sidecar(tmp, server, prefix, "syncer", lago, "s3-syncer")
    readers = [sidecar(tmp, server, prefix, "reader", lago, f"s3-reader-{n}") for n in range(2)]
    client = redis.Redis.from_url(server.url)
    try:
        on_pro = [i for i in range(count) if i % len(PLANS) == 1][:SAMPLE]
        batches = checks(on_pro)
        stubs = [pb_grpc.EntitlementServiceStub(r.channel) for r in readers]
        for stub in stubs:
            assert values(stub, batches) == {10}  # filled into both L1s
        entitlements = {code: dict(values) for code, values in plan("pro").entitlements.items()}
        entitlements["feature_0"]["max"] = 77
        lago.state.write_plan_entitlements("pro", entitlements, replace=True)  # type: ignore[arg-type]
        requests, writes = len(lago.controls.api_requests()), map_writes(client)
        probe = pb.CheckEntitlementRequest(
            subscription_id=f"sub_{on_pro[-1]:07d}", feature_code="feature_0", privilege_code="max"
        )
        started = time.perf_counter()
        assert lago.flush() == [200]
        seen = []
        for stub in stubs:  # one answer polled per reader; then all 1,000 checked
            eventually(lambda s=stub: s.CheckEntitlement(probe, timeout=5).value.int_value == 77, timeout=60,
                       interval=0.002, what="the new plan value")  # fmt: skip
            seen.append(time.perf_counter() - started)
        for stub in stubs:
            assert values(stub, batches) == {77}, "an answer on the plan kept the old value"
        return {
            "seconds": max(seen),
            "lago_requests": len(lago.controls.api_requests()) - requests,
            "redis_map_writes": map_writes(client) - writes,
        }
    finally:
        client.close()
        for process in (*readers, syncer):
            process.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument(
        "--steps", default=",".join(STEPS), help="which targets to measure (S2 and S3 need S1: it fills)"
    )
    parser.add_argument("--dirty", action="store_true", help="measure uncommitted code (recorded as dirty)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    steps = set(args.steps.split(","))
    if steps & {"S2", "S3"} and "S1" not in steps:
        parser.error("S2 and S3 read the map S1 fills: add S1 to --steps")
    began = time.perf_counter()
    origin = provenance(args.dirty)
    server = start_redis()
    lago = LagoEmulator().start()
    results: dict[str, Any] = {"sizes": sizes, "steps": sorted(steps), "plans": len(PLANS), "overrides": "1 in 20"}
    try:
        seed_lago(lago)
        info = redis.Redis.from_url(server.url).info()  # the allocator moves S1 (libc malloc rounds up more)
        results["redis"] = {"version": info["redis_version"], "allocator": info["mem_allocator"]}
        print(f"redis-server {info['redis_version']} ({info['mem_allocator']})")
        timed = results["step_seconds"] = {}
        # S4 and S5 first, on redis-servers of their own: after S1-S3 this process holds a million
        # subscriptions' worth of garbage, and S5's reconciling half ran minutes instead of seconds there.
        for step, run in (("S4", lambda: s4_sync(sizes, results)),
                          ("S5", lambda: s5_webhooks(results)),
                          ("S1", lambda: s1_fill(server, sizes, results)),
                          ("S2", lambda: s2_l1(server, sizes, lago, results)),
                          ("S3", lambda: s3_plan(server, sizes, lago, results))):  # fmt: skip
            if step in steps:
                step_began = time.perf_counter()
                run()
                timed[step] = round(time.perf_counter() - step_began, 1)
                print(scale_summary.printed(results, step) + f"\n  ({step} took {timed[step]:.0f} s)")
        print("S6 P1-P8 beside the commit before: make bench on both commits, then python -m bench.compare")
        results["S6"] = "make bench on both commits (bench.compare)"
        results["seconds"] = time.perf_counter() - began
        print(f"bench-scale took {results['seconds']:.0f} s")
    finally:
        lago.stop()
        server.stop()
    moved = changed_since(origin)
    if moved:
        raise SystemExit(f"not recorded: {moved}")
    print(f"written to {write_results('scale', origin, results)}")


def s1_fill(server: RedisServer, sizes: list[int], results: dict[str, Any]) -> None:
    results["S1_redis_bytes_per_subscription"] = {n: asyncio.run(fill(server, f"scale{n}:", n)) for n in sizes}


def s2_l1(server: RedisServer, sizes: list[int], lago: LagoEmulator, results: dict[str, Any]) -> None:
    results["S2_l1_memory"] = {n: l1_memory(server, f"scale{n}:", n, lago) for n in sizes[-2:]}


def s3_plan(server: RedisServer, sizes: list[int], lago: LagoEmulator, results: dict[str, Any]) -> None:
    results["S3_plan_updated"] = {n: plan_change(server, f"scale{n}:", n, lago) for n in (sizes[0], sizes[-1])}


def s4_sync(sizes: list[int], results: dict[str, Any]) -> None:
    s4_sizes = sorted({sizes[0], min(sizes[-1], S4_LARGEST)})
    with fresh_redis() as server:
        runs = {n: sync_scale.full_sync(server, n, S4_RATE, kill=n == s4_sizes[-1]) for n in s4_sizes}
    results["S4_full_sync"] = {"rate_limit": S4_RATE, "runs": runs}


def s5_webhooks(results: dict[str, Any]) -> None:
    with fresh_redis() as server:
        quiet, busy = sync_scale.webhook_latency(server, False), sync_scale.webhook_latency(server, True)
    results["S5_webhook_to_visible_seconds"] = {"without_reconciliation": quiet, "during_reconciliation": busy}


@contextlib.contextmanager
def fresh_redis() -> Iterator[RedisServer]:
    """S4 and S5 on a redis-server of their own, not the one S1 filled with a million subscriptions."""
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


if __name__ == "__main__":
    main()
