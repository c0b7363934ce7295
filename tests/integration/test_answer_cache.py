"""The pre-serialized answer cache, on a real in-process gRPC server over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import pytest

from entitlements_sidecar.domain.map_status import MapStatus
from entitlements_sidecar.domain.service import ReadService
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from entitlements_sidecar.metrics import Metrics
from entitlements_sidecar.sources.catalog_source import CatalogSource
from entitlements_sidecar.store.map_meta_memory import MemoryMapMeta
from entitlements_sidecar.store.memory import MemoryStore
from entitlements_sidecar.sync.catalog_sync import CatalogSync
from entitlements_sidecar.transport.grpc.answer_cache import AnswerCache, _split
from entitlements_sidecar.transport.grpc.loop_bridge import LoopBridge
from entitlements_sidecar.transport.grpc.routing import StreamSlots
from entitlements_sidecar.transport.grpc.server import GrpcServer, Keepalive
from entitlements_sidecar.transport.grpc.servicer import EntitlementServicer
from entitlements_sidecar.transport.grpc.usage_mapping import EntitlementUsage
from tests.support.builders import STARTER, own

pytestmark = pytest.mark.integration

MAX = pb.CheckEntitlementRequest(subscription_id="sub_acme_main", feature_code="seats", privilege_code="max")


def test_split_finds_each_item_and_refuses_other_fields() -> None:
    items = [MAX, pb.CheckEntitlementRequest(customer_id="c" * 300, feature_code="f")]
    raw = pb.CheckEntitlementsRequest(checks=items).SerializeToString()
    assert _split(raw) == [i.SerializeToString() for i in items]
    assert _split(b"") == []
    assert _split(b"\x12\x00") is None  # field 2: not ours
    assert _split(b"\x0a\x05ab") is None  # truncated


class Served(NamedTuple):
    stub: pb_grpc.EntitlementServiceAsyncStub
    answers: AnswerCache
    store: MemoryStore
    channel: grpc.aio.Channel


@pytest.fixture
async def served(example_catalog: Path) -> AsyncIterator[Served]:
    store = MemoryStore()
    await store.start()
    source = CatalogSource(example_catalog, store)
    await CatalogSync(source, store, MemoryMapMeta()).initial_load()
    service = ReadService(store, source, MapStatus(complete=True))
    servicer = EntitlementServicer(service, store, 10, 100, Metrics(), EntitlementUsage(None))
    bridge = LoopBridge()
    answers = AnswerCache(servicer, store, bridge, Metrics())
    server = GrpcServer(
        servicer, "127.0.0.1:0", bridge, answers, 2, StreamSlots(10), [], 1 << 20, None,
        reuse_port=False, keepalive=Keepalive(),
    )  # fmt: skip
    await server.start()
    await server.set_serving(True)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield Served(pb_grpc.EntitlementServiceStub(channel), answers, store, channel)
    await server.stop(0)


async def test_repeated_checks_are_answered_from_the_cache_until_a_change(
    served: Served,
) -> None:
    stub, answers, store, _ = served
    first = await stub.CheckEntitlement(MAX)
    assert len(answers) == 1
    assert await stub.CheckEntitlement(MAX) == first
    await store.put_subscription(own("sub_acme_main", customer="acme", plan=STARTER))
    assert len(answers) == 0
    changed = await stub.CheckEntitlement(MAX)
    assert changed.value.int_value == 5 and changed.freshness.version > first.freshness.version


async def test_consistency_requests_are_not_cached(
    served: Served,
) -> None:
    stub, answers, _, _ = served
    request = pb.CheckEntitlementRequest(subscription_id="sub_globex", feature_code="seats",
                                         consistency=pb.Consistency(fully_consistent=True))  # fmt: skip
    assert (await stub.CheckEntitlement(request)).freshness.source == pb.SOURCE_SOURCE
    assert len(answers) == 0


async def test_batches_mix_cached_fresh_and_bad_items(
    served: Served,
) -> None:
    stub, answers, _, _ = served
    await stub.CheckEntitlement(MAX)
    bad = pb.CheckEntitlementRequest(subscription_id="s")  # no feature_code
    other = pb.CheckEntitlementRequest(customer_id="acme", feature_code="analytics_api")
    results = (await stub.CheckEntitlements(pb.CheckEntitlementsRequest(checks=[MAX, bad, other]))).results
    assert [r.WhichOneof("outcome") for r in results] == ["response", "error", "response"]
    assert results[0].response.value.int_value == 25
    assert (results[1].error.code, results[1].error.field) == (3, "checks[1].feature_code")
    assert results[2].response.allowed
    assert len(answers) == 2
    too_many = pb.CheckEntitlementsRequest(checks=[MAX] * 11)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CheckEntitlements(too_many)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_garbage_bytes_are_invalid_argument(
    served: Served,
) -> None:
    raw: Any = served.channel.unary_unary("/entitlements.v1.EntitlementService/CheckEntitlement")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw(b"\xff\xff\xff")
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_nothing_is_kept_while_the_map_is_older_than_the_budget(served: Served) -> None:
    stub, answers, _, _ = served
    await stub.CheckEntitlement(MAX)
    assert len(answers) == 1
    answers.set_fresh(False)  # the health monitor says the sync lag is over budget
    assert len(answers) == 0
    await stub.CheckEntitlement(MAX)
    await stub.CheckEntitlement(MAX)
    assert len(answers) == 0  # every check goes through the failure policy
    answers.set_fresh(True)
    await stub.CheckEntitlement(MAX)
    assert len(answers) == 1
