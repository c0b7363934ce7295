"""The shared resolved-entitlement map in Redis, factorized (docs/adr/0012): one server, or a Redis Cluster.

Layout (prefix configurable, default `ent:`; `{...}` is a cluster hash tag):
- `{prefix}e:{<subscription_id>}` hash: v (version), o (observed ms: when the source said it), b (its own
  part, store/definition_codec.py), c (customer), pv ('1' while only a listing said it: provisional).
  Deleting keeps `v`, `o` and `c` as a tombstone: a re-created subscription never reuses a lower
  version, an older read never resurrects it, and an interrupted delete can still find the index to finish.
- `{prefix}p:{<plan_code>}` hash: v, b (the plan's entitlements); `{prefix}f` hash: v, b (the feature catalog).
- `{prefix}cu:{<customer_id>}` hash: v (version), `m:{subscription_id}` per member = the member's version
  the index last counted (0 before its first).
- no set of ids: a walk scans the entry keys (store/redis_walk.py).
- channel `{prefix}changes`: `s:{version}:{id}`, `c:{version}:{id}`, `p:{version}:{code}`, `f:{version}:`.

A version is taken from the Redis clock (µs), above the key's previous one, so a plan written after a
subscription has a higher version than it: an answer's version, the largest of its three parts', grows
with every change of any of them (domain/composition.py).

Each script touches the keys of one subscription, one customer or one plan, so it runs in one hash slot.
A put (1) adds the member to its customer's index, (2) writes the entry, (3) tells the index the member's
version, which bumps the customer only if that version is new, and removes a moved member from its old
customer. Steps 1 and 3 are idempotent and 3 runs on every put, so retrying an interrupted put finishes
it; an index can hold an extra member for a while (readers check each member's customer) but never miss
one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from entitlements_sidecar.domain.composition import Composer, composed_version
from entitlements_sidecar.domain.model import FeatureDefinition, PlanDefinition, SubscriptionDefinition
from entitlements_sidecar.domain.ports import (
    Change,
    ChangeKind,
    ChangeListener,
    Origin,
    PutResult,
    StoredCustomer,
    StoredOwnPart,
    StoredSubscription,
)
from entitlements_sidecar.store import definition_codec as codec
from entitlements_sidecar.store.listeners import Listeners
from entitlements_sidecar.store.lua import Command, LuaScript, execute
from entitlements_sidecar.store.redis_connection import REDIS_FAILURES, RedisClient, open_redis, text
from entitlements_sidecar.store.redis_errors import unavailable
from entitlements_sidecar.store.redis_feed import ChangeFeed
from entitlements_sidecar.store.redis_parts import PartsCache
from entitlements_sidecar.store.redis_walk import EntryWalk

log = logging.getLogger(__name__)

# The next version of KEYS[1]: the Redis clock in µs, or one above the key's current version.
_NEXT = """
local clock = redis.call('TIME')
local v = math.max(tonumber(redis.call('HGET', KEYS[1], 'v') or '0') + 1, clock[1] * 1000000 + clock[2])
v = string.format('%.0f', v)
"""

# KEYS: entry. ARGV: body, customer, observed ms, channel, id, provisional ('1' or '').
# -> {version, changed, customer before, superseded: 0 no, 1 by a later write, 2 by a later delete}
_PUT = LuaScript(
    """
local cur = redis.call('HMGET', KEYS[1], 'b', 'c', 'v', 'o', 'pv')
if cur[4] and tonumber(cur[4]) > tonumber(ARGV[3]) then return {tonumber(cur[3]), 0, cur[2], cur[1] and 1 or 2} end
if ARGV[6] == '1' and cur[1] then return {tonumber(cur[3]), 0, cur[2], 0} end
if cur[1] == ARGV[1] and cur[2] == ARGV[2] and (cur[5] or '') == ARGV[6] then
  redis.call('HSET', KEYS[1], 'o', ARGV[3])
  return {tonumber(cur[3]), 0, cur[2], 0}
