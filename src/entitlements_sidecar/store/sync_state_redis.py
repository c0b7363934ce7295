"""The syncer's definitions in Redis, beside the resolved map (same key prefix).

- `{prefix}d:s:{id}` hash: o (observed ms), b (definition JSON), p (plan code). A delete keeps `o`.
- `{prefix}d:plan:{code}` plan JSON; `{prefix}d:onplan:{code}` set of subscription ids on it.
- `{prefix}d:features` hash: feature code -> JSON; `{prefix}d:ids` set of ids; `{prefix}meta` hash.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from entitlements_sidecar.domain.errors import StoreUnavailableError
from entitlements_sidecar.domain.model import FeatureDefinition, PlanDefinition, SubscriptionDefinition
from entitlements_sidecar.store import definition_codec as codec

# KEYS: definition hash, ids set. ARGV: id, observed, body ('' to delete), plan code, prefix.
_WRITE = """
local seen = tonumber(redis.call('HGET', KEYS[1], 'o') or '-1')
if seen > tonumber(ARGV[2]) then return 0 end
local old_plan = redis.call('HGET', KEYS[1], 'p')
if old_plan then redis.call('SREM', ARGV[5] .. 'd:onplan:' .. old_plan, ARGV[1]) end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], 'b', 'p')
  redis.call('HSET', KEYS[1], 'o', ARGV[2])
  redis.call('SREM', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[1], 'o', ARGV[2], 'b', ARGV[3], 'p', ARGV[4])
  redis.call('SADD', ARGV[5] .. 'd:onplan:' .. ARGV[4], ARGV[1])
  redis.call('SADD', KEYS[2], ARGV[1])
end
return 1
"""


class RedisSyncState:
    def __init__(self, client: aioredis.Redis, prefix: str = "ent:") -> None:
        self._redis = client
        self._prefix = prefix
        self._write = client.register_script(_WRITE)

    async def features(self) -> dict[str, FeatureDefinition]:
        raw = await self._call(self._redis.hgetall(f"{self._prefix}d:features"))
        return {(k.decode() if isinstance(k, bytes) else k): codec.decode_feature(v) for k, v in raw.items()}

    async def replace_features(self, features: Mapping[str, FeatureDefinition]) -> None:
        key = f"{self._prefix}d:features"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                if features:
                    pipe.hset(key, mapping={code: codec.encode_feature(f) for code, f in features.items()})
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def plan(self, code: str) -> PlanDefinition | None:
        raw = await self._call(self._redis.get(f"{self._prefix}d:plan:{code}"))
        return codec.decode_plan(raw) if raw else None

    async def put_plan(self, plan: PlanDefinition) -> None:
        await self._call(self._redis.set(f"{self._prefix}d:plan:{plan.code}", codec.encode_plan(plan)))

    async def definition(self, external_id: str) -> SubscriptionDefinition | None:
        raw = await self._call(self._redis.hget(self._key(external_id), "b"))
        return codec.decode_definition(raw) if raw else None

    async def definitions(self, external_ids: Sequence[str]) -> dict[str, SubscriptionDefinition]:
        if not external_ids:
            return {}
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for external_id in external_ids:
                    pipe.hget(self._key(external_id), "b")
                bodies = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc
        return {i: codec.decode_definition(b) for i, b in zip(external_ids, bodies, strict=True) if b}

    async def put_definition(self, definition: SubscriptionDefinition, observed_ms: int) -> bool:
        body = codec.encode_definition(definition)
        return await self._write_definition(definition.external_id, observed_ms, body, definition.plan_code)

    async def delete_definition(self, external_id: str, observed_ms: int) -> bool:
        return await self._write_definition(external_id, observed_ms, b"", "")

    async def on_plan(self, plan_code: str) -> set[str]:
        members = await self._call(self._redis.smembers(f"{self._prefix}d:onplan:{plan_code}"))
        return {m.decode() for m in members}

    async def definition_ids(self) -> set[str]:
        members = await self._call(self._redis.smembers(f"{self._prefix}d:ids"))
        return {m.decode() for m in members}

    async def mark_loaded(self, at_ms: int) -> None:
        await self._call(self._redis.hset(f"{self._prefix}meta", "loaded_at", str(at_ms)))

    async def loaded_at(self) -> int | None:
        raw = await self._call(self._redis.hget(f"{self._prefix}meta", "loaded_at"))
        return int(raw) if raw else None

    async def mark_confirmed(self, at_ms: int) -> None:
        # Several syncers may beat; a plain HSET is enough, since any recent beat means "current".
        await self._call(self._redis.hset(f"{self._prefix}meta", "confirmed_at", str(at_ms)))

    async def confirmed_at(self) -> int | None:
        raw = await self._call(self._redis.hget(f"{self._prefix}meta", "confirmed_at"))
        return int(raw) if raw else None

    async def _write_definition(self, external_id: str, observed_ms: int, body: bytes, plan: str) -> bool:
        keys = [self._key(external_id), f"{self._prefix}d:ids"]
        args: list[str | bytes | int] = [external_id, observed_ms, body, plan, self._prefix]
        return bool(await self._call(self._write(keys=keys, args=args)))

    async def _call(self, pending: Awaitable[Any]) -> Any:
        try:
            return await pending
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    def _key(self, external_id: str) -> str:
        return f"{self._prefix}d:s:{external_id}"


def _unavailable(exc: BaseException) -> StoreUnavailableError:
    return StoreUnavailableError(f"redis error: {type(exc).__name__}")
