"""The durable event queue: a Redis Stream read through a consumer group.

An entry stays pending until acknowledged, so a syncer that dies between read and ack leaves it:
restarted under the same consumer name (the host name by default: a Kubernetes pod keeps it across
container restarts), it reads its own pending entries first; any other syncer claims entries idle
longer than `claim_idle_ms` (XAUTOCLAIM). Deduplication on Lago's `X-Lago-Unique-Key` and the XADD
happen in one script, which also refuses the entry when no consumer group exists (a Redis that restarted
empty lost it): a webhook is acknowledged only once it is where a worker will read it. A worker that
finds the group gone creates it again. The stream and its dedupe keys share the hash tag `{events}`, so
in a Redis Cluster they share a slot.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError

from entitlements_sidecar.domain.errors import StoreUnavailableError
from entitlements_sidecar.domain.events import QueuedEvent, SyncEvent, Target
from entitlements_sidecar.store.lua import LuaScript, execute
from entitlements_sidecar.store.redis_connection import REDIS_FAILURES, RedisClient, text
from entitlements_sidecar.store.redis_errors import unavailable

log = logging.getLogger(__name__)

# KEYS: dedupe key, stream. ARGV: dedupe seconds, max length, target, key, type, group.
# -> the entry id; false for a duplicate; -1 when no group would read it (nothing written)
_PUBLISH = LuaScript("""
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[2])
local found = false
if ok then
  for _, group in ipairs(groups) do
    if group[2] == ARGV[6] then found = true end
  end
end
if not found then return -1 end
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'target', ARGV[3], 'key', ARGV[4], 'type', ARGV[5])
end
return false
""")


class QueueMissingError(StoreUnavailableError):
    """The stream's consumer group is gone (Redis lost it): nothing was queued; a syncer creates it again."""


class RedisStreamQueue:
    def __init__(
        self,
        client: RedisClient,
        prefix: str = "ent:",
        claim_idle_ms: int = 30_000,
        block_ms: int = 500,
        dedupe_seconds: int = 86_400,
        max_length: int = 1_000_000,
        consumer: str = "",
    ) -> None:
        self._redis = client
        self._stream = f"{prefix}{{events}}"
        self._group = "syncers"
        self.consumer = consumer or socket.gethostname()
        self._own_pending: str | None = "0"  # where reading this consumer's own pending entries is at; None: done
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
                raise unavailable(exc) from exc
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc

    async def publish(self, event: SyncEvent, unique_key: str) -> bool:
        keys = [f"{self._stream}:seen:{unique_key}", self._stream]
        args: list[str | int] = [
            self._dedupe_seconds,
            self._max_length,
            event.target.value,
            event.key,
            event.webhook_type,
            self._group,
        ]
        try:
            [entry_id] = await execute(self._redis, [_PUBLISH.call(keys, args)])
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        if entry_id == -1:
            raise QueueMissingError("the queue's consumer group is missing (Redis lost it?); a syncer re-creates it")
        return entry_id is not None

    async def read(self, count: int) -> list[QueuedEvent]:
        try:
            entries = await self._read(count)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise unavailable(exc) from exc
            log.warning("the queue's consumer group is gone (Redis restarted empty?): creating it again")
            await self.start()
            self._own_pending = None  # gone with it
            return []
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        gone = [text(entry_id) for entry_id, fields in entries if not fields]
        if gone:  # pending entries the stream no longer holds (trimmed): nothing to apply, so let them go
            await self.ack(gone)
        return [_queued(entry_id, fields) for entry_id, fields in entries if fields]

    async def _read(self, count: int) -> list[Any]:
        if self._own_pending is not None:
            # Entries this consumer read and did not acknowledge before it stopped: first, without waiting
            # for them to look idle.
            answer: Any = await self._redis.xreadgroup(
                self._group, self.consumer, {self._stream: self._own_pending}, count=count
            )
            entries = answer[0][1] if answer else []
            if entries:
                self._own_pending = text(entries[-1][0])
                return list(entries)
            self._own_pending = None
        claimed = await self._redis.xautoclaim(
            self._stream, self._group, self.consumer, self._claim_idle_ms, start_id="0-0", count=count
        )
        if claimed[1]:
            return list(claimed[1])
        answer = await self._redis.xreadgroup(
            self._group, self.consumer, {self._stream: ">"}, count=count, block=self._block_ms
        )
        return list(answer[0][1]) if answer else []

    async def ack(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xack(self._stream, self._group, *ids)
                pipe.xdel(self._stream, *ids)
                await pipe.execute()
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise unavailable(exc) from exc
            log.info("acknowledged entries went with the lost queue", extra={"entries": len(ids)})
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc

    async def depth(self) -> int:
        try:
            return int(await self._redis.xlen(self._stream))
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc


def _queued(entry_id: Any, fields: dict[Any, Any]) -> QueuedEvent:
    got = {text(k): text(v) for k, v in fields.items()}
    return QueuedEvent(text(entry_id), SyncEvent(Target(got["target"]), got["key"], got["type"]))
