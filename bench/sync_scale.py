"""S4 and S5 of `make bench-scale`: a full sync against the Lago emulator, and webhooks during a reconciliation.

- S4: a cold full sync of N subscriptions at a configured rate limit, with a SIGKILL halfway through the
  reads and a restart: the syncer's peak RSS (at the largest N against N = 10,000), the Lago requests against
  N + N/100, and the request rate against the configured one.
- S5: a webhook's change -> a reader answers it, p99 over 100 changes (the 99th: of 40, the p99 was the
  largest), with a reconciliation running at its full budget (ENTITLEMENTS_RECONCILE_SHARE of the rate)
  and with none.
"""

from __future__ import annotations

import signal
import tempfile
import threading
import time
from pathlib import Path

import redis

from bench.memory_bench import rss_kib
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from tests.lago_emulator.server import LagoEmulator
from tests.support.processes import RedisServer, Sidecar, free_port, start_sidecar
from tests.support.wait import eventually


def seed(lago: LagoEmulator, count: int) -> None:
    state = lago.state
    state.create_feature("seats", [{"code": "max", "value_type": "integer"}])
    for code in ("basic", "pro"):
        state.create_plan(code, 1000)
        state.write_plan_entitlements(code, {"seats": {"max": 10}}, replace=True)
    for index in range(count):
        state.create_subscription(f"sub_{index:07d}", f"cust_{index:07d}", ("basic", "pro")[index % 2])
        if index % 20 == 0:
            state.patch_subscription_entitlements(f"sub_{index:07d}", {"seats": {"max": 20}})
    lago.take_outbox()


def syncer(tmp: Path, server: RedisServer, prefix: str, lago: LagoEmulator, rate: int, *extra: str) -> Sidecar:
    http_port = free_port()
    args = [
        "--source", "lago", "--roles", "reader,syncer", "--store", "redis", "--redis-url", server.url,
        "--redis-key-prefix", prefix, "--http-address", f"127.0.0.1:{http_port}", "--lago-api-url", lago.url,
        "--lago-rate-limit", str(rate), "--sync-concurrency", "16", "--log-level", "warning", *extra,
    ]  # fmt: skip
    env = {"ENTITLEMENTS_LAGO_API_KEY": lago.api_key, "ENTITLEMENTS_LAGO_HMAC_KEY": lago.signer.hmac_key}
    lago.webhook_url = f"http://127.0.0.1:{http_port}/webhooks/lago"
    return start_sidecar(tmp, None, args, env=env, name=f"syncer-{time.monotonic_ns()}", timeout=600)


class PeakRss:
    """The largest RSS a process reached, sampled every 0.2 s in a thread."""

    def __init__(self, pid: int) -> None:
        self.peak_kib = 0
        self._pid = pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_kib = max(self.peak_kib, rss_kib(self._pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_kib


def checkpoint(client: redis.Redis, prefix: str) -> tuple[str, int] | None:
    fields: dict[bytes, bytes] = client.hgetall(f"{prefix}sync")  # type: ignore[assignment]
    return (fields[b"phase"].decode(), int(fields[b"position"])) if fields else None


def full_sync(server: RedisServer, count: int, rate: int, kill: bool) -> dict[str, float]:
    lago = LagoEmulator().start()
    seed(lago, count)
    tmp = Path(tempfile.mkdtemp(prefix="bench-s4-"))
    prefix = f"s4-{count}-{time.monotonic_ns()}:"
    client = redis.Redis.from_url(server.url)
    started = time.perf_counter()
    first = syncer(tmp, server, prefix, lago, rate)
    peak = PeakRss(first.process.pid)
    try:
        if kill:
            reads = lambda: len(lago.controls.api_requests())  # noqa: E731
            eventually(lambda: reads() >= count // 2, timeout=3600, interval=0.05, what="halfway")
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(timeout=30)
            peaks = [peak.stop()]
            second = syncer(tmp, server, prefix, lago, rate)
            peak = PeakRss(second.process.pid)
        else:
            second = first
        eventually(lambda: checkpoint(client, prefix) is None, timeout=3600, interval=0.1, what="the sync done")
        seconds = time.perf_counter() - started
        peaks = [*(peaks if kill else []), peak.stop()]
        second.terminate()
        stamps = sorted(r[0] for r in lago.controls.api_requests())
        requests = len(stamps)
        active = stamps[-1] - stamps[0] if len(stamps) > 1 else seconds
        return {
            "subscriptions": count,
            "seconds": seconds,
            "lago_requests": requests,
            "requests_per_second": requests / active,  # while requests were made (not process starts)
            "syncer_peak_rss_mib": max(peaks) / 1024,
            "killed_halfway": kill,
        }
    finally:
        client.close()
        lago.stop()


def webhook_latency(
    server: RedisServer, reconciling: bool, rate: int = 200, count: int = 2_000, changes: int = 100
) -> list[float]:
    lago = LagoEmulator().start()
    seed(lago, count)
    tmp = Path(tempfile.mkdtemp(prefix="bench-s5-"))
    prefix = f"s5-{reconciling}-{time.monotonic_ns()}:"
    interval = "1" if reconciling else "86400"
    sidecar = syncer(tmp, server, prefix, lago, rate, "--reconcile-interval-seconds", interval)
    client = redis.Redis.from_url(server.url)
    stub = pb_grpc.EntitlementServiceStub(sidecar.channel)
    latencies: list[float] = []
    try:
        eventually(lambda: checkpoint(client, prefix) is None, timeout=600, interval=0.1, what="the first load")
        if reconciling:  # a cycle takes count / (rate * share) seconds: it runs through the whole measurement
            eventually(lambda: checkpoint(client, prefix) is not None, timeout=30, interval=0.05, what="a cycle")
        for change in range(1 + changes):  # the first is a warm-up (connections, first calls): not counted
            target = f"sub_{(change * 97) % count:07d}"
            value = 1000 + change
            lago.state.patch_subscription_entitlements(target, {"seats": {"max": value}})
            webhooks = lago.take_outbox()
            request = pb.CheckEntitlementRequest(subscription_id=target, feature_code="seats", privilege_code="max")
            began = time.perf_counter()
            assert lago.deliver(webhooks) == [200] * len(webhooks)
            eventually(
                lambda r=request, v=value: stub.CheckEntitlement(r, timeout=5).value.int_value == v,
                timeout=30, interval=0.001, what="the change visible",
            )  # fmt: skip
            if change:
                latencies.append(time.perf_counter() - began)
        if reconciling:
            assert checkpoint(client, prefix) is not None, "the reconciliation ended before the measurement did"
    finally:
        client.close()
        sidecar.terminate()
        lago.stop()
    return latencies
