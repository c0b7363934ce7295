"""/metrics, /healthz, /readyz and `status` against a running sidecar on a real Redis."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from grpc_health.v1 import health_pb2

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from tests.integration.conftest import stub
from tests.support.processes import RedisServer, Sidecar, run_cli, start_sidecar
from tests.support.wait import eventually

pytestmark = pytest.mark.integration

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def sidecar(tmp_path: Path, example_catalog: Path, redis_server: RedisServer, key_prefix: str) -> Iterator[Sidecar]:
    args = ["--store", "redis", "--redis-url", redis_server.url, "--redis-key-prefix", key_prefix]
    sidecar = start_sidecar(tmp_path, example_catalog, [*args, "--staleness-budget-seconds", "1"])
    yield sidecar
    sidecar.terminate()


def _series(text: str, name: str) -> dict[str, float]:
    """Samples of one metric: labels text -> value."""
    found = re.findall(rf"^{re.escape(name)}(\{{[^}}]*\}})? ([0-9.e+-]+)$", text, re.MULTILINE)
    return {labels: float(value) for labels, value in found}


def test_metrics_name_the_series_and_count_checks(sidecar: Sidecar) -> None:
    check = pb.CheckEntitlementRequest(subscription_id="sub_acme_main", feature_code="sso")
    for _ in range(5):
        assert stub(sidecar).CheckEntitlement(check, timeout=5).allowed
    denied = pb.CheckEntitlementRequest(subscription_id="sub_globex", feature_code="nope")
    assert not stub(sidecar).CheckEntitlement(denied, timeout=5).allowed

    text = httpx.get(f"{sidecar.http_url}/metrics", timeout=5).text
    checks = _series(text, "entitlements_checks_total")
    assert checks['{reason="REASON_ENTITLED",result="allowed"}'] == 5
    assert checks['{reason="REASON_FEATURE_NOT_ENTITLED",result="denied"}'] == 1
    assert _series(text, "entitlements_answer_cache_hits_total")[""] >= 3  # repeats are pre-serialized answers
    assert _series(text, "entitlements_check_duration_seconds_count")[""] >= 2  # the computed ones are timed
    assert 0 < _series(text, "entitlements_l1_hit_ratio")[""] <= 1
    for name in (
        "entitlements_redis_errors_total",
        "entitlements_sync_lag_seconds",
        "entitlements_snapshot_version_age_seconds",
        "entitlements_l1_hits_total",
        "entitlements_l1_misses_total",
    ):
        assert _series(text, name), name


def test_readiness_follows_sync_lag_and_recovers(sidecar: Sidecar, example_catalog: Path) -> None:
    assert httpx.get(f"{sidecar.http_url}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{sidecar.http_url}/readyz", timeout=5).status_code == 200
    sso = pb.CheckEntitlementRequest(subscription_id="sub_acme_main", feature_code="sso")
    for _ in range(3):  # answered, then from the L1, then pre-serialized
        assert not stub(sidecar).CheckEntitlement(sso, timeout=5).freshness.stale
    good = example_catalog.read_text()

    _write(example_catalog, good + "\nnot: [valid\n")  # the catalog can no longer be read

    def not_ready() -> dict[str, Any] | None:
        response = httpx.get(f"{sidecar.http_url}/readyz", timeout=5)
        return response.json() if response.status_code == 503 else None

    broken = eventually(not_ready, timeout=10, what="/readyz to report the sync lag over budget")
    assert broken is not None
    assert broken["checks"]["sync_lag"]["ok"] is False and broken["sync_lag_seconds"] > 1
    assert broken["checks"]["store"]["ok"] and broken["checks"]["first_load"]["ok"]
    eventually(lambda: sidecar.health() == NOT_SERVING, timeout=5, what="gRPC health to follow /readyz")
    status = run_cli("status", "--target", sidecar.address, "--http", sidecar.http_url.removeprefix("http://"))
    assert status.returncode == 1 and "NOT_SERVING" in status.stdout and "sync_lag: FAILING" in status.stdout
    # Still answering from the last good map (the default policy, last_known_good), said to be stale, even
    # for a question the answer cache had answered while fresh: not ready is a signal, not an outage.
    check = pb.CheckEntitlementRequest(subscription_id="sub_acme_main", feature_code="sso")
    stale = stub(sidecar).CheckEntitlement(check, timeout=5)
    assert stale.allowed and stale.freshness.stale and stale.freshness.source == pb.SOURCE_FALLBACK

    _write(example_catalog, good)
    eventually(
        lambda: httpx.get(f"{sidecar.http_url}/readyz", timeout=5).status_code == 200,
        timeout=10,
        what="/readyz to recover",
    )
    eventually(lambda: sidecar.health() == SERVING, timeout=5, what="gRPC health to recover")
    eventually(lambda: not stub(sidecar).CheckEntitlement(sso, timeout=5).freshness.stale, what="fresh answers")
    status = run_cli("status", "--target", sidecar.address, "--http", sidecar.http_url.removeprefix("http://"))
    assert status.returncode == 0 and "SERVING" in status.stdout and "freshness: sync lag" in status.stdout


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def test_http_requests_carry_a_request_id(sidecar: Sidecar) -> None:
    given = httpx.get(f"{sidecar.http_url}/healthz", headers={"X-Request-Id": "req-123"}, timeout=5)
    assert given.headers["X-Request-Id"] == "req-123"
    fresh = httpx.get(f"{sidecar.http_url}/healthz", timeout=5)
    assert len(fresh.headers["X-Request-Id"]) == 16


def test_the_answer_cache_has_its_own_bound_and_zero_turns_it_off(
    tmp_path: Path, example_catalog: Path, redis_server: RedisServer, key_prefix: str
) -> None:
    args = ["--store", "redis", "--redis-url", redis_server.url, "--redis-key-prefix", key_prefix]
    sidecar = start_sidecar(tmp_path, example_catalog, [*args, "--answer-cache-max-entries", "0"])
    try:
        check = pb.CheckEntitlementRequest(subscription_id="sub_acme_main", feature_code="sso")
        for _ in range(5):
            assert stub(sidecar).CheckEntitlement(check, timeout=5).allowed
        text = httpx.get(f"{sidecar.http_url}/metrics", timeout=5).text
        assert _series(text, "entitlements_answer_cache_hits_total")[""] == 0  # every check computed...
        assert _series(text, "entitlements_l1_hits_total")[""] >= 4  # ...from the L1, which is still on
    finally:
        sidecar.terminate()
