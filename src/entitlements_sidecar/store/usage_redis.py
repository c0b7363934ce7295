"""Usage counters in Redis, shared by every sidecar (key layout: store/usage_keys.py).

A counter is a hash (`n` the period's usage, `r` when Lago's count was last folded in). It expires a while
after its period could have ended, and the next period is another key, so nothing resets counters. One
script checks the transaction id, checks the limit, adds, queues the event in the outbox and notes the
counter as active, so racing sidecars never pass a hard limit and nothing counted misses the outbox.
"""

from __future__ import annotations

from typing import Any

import orjson

from entitlements_sidecar.domain.clock import now_ms
from entitlements_sidecar.domain.usage import (
    TRANSACTION_WINDOW_SECONDS,
    Counted,
    Recorded,
    UsageEvent,
    UsageKey,
)
from entitlements_sidecar.store.lua import Arg, LuaScript, execute
from entitlements_sidecar.store.redis_connection import REDIS_FAILURES, RedisClient, text
from entitlements_sidecar.store.redis_errors import unavailable
from entitlements_sidecar.store.usage_keys import OUTBOX_SHARDS, UsageKeys

COUNTER_TTL_SECONDS = 40 * 86_400  # longer than any monthly period, plus Lago's grace for late events

# KEYS: counter, transaction, outbox shard, active set. ARGV: value, limit ("" for none), transaction ttl,
# counter ttl, seeded only (1|0), now ms, active member, then for an event to queue: transaction id,
# subscription, metric, timestamp, properties (JSON).
# -> {used after, recorded 1|0, duplicate 1|0, unseeded 1|0, reconciled ms or ""}
# The XADD comes first: a Redis out of memory refuses it before anything is counted.
_RECORD = LuaScript("""
local state = redis.call('HMGET', KEYS[1], 'n', 'r')
local reconciled = state[2] or ''
if redis.call('EXISTS', KEYS[2]) == 1 then return {tonumber(state[1] or '0'), 0, 1, 0, reconciled} end
if not state[1] and ARGV[5] == '1' then return {0, 0, 0, 1, ''} end
local used = tonumber(state[1] or '0')
local value = tonumber(ARGV[1])
if ARGV[2] ~= '' and used + value > tonumber(ARGV[2]) then return {used, 0, 0, 0, reconciled} end
if #ARGV > 7 then
  redis.call('XADD', KEYS[3], '*', 't', ARGV[8], 's', ARGV[9], 'm', ARGV[10], 'ts', ARGV[11], 'p', ARGV[12])
end
used = redis.call('HINCRBY', KEYS[1], 'n', value)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('SET', KEYS[2], value, 'EX', ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[7])
redis.call('EXPIRE', KEYS[4], ARGV[4])
return {used, 1, 0, 0, reconciled}
""")

# KEYS: counter. ARGV: units, at ms ("": not a reconciliation), counter ttl. -> {before or -1 when missing, after}
_RAISE = LuaScript("""
local before = tonumber(redis.call('HGET', KEYS[1], 'n') or '-1')
local units = tonumber(ARGV[1])
if units > before then redis.call('HSET', KEYS[1], 'n', units) end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'r', ARGV[2]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {before, math.max(before, units)}
""")

_SEP = "\x1f"  # ids never hold control characters (domain/ids.py)


class RedisUsageCounter:
    def __init__(self, client: RedisClient, prefix: str = "ent:") -> None:
        self._redis = client
        self._keys = UsageKeys(prefix)

    async def read(self, key: UsageKey) -> Counted | None:
        try:
            used, reconciled = await self._redis.hmget(self._keys.counter(key), ["n", "r"])
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        return None if used is None else Counted(int(used), int(reconciled) if reconciled else None)

    async def record(
        self,
        key: UsageKey,
        value: int,
        transaction_id: str,
        limit: int | None = None,
        event: UsageEvent | None = None,
        seeded_only: bool = False,
    ) -> Recorded:
        shard = self._keys.shard_of(key.subscription_id)
        keys = [
            self._keys.counter(key),
            self._keys.transaction(key.subscription_id, transaction_id),
            self._keys.outbox(shard),
            self._keys.active(shard),
        ]
        args: list[Arg] = [
            value,
            "" if limit is None else limit,
            TRANSACTION_WINDOW_SECONDS,
            COUNTER_TTL_SECONDS,
            int(seeded_only),
            now_ms(),
            _SEP.join((key.subscription_id, key.metric_code, str(key.period_start_ms))),
        ]
        if event is not None:
            args += [
                event.transaction_id,
                event.subscription_id,
                event.metric_code,
                repr(event.timestamp),
                orjson.dumps(dict(event.properties)),
            ]
        try:
            [(used, recorded, duplicate, unseeded, reconciled)] = await execute(self._redis, [_RECORD.call(keys, args)])
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        return Recorded(int(used), bool(recorded), bool(duplicate), bool(unseeded), _ms(reconciled))

    async def raise_to(self, key: UsageKey, units: int, at_ms: int | None) -> tuple[int | None, int]:
        args: list[Arg] = [units, "" if at_ms is None else at_ms, COUNTER_TTL_SECONDS]
        try:
            [(before, after)] = await execute(self._redis, [_RAISE.call([self._keys.counter(key)], args)])
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        return (None if int(before) < 0 else int(before)), int(after)

    async def active(self, since_ms: int) -> list[UsageKey]:
        forgotten = now_ms() - COUNTER_TTL_SECONDS * 1000
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for shard in range(OUTBOX_SHARDS):
                    pipe.zremrangebyscore(self._keys.active(shard), "-inf", forgotten)
                    pipe.zrangebyscore(self._keys.active(shard), since_ms, "+inf")
                replies: list[Any] = await pipe.execute()
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        keys = []
        for members in replies[1::2]:
            for member in members:
                subscription, metric, start = text(member).split(_SEP)
                keys.append(UsageKey(subscription, metric, int(start)))
        return keys


def _ms(raw: Any) -> int | None:
    value = text(raw)
    return int(value) if value else None
