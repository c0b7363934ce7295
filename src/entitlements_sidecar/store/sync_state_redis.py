"""The syncer's definitions in Redis, beside the resolved map (same key prefix).

- `{prefix}d:s:{<id>}` hash: o (observed ms), b (definition JSON), p (plan code); in its subscription's
  hash slot. A delete keeps `o`.
- `{prefix}d:plan:{code}` plan JSON; `{prefix}d:onplan:{code}` set of subscription ids on it.
- `{prefix}d:features` hash: feature code -> JSON; `{prefix}d:ids` set of ids. (The map's own marker,
  `{prefix}meta`, is store/map_meta_redis.py.)

The sets live in other slots than a definition, so a write adds to them before the definition changes
and removes from them after (also taking back its additions when an older read loses). An interrupted
write leaves an extra member, which re-resolution skips (each definition is resolved with its own plan),
not a missing one. Only two syncers writing one subscription at the same instant can leave a set
without it, until the next write of that subscription (every reconciliation writes each one) re-adds it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

from entitlements_sidecar.domain.model import FeatureDefinition, PlanDefinition, SubscriptionDefinition
from entitlements_sidecar.store import definition_codec as codec
from entitlements_sidecar.store.lua import Command, LuaScript, execute
from entitlements_sidecar.store.redis_connection import REDIS_FAILURES, RedisClient
from entitlements_sidecar.store.redis_errors import unavailable

# KEYS: definition. ARGV: observed ms, body ('' to delete), plan code. -> {written, plan before}
_WRITE = LuaScript("""
local seen = tonumber(redis.call('HGET', KEYS[1], 'o') or '-1')
local old_plan = redis.call('HGET', KEYS[1], 'p')
if seen > tonumber(ARGV[1]) then return {0, old_plan} end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], 'b', 'p')
  redis.call('HSET', KEYS[1], 'o', ARGV[1])
else
  redis.call('HSET', KEYS[1], 'o', ARGV[1], 'b', ARGV[2], 'p', ARGV[3])
end
return {1, old_plan}
""")


class RedisSyncState:
    def __init__(self, client: RedisClient, prefix: str = "ent:") -> None:
        self._redis = client
        self._prefix = prefix
        self._ids = f"{prefix}d:ids"

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
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc

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
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        return {i: codec.decode_definition(b) for i, b in zip(external_ids, bodies, strict=True) if b}

    async def put_definition(self, definition: SubscriptionDefinition, observed_ms: int) -> bool:
        body = codec.encode_definition(definition)
        return await self._write_definition(definition.external_id, observed_ms, body, definition.plan_code)

    async def delete_definition(self, external_id: str, observed_ms: int) -> bool:
        return await self._write_definition(external_id, observed_ms, b"", "")

    async def on_plan(self, plan_code: str) -> set[str]:
        members = await self._call(self._redis.smembers(self._on_plan(plan_code)))
        return {m.decode() for m in members}

    async def definition_ids(self) -> set[str]:
        members = await self._call(self._redis.smembers(self._ids))
        return {m.decode() for m in members}

    async def _write_definition(self, external_id: str, observed_ms: int, body: bytes, plan: str) -> bool:
        write = _WRITE.call([self._key(external_id)], [observed_ms, body, plan])
        if body:
            before = [Command("SADD", self._ids, external_id), Command("SADD", self._on_plan(plan), external_id)]
            *_, (written, *previous) = await self._execute([*before, write])
        else:
            [(written, *previous)] = await self._execute([write])
        old_plan = previous[0].decode() if previous and previous[0] is not None else None
        after: list[Command] = []
        if not written and body:  # an older read lost: take back what was added for it
            if old_plan is None:
                after.append(Command("SREM", self._ids, external_id))
            if old_plan != plan:
                after.append(Command("SREM", self._on_plan(plan), external_id))
        if written and not body:
            after.append(Command("SREM", self._ids, external_id))
        if written and old_plan is not None and old_plan != plan:
            after.append(Command("SREM", self._on_plan(old_plan), external_id))
        await self._execute(after)
        return bool(written)

    async def _execute(self, commands: Sequence[Command]) -> list[Any]:
        try:
            return await execute(self._redis, commands)
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc

    async def _call(self, pending: Awaitable[Any]) -> Any:
        try:
            return await pending
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc

    def _key(self, external_id: str) -> str:
        return f"{self._prefix}d:s:{{{external_id}}}"

    def _on_plan(self, plan_code: str) -> str:
        return f"{self._prefix}d:onplan:{plan_code}"
