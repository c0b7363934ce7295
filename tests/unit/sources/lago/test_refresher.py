"""The refresher, the one writer of what Lago says, on the memory store with an in-process Lago."""

from __future__ import annotations

import pytest

from entitlements_sidecar.domain.events import SyncEvent, Target
from entitlements_sidecar.domain.ports import LATEST, ChangeKind
from entitlements_sidecar.sources.lago.errors import LagoAuthError, LagoRequestError
from entitlements_sidecar.sources.lago.refresher import Refresher
from entitlements_sidecar.store.memory import MemoryStore
from tests.support.fake_lago import FakeLago


@pytest.fixture
def lago() -> FakeLago:
    lago = FakeLago()
    lago.add_plan("pro", seats=10)
    lago.subscribe("sub_a", "acme", "pro")
    lago.subscribe("sub_b", "acme", "pro", override=25)
    return lago


async def seats(store: MemoryStore, external_id: str) -> object:
    record = await store.get_subscription(external_id, LATEST)
    assert record is not None, external_id
    return record.subscription.features["seats"].privileges["max"].value


async def test_a_refresh_stores_what_lago_says_and_changes_nothing_the_second_time(lago: FakeLago) -> None:
    store = MemoryStore()
    refresher = Refresher(lago, store)
    assert await refresher.refresh_subscription("sub_b") is True
    assert await seats(store, "sub_b") == 25
    assert await refresher.refresh_subscription("sub_b") is False  # same answer: no new version


async def test_a_read_older_than_the_stored_one_is_not_written(lago: FakeLago) -> None:
    store = MemoryStore()
    refresher = Refresher(lago, store)
    newer = dict(lago.subscriptions["sub_a"])
    assert await refresher.store_subscription(newer, observed=2_000, reason="webhook") is True
    older = dict(newer, plan_code="pro", status="terminated")  # what a slower, earlier read returned
    assert await refresher.store_subscription(older, observed=1_000, reason="read_through") is False
    record = await store.get_subscription("sub_a", LATEST)
    assert record is not None and record.subscription.status.value == "active"


async def test_a_subscription_lago_no_longer_has_is_removed(lago: FakeLago) -> None:
    store = MemoryStore()
    refresher = Refresher(lago, store)
    await refresher.refresh_subscription("sub_a")
    del lago.subscriptions["sub_a"]
    assert await refresher.refresh_subscription("sub_a") is True
    assert await store.get_subscription("sub_a", LATEST) is None


async def test_a_plan_change_is_resolved_locally_with_one_request(lago: FakeLago) -> None:
    store = MemoryStore()
    refresher = Refresher(lago, store)
    for external_id in ("sub_a", "sub_b"):
        await refresher.refresh_subscription(external_id)
    asked_before = lago.asked.copy()
    changes: list[ChangeKind] = []
    store.add_listener(lambda change: changes.append(change.kind))
    lago.add_plan("pro", seats=12)
    assert await refresher.refresh_plan("pro")
    assert (await seats(store, "sub_a"), await seats(store, "sub_b")) == (12, 25)  # sub_b keeps its override
    assert lago.asked - asked_before == {"plan": 1}
    assert changes == [ChangeKind.PLAN]  # one write: no subscription was rewritten


async def test_a_batch_refreshes_each_target_once(lago: FakeLago) -> None:
    refresher = Refresher(lago, MemoryStore())
    events = [SyncEvent(Target.SUBSCRIPTION, "sub_a", "subscription.updated")] * 5
    await refresher.apply(events)
    assert lago.asked["subscription"] == 1


async def test_one_refused_subscription_does_not_stop_the_batch_but_a_refused_key_does(lago: FakeLago) -> None:
    store = MemoryStore()

    class OneRefused(FakeLago):
        async def get_subscription(self, external_id: str, status: str | None = None) -> dict[str, object] | None:
            if external_id == "sub_a":
                raise LagoRequestError("lago 422 on /subscriptions/sub_a", 422)
            return await super().get_subscription(external_id, status)

    partly = OneRefused(plans=lago.plans, subscriptions=lago.subscriptions)
    refresher = Refresher(partly, store)
    await refresher.apply([SyncEvent(Target.SUBSCRIPTION, s, "subscription.updated") for s in ("sub_a", "sub_b")])
    assert await store.get_subscription("sub_a", LATEST) is None and await seats(store, "sub_b") == 25

    lago.failing = LagoAuthError("lago 401 on /subscriptions/sub_b", 401)
    with pytest.raises(LagoAuthError):  # the worker keeps the batch pending (tests/unit/sync/test_worker.py)
        await Refresher(lago, store).apply([SyncEvent(Target.SUBSCRIPTION, "sub_b", "x")])
