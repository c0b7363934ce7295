"""Walking the map's live subscription ids: SCAN over the entry keys, `{prefix}e:{<id>}`.

The map keeps no set of ids: on libc malloc a set member costs about 75 bytes, a sixth of a subscription's
share of the map (bench-scale S1). SCAN promises what SSCAN did: a key present for the whole walk is
returned at least once, also when the walk resumes from a saved cursor. It examines every key of the
database (customers and usage counters too), so a step scans on until it has about `count` entries or
reaches the end. Tombstones are entry keys without a body; a step leaves them out.

On a Redis Cluster the walk visits the masters one after the other, ordered by address; the position is
`master index * 2**64 + that master's cursor`. A change of masters between steps (a failover, a
resharding) can skip some ids in that walk; the next one lists them. A restarted Redis hashes anew, so a
cursor saved before a restart has the same caveat, as it had with SSCAN.
"""

from __future__ import annotations

import re
from typing import Any

from redis.asyncio.cluster import RedisCluster

from entitlements_sidecar.store.redis_connection import REDIS_FAILURES, RedisClient, text
from entitlements_sidecar.store.redis_errors import unavailable

_MASTER = 2**64  # SCAN cursors are unsigned 64-bit


class EntryWalk:
    def __init__(self, client: RedisClient, prefix: str) -> None:
        self._redis = client
        self._match = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "e:{*}"
        self._start = len(prefix) + len("e:{")

    async def page(self, position: int, count: int) -> tuple[int, list[str]]:
        """About `count` live ids from `position` (0 to begin) and the next position (0 at the end)."""
        try:
            keys: list[str] = []
            while True:
                position, found = await self._scan(position, count)
                keys += found
                if position == 0 or len(keys) >= count:
                    break
            alive = await self._alive(keys)
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        return position, [key[self._start : -1] for key, live in zip(keys, alive, strict=True) if live]

    async def _scan(self, position: int, count: int) -> tuple[int, list[str]]:
        if not isinstance(self._redis, RedisCluster):
            following, keys = await self._redis.scan(position, match=self._match, count=count)
            return int(following), [text(k) for k in keys]
        masters = sorted(self._redis.get_primaries(), key=lambda node: node.name)
        index, cursor = divmod(position, _MASTER)
        if index >= len(masters):  # fewer masters than when the position was saved
            return 0, []
        master = masters[index]
        # A cluster's SCAN answers {master name: cursor} for the masters it was sent to.
        reply: Any = await self._redis.scan(cursor, match=self._match, count=count, target_nodes=master)
        cursors, keys = reply
        following = int(cursors[master.name])
        if following:
            return index * _MASTER + following, [text(k) for k in keys]
        return ((index + 1) * _MASTER if index + 1 < len(masters) else 0), [text(k) for k in keys]

    async def _alive(self, keys: list[str]) -> list[Any]:
        if not keys:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hexists(key, "b")
            return list(await pipe.execute())
