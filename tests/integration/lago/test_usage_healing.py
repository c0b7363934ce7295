"""Counters learn Lago's own count: usage that reached Lago by other paths is counted when a period's
counter is first needed and by periodic healing, an `alert.triggered` blocks at once, and a Redis that
restarted empty (counters gone) still holds the quota. Sidecar processes, a real Redis, the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import usage_pb2 as upb
from entitlements_sidecar.gen.entitlements.v1 import usage_pb2_grpc as upb_grpc
from tests.integration.lago.conftest import SyncerFactory
from tests.integration.lago.usage_calls import consume, ledger
from tests.lago_emulator.server import LagoEmulator
from tests.support.processes import RedisServer, Sidecar
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


def sent_by_the_app_itself(lago: LagoEmulator, count: int, subscription: str = "sub_0", tag: str = "app") -> None:
    """Events that reach Lago without the sidecar (the app posts them itself)."""
    with lago.state.lock:
        lago.state.usage.ingest(
            [{"transaction_id": f"{tag}-{i}", "code": "api_calls", "external_subscription_id": subscription}
             for i in range(count)],
            batch=True,
        )  # fmt: skip


def test_a_new_period_starts_from_what_lago_counted(
    lago: LagoEmulator,
    start_syncer: SyncerFactory,
    meters: list[str],
) -> None:
    sent_by_the_app_itself(lago, 3)  # quota 5
    syncer = start_syncer(*meters).sidecar
    first = consume(syncer, "c0")
    assert (first.recorded, first.usage.used, first.usage.HasField("reconciled_at")) == (True, 3, True)
    assert consume(syncer, "c1").recorded
    refused = consume(syncer, "c2")
    assert (refused.recorded, refused.usage.used) == (False, 5)


def test_healing_counts_usage_lago_got_later(
    lago: LagoEmulator,
    start_syncer: SyncerFactory,
    meters: list[str],
) -> None:
    syncer = start_syncer(*meters, "--usage-heal-seconds", "0.5").sidecar
    assert consume(syncer, "c0").usage.used == 0  # seeded: Lago had nothing
    sent_by_the_app_itself(lago, 3)
    # Lago now counts 4 (ours and the app's 3): after a healing pass the counter says 4, and 1 is left.
    eventually(lambda: "usage counter raised" in syncer.log(), timeout=10, what="a healing pass")
    assert consume(syncer, "c1").usage.used == 4
    assert not consume(syncer, "c2").recorded


def test_an_alert_from_lago_blocks_at_once(
    lago: LagoEmulator,
    start_syncer: SyncerFactory,
    meters: list[str],
) -> None:
    syncer = start_syncer(*meters, "--usage-heal-seconds", "3600").sidecar  # no healing pass in this test
    assert consume(syncer, "c0").recorded
    sent_by_the_app_itself(lago, 6)
    lago.state.trigger_alert("sub_0", "api_calls", threshold=5)
    assert lago.flush() == [200]
    eventually(lambda: over_quota(syncer), timeout=10, what="blocked after the alert")  # checks record nothing
    refused = consume(syncer, "after")
    assert (refused.recorded, refused.reason) == (False, pb.USAGE_REASON_OVER_QUOTA)
    # Lago's 6 from the app, and ours once Lago has it (a count only ever moves up to Lago's)
    assert refused.usage.used in (6, 7)


def over_quota(sidecar: Sidecar) -> bool:
    request = upb.CheckUsageRequest(subscription_id="sub_0", feature_code="api", requested=1)
    answer = upb_grpc.UsageServiceStub(sidecar.channel).CheckUsage(request, timeout=5)
    return answer.reason == pb.USAGE_REASON_OVER_QUOTA


@pytest.fixture
def redis_args(own_redis: RedisServer) -> list[str]:
    return ["--redis-url", own_redis.url]


def test_a_redis_restarted_empty_keeps_the_quota_from_lagos_count(
    lago: LagoEmulator,
    start_syncer: SyncerFactory,
    meters: list[str],
    own_redis: RedisServer,
    tmp_path: Path,
) -> None:
    syncer = start_syncer(*meters).sidecar
    assert all(consume(syncer, f"c{i}").recorded for i in range(5))  # the quota of 5, used up
    eventually(lambda: len(ledger(lago)) == 5, timeout=10, what="all 5 in Lago")
    own_redis.kill()
    own_redis.restart()  # nothing saved: the counters are gone with everything else
    answers: list[upb.ConsumeUsageResponse] = []

    def refused_by_the_quota() -> bool:
        try:
            answer = consume(syncer, f"after-{len(answers)}")
        except Exception:  # UNAVAILABLE while the sidecar reconnects and the map is reloaded
            return False
        answers.append(answer)
        return answer.usage.quota == 5 and answer.usage.used == 5 and not answer.allowed

    eventually(refused_by_the_quota, timeout=30, what="the quota held after the restart")
    assert not any(answer.recorded for answer in answers)  # nothing past the quota, even while reloading