end"""
    + _NEXT
    + """
redis.call('HSET', KEYS[1], 'v', v, 'b', ARGV[1], 'c', ARGV[2], 'o', ARGV[3])
if ARGV[6] == '1' then redis.call('HSET', KEYS[1], 'pv', '1') else redis.call('HDEL', KEYS[1], 'pv') end
redis.call('PUBLISH', ARGV[4], 's:' .. v .. ':' .. ARGV[5])
return {tonumber(v), 1, cur[2], 0}
"""
)

# KEYS: entry. -> {version, observed ms} when it holds a subscription (not a tombstone), else nil
_HELD = LuaScript("if redis.call('HEXISTS', KEYS[1], 'b') == 1 then return redis.call('HMGET', KEYS[1], 'v', 'o') end")

# KEYS: entry. ARGV: channel, id, observed ms. -> {tombstone version or nil when absent, customer, superseded}
_DELETE = LuaScript(
    """
local cur = redis.call('HMGET', KEYS[1], 'c', 'b', 'o')
if cur[3] and tonumber(cur[3]) > tonumber(ARGV[3]) then return {false, cur[1], 1} end
redis.call('HSET', KEYS[1], 'o', ARGV[3])
if not cur[2] then return {false, cur[1], 0} end"""
    + _NEXT
    + """
redis.call('HSET', KEYS[1], 'v', v)
redis.call('HDEL', KEYS[1], 'b', 'pv')
redis.call('PUBLISH', ARGV[1], 's:' .. v .. ':' .. ARGV[2])
return {tonumber(v), cur[1], 0}
"""
)

# KEYS: plan or catalog. ARGV: body, channel, message kind, code. -> {version, changed}
_PART = LuaScript(
    """
local cur = redis.call('HMGET', KEYS[1], 'b', 'v')
if cur[1] == ARGV[1] then return {tonumber(cur[2]), 0} end"""
    + _NEXT
    + """
redis.call('HSET', KEYS[1], 'v', v, 'b', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3] .. ':' .. v .. ':' .. ARGV[4])
return {tonumber(v), 1}
"""
)

# KEYS: customer. ARGV: member id, member version ('' to remove it), channel, customer id.
# -> the customer's new version, or nil when nothing changed
_MEMBER = LuaScript("""
local field = 'm:' .. ARGV[1]
if ARGV[2] == '' then
  if redis.call('HDEL', KEYS[1], field) == 0 then return false end
