"""A full sync over real processes: a cold start answers every subscription after the listing (flagged
until each one is read), and a syncer killed with SIGKILL halfway resumes from its checkpoint, so the
Lago requests stay about N + N/100 and nothing is left provisional."""

from __future__ import annotations

import signal

import grpc
import pytest
import redis

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from tests.integration.lago.conftest import SyncerFactory, seed
from tests.lago_emulator.server import LagoEmulator
from tests.support.processes import RedisServer, Sidecar
from tests.support.wait import eventually

pytestmark = pytest.mark.integration
N = 400


def checks(channel: grpc.Channel) -> list[pb.CheckEntitlementsResult]:
    request = pb.CheckEntitlementsRequest(
        checks=[
            pb.CheckEntitlementRequest(subscription_id=f"sub_{i}", feature_code="seats", privilege_code="max")
            for i in range(N)
        ]
    )
    return list(pb_grpc.EntitlementServiceStub(channel).CheckEntitlements(request, timeout=10).results)


def phase(client: redis.Redis, key_prefix: str) -> tuple[str, int] | None:
    fields: dict[bytes, bytes] = client.hgetall(f"{key_prefix}sync")  # type: ignore[assignment]
    return (fields[b"phase"].decode(), int(fields[b"position"])) if fields else None


def listed(sidecar: Sidecar) -> bool:
    return "syncer loaded" in sidecar.log() or sidecar.process.poll() is not None


@pytest.mark.timeout(120)
def test_a_syncer_killed_halfway_resumes_and_a_cold_start_answers_after_the_listing(
    lago: LagoEmulator, start_syncer: SyncerFactory, redis_server: RedisServer, key_prefix: str
) -> None:
    seed(lago, subscriptions=N)
    lago.state.patch_subscription_entitlements("sub_7", {"seats": {"max": 77}})
    lago.take_outbox()
    client = redis_server.client()
    # 100 requests a second: the listing (4 pages) is quick, the reads (400) take about 4 s.
    first = start_syncer(rate="100", ready=listed)
    answers = checks(first.sidecar.channel)
    assert all(r.response.allowed for r in answers)  # every listed subscription answers at once ...
    assert any(r.response.freshness.stale for r in answers)  # ... the unread ones flagged
    eventually(lambda: (phase(client, key_prefix) or ("", 0))[1] > 0, timeout=30, what="the reads under way")
    first.sidecar.process.send_signal(signal.SIGKILL)
    first.sidecar.process.wait(timeout=10)
    killed_at = len(lago.controls.api_requests())
    assert phase(client, key_prefix) is not None  # the checkpoint outlived the process

    second = start_syncer(rate="100", ready=listed, name="syncer-2")
    eventually(lambda: phase(client, key_prefix) is None, timeout=60, interval=0.1, what="the resumed sync done")
    final = checks(second.sidecar.channel)
    assert all(r.response.allowed and not r.response.freshness.stale for r in final)
    assert final[7].response.value.int_value == 77 and final[8].response.value.int_value == 10
    requests = len(lago.controls.api_requests())
    pages = N // 100
    # Listing, reads, features, two plans; the resumed walk re-asks at most what was in flight when killed.
    assert requests <= 1.02 * (N + pages) + 8, (killed_at, requests)
    client.close()


@pytest.mark.timeout(120)
def test_no_reconciliation_runs_beside_the_first_load(
    lago: LagoEmulator, start_syncer: SyncerFactory, redis_server: RedisServer, key_prefix: str
) -> None:
    """The first load's reads take about 4 s here and a reconciliation is due every second: a cycle beside
    the load would walk the same checkpoint and read the same subscriptions again (with a million
    subscriptions at 50 requests/s, a load takes hours and the default interval is one)."""
    seed(lago, subscriptions=N)
    lago.take_outbox()
    syncer = start_syncer("--reconcile-interval-seconds", "1", rate="100", ready=listed)
    eventually(lambda: not syncer.sidecar.readiness()["checks"]["first_load"]["reads_pending"],
               timeout=60, interval=0.05, what="the first load's reads done")  # fmt: skip
    # The load's requests: up to the read that completed the set of subscriptions. A reconciliation may
    # start as soon as the load ends, so what comes after is not the load's (and the load's end is only
    # seen at the next readiness poll). One beside the load would read subscriptions again before then.
    requests = [path for _, _, path in lago.controls.api_requests()]
    read: set[str] = set()
    load_requests = 0
    for path in requests:
        load_requests += 1
        if path.startswith("/api/v1/subscriptions/") and path.count("/") == 4:
            read.add(path)
            if len(read) == N:
                break
    assert len(read) == N
    # The listing (4 pages), a read per subscription, the features and two plans, and a few retries at most.
    assert load_requests <= N + N // 100 + 8, load_requests
    status = syncer.sidecar.readiness()["checks"]
    assert status["first_load"]["ok"], status
