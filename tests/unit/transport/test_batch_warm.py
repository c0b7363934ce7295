"""A batch of checks on cold subscriptions reads them from the store in one call, then answers from the L1:
through the servicer and through the answer cache (the default path, which checks item by item)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from entitlements_sidecar.domain.map_status import MapStatus
from entitlements_sidecar.domain.ports import StoredSubscription
from entitlements_sidecar.domain.service import ReadService
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.metrics import Metrics
from entitlements_sidecar.store.cached import CachedStore
from entitlements_sidecar.store.memory import MemoryStore
from entitlements_sidecar.transport.grpc.answer_cache import AnswerCache
from entitlements_sidecar.transport.grpc.loop_bridge import LoopBridge
from entitlements_sidecar.transport.grpc.servicer import EntitlementServicer
from entitlements_sidecar.transport.grpc.usage_mapping import EntitlementUsage
from tests.support.builders import own, seed


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[list[str]] = []  # the calls the L1 made (the memory store's batch reads one by one)
        self._batch = False

    async def get_subscriptions(self, external_ids: Sequence[str]) -> list[StoredSubscription | None]:
        self.reads.append(list(external_ids))
        self._batch = True
        try:
            return await super().get_subscriptions(external_ids)
        finally:
            self._batch = False

    async def get_subscription(self, external_id: str, min_version: int = 0) -> StoredSubscription | None:
        if not self._batch:
            self.reads.append([external_id])
        return await super().get_subscription(external_id, min_version)


async def servicer(warm: bool) -> tuple[EntitlementServicer, CountingStore]:
    inner = CountingStore()
    cached = CachedStore(inner)
    await cached.start()
    await seed(inner)
    await inner.put_subscriptions([own(f"s{n}") for n in range(3)])
    service = ReadService(cached, None, MapStatus(complete=True))  # type: ignore[arg-type]
    served = EntitlementServicer(service, cached, 10, 10, Metrics(), EntitlementUsage(None), warm_batches=warm)
    inner.reads.clear()
    return served, inner


def batch(*ids: str) -> pb.CheckEntitlementsRequest:
    return pb.CheckEntitlementsRequest(
        checks=[pb.CheckEntitlementRequest(subscription_id=i, feature_code="seats", privilege_code="max") for i in ids]
    )


async def test_a_cold_batch_is_one_store_read_and_answers_the_same() -> None:
    warm, counted = await servicer(warm=True)
    context: Any = None  # no item aborts the call: each answers or fails alone
    answered = await warm.CheckEntitlements(batch("s0", "s1", "s2", "s1", "nope"), context)
    assert counted.reads == [["s0", "s1", "s2", "nope"]]  # then every item hit the L1 (a miss is cached too)
    cold, one_each = await servicer(warm=False)
    unwarmed = await cold.CheckEntitlements(batch("s0", "s1", "s2", "s1", "nope"), context)
    assert len(one_each.reads) == 4
    assert [decision(r) for r in answered.results] == [decision(r) for r in unwarmed.results]
    assert [decision(r) for r in answered.results] == [(True, pb.REASON_ENTITLED, 10)] * 4 + [
        (False, pb.REASON_SUBSCRIPTION_NOT_FOUND, 0)
    ]


def decision(result: pb.CheckEntitlementsResult) -> tuple[bool, int, int]:
    return result.response.allowed, result.response.reason, result.response.value.int_value


async def test_the_answer_caches_misses_are_warmed_together_and_its_hits_are_not_read() -> None:
    served, counted = await servicer(warm=True)
    answers = AnswerCache(served, served._store, LoopBridge(), Metrics())
    context: Any = None
    first = await answers._check_many_on_loop(batch("s0", "s1").SerializeToString(), context)
    assert counted.reads == [["s0", "s1"]]
    counted.reads.clear()
    raw = await answers._check_many_on_loop(batch("s0", "s1", "s2", "nope").SerializeToString(), context)
    assert counted.reads == [["s2", "nope"]]  # s0 and s1 came from kept answers: not read again
    results = pb.CheckEntitlementsResponse.FromString(raw).results
    assert [decision(r) for r in results] == [(True, pb.REASON_ENTITLED, 10)] * 3 + [
        (False, pb.REASON_SUBSCRIPTION_NOT_FOUND, 0)
    ]
    assert pb.CheckEntitlementsResponse.FromString(first).results[:2] == results[:2]
