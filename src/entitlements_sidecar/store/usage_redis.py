"""Usage counters in Redis, shared by every sidecar.

Keys (both of one subscription in one cluster slot, by its hash tag):
- `{prefix}u:{<subscription>}:<metric>:<period start ms>`: the period's usage, an integer; it expires a while
  after the period could have ended, and the next period is another key, so nothing resets counters.
- `{prefix}ut:{<subscription>}:<transaction id>`: the value a transaction recorded, for 7 days, so a retry
  of the same transaction is a duplicate, not a second use.
One script checks the transaction, checks the limit and adds, so racing sidecars never pass a hard limit.
"""

from __future__ import annotations

from entitlements_sidecar.domain.usage import TRANSACTION_WINDOW_SECONDS, Recorded, UsageKey
from entitlements_sidecar.store.lua import LuaScript, execute
from entitlements_sidecar.store.redis_connection import REDIS_FAILURES, RedisClient
from entitlements_sidecar.store.redis_errors import unavailable

COUNTER_TTL_SECONDS = 40 * 86_400  # longer than any monthly period, plus Lago's grace for late events

# KEYS: counter, transaction. ARGV: value, limit ("" for none), transaction ttl, counter ttl.
# -> {used after, 1 recorded | 0 not, 1 duplicate | 0 not}
_RECORD = LuaScript("""
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if redis.call('EXISTS', KEYS[2]) == 1 then return {used, 0, 1} end
local value = tonumber(ARGV[1])
if ARGV[2] ~= '' and used + value > tonumber(ARGV[2]) then return {used, 0, 0} end
used = redis.call('INCRBY', KEYS[1], value)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('SET', KEYS[2], value, 'EX', ARGV[3])
return {used, 1, 0}
""")


class RedisUsageCounter:
    def __init__(self, client: RedisClient, prefix: str = "ent:") -> None:
        self._redis = client
        self._prefix = prefix

    def _counter(self, key: UsageKey) -> str:
        return f"{self._prefix}u:{{{key.subscription_id}}}:{key.metric_code}:{key.period_start_ms}"

    async def used(self, key: UsageKey) -> int:
        try:
            raw = await self._redis.get(self._counter(key))
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        return int(raw) if raw is not None else 0

    async def record(self, key: UsageKey, value: int, transaction_id: str, limit: int | None = None) -> Recorded:
        transaction = f"{self._prefix}ut:{{{key.subscription_id}}}:{transaction_id}"
        args = [value, "" if limit is None else limit, TRANSACTION_WINDOW_SECONDS, COUNTER_TTL_SECONDS]
        try:
            [(used, recorded, duplicate)] = await execute(
                self._redis, [_RECORD.call([self._counter(key), transaction], args)]
            )
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        return Recorded(int(used), bool(recorded), bool(duplicate))
