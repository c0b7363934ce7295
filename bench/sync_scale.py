"""S4 and S5 of `make bench-scale`: a full sync against the Lago emulator, and webhooks during a reconciliation.

- S4: a cold full sync of N subscriptions at a configured rate limit, with a SIGKILL halfway through the
  reads and a restart: the syncer's peak RSS (at the largest N against N = 10,000), the Lago requests against
  N + N/100, and the request rate against the configured one.
The emulator runs in a process of its own (bench/emulator_process.py).

- S5: a webhook's change -> a reader answers it, p99 over 400 changes, with a reconciliation running at
  its full budget (ENTITLEMENTS_RECONCILE_SHARE of the rate) and with none. Of 100, the p99 was the
  second largest, and one scheduling hiccup of the 2-core machine moved it by x2 between runs of the same
  code (2026-12-03).
"""

from __future__ import annotations

import signal
import tempfile
import threading
import time
from pathlib import Path

import redis

from bench.emulator_process import EmulatorProcess
from bench.memory_bench import rss_kib
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from tests.support.processes import RedisServer, Sidecar, free_port, start_sidecar
from tests.support.wait import eventually


def syncer(
    tmp: Path,
    server: RedisServer,
    prefix: str,
    lago: EmulatorProcess,
    rate: int,
    *extra: str,
    roles: str = "reader,syncer",
) -> Sidecar:
    http_port = free_port()
    args = [
        "--source", "lago", "--roles", roles, "--store", "redis", "--redis-url", server.url,
        "--redis-key-prefix", prefix, "--http-address", f"127.0.0.1:{http_port}", "--lago-api-url", lago.url,
        "--lago-rate-limit", str(rate), "--sync-concurrency", "16", "--log-level", "warning", *extra,
    ]  # fmt: skip
    env = {"ENTITLEMENTS_LAGO_API_KEY": lago.api_key, "ENTITLEMENTS_LAGO_HMAC_KEY": lago.hmac_key}
    if "syncer" in roles:
        lago.set_webhook_url(f"http://127.0.0.1:{http_port}/webhooks/lago")
    ready = None if "reader" in roles else _answers_http  # without the reader role, no gRPC health
    return start_sidecar(tmp, None, args, env=env, name=f"{roles}-{time.monotonic_ns()}", ready=ready, timeout=600)


def _answers_http(sidecar: Sidecar) -> bool:
    if sidecar.process.poll() is not None:
        return True  # start_sidecar reports the exit
    try:
        sidecar.readiness()
    except Exception:
        return False
    return True


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


def loaded(sidecar: Sidecar) -> bool:
    """The first load is over, its reads included (/readyz)."""
    first = sidecar.readiness().get("checks", {}).get("first_load", {})
    return bool(first.get("ok")) and first.get("reads_pending") is False


def full_sync(server: RedisServer, count: int, rate: int, kill: bool) -> dict[str, float]:
    lago = EmulatorProcess(count)
    tmp = Path(tempfile.mkdtemp(prefix="bench-s4-"))
    prefix = f"s4-{count}-{time.monotonic_ns()}:"
    client = redis.Redis.from_url(server.url)
    started = time.perf_counter()
    first = syncer(tmp, server, prefix, lago, rate)
    peak = PeakRss(first.process.pid)
    try:
        if kill:
            reads = lambda: len(lago.api_requests())  # noqa: E731
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
        stamps = sorted(r[0] for r in lago.api_requests())
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
    server: RedisServer, reconciling: bool, rate: int = 200, count: int = 2_000, changes: int = 400
) -> list[float]:
    lago = EmulatorProcess(count)
    tmp = Path(tempfile.mkdtemp(prefix="bench-s5-"))
    prefix = f"s5-{reconciling}-{time.monotonic_ns()}:"
    interval = "1" if reconciling else "86400"
    # As deployed: one syncer takes the webhooks and reconciles, the application's own sidecar answers. (With
    # one process in both roles, the 1 ms polling below kept it 60 % busy, and that load set the tail.)
    sidecar = syncer(tmp, server, prefix, lago, rate, "--reconcile-interval-seconds", interval, roles="syncer")
    client = redis.Redis.from_url(server.url)
    reader: Sidecar | None = None
    latencies: list[float] = []
    try:
        # /readyz, not the checkpoint: a reconciliation cycle may start (and checkpoint) right as the load ends
        eventually(lambda: loaded(sidecar), timeout=600, interval=0.1, what="the first load's reads")
        reader = syncer(tmp, server, prefix, lago, rate, roles="reader")
        stub = pb_grpc.EntitlementServiceStub(reader.channel)
        if reconciling:  # a cycle takes count / (rate * share) seconds: it runs through the whole measurement
            eventually(lambda: checkpoint(client, prefix) is not None, timeout=30, interval=0.05, what="a cycle")
        for change in range(1 + changes):  # the first is a warm-up (connections, first calls): not counted
            target = f"sub_{(change * 97) % count:07d}"
            value = 1000 + change
            request = pb.CheckEntitlementRequest(subscription_id=target, feature_code="seats", privilege_code="max")
            began = time.perf_counter()  # the change, its webhooks signed and delivered, in the emulator's process
            statuses = lago.change(target, value)
            assert statuses and statuses == [200] * len(statuses), statuses
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
        if reader is not None:
            reader.terminate()
        sidecar.terminate()
        lago.stop()
    return latencies
