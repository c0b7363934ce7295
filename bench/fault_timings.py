"""How long the sidecar's answers take to become honest, and to become right again, under faults.

Each scenario runs real processes (redis-server, sidecars, the test Lago emulator) on 127.0.0.1 with the
shipped defaults unless it says otherwise, and records what it measured; the README's operating section
quotes the results file. `python -m bench.fault_timings` (`make bench-faults`, about two minutes).

- redis_lost: Redis restarted empty under a syncer and a reader (Lago mode, 300 subscriptions, Lago
  rate-limited to Lago Cloud's 50 requests/s): when the reader says the map is lost, when it is ready
  again, how many answers in between said they may not be right, and that none was a fresh "not found";
  a webhook sent meanwhile: when it is acknowledged and when it is applied.
- redis_paused: Redis stopped (SIGSTOP), a subject outside the L1: per caller deadline, how many checks got
  the failure policy's answer in time, and how long it took.
- lago_down: a fully consistent check with Lago answering 503, timeout 2 s: how long until its answer.
- client_reconnect: the sidecar killed (SIGKILL) and started again: how long after it serves do the
  blocking, asyncio and watching clients answer again (worst of three runs).
- frozen_client: a client holding Watch streams is stopped (SIGSTOP): how long until its streams are freed.
- port_taken: a second `serve` on an address in use: its exit code and how long it took to say so.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import httpx

from bench.provenance import provenance, write_results
from entitlements_sidecar.client import AsyncEntitlementsClient, EntitlementsClient
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from tests.integration.lago.conftest import seed
from tests.integration.test_watch_limits import _FROZEN_CLIENT
from tests.lago_emulator.server import LagoEmulator
from tests.support.processes import REPO, RedisServer, Sidecar, free_port, run_cli, start_redis, start_sidecar
from tests.support.wait import eventually

CATALOG = REPO / "examples" / "catalog.yaml"
COLD = pb.CheckEntitlementRequest(subscription_id="sub_globex", feature_code="seats")


def _lago_sidecar(tmp: Path, lago: LagoEmulator, redis: RedisServer, roles: str, name: str, rate: str) -> Sidecar:
    http_port = free_port()
    args = ["--source", "lago", "--store", "redis", "--redis-url", redis.url, "--roles", roles, "--http-address",
            f"127.0.0.1:{http_port}", "--lago-api-url", lago.url, "--lago-rate-limit", rate]  # fmt: skip
    env = {"ENTITLEMENTS_LAGO_API_KEY": lago.api_key, "ENTITLEMENTS_LAGO_HMAC_KEY": lago.signer.hmac_key}
    ready = (lambda s: " serving " in s.log()) if roles == "syncer" else None
    sidecar = start_sidecar(tmp, None, args, env=env, name=name, ready=ready, timeout=120)
    if "syncer" in roles:
        lago.webhook_url = f"http://127.0.0.1:{http_port}/webhooks/lago"
    return sidecar


def redis_lost(tmp: Path, subscriptions: int = 300) -> dict[str, Any]:
    lago, redis = LagoEmulator().start(), start_redis()
    seed(lago, subscriptions)
    syncer = _lago_sidecar(tmp, lago, redis, "syncer", "syncer", "10000")
    syncer.terminate()  # loaded fast; the one that rebuilds is rate limited like Lago Cloud
    syncer = _lago_sidecar(tmp, lago, redis, "syncer", "syncer-50", "50")
    reader = _lago_sidecar(tmp, lago, redis, "reader", "reader", "50")
    stub = pb_grpc.EntitlementServiceStub(reader.channel)
    counts = {"answers": 0, "not_authoritative": 0, "fresh_not_found": 0}
    stop = threading.Event()

    def check() -> None:
        while not stop.is_set():
            for index in range(0, subscriptions, 7):
                try:
                    answer = stub.CheckEntitlement(
                        pb.CheckEntitlementRequest(subscription_id=f"sub_{index}", feature_code="seats"), timeout=1
                    )
                except grpc.RpcError:
                    continue
                counts["answers"] += 1
                if answer.freshness.stale or answer.freshness.source == pb.SOURCE_FALLBACK:
                    counts["not_authoritative"] += 1
                elif answer.reason == pb.REASON_SUBSCRIPTION_NOT_FOUND:
                    counts["fresh_not_found"] += 1

    checker = threading.Thread(target=check, daemon=True)
    checker.start()
    readyz = f"{reader.http_url}/readyz"
    try:
        redis.kill()
        started = time.monotonic()
        redis.restart()
        eventually(lambda: httpx.get(readyz, timeout=5).json()["checks"]["map"]["ok"] is False, interval=0.01)
        detected = time.monotonic() - started
        lago.state.patch_subscription_entitlements("sub_5", {"seats": {"max": 77}})
        [webhook] = lago.take_outbox()
        sent = time.monotonic()
        eventually(lambda: lago.deliver([webhook]) == [200], timeout=30, interval=0.05)
        acknowledged = time.monotonic() - sent
        eventually(lambda: httpx.get(readyz, timeout=5).status_code == 200, timeout=120, interval=0.05)
        ready = time.monotonic() - started
        request = pb.CheckEntitlementRequest(subscription_id="sub_5", feature_code="seats", privilege_code="max")
        eventually(lambda: stub.CheckEntitlement(request, timeout=1).value.int_value == 77, timeout=30, interval=0.05)
        applied = time.monotonic() - sent
    finally:
        stop.set()
        checker.join(timeout=10)
        reader.terminate()
        syncer.terminate()
        redis.stop()
        lago.stop()
    return {
        "subscriptions": subscriptions,
        "lago_rate_limit": 50,
        "reader_says_map_lost_s": round(detected, 3),
        "reader_ready_again_s": round(ready, 2),
        "webhook_acknowledged_after_s": round(acknowledged, 3),
        "webhook_applied_after_s": round(applied, 2),
        **counts,
    }


def redis_paused(tmp: Path, deadlines_ms: tuple[int, ...] = (2, 5, 10, 20, 50), checks: int = 50) -> dict[str, Any]:
    redis = start_redis()
    sidecar = start_sidecar(tmp, CATALOG, ["--store", "redis", "--redis-url", redis.url], name="paused")
    stub = pb_grpc.EntitlementServiceStub(sidecar.channel)
    results: dict[str, Any] = {}
    try:
        redis.pause()
        for deadline in deadlines_ms:
            in_time, took = 0, []
            for _ in range(checks):
                started = time.monotonic()
                try:
                    answer = stub.CheckEntitlement(COLD, timeout=deadline / 1000)
                    in_time += answer.reason == pb.REASON_FAILURE_POLICY
                    took.append((time.monotonic() - started) * 1000)
                except grpc.RpcError:
                    pass
            results[f"{deadline}ms"] = {
                "policy_answers": f"{in_time}/{checks}",
                "median_ms": round(statistics.median(took), 1) if took else None,
                "max_ms": round(max(took), 1) if took else None,
            }
    finally:
        redis.resume()
        sidecar.terminate()
        redis.stop()
    return results


def lago_down(tmp: Path) -> dict[str, Any]:
    lago, redis = LagoEmulator().start(), start_redis()
    seed(lago)
    sidecar = _lago_sidecar(tmp, lago, redis, "reader,syncer", "lago-down", "50")
    try:
        lago.controls.fail_status = 503
        stub = pb_grpc.EntitlementServiceStub(sidecar.channel)
        request = pb.CheckEntitlementRequest(
            subscription_id="sub_0", feature_code="sso", consistency=pb.Consistency(fully_consistent=True)
        )
        started = time.monotonic()
        answer = stub.CheckEntitlement(request, timeout=2)
        return {
            "timeout_s": 2,
            "answered_after_s": round(time.monotonic() - started, 3),
            "source": pb.Source.Name(answer.freshness.source),
            "stale": answer.freshness.stale,
        }
    finally:
        sidecar.terminate()
        redis.stop()
        lago.stop()


def client_reconnect(tmp: Path, runs: int = 3) -> dict[str, Any]:
    worst: dict[str, float] = {}
    for run in range(runs):
        waits = _reconnect_once(tmp, run)
        worst = {k: round(max(v, worst.get(k, 0.0)), 3) for k, v in waits.items()}
    return {"runs": runs, "worst_seconds_after_serving": worst}


def _reconnect_once(tmp: Path, run: int) -> dict[str, float]:
    address = f"127.0.0.1:{free_port()}"
    sidecar = start_sidecar(tmp, CATALOG, address=address, name=f"reconnect-{run}")
    plain, watching = EntitlementsClient(address, timeout=0.5), EntitlementsClient(address, timeout=0.5)
    loop = asyncio.new_event_loop()
    aio = loop.run_until_complete(_async_client(address))
    try:
        watching.watch(subscription_ids=["sub_acme_main"])
        sidecar.process.send_signal(signal.SIGKILL)
        sidecar.process.wait(timeout=10)
        sidecar.channel.close()
        time.sleep(2)  # down for a while: the clients' backoff grows meanwhile
        sidecar = start_sidecar(tmp, CATALOG, address=address, name=f"reconnect-{run}-back")
        served = time.monotonic()
        return {
            "blocking": _until(lambda: plain.check("sso", subscription_id="sub_acme_main"), served),
            "asyncio": _until(
                lambda: loop.run_until_complete(aio.check("sso", subscription_id="sub_acme_main")), served
            ),
            "watching": _until(lambda: _local(watching), served),
        }
    finally:
        plain.close()
        watching.close()
        loop.run_until_complete(aio.close())
        loop.close()
        sidecar.terminate()


def frozen_client(tmp: Path) -> dict[str, Any]:
    sidecar = start_sidecar(tmp, CATALOG, name="frozen")  # default keepalive: ping 10 s, answer within 5 s
    frozen = subprocess.Popen([sys.executable, "-c", _FROZEN_CLIENT, sidecar.address, "3"], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert frozen.stdout is not None
    try:
        while not frozen.stdout.readline().startswith("opened"):
            pass
        frozen.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        eventually(lambda: sidecar.open_streams() == 0, timeout=60, interval=0.1)
        freed = round(time.monotonic() - started, 1)
        return {"keepalive_s": 10, "keepalive_timeout_s": 5, "streams_freed_after_s": freed}
    finally:
        frozen.kill()
        frozen.communicate(timeout=10)
        sidecar.terminate()


def port_taken(tmp: Path) -> dict[str, Any]:
    first = start_sidecar(tmp, CATALOG, name="first")
    try:
        started = time.monotonic()
        result = run_cli("serve", "--catalog-path", str(CATALOG), "--grpc-address", first.address,
                         "--http-address", f"127.0.0.1:{free_port()}", timeout=30)  # fmt: skip
        return {
            "exit_code": result.returncode,
            "seconds": round(time.monotonic() - started, 2),
            "error": result.stderr.strip().splitlines()[-1],
        }
    finally:
        first.terminate()


async def _async_client(address: str) -> AsyncEntitlementsClient:
    return AsyncEntitlementsClient(address, timeout=0.5)


def _local(client: EntitlementsClient) -> None:
    if client.check("sso", subscription_id="sub_acme_main").source != "local":
        raise grpc.RpcError("not from the watched copy yet")


def _until(call: Any, since: float) -> float:
    while time.monotonic() - since < 30:
        try:
            call()
            return time.monotonic() - since
        except grpc.RpcError:
            time.sleep(0.01)
    raise AssertionError("no answer within 30 s")


SCENARIOS = {
    "redis_lost": redis_lost,
    "redis_paused": redis_paused,
    "lago_down": lago_down,
    "client_reconnect": client_reconnect,
    "frozen_client": frozen_client,
    "port_taken": port_taken,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dirty", action="store_true", help="measure uncommitted code (recorded as dirty)")
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append", help="run only these")
    args = parser.parse_args()
    origin = provenance(args.dirty)
    results: dict[str, Any] = {}
    for name, scenario in SCENARIOS.items():
        if args.only and name not in args.only:
            continue
        with tempfile.TemporaryDirectory(prefix=f"faults-{name}-") as tmp:
            results[name] = scenario(Path(tmp))
        print(f"{name:17} {results[name]}", flush=True)
    if not args.only:
        print(f"results: {write_results('faults', origin, results)}")


if __name__ == "__main__":
    main()
