"""Usage counters in Redis, shared by every sidecar (key layout: store/usage_keys.py).

A counter expires a while after its period could have ended, and the next period is another key, so
nothing resets counters. One script checks the transaction id, checks the limit, adds, and queues the
event in the outbox, so racing sidecars never pass a hard limit and nothing counted misses the outbox.
"""

from __future__ import annotations

import orjson

from entitlements_sidecar.domain.usage import TRANSACTION_WINDOW_SECONDS, Recorded, UsageEvent, UsageKey
from entitlements_sidecar.store.lua import Arg, LuaScript, execute
from entitlements_sidecar.store.redis_connection import REDIS_FAILURES, RedisClient
from entitlements_sidecar.store.redis_errors import unavailable
from entitlements_sidecar.store.usage_keys import UsageKeys

COUNTER_TTL_SECONDS = 40 * 86_400  # longer than any monthly period, plus Lago's grace for late events

# KEYS: counter, transaction, outbox shard. ARGV: value, limit ("" for none), transaction ttl, counter ttl,
# then for an event to queue: transaction id, subscription, metric, timestamp, properties (JSON).
# -> {used after, 1 recorded | 0 not, 1 duplicate | 0 not}
# The XADD comes first: a Redis out of memory refuses it before anything is counted.
_RECORD = LuaScript("""
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if redis.call('EXISTS', KEYS[2]) == 1 then return {used, 0, 1} end
local value = tonumber(ARGV[1])
if ARGV[2] ~= '' and used + value > tonumber(ARGV[2]) then return {used, 0, 0} end
if #ARGV > 4 then
  redis.call('XADD', KEYS[3], '*', 't', ARGV[5], 's', ARGV[6], 'm', ARGV[7], 'ts', ARGV[8], 'p', ARGV[9])
end
used = redis.call('INCRBY', KEYS[1], value)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('SET', KEYS[2], value, 'EX', ARGV[3])
return {used, 1, 0}
""")


class RedisUsageCounter:
    def __init__(self, client: RedisClient, prefix: str = "ent:") -> None:
        self._redis = client
        self._keys = UsageKeys(prefix)

    async def used(self, key: UsageKey) -> int:
        try:
            raw = await self._redis.get(self._keys.counter(key))
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        return int(raw) if raw is not None else 0

    async def record(
        self, key: UsageKey, value: int, transaction_id: str, limit: int | None = None, event: UsageEvent | None = None
    ) -> Recorded:
        keys = [
            self._keys.counter(key),
            self._keys.transaction(key.subscription_id, transaction_id),
            self._keys.outbox(self._keys.shard_of(key.subscription_id)),
        ]
        args: list[Arg] = [value, "" if limit is None else limit, TRANSACTION_WINDOW_SECONDS, COUNTER_TTL_SECONDS]
        if event is not None:
            args += [
                event.transaction_id,
                event.subscription_id,
                event.metric_code,
                repr(event.timestamp),
                orjson.dumps(dict(event.properties)),
            ]
        try:
            [(used, recorded, duplicate)] = await execute(self._redis, [_RECORD.call(keys, args)])
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        return Recorded(int(used), bool(recorded), bool(duplicate))
