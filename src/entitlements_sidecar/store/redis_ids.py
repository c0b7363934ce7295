"""The map's set of live subscription ids, sharded into small Redis hashes (docs/adr/0012).

One Redis set of a million members costs about 70 bytes a member (a hash table); hashes of up to 128
short fields are kept as a compact list at about 15. The ids are spread over `SHARDS` hashes by CRC32, so
up to about two million subscriptions every shard stays compact (past that they turn into hash tables,
which costs what one set would). A walk reads the shards in order; its cursor is the next shard, so a
walk resumed from a saved cursor lists every id that was live throughout.
"""

from __future__ import annotations

import zlib
from typing import Final

from entitlements_sidecar.store.lua import Command, execute
from entitlements_sidecar.store.redis_connection import REDIS_FAILURES, RedisClient, text
from entitlements_sidecar.store.redis_errors import unavailable

SHARDS: Final = 16_384
_BATCH: Final = 16  # shards read per round trip: a whole walk is SHARDS / _BATCH round trips at any N


def shard_of(external_id: str) -> int:
    return zlib.crc32(external_id.encode()) % SHARDS


class ShardedIds:
    def __init__(self, client: RedisClient, prefix: str) -> None:
        self._redis = client
        self._prefix = f"{prefix}ids:"

    def key(self, external_id: str) -> str:
        return f"{self._prefix}{shard_of(external_id)}"

    def add(self, external_id: str) -> Command:
        return Command("HSET", self.key(external_id), external_id, "")

    def remove(self, external_id: str) -> Command:
        return Command("HDEL", self.key(external_id), external_id)

    async def page(self, cursor: int, count: int) -> tuple[int, list[str]]:
        """At least `count` ids from shard `cursor` on (fewer at the end) and the next cursor (0 at the end).
        A cursor that is no shard (a checkpoint of another layout) walks from the start: ids may repeat,
        none is missed."""
        if not 0 <= cursor < SHARDS:
            cursor = 0
        ids: list[str] = []
        while cursor < SHARDS and len(ids) < count:
            shards = range(cursor, min(SHARDS, cursor + _BATCH))
            try:
                replies = await execute(self._redis, [Command("HKEYS", f"{self._prefix}{s}") for s in shards])
            except REDIS_FAILURES as exc:
                raise unavailable(exc) from exc
            ids += [text(member) for reply in replies for member in reply]
            cursor = shards[-1] + 1
        return (cursor if cursor < SHARDS else 0), ids

    async def all(self) -> set[str]:
        found: set[str] = set()
        cursor = 0
        while True:
            cursor, ids = await self.page(cursor, 10_000)
            found.update(ids)
            if cursor == 0:
                return found
