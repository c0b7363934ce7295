"""P6 and P7: how fast Lago changes reach the check path, against the test emulator (zero latency).

- P6: a subscription webhook -> both of two sidecar processes answer the new value (p99 over N changes).
- P7: `plan.updated` for a plan with 10,000 subscriptions -> all re-resolved, with the Lago requests counted.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from tests.lago_emulator.server import LagoEmulator
from tests.support.processes import RedisServer, Sidecar, free_port, start_sidecar
from tests.support.wait import eventually


def seed(lago: LagoEmulator, subscriptions: int) -> None:
    state = lago.state
    state.create_feature("seats", [{"code": "max", "value_type": "integer"}])
    state.create_plan("pro", 5000)
    state.write_plan_entitlements("pro", {"seats": {"max": 10}}, replace=True)
    for index in range(subscriptions):
        state.create_subscription(f"sub_{index:05d}", f"c{index % 100}", "pro")
    lago.take_outbox()


def start(tmp: Path, redis: RedisServer, lago: LagoEmulator, roles: str, name: str, rate: str = "10000") -> Sidecar:
    http_port = free_port()
    args = [
        "--source",
        "lago",
        "--store",
        "redis",
        "--redis-url",
        redis.url,
        "--roles",
        roles,
        "--http-address",
        f"127.0.0.1:{http_port}",
        "--lago-api-url",
        lago.url,
        "--lago-rate-limit",
        rate,
        "--sync-concurrency",
        "32",
        "--redis-key-prefix",
        f"{tmp.name}:",  # each scenario on its own keys
    ]
    env = {"ENTITLEMENTS_LAGO_API_KEY": lago.api_key, "ENTITLEMENTS_LAGO_HMAC_KEY": lago.signer.hmac_key}
    ready = None if "reader" in roles else (lambda s: " serving " in s.log() or s.process.poll() is not None)
    sidecar = start_sidecar(tmp, None, args, env=env, name=name, ready=ready, timeout=300)
    if "syncer" in roles:
        lago.webhook_url = f"http://127.0.0.1:{http_port}/webhooks/lago"
    return sidecar


def propagation(redis: RedisServer, changes: int = 100) -> list[float]:
    """Seconds from delivering a webhook until both readers answer the new value."""
    lago = LagoEmulator().start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-p6-"))
    seed(lago, 10)
    syncer = start(tmp, redis, lago, "reader,syncer", "syncer")
    reader = start(tmp, redis, lago, "reader", "reader")
    stubs = [pb_grpc.EntitlementServiceStub(s.channel) for s in (syncer, reader)]
    request = pb.CheckEntitlementRequest(subscription_id="sub_00003", feature_code="seats", privilege_code="max")
    latencies = []
    try:
        for change in range(changes):
            value = 100 + change
            lago.state.patch_subscription_entitlements("sub_00003", {"seats": {"max": value}})
            webhooks = lago.take_outbox()
            started = time.perf_counter()
            assert lago.deliver(webhooks) == [200]
            for stub in stubs:
                eventually(
                    lambda s=stub, v=value: s.CheckEntitlement(request, timeout=2).value.int_value == v,
                    timeout=10,
                    interval=0.001,
                    what="change visible",
                )
            latencies.append(time.perf_counter() - started)
    finally:
        reader.terminate()
        syncer.terminate()
        lago.stop()
    return latencies


def plan_fan_out(redis: RedisServer, subscriptions: int = 10_000) -> tuple[float, int]:
    """Seconds until every subscription on the plan answers the new value, and Lago requests spent."""
    lago = LagoEmulator().start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-p7-"))
    seed(lago, subscriptions)
    syncer = start(tmp, redis, lago, "reader,syncer", "syncer")
    stub = pb_grpc.EntitlementServiceStub(syncer.channel)
    checks = [
        pb.CheckEntitlementRequest(subscription_id=f"sub_{i:05d}", feature_code="seats", privilege_code="max")
        for i in range(subscriptions)
    ]
    batches = [pb.CheckEntitlementsRequest(checks=checks[i : i + 1000]) for i in range(0, subscriptions, 1000)]

    def all_at(value: int) -> bool:
        return all(
            r.response.value.int_value == value for b in batches for r in stub.CheckEntitlements(b, timeout=30).results
        )

    try:
        assert all_at(10)
        lago.state.write_plan_entitlements("pro", {"seats": {"max": 12}}, replace=False)
        before = len(lago.controls.api_requests())
        started = time.perf_counter()
        assert lago.flush() == [200]
        eventually(lambda: all_at(12), timeout=120, interval=0.05, what="all subscriptions re-resolved")
        elapsed = time.perf_counter() - started
        return elapsed, len(lago.controls.api_requests()) - before
    finally:
        syncer.terminate()
        lago.stop()


def main() -> None:
    """`python -m bench.sync_bench [--dirty]`: P6 and P7 alone (e.g. beside an older commit's run from a
    git worktree); writes `bench/results/<date>-<commit>-sync.json`, so quoted figures have a file."""
    from bench.load import percentile
    from bench.provenance import changed_since, provenance, write_results
    from tests.support.processes import start_redis

    origin = provenance(allow_dirty="--dirty" in sys.argv[1:])
    redis = start_redis()
    try:
        latencies = sorted(propagation(redis))
        p50, p99 = statistics.median(latencies), percentile(latencies, 0.99)  # nearest rank: the 99th of 100
        print(f"P6 p50 {1000 * p50:.1f} ms, p99 {1000 * p99:.1f} ms")
        seconds, requests = plan_fan_out(redis)
        print(f"P7 {seconds:.2f} s, {requests} Lago requests")
    finally:
        redis.stop()
    changed = changed_since(origin)
    if changed is not None:
        raise SystemExit(f"{changed}: results not written")
    body = {"p6_ms": {"p50": 1000 * p50, "p99": 1000 * p99, "changes": len(latencies)},
            "p7": {"seconds": seconds, "lago_requests": requests}}  # fmt: skip
    print(f"written {write_results('sync', origin, body).relative_to(Path(__file__).resolve().parents[1])}")


if __name__ == "__main__":
    sys.exit(main())
