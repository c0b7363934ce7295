"""A feature catalog read at most once per interval, in front of one that costs a round trip.

Bulk flag answers need every feature definition; they change rarely (a Lago `feature.*` webhook),
so a copy up to `max_age` seconds old is served, and only one read is in flight at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from entitlements_sidecar.domain.errors import EntitlementsError
from entitlements_sidecar.domain.model import FeatureDefinition
from entitlements_sidecar.domain.ports import FeatureCatalog


class TimedFeatureCatalog:
    def __init__(
        self, inner: FeatureCatalog, max_age: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._inner = inner
        self._max_age = max_age
        self._clock = clock
        self._copy: Mapping[str, FeatureDefinition] | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    async def features(self) -> Mapping[str, FeatureDefinition]:
        if self._copy is not None and self._clock() - self._read_at < self._max_age:
            return self._copy
        async with self._lock:  # one read for every caller that found the copy too old
            if self._copy is None or self._clock() - self._read_at >= self._max_age:
                try:
                    self._copy = await self._inner.features()
                except EntitlementsError:
                    if self._copy is None:
                        raise
                    return self._copy  # the store is down: the last list of keys beats no answer
                self._read_at = self._clock()
            return self._copy
