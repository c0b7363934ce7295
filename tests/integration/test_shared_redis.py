"""Two sidecar processes on one real Redis: L1 invalidation across processes, and an L1 hit that
sends no Redis command at all."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from tests.integration.conftest import stub
from tests.support.processes import RedisServer, Sidecar, start_sidecar
from tests.support.wait import eventually

pytestmark = pytest.mark.integration

MAX_SEATS = pb.CheckEntitlementRequest(subscription_id="sub_acme_main", feature_code="seats", privilege_code="max")


@pytest.fixture
def pair(
    tmp_path: Path, redis_server: RedisServer, key_prefix: str, example_catalog: Path
) -> Iterator[tuple[Sidecar, Sidecar]]:
    common = ["--store", "redis", "--redis-url", redis_server.url, "--redis-key-prefix", key_prefix]
    writer = start_sidecar(tmp_path, example_catalog, common, name="writer")
    # The reader polls its catalog only once an hour: everything it learns comes through Redis.
    reader = start_sidecar(tmp_path, example_catalog, [*common, "--catalog-poll-seconds", "3600"], name="reader")
    yield writer, reader
    reader.terminate()
    writer.terminate()


def read_commands(client: redis.Redis, seconds: float = 0.0, sidecars: int = 2) -> dict[str, int]:
    """Calls per command since the last CONFIG RESETSTAT, without the bookkeeping commands and without the
    readiness probe's HGETALL of the map's marker: once a second per sidecar, whatever the checks do (more
    HGETALLs than that would be customer reads)."""
    stats: dict[str, dict[str, int]] = client.info("commandstats")
    counts = {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
    ignored = ("info", "config|resetstat", "config")
    used = {name: calls for name, calls in counts.items() if name not in ignored}
    if used.get("hgetall", 0) <= sidecars * (math.ceil(seconds) + 1):
        used.pop("hgetall", None)
    return used


def test_a_change_written_by_one_sidecar_reaches_the_others_l1(
    pair: tuple[Sidecar, Sidecar], example_catalog: Path
) -> None:
    writer, reader = pair
    before = stub(reader).CheckEntitlement(MAX_SEATS, timeout=5)
    again = stub(reader).CheckEntitlement(MAX_SEATS, timeout=5)
    assert (before.value.int_value, again.freshness.source) == (25, pb.SOURCE_MEMORY)

    text = example_catalog.read_text()
    example_catalog.write_text(text.replace("seats: {max: 25}", "seats: {max: 33}"))
    stat = example_catalog.stat()
    os.utime(example_catalog, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    eventually(
        lambda: stub(writer).CheckEntitlement(MAX_SEATS, timeout=5).value.int_value == 33, what="writer applied edit"
    )
    started = time.monotonic()
    eventually(
        lambda: stub(reader).CheckEntitlement(MAX_SEATS, timeout=5).value.int_value == 33,
        interval=0.002,
        what="reader's L1 invalidated",
    )
    # Reported, not asserted: the budget for propagation is a benchmark's business.
    print(f"reader saw the change {1000 * (time.monotonic() - started):.1f} ms after the writer did")
    after = stub(reader).CheckEntitlement(MAX_SEATS, timeout=5)
    assert after.freshness.version > before.freshness.version


def test_l1_hits_send_no_redis_command(pair: tuple[Sidecar, Sidecar], redis_server: RedisServer) -> None:
    _, reader = pair
    client = redis_server.client()
    customer = pb.CheckEntitlementRequest(customer_id="acme", feature_code="seats", privilege_code="max")
    batch = pb.CheckEntitlementsRequest(checks=[MAX_SEATS, customer] * 10)
    for request in (MAX_SEATS, customer):  # warm the reader's L1
        eventually(
            lambda r=request: stub(reader).CheckEntitlement(r, timeout=5).freshness.source == pb.SOURCE_MEMORY,  # type: ignore[misc]
            what="an L1 hit",
        )
    client.config_resetstat()
    started = time.monotonic()
    for _ in range(200):
        assert stub(reader).CheckEntitlement(MAX_SEATS, timeout=5).freshness.source == pb.SOURCE_MEMORY
        assert stub(reader).CheckEntitlement(customer, timeout=5).allowed
    assert all(r.response.freshness.source == pb.SOURCE_MEMORY for r in stub(reader).CheckEntitlements(batch).results)
    assert read_commands(client, time.monotonic() - started) == {}

    # The measurement can fail: a miss on the same reader does show up as Redis reads.
    cold = pb.CheckEntitlementRequest(subscription_id="sub_globex", feature_code="seats")
    assert stub(reader).CheckEntitlement(cold, timeout=5).freshness.source == pb.SOURCE_REDIS
    assert read_commands(client).get("hmget", 0) >= 1
