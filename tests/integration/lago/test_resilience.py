"""Lago down, syncers killed, plan fan-out, rate limits and reconciliation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from tests.integration.lago.conftest import SyncerFactory, seed
from tests.integration.lago.views import matches, sidecar_view
from tests.lago_emulator.server import LagoEmulator
from tests.support.processes import REPO, RedisServer, run_cli
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


def test_lago_503_for_a_while_loses_nothing(lago: LagoEmulator, start_syncer: SyncerFactory) -> None:
    seed(lago, subscriptions=3)
    syncer = start_syncer()
    lago.controls.fail_status = 503
    for index in range(3):
        lago.state.patch_subscription_entitlements(f"sub_{index}", {"seats": {"max": 100 + index}})
    assert lago.flush() == [200, 200, 200]  # acknowledged while Lago cannot be read
    eventually(lambda: "sync batch failed, retrying" in syncer.sidecar.log(), what="worker retrying")
    assert sidecar_view(syncer.sidecar, "sub_0")[1]["seats"]["max"] == 10
    lago.controls.fail_status = None
    for index in range(3):
        eventually(lambda i=index: matches(lago, syncer.sidecar, f"sub_{i}"), what="applied after recovery")  # type: ignore[misc]


def test_a_fully_consistent_check_with_lago_down_answers_before_its_timeout(
    lago: LagoEmulator, start_syncer: SyncerFactory
) -> None:
    seed(lago)
    # Five retries with backoff take about 6 s: longer than the caller waits.
    syncer = start_syncer("--lago-max-retries", "5", "--failure-policy", "fail_closed")
    lago.controls.fail_status = 503
    started = time.monotonic()
    result = run_cli("check", "--target", syncer.sidecar.address, "--subscription", "sub_0", "--feature", "sso",
                     "--fully-consistent", "--timeout", "2")  # fmt: skip
    assert result.returncode == 1, result.stderr  # denied by the policy, not DEADLINE_EXCEEDED (exit 2)
    assert "reason:    failure_policy" in result.stdout and "answered by the failure policy" in result.stdout
    assert "STALE" in result.stdout
    assert time.monotonic() - started < 4  # the 2 s timeout plus the CLI's own start
    lago.controls.fail_status = None
    again = run_cli("check", "--target", syncer.sidecar.address, "--subscription", "sub_0", "--feature", "sso",
                    "--fully-consistent", "--timeout", "2")  # fmt: skip
    assert again.returncode == 0 and "the source of truth, read just now" in again.stdout


def test_readiness_turns_while_lago_is_down_and_back_after(lago: LagoEmulator, start_syncer: SyncerFactory) -> None:
    seed(lago, subscriptions=2)
    syncer = start_syncer("--staleness-budget-seconds", "1")
    reader = start_syncer("--staleness-budget-seconds", "1", roles="reader", name="reader")
    readyz = [f"http://127.0.0.1:{s.http_port}/readyz" for s in (syncer, reader)]
    for url in readyz:  # a 1 s budget: on a busy machine the first heartbeat can come a moment after the start
        eventually(lambda u=url: httpx.get(u, timeout=5).status_code == 200, timeout=10, what="ready")  # type: ignore[misc]
    lago.controls.fail_status = 503
    lago.state.patch_subscription_entitlements("sub_0", {"seats": {"max": 71}})
    assert lago.flush() == [200]  # queued; the worker cannot apply it, so the map is no longer known current
    for url in readyz:  # the reader learns it from the syncer's heartbeat in Redis
        eventually(lambda u=url: httpx.get(u, timeout=5).status_code == 503, timeout=10, what="not ready")  # type: ignore[misc]
    assert httpx.get(readyz[1], timeout=5).json()["checks"]["sync_lag"]["ok"] is False
    lago.controls.fail_status = None
    eventually(lambda: matches(lago, reader.sidecar, "sub_0"), what="applied after recovery")
    for url in readyz:
        eventually(lambda u=url: httpx.get(u, timeout=5).status_code == 200, timeout=10, what="ready again")  # type: ignore[misc]


def test_a_syncer_killed_before_acknowledging_is_covered_by_another(
    lago: LagoEmulator, start_syncer: SyncerFactory
) -> None:
    seed(lago)
    first = start_syncer(name="first")
    lago.controls.fail_status = 503  # the worker reads the entry, fails to apply it, keeps it pending
    lago.state.patch_subscription_entitlements("sub_0", {"seats": {"max": 55}})
    assert lago.flush() == [200]
    eventually(lambda: "sync batch failed, retrying" in first.sidecar.log(), what="entry read, not acknowledged")
    first.sidecar.process.send_signal(signal.SIGKILL)
    first.sidecar.process.wait(timeout=10)
    lago.controls.fail_status = None
    second = start_syncer(name="second")  # claims entries idle for more than 1 s
    eventually(lambda: sidecar_view(second.sidecar, "sub_0")[1]["seats"]["max"] == 55, what="redelivered")


def test_a_restarted_syncer_applies_its_own_pending_entry_without_waiting_for_it_to_look_idle(
    lago: LagoEmulator, start_syncer: SyncerFactory
) -> None:
    seed(lago)
    idle = ("--queue-claim-idle-seconds", "30")  # the default: another syncer would wait this long
    first = start_syncer(*idle, name="first")
    lago.controls.fail_status = 503
    lago.state.patch_subscription_entitlements("sub_0", {"seats": {"max": 56}})
    assert lago.flush() == [200]
    eventually(lambda: "sync batch failed, retrying" in first.sidecar.log(), what="entry read, not acknowledged")
    first.sidecar.process.send_signal(signal.SIGKILL)
    first.sidecar.process.wait(timeout=10)
    lago.controls.fail_status = None
    started = time.monotonic()
    second = start_syncer(*idle, name="second")  # the same host: the same consumer name by default
    eventually(lambda: sidecar_view(second.sidecar, "sub_0")[1]["seats"]["max"] == 56, what="re-applied")
    assert time.monotonic() - started < 15  # its own entry at start, not after 30 s


def test_plan_update_with_1000_subscriptions_costs_at_most_two_lago_requests(
    lago: LagoEmulator, start_syncer: SyncerFactory
) -> None:
    seed(lago, subscriptions=1000)
    syncer = start_syncer(rate="5000")
    stub = pb_grpc.EntitlementServiceStub(syncer.sidecar.channel)
    checks = [
        pb.CheckEntitlementRequest(subscription_id=f"sub_{i}", feature_code="seats", privilege_code="max")
        for i in range(1000)
    ]
    assert {
        r.response.value.int_value for r in stub.CheckEntitlements(pb.CheckEntitlementsRequest(checks=checks)).results
    } == {10}
    requests_before = len(lago.controls.api_requests())
    lago.state.write_plan_entitlements("pro", {"seats": {"max": 12}}, replace=False)
    assert lago.flush() == [200]

    def all_updated() -> bool:
        results = stub.CheckEntitlements(pb.CheckEntitlementsRequest(checks=checks), timeout=10).results
        return {r.response.value.int_value for r in results} == {12}

    eventually(all_updated, timeout=30, interval=0.2, what="1000 subscriptions re-resolved")
    assert len(lago.controls.api_requests()) - requests_before <= 2
    assert matches(lago, syncer.sidecar, "sub_999")


def test_cold_full_sync_of_2000_respects_the_rate_limit(
    lago: LagoEmulator, redis_server: RedisServer, key_prefix: str
) -> None:
    seed(lago, subscriptions=2000)
    lago.controls.rate_limit = 600  # the server would answer 429 past this; the client must stay under 500
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ENTITLEMENTS_")},
        "ENTITLEMENTS_LAGO_API_KEY": lago.api_key,
    }
    result = subprocess.run(
        [sys.executable, "-m", "entitlements_sidecar.cli", "sync", "--full", "--source", "lago", "--store", "redis",
         "--redis-url", redis_server.url, "--redis-key-prefix", key_prefix, "--lago-api-url", lago.url,
         "--lago-rate-limit", "500", "--sync-concurrency", "16"],
        capture_output=True, text=True, timeout=120, cwd=REPO, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "synced 2000 subscriptions" in result.stdout
    assert "done=2000 total=2000" in result.stderr  # progress: log lines, as stderr is not a terminal
    assert "\r" not in result.stderr and result.stderr.count("full sync progress") <= 11
    stamps = sorted(r[0] for r in lago.controls.api_requests())
    assert len(stamps) >= 2000
    busiest = max(sum(1 for s in stamps[i:] if s - stamps[i] < 1.0) for i in range(0, len(stamps), 25))
    assert busiest <= 501, f"{busiest} requests in one second"
    assert lago.controls.rate_limited == 0


def test_reconciliation_repairs_a_dropped_webhook(
    lago: LagoEmulator, start_syncer: SyncerFactory, tmp_path: Path
) -> None:
    seed(lago)
    syncer = start_syncer("--reconcile-interval-seconds", "1")
    lago.state.patch_subscription_entitlements("sub_1", {"seats": {"max": 64}})
    lago.take_outbox()  # the webhook is lost
    eventually(lambda: sidecar_view(syncer.sidecar, "sub_1")[1]["seats"]["max"] == 64, timeout=15, what="repaired")
    eventually(lambda: "reconciled" in syncer.sidecar.log() and "repaired=1" in syncer.sidecar.log(), what="counted")


def test_a_refused_api_key_keeps_webhooks_pending_says_so_and_loses_nothing(
    lago: LagoEmulator, start_syncer: SyncerFactory
) -> None:
    seed(lago, subscriptions=2)
    syncer = start_syncer(name="keyed")
    lago.controls.key_revoked = True
    lago.state.patch_subscription_entitlements("sub_0", {"seats": {"max": 77}})
    assert lago.flush() == [200]  # acknowledged: the queue holds it

    def warned() -> str | None:
        body = httpx.get(f"http://127.0.0.1:{syncer.http_port}/readyz", timeout=5).json()
        warning = body["checks"]["source"].get("warning")
        return str(warning) if warning is not None else None

    warning = eventually(warned, what="readiness names the refusal")
    assert "refuses the syncer" in str(warning) and "401" in str(warning)
    assert "sync batch refused by the source" in syncer.sidecar.log()
    assert sidecar_view(syncer.sidecar, "sub_0")[1]["seats"]["max"] == 10  # not applied, not dropped

    # The operator fixes the key and restarts the syncer: its pending entry is applied at once.
    lago.controls.key_revoked = False
    syncer.sidecar.terminate()
    again = start_syncer(name="keyed")
    eventually(lambda: sidecar_view(again.sidecar, "sub_0")[1]["seats"]["max"] == 77, what="applied after the fix")