elseif redis.call('HGET', KEYS[1], field) == ARGV[2] then return false
else redis.call('HSET', KEYS[1], field, ARGV[2]) end
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('PUBLISH', ARGV[3], 'c:' .. v .. ':' .. ARGV[4])
return v
""")

_ENTRY_FIELDS = ("v", "b", "c", "o", "pv")
_KINDS = {"s": ChangeKind.SUBSCRIPTION, "c": ChangeKind.CUSTOMER, "p": ChangeKind.PLAN, "f": ChangeKind.FEATURES}


class RedisStore:
    def __init__(self, client: RedisClient, prefix: str = "ent:") -> None:
        self._redis = client
        self._prefix = prefix
        self._channel = f"{prefix}changes"
        self._walk = EntryWalk(client, prefix)
        self._listeners = Listeners()
        self._parts = PartsCache(client, prefix)
        self._composer = Composer()
        self._feed = ChangeFeed(client, self._channel, self._dispatch, self._emit)

    @classmethod
    def from_url(cls, url: str, prefix: str = "ent:", timeout: float = 2.0) -> RedisStore:
        return cls(open_redis(url, timeout), prefix)

    async def start(self) -> None:
        """Connect and subscribe to the change feed before anything is cached."""
        try:
            await self._redis.ping()
        except REDIS_FAILURES as exc:
            raise unavailable(exc, "redis unreachable") from exc
        await self._feed.start()

    async def close(self) -> None:
        await self._feed.stop()
        await self._redis.aclose()

    # -- reads ----------------------------------------------------------------------------

    async def get_subscription(self, external_id: str, min_version: int = 0) -> StoredSubscription | None:
        [record] = await self.get_subscriptions([external_id])
        return record

    async def get_subscriptions(self, external_ids: Sequence[str]) -> list[StoredSubscription | None]:
        if not external_ids:
            return []
        entries = await self._entries(external_ids)
        features_version, features = await self._parts.features()
        plans = await self._parts.plans({e[1].definition.plan_code for e in entries if e is not None})
        records: list[StoredSubscription | None] = []
        for entry in entries:
            if entry is None:
                records.append(None)
                continue
            version, stored = entry
            plan_version, plan = plans[stored.definition.plan_code]
            answer = self._composer.compose(stored.definition, plan, plan_version, features, features_version)
            synced = datetime.fromtimestamp(stored.observed_ms / 1000, UTC)
            composed = composed_version(version, plan_version, features_version)
            records.append(StoredSubscription(answer, composed, synced, Origin.REDIS, stored.provisional))
        return records

    async def own_parts(self, external_ids: Sequence[str]) -> list[StoredOwnPart | None]:
        return [None if entry is None else entry[1] for entry in await self._entries(external_ids)]

    async def id_page(self, cursor: int, count: int) -> tuple[int, list[str]]:
        return await self._walk.page(cursor, count)

    async def _entries(self, external_ids: Sequence[str]) -> list[tuple[int, StoredOwnPart] | None]:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for external_id in external_ids:
                    pipe.hmget(self._entry_key(external_id), *_ENTRY_FIELDS)
                rows = await pipe.execute()
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        return [_entry(external_id, row) for external_id, row in zip(external_ids, rows, strict=True)]

    async def get_customer(self, customer_id: str, min_version: int = 0) -> StoredCustomer | None:
        try:
            fields = await self._redis.hgetall(self._customer_key(customer_id))
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        members = sorted(text(k)[2:] for k in fields if text(k).startswith("m:"))
        if not members:
            return None
        return StoredCustomer(customer_id, tuple(members), int(fields.get(b"v", 0)), Origin.REDIS)

    async def definition(self, external_id: str) -> SubscriptionDefinition | None:
        [entry] = await self._entries([external_id])
        return None if entry is None else entry[1].definition

    async def plan(self, code: str) -> PlanDefinition | None:
        return (await self._parts.read_plan(code))[1]

    async def features(self) -> dict[str, FeatureDefinition]:
        return dict((await self._parts.read_features())[1])

    async def subscription_ids(self) -> set[str]:
        ids: set[str] = set()
        cursor, page = await self._walk.page(0, 1000)
        ids.update(page)
        while cursor:
            cursor, page = await self._walk.page(cursor, 1000)
            ids.update(page)
        return ids

    # -- writes ---------------------------------------------------------------------------

    async def put_subscription(self, definition: SubscriptionDefinition, observed_ms: int = 0) -> int:
        [result] = await self.put_subscriptions([definition], observed_ms)
        return result.version

    async def put_subscriptions(
        self, definitions: Sequence[SubscriptionDefinition], observed_ms: int = 0, provisional: bool = False
    ) -> list[PutResult]:
        if not definitions:
            return []
        observed = observed_ms or int(time.time() * 1000)
        held: list[Any] = [None] * len(definitions)
        if provisional:
            # A provisional write never changes an entry that exists (the script returns at once), yet costs
            # three commands and a member update each: a reconciliation's listing, which finds every entry
            # there, wrote 400 commands a page for nothing and held the event loop in front of webhooks
            # (bench-scale S5). One read each (_HELD) finds the few that are new.
            held = await self._run([_HELD.call([self._entry_key(d.external_id)], []) for d in definitions])
        first: list[Command] = []
        for own in (d for d, there in zip(definitions, held, strict=True) if not there):
            first += [
                Command("HSETNX", self._customer_key(own.external_customer_id), f"m:{own.external_id}", "0"),
                _PUT.call(
                    [self._entry_key(own.external_id)],
                    [
                        codec.encode_entry(own),
                        own.external_customer_id,
                        observed,
                        self._channel,
                        own.external_id,
                        "1" if provisional else "",
                    ],
                ),
            ]
        replies = iter(await self._run(first) if first else [])
        results: list[PutResult] = []
        second: list[Command] = []
        for own, there in zip(definitions, held, strict=True):
            if there:  # kept as it is, as _PUT would have (superseded when it was said later than this)
                results.append(PutResult(int(there[0]), False, int(there[1] or 0) > observed))
                continue
            _, (version, changed, before, superseded) = next(replies), next(replies)
            results.append(PutResult(int(version), bool(changed), bool(superseded)))
            if superseded:
                # A later read is stored: take back what step 1 added unless the stored one has it too.
                if superseded == 2 or before is None or text(before) != own.external_customer_id:
                    second.append(Command("HDEL", self._customer_key(own.external_customer_id), f"m:{own.external_id}"))
                continue
            second.append(self._member(own.external_customer_id, own.external_id, int(version)))
            if before is not None and text(before) != own.external_customer_id:
                second.append(self._member(text(before), own.external_id, None))
        await self._run(second)
        return results

    async def delete_subscription(self, external_id: str, observed_ms: int = 0) -> int | None:
        observed = observed_ms or int(time.time() * 1000)
        [(version, customer, superseded)] = await self._run(
            [_DELETE.call([self._entry_key(external_id)], [self._channel, external_id, observed])]
        )
        if superseded:
            return None
        # Also when it was already gone: this finishes a delete that was interrupted here.
        if customer is not None:
            await self._run([self._member(text(customer), external_id, None)])
        return None if version is None else int(version)

    async def put_plan(self, plan: PlanDefinition) -> int:
        key = self._parts.plan_key(plan.code)
        [(version, _)] = await self._run([_PART.call([key], [codec.encode_plan(plan), self._channel, "p", plan.code])])
        return int(version)

    async def put_features(self, features: Mapping[str, FeatureDefinition]) -> int:
        key = self._parts.features_key
        [(version, _)] = await self._run([_PART.call([key], [codec.encode_features(features), self._channel, "f", ""])])
        return int(version)

    def _member(self, customer_id: str, external_id: str, version: int | None) -> Command:
        args: list[str | bytes | int] = [external_id, "" if version is None else version, self._channel, customer_id]
        return _MEMBER.call([self._customer_key(customer_id)], args)

    async def _run(self, commands: Sequence[Command]) -> list[Any]:
        try:
            return await execute(self._redis, commands)
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc

    # -- change feed ----------------------------------------------------------------------

    def add_listener(self, listener: ChangeListener) -> Callable[[], None]:
        return self._listeners.add(listener)

    def _dispatch(self, data: bytes) -> None:
        kind, version, identifier = data.decode().split(":", 2)
        change = Change(_KINDS.get(kind, ChangeKind.FEED_RESET), identifier, int(version))
        self._parts.on_change(change)  # before the listeners: a re-read they start must not see the old part
        self._listeners.emit(change)

    def _emit(self, change: Change) -> None:
        self._parts.on_change(change)
        self._listeners.emit(change)

    def _entry_key(self, external_id: str) -> str:
        return f"{self._prefix}e:{{{external_id}}}"

    def _customer_key(self, customer_id: str) -> str:
        return f"{self._prefix}cu:{{{customer_id}}}"


def _entry(external_id: str, fields: Sequence[bytes | str | None]) -> tuple[int, StoredOwnPart] | None:
    version, body, customer, observed, provisional = fields
    if body is None or version is None or customer is None:
        return None
    own = codec.decode_entry(body, external_id, text(customer))
    return int(version), StoredOwnPart(own, int(observed or 0), provisional is not None)
