"""Redis restarted empty under a running syncer and reader: the loss is noticed, the map is rebuilt from
Lago without a restart, no answer meanwhile is a fresh-looking "not found", and every webhook that was
acknowledged is applied."""

from __future__ import annotations

import threading

import grpc
import httpx
import pytest

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from tests.integration.lago.conftest import SyncerFactory, seed
from tests.integration.lago.views import matches, sidecar_view
from tests.lago_emulator.server import LagoEmulator
from tests.support.processes import RedisServer
from tests.support.wait import eventually

pytestmark = pytest.mark.integration

SUBSCRIPTIONS = 300


@pytest.fixture
def redis_args(own_redis: RedisServer) -> list[str]:
    return ["--redis-url", own_redis.url]


class Answers:
    """Checks every subscription on the reader in a loop and keeps what would break the promise."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = pb_grpc.EntitlementServiceStub(channel)
        self.fresh_not_found: list[str] = []
        self.not_authoritative = 0
        self.answered = 0
        self.ready_detail: list[str] = []
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for index in range(0, SUBSCRIPTIONS, 7):
                request = pb.CheckEntitlementRequest(subscription_id=f"sub_{index}", feature_code="seats")
                try:
                    answer = self._stub.CheckEntitlement(request, timeout=2)
                except grpc.RpcError as error:  # not an answer, so nothing it could claim
                    self.failed.append(error.code().name)
                    continue
                self.answered += 1
                if answer.freshness.stale or answer.freshness.source == pb.SOURCE_FALLBACK:
                    self.not_authoritative += 1
                elif answer.reason == pb.REASON_SUBSCRIPTION_NOT_FOUND:
                    self.fresh_not_found.append(f"sub_{index}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_redis_restarted_empty_is_rebuilt_by_the_syncer_and_readers_stay_honest(
    lago: LagoEmulator, start_syncer: SyncerFactory, own_redis: RedisServer
) -> None:
    seed(lago, subscriptions=SUBSCRIPTIONS)
    # 150 Lago requests/s: the rebuild takes about two seconds, long enough to be seen from outside.
    syncer = start_syncer(roles="syncer", name="syncer", rate="150", ready=lambda s: " serving " in s.log())
    reader = start_syncer(roles="reader", name="reader")
    readyz = f"{reader.sidecar.http_url}/readyz"
    stub = pb_grpc.EntitlementServiceStub(reader.sidecar.channel)
    assert stub.CheckEntitlement(pb.CheckEntitlementRequest(subscription_id="sub_3", feature_code="sso")).allowed
    answers = Answers(reader.sidecar.channel)
    eventually(lambda: answers.answered > 50, what="checks running")

    own_redis.kill()
    own_redis.restart()  # nothing was saved: an empty Redis, as a Redis without persistence restarts
    # Empty by construction (no dump to load); the sidecars may have written a key already, so no dbsize.
    assert not (own_redis.directory / "dump.rdb").exists()
    assert own_redis.client().info("server")["uptime_in_seconds"] < 5

    # The reader says why it is not ready while the map is missing or being rebuilt.
    def not_ready_because_of_the_map() -> bool:
        body = httpx.get(readyz, timeout=5).json()
        answers.ready_detail.append(str(body["checks"].get("map")))
        return body["ready"] is False and body["checks"]["map"]["ok"] is False

    eventually(not_ready_because_of_the_map, timeout=10, interval=0.05, what="readiness names the map")
    # A webhook is acknowledged only once it is queued where a worker will read it (503 means Lago retries).
    lago.state.patch_subscription_entitlements("sub_5", {"seats": {"max": 77}})
    [webhook] = lago.take_outbox()
    eventually(lambda: lago.deliver([webhook]) == [200], timeout=15, interval=0.1, what="the webhook acknowledged")

    eventually(lambda: httpx.get(readyz, timeout=5).status_code == 200, timeout=30, what="the reader ready again")
    answers.stop()
    assert answers.fresh_not_found == []  # never a fresh-looking "not found" for a subscription Lago has
    assert answers.not_authoritative > 0  # ... the answers in the gap said they may not be right
    reasons = ("lost (Redis restarted empty", "being rebuilt", "change feed was interrupted")
    assert any(r in answers.ready_detail[-1] for r in reasons), answers.ready_detail[-1]
    eventually(lambda: sidecar_view(reader.sidecar, "sub_5")[1]["seats"]["max"] == 77, what="the acknowledged webhook")
    # Ready after the listing; the reads of each subscription finish the rebuild.
    eventually(lambda: "map rebuilt" in syncer.sidecar.log(), timeout=30, what="the rebuild's reads done")
    for index in range(0, SUBSCRIPTIONS, 13):
        assert matches(lago, reader.sidecar, f"sub_{index}")
    log = syncer.sidecar.log()
    assert "the map is gone from the store" in log and "rebuilding the map" in log
    assert "the queue's consumer group is gone" in log or "webhook accepted" in log
    metrics = httpx.get(f"{syncer.sidecar.http_url}/metrics", timeout=5).text
    assert "entitlements_map_rebuilds_total 1.0" in metrics  # counted once it is complete
    assert "the map is complete again" in reader.sidecar.log()
