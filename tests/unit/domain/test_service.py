"""ReadService with the in-memory store and the catalog source: consistency modes and freshness."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from entitlements_sidecar.domain.check import Reason
from entitlements_sidecar.domain.errors import NotReadyError
from entitlements_sidecar.domain.map_status import MapStatus
from entitlements_sidecar.domain.ports import Origin
from entitlements_sidecar.domain.queries import (
    FULLY_CONSISTENT,
    CheckQuery,
    Consistency,
    Subject,
    SubjectKind,
)
from entitlements_sidecar.domain.service import ReadService
from entitlements_sidecar.sources.catalog_source import CatalogSource
from entitlements_sidecar.store.map_meta_memory import MemoryMapMeta
from entitlements_sidecar.store.memory import MemoryStore
from entitlements_sidecar.sync.catalog_sync import CatalogSync

MAIN = Subject(SubjectKind.SUBSCRIPTION, "sub_acme_main")
ACME = Subject(SubjectKind.CUSTOMER, "acme")


@pytest.fixture
async def setup(example_catalog: Path) -> tuple[ReadService, MemoryStore, Path]:
    store = MemoryStore()
    await store.start()
    source = CatalogSource(example_catalog, store)
    await CatalogSync(source, store, MemoryMapMeta()).initial_load()
    return ReadService(store, source, MapStatus(complete=True)), store, example_catalog


def edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def seats(consistency: Consistency | None = None, subject: Subject = MAIN) -> CheckQuery:
    return CheckQuery.build(subject, "seats", "max", consistency=consistency or Consistency())


async def test_default_read_answers_from_store(setup: tuple[ReadService, MemoryStore, Path]) -> None:
    service, _, _ = setup
    answer = await service.check(seats())
    assert answer.decision.allowed and answer.decision.privilege is not None
    assert answer.decision.privilege.value == 25
    assert answer.freshness.version > 0
    assert (answer.freshness.origin, answer.freshness.stale) == (Origin.MEMORY, False)


async def test_fully_consistent_reads_through_and_updates_the_store(
    setup: tuple[ReadService, MemoryStore, Path],
) -> None:
    service, store, catalog = setup
    edit(catalog, "seats: {max: 25}", "seats: {max: 40}")
    before = await service.check(seats())
    assert before.decision.privilege is not None and before.decision.privilege.value == 25
    answer = await service.check(seats(FULLY_CONSISTENT))
    assert answer.decision.privilege is not None and answer.decision.privilege.value == 40
    assert answer.freshness.origin is Origin.SOURCE and answer.freshness.version > before.freshness.version
    record = await store.get_subscription("sub_acme_main")
    assert record is not None and record.version == answer.freshness.version


async def test_min_version_refreshes_when_older_and_marks_stale_if_source_has_nothing_newer(
    setup: tuple[ReadService, MemoryStore, Path],
) -> None:
    service, _, catalog = setup
    first = await service.check(seats(Consistency.at_least(1)))
    assert first.freshness.origin is Origin.MEMORY
    edit(catalog, "seats: {max: 25}", "seats: {max: 41}")
    answer = await service.check(seats(Consistency.at_least(first.freshness.version + 1)))
    assert answer.decision.privilege is not None and answer.decision.privilege.value == 41
    assert answer.freshness.version > first.freshness.version and not answer.freshness.stale
    beyond = await service.check(seats(Consistency.at_least(answer.freshness.version + 7)))
    assert (beyond.freshness.version, beyond.freshness.stale) == (answer.freshness.version, True)


async def test_fully_consistent_sees_a_deleted_subscription(setup: tuple[ReadService, MemoryStore, Path]) -> None:
    service, store, catalog = setup
    edit(catalog, "external_id: sub_globex", "external_id: sub_globex_renamed")
    query = CheckQuery.build(Subject(SubjectKind.SUBSCRIPTION, "sub_globex"), "seats", consistency=FULLY_CONSISTENT)
    answer = await service.check(query)
    assert answer.decision.reason is Reason.SUBSCRIPTION_NOT_FOUND
    assert await store.get_subscription("sub_globex") is None


async def test_customer_reads_merge_and_report_customer_version(
    setup: tuple[ReadService, MemoryStore, Path],
) -> None:
    service, _, catalog = setup
    answer = await service.check(seats(subject=ACME))
    assert answer.decision.subscription_id == "sub_acme_main"
    assert answer.freshness.version == 2  # two subscriptions were written for acme
    edit(
        catalog,
        "external_customer_id: acme\n    plan_code: starter",
        "external_customer_id: globex\n    plan_code: starter",
    )
    full = await service.get(ACME, FULLY_CONSISTENT)
    assert [r.subscription.external_id for r in full.subscriptions] == ["sub_acme_main"]
    assert full.freshness.origin is Origin.SOURCE and full.freshness.version > 2
    view = await service.get(Subject(SubjectKind.CUSTOMER, "globex"))
    assert {r.subscription.external_id for r in view.subscriptions} == {"sub_globex", "sub_acme_eu"}


async def test_customer_min_version(setup: tuple[ReadService, MemoryStore, Path]) -> None:
    service, _, _ = setup
    answer = await service.check(seats(Consistency.at_least(50), subject=ACME))
    assert answer.freshness.stale is True
    unknown = await service.check(seats(Consistency.at_least(1), subject=Subject(SubjectKind.CUSTOMER, "nobody")))
    assert unknown.decision.reason is Reason.CUSTOMER_NOT_FOUND


async def test_get_for_unknown_and_inactive_subjects(setup: tuple[ReadService, MemoryStore, Path]) -> None:
    service, _, _ = setup
    missing = await service.get(Subject(SubjectKind.SUBSCRIPTION, "nope"))
    assert (missing.found, missing.features, missing.freshness.version) == (False, {}, 0)
    pending = await service.get(Subject(SubjectKind.SUBSCRIPTION, "sub_initech_next"))
    assert pending.found and pending.features == {}
    assert pending.subscriptions[0].subscription.status.value == "pending"


async def test_on_a_map_not_known_complete_not_found_is_not_an_answer(example_catalog: Path) -> None:
    store = MemoryStore()
    await store.start()
    source = CatalogSource(example_catalog, store)
    await CatalogSync(source, store, MemoryMapMeta()).initial_load()
    status = MapStatus()
    status.doubt("lost: being rebuilt")
    service = ReadService(store, source, status)
    unknown = CheckQuery.build(Subject(SubjectKind.SUBSCRIPTION, "sub_not_loaded_yet"), "sso")
    with pytest.raises(NotReadyError, match="the map is not complete \\(lost: being rebuilt\\)"):
        await service.check(unknown)
    with pytest.raises(NotReadyError):
        await service.get(Subject(SubjectKind.CUSTOMER, "nobody"))
    # What the map holds is answered as usual; a customer's answer may miss subscriptions, so it is stale.
    known = await service.check(CheckQuery.build(Subject(SubjectKind.SUBSCRIPTION, "sub_acme_main"), "sso"))
    assert known.decision.reason is Reason.ENTITLED and not known.freshness.stale
    acme = await service.check(CheckQuery.build(ACME, "sso"))
    assert acme.decision.allowed and acme.freshness.stale
    # A read through to the source is an answer whatever the map holds.
    gone = await service.check(
        CheckQuery.build(Subject(SubjectKind.SUBSCRIPTION, "x"), "sso", consistency=FULLY_CONSISTENT)
    )
    assert gone.decision.reason is Reason.SUBSCRIPTION_NOT_FOUND
    status.confirm()
    assert (await service.check(unknown)).decision.reason is Reason.SUBSCRIPTION_NOT_FOUND
    assert not (await service.check(CheckQuery.build(ACME, "sso"))).freshness.stale
