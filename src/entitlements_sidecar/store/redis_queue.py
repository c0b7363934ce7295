"""The durable event queue: a Redis Stream read through a consumer group.

An entry stays pending until acknowledged, so a syncer that dies between read and ack leaves it for
the next reader, which claims entries idle longer than `claim_idle_ms` (XAUTOCLAIM). Deduplication
on Lago's `X-Lago-Unique-Key` and the XADD happen in one script: a duplicate never enters the stream.
The stream and its dedupe keys share the hash tag `{events}`, so in a Redis Cluster they share a slot.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError

from entitlements_sidecar.domain.errors import StoreUnavailableError
from entitlements_sidecar.domain.events import QueuedEvent, SyncEvent, Target
from entitlements_sidecar.store.lua import LuaScript, execute
from entitlements_sidecar.store.redis_connection import REDIS_FAILURES, RedisClient

_PUBLISH = LuaScript("""
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'target', ARGV[3], 'key', ARGV[4], 'type', ARGV[5])
end
return false
""")


class RedisStreamQueue:
    def __init__(
        self,
        client: RedisClient,
        prefix: str = "ent:",
        claim_idle_ms: int = 30_000,
        block_ms: int = 500,
        dedupe_seconds: int = 86_400,
        max_length: int = 1_000_000,
    ) -> None:
        self._redis = client
        self._stream = f"{prefix}{{events}}"
        self._group = "syncers"
        self._consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._claim_idle_ms = claim_idle_ms
        self._block_ms = block_ms
        self._dedupe_seconds = dedupe_seconds
        self._max_length = max_length

    async def start(self) -> None:
        try:
            # From '0': entries queued by the intake before any worker existed are still read.
            await self._redis.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise StoreUnavailableError(f"redis error: {type(exc).__name__}") from exc
        except REDIS_FAILURES as exc:
            raise StoreUnavailableError(f"redis error: {type(exc).__name__}") from exc

    async def publish(self, event: SyncEvent, unique_key: str) -> bool:
        keys = [f"{self._stream}:seen:{unique_key}", self._stream]
        args: list[str | int] = [
            self._dedupe_seconds,
            self._max_length,
            event.target.value,
            event.key,
            event.webhook_type,
        ]
        try:
            [entry_id] = await execute(self._redis, [_PUBLISH.call(keys, args)])
            return entry_id is not None
        except REDIS_FAILURES as exc:
            raise StoreUnavailableError(f"redis error: {type(exc).__name__}") from exc

    async def read(self, count: int) -> list[QueuedEvent]:
        try:
            claimed = await self._redis.xautoclaim(
                self._stream, self._group, self._consumer, self._claim_idle_ms, start_id="0-0", count=count
            )
            entries = claimed[1]
            if not entries:
                answer: Any = await self._redis.xreadgroup(
                    self._group, self._consumer, {self._stream: ">"}, count=count, block=self._block_ms
                )
                entries = answer[0][1] if answer else []
        except REDIS_FAILURES as exc:
            raise StoreUnavailableError(f"redis error: {type(exc).__name__}") from exc
        return [_queued(entry_id, fields) for entry_id, fields in entries if fields]

    async def ack(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(self._stream, self._group, *ids)
                pipe.xdel(self._stream, *ids)
                await pipe.execute()
        except REDIS_FAILURES as exc:
            raise StoreUnavailableError(f"redis error: {type(exc).__name__}") from exc

    async def depth(self) -> int:
        try:
            return int(await self._redis.xlen(self._stream))
        except REDIS_FAILURES as exc:
            raise StoreUnavailableError(f"redis error: {type(exc).__name__}") from exc


def _queued(entry_id: Any, fields: dict[Any, Any]) -> QueuedEvent:
    text = {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in fields.items()
    }
    identifier = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    return QueuedEvent(identifier, SyncEvent(Target(text["target"]), text["key"], text["type"]))
