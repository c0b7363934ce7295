"""A full sync's checkpoint in this process (the embedded store: lost with the map, as it should be)."""

from __future__ import annotations

from entitlements_sidecar.domain.ports import SyncCheckpoint


class MemoryCheckpoints:
    def __init__(self) -> None:
        self._checkpoint: SyncCheckpoint | None = None

    async def read(self) -> SyncCheckpoint | None:
        return self._checkpoint

    async def write(self, checkpoint: SyncCheckpoint) -> None:
        self._checkpoint = checkpoint

    async def clear(self) -> None:
        self._checkpoint = None
