"""The usage outbox in Redis: 16 stream shards (store/usage_keys.py) read through one consumer group.

The counting script adds to a shard, so an event is in the outbox exactly when it was counted. An entry
stays pending until acknowledged: a forwarder restarted under the same consumer name reads its own pending
entries first, and any other claims entries idle longer than `claim_idle_ms` (XAUTOCLAIM). Shards are read
in one pipeline; entries read beyond the count asked for wait in a local buffer (they are pending in our
name, so a crash does not lose them). Nothing is ever trimmed: an entry goes only when acknowledged.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from redis.exceptions import ResponseError

from entitlements_sidecar.domain.usage import UsageEvent
from entitlements_sidecar.domain.usage_outbox import OutboxEntry
from entitlements_sidecar.store.redis_connection import REDIS_FAILURES, RedisClient, text
from entitlements_sidecar.store.redis_errors import unavailable
from entitlements_sidecar.store.usage_keys import OUTBOX_SHARDS, UsageKeys

log = logging.getLogger(__name__)

_GROUP = "forwarders"
_REFUSED_MAX = 100_000  # refused events kept for inspection; they are counted in metrics as well


class RedisUsageOutbox:
    def __init__(
        self, client: RedisClient, prefix: str = "ent:", consumer: str = "", claim_idle_ms: int = 30_000
    ) -> None:
        self._redis = client
        self._keys = UsageKeys(prefix)
        self._streams = [self._keys.outbox(shard) for shard in range(OUTBOX_SHARDS)]
        self.consumer = consumer or socket.gethostname()
        self._claim_idle_ms = claim_idle_ms
        self._own: dict[int, str] = {}  # shard -> where re-reading our own pending entries is at
        self._claimed_at = 0.0
        self._buffer: deque[OutboxEntry] = deque()

    async def start(self) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for stream in self._streams:
                    pipe.xgroup_create(stream, _GROUP, id="0", mkstream=True)
                replies = await pipe.execute(raise_on_error=False)
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        for reply in replies:
            if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                raise unavailable(reply)
        self._own = {shard: "0" for shard in range(OUTBOX_SHARDS)}
        self._buffer.clear()

    async def read(self, count: int) -> list[OutboxEntry]:
        try:
            if len(self._buffer) < count:
                self._buffer.extend(await self._fetch(count))
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise unavailable(exc) from exc
            log.warning("the usage outbox's consumer group is gone (Redis restarted empty?): creating it again")
            await self.start()
            return []
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        return [self._buffer.popleft() for _ in range(min(count, len(self._buffer)))]

    async def _fetch(self, count: int) -> list[OutboxEntry]:
        if self._own:  # entries this consumer read and did not acknowledge before it stopped
            found = await self._own_pending(count)
            if found:
                return found
        shards = range(OUTBOX_SHARDS)
        if time.monotonic() - self._claimed_at > self._claim_idle_ms / 2000:
            self._claimed_at = time.monotonic()
            replies = await self._each(shards, lambda pipe, s: pipe.xautoclaim(*self._claim_args(s, count)))
            claimed = [await self._entries(shard, reply[1]) for shard, reply in zip(shards, replies, strict=True)]
            if any(claimed):
                return [entry for entries in claimed for entry in entries]
        replies = await self._each(
            shards, lambda pipe, s: pipe.xreadgroup(_GROUP, self.consumer, {self._streams[s]: ">"}, count=count)
        )
        new = [await self._entries(shard, reply[0][1]) for shard, reply in zip(shards, replies, strict=True) if reply]
        return [entry for entries in new for entry in entries]

    async def _own_pending(self, count: int) -> list[OutboxEntry]:
        shards = list(self._own)
        replies = await self._each(
            shards,
            lambda pipe, s: pipe.xreadgroup(_GROUP, self.consumer, {self._streams[s]: self._own[s]}, count=count),
        )
        found: list[OutboxEntry] = []
        for shard, reply in zip(shards, replies, strict=True):
            entries = reply[0][1] if reply else []
            if entries:
                self._own[shard] = text(entries[-1][0])
                found += await self._entries(shard, entries)
            else:
                del self._own[shard]  # this shard holds no more of ours
        return found

    def _claim_args(self, shard: int, count: int) -> tuple[Any, ...]:
        return (self._streams[shard], _GROUP, self.consumer, self._claim_idle_ms, "0-0", count)

    async def _each(self, shards: Sequence[int], command: Callable[[Any, int], object]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for shard in shards:
                command(pipe, shard)
            replies = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return list(replies)

    async def _entries(self, shard: int, raw: Any) -> list[OutboxEntry]:
        entries, gone = [], []
        for entry_id, fields in raw:
            key = f"{shard}/{text(entry_id)}"
            if fields:
                entries.append(OutboxEntry(key, _event(fields)))
            else:
                gone.append(key)  # pending, but no longer in the stream: nothing to send
        if gone:
            await self.ack(gone)
        return entries

    async def ack(self, ids: Sequence[str]) -> None:
        by_shard: dict[int, list[str]] = {}
        for key in ids:
            number, entry_id = key.split("/", 1)
            by_shard.setdefault(int(number), []).append(entry_id)
        if not by_shard:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for shard, entry_ids in by_shard.items():
                    pipe.xack(self._streams[shard], _GROUP, *entry_ids)
                    pipe.xdel(self._streams[shard], *entry_ids)
                await pipe.execute()
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise unavailable(exc) from exc
            log.info("acknowledged usage events went with the lost outbox", extra={"entries": len(ids)})
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc

    async def reject(self, entries: Sequence[OutboxEntry], reasons: Sequence[str]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for entry, reason in zip(entries, reasons, strict=True):
                    fields = {**_fields(entry.event), "reason": reason[:500]}
                    pipe.xadd(self._keys.refused(), fields, maxlen=_REFUSED_MAX, approximate=True)
                await pipe.execute()
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        await self.ack([entry.id for entry in entries])

    async def depth(self) -> int:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for stream in self._streams:
                    pipe.xlen(stream)
                return sum(int(n) for n in await pipe.execute())
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc

    async def refused(self) -> list[tuple[UsageEvent, str]]:
        """Events refused for good, oldest first, with the reason (for operators and tests)."""
        try:
            raw: Any = await self._redis.xrange(self._keys.refused())
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        return [(_event(fields), text(fields[b"reason"])) for _, fields in raw]


def _fields(event: UsageEvent) -> dict[Any, Any]:
    return {
        "t": event.transaction_id,
        "s": event.subscription_id,
        "m": event.metric_code,
        "ts": repr(event.timestamp),
        "p": orjson.dumps(dict(event.properties)),
    }


def _event(fields: dict[Any, Any]) -> UsageEvent:
    got = {text(k): text(v) for k, v in fields.items()}
    return UsageEvent(got["t"], got["s"], got["m"], float(got["ts"]), orjson.loads(got["p"]))
