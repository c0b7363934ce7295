"""The map's marker in process memory (embedded mode: the map cannot be lost without the process)."""

from __future__ import annotations

import itertools

from entitlements_sidecar.domain.ports import MapState


class MemoryMapMeta:
    def __init__(self) -> None:
        self._epochs = itertools.count(1)
        self._epoch: str | None = None
        self._loaded_at: int | None = None
        self._confirmed_at: int | None = None

    async def begin_load(self) -> str:
        if self._epoch is None:
            self._epoch = str(next(self._epochs))
        return self._epoch

    async def finish_load(self, epoch: str, at_ms: int) -> bool:
        if epoch != self._epoch:
            return False
        self._loaded_at = self._confirmed_at = at_ms
        return True

    async def read(self) -> MapState:
        return MapState(self._loaded_at, self._confirmed_at)

    async def loaded_at(self) -> int | None:
        return self._loaded_at

    async def mark_confirmed(self, at_ms: int) -> None:
        if self._loaded_at is not None:
            self._confirmed_at = at_ms

    async def confirmed_at(self) -> int | None:
        return self._confirmed_at
