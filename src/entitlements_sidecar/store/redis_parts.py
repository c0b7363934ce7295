"""The shared parts of the factorized map (plans, the feature catalog), read from Redis and kept here.

Every answer composes its subscription's own part with its plan and the catalog, so those are read
once and kept while the change feed is up: a `p:`/`f:` message drops the part before any listener
hears of it, and a part read that raced such a message is not kept. While the feed is down nothing is
kept and every read goes to Redis (it could not hear that a part changed).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from entitlements_sidecar.domain.model import FeatureDefinition, PlanDefinition
from entitlements_sidecar.domain.ports import Change, ChangeKind
from entitlements_sidecar.store import definition_codec as codec
from entitlements_sidecar.store.redis_connection import REDIS_FAILURES, RedisClient
from entitlements_sidecar.store.redis_errors import unavailable

Plan = tuple[int, PlanDefinition | None]  # (version, plan); (0, None) when not stored
Features = tuple[int, Mapping[str, FeatureDefinition]]
_NO_FEATURES: Features = (0, {})


class PartsCache:
    def __init__(self, client: RedisClient, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self.features_key = f"{prefix}f"
        self._features: Features | None = None
        self._plans: dict[str, Plan] = {}
        self._generation = 0
        self._trusted = False

    def plan_key(self, code: str) -> str:
        return f"{self._prefix}p:{{{code}}}"

    def on_change(self, change: Change) -> None:
        if change.kind is ChangeKind.PLAN:
            self._generation += 1
            self._plans.pop(change.id, None)
        elif change.kind is ChangeKind.FEATURES:
            self._generation += 1
            self._features = None
        elif change.kind in (ChangeKind.FEED_LOST, ChangeKind.FEED_RESET):
            self._generation += 1
            self._plans.clear()
            self._features = None
            self._trusted = change.kind is ChangeKind.FEED_RESET

    async def features(self) -> Features:
        if self._trusted and self._features is not None:
            return self._features
        generation = self._generation
        read = await self.read_features()
        if self._trusted and generation == self._generation:
            self._features = read
        return read

    async def plans(self, codes: Collection[str]) -> dict[str, Plan]:
        found = {code: self._plans[code] for code in codes if self._trusted and code in self._plans}
        missing = [code for code in codes if code not in found]
        if not missing:
            return found
        generation = self._generation
        rows = await self._call(self._plan_rows(missing))
        for code, row in zip(missing, rows, strict=True):
            found[code] = _plan(row)
            if self._trusted and generation == self._generation:
                self._plans[code] = found[code]
        return found

    async def read_plan(self, code: str) -> Plan:
        [row] = await self._call(self._plan_rows([code]))
        return _plan(row)

    async def read_features(self) -> Features:
        version, body = await self._call(self._redis.hmget(self.features_key, "v", "b"))
        if version is None or body is None:
            return _NO_FEATURES
        return int(version), codec.decode_features(body)

    async def _plan_rows(self, codes: list[str]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for code in codes:
                pipe.hmget(self.plan_key(code), "v", "b")
            return list(await pipe.execute())

    async def _call(self, pending: Any) -> Any:
        try:
            return await pending
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc


def _plan(row: list[bytes | None]) -> Plan:
    version, body = row
    if version is None or body is None:
        return (0, None)
    return int(version), codec.decode_plan(body)
