"""A full sync's checkpoint in Redis: `{prefix}sync`, a hash beside the map (lost with it, as the map's
marker is: a Redis that restarted empty restarts the sync from the beginning, which it must)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from entitlements_sidecar.domain.ports import SyncCheckpoint
from entitlements_sidecar.store.redis_connection import REDIS_FAILURES, RedisClient, text
from entitlements_sidecar.store.redis_errors import unavailable


class RedisCheckpoints:
    def __init__(self, client: RedisClient, prefix: str = "ent:") -> None:
        self._redis = client
        self._key = f"{prefix}sync"

    async def read(self) -> SyncCheckpoint | None:
        fields = await self._call(self._redis.hgetall(self._key))
        try:
            return SyncCheckpoint(
                text(fields[b"epoch"]), int(fields[b"started_ms"]), text(fields[b"phase"]), int(fields[b"position"])
            )
        except (KeyError, ValueError):
            return None  # none, or not one this version wrote: start over

    async def write(self, checkpoint: SyncCheckpoint) -> None:
        mapping = {
            "epoch": checkpoint.epoch,
            "started_ms": checkpoint.started_ms,
            "phase": checkpoint.phase,
            "position": checkpoint.position,
        }
        await self._call(self._redis.hset(self._key, mapping=mapping))  # type: ignore[arg-type]

    async def clear(self) -> None:
        await self._call(self._redis.delete(self._key))

    async def _call(self, pending: Awaitable[Any]) -> Any:
        try:
            return await pending
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
