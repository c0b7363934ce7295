"""The feature catalog in front of Redis: one read per interval, the last copy while the store is down."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from entitlements_sidecar.domain.errors import StoreUnavailableError
from entitlements_sidecar.domain.model import FeatureDefinition
from entitlements_sidecar.store.features_timed import TimedFeatureCatalog


class _Counting:
    def __init__(self) -> None:
        self.reads = 0
        self.down = False

    async def features(self) -> Mapping[str, FeatureDefinition]:
        self.reads += 1
        await asyncio.sleep(0)
        if self.down:
            raise StoreUnavailableError("redis down")
        return {f"f{self.reads}": FeatureDefinition(f"f{self.reads}")}


async def test_reads_once_per_interval_and_keeps_the_last_copy_when_the_store_is_down() -> None:
    now = [0.0]
    inner = _Counting()
    catalog = TimedFeatureCatalog(inner, max_age=5.0, clock=lambda: now[0])
    results = await asyncio.gather(*(catalog.features() for _ in range(10)))
    assert inner.reads == 1 and all(set(r) == {"f1"} for r in results)
    now[0] = 6.0
    assert set(await catalog.features()) == {"f2"}
    inner.down, now[0] = True, 12.0
    assert set(await catalog.features()) == {"f2"}


async def test_no_copy_yet_and_the_store_down_is_an_error() -> None:
    inner = _Counting()
    inner.down = True
    with pytest.raises(StoreUnavailableError):
        await TimedFeatureCatalog(inner).features()
