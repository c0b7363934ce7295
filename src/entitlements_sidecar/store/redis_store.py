"""The shared resolved-entitlement map in Redis: one server, or a Redis Cluster.

Layout (prefix configurable, default `ent:`; `{...}` is a cluster hash tag):
- `{prefix}s:{<subscription_id>}` hash: v (version), b (encoded body), d (digest), c (customer), t (synced ms).
  Deleting keeps `v` and `c` as a tombstone: a re-created subscription never reuses a lower version, and an
  interrupted delete can still find the index to finish.
- `{prefix}c:{<customer_id>}` hash: v (version), `m:{subscription_id}` per member = the member's version
  the index last counted (0 before its first).
- `{prefix}subs` set of live subscription ids.
- channel `{prefix}changes`: `s:{version}:{id}` / `c:{version}:{id}` after every change.

Each script touches the keys of one subscription or of one customer, so it runs in one hash slot. A put
(1) adds the member to its customer's index, (2) writes the subscription, (3) tells the index the
member's version, which bumps the customer only if that version is new, and removes a moved member from
its old customer. Steps 1 and 3 are idempotent and 3 runs on every put, so retrying an interrupted put
finishes it; an index can hold an extra member for a while (readers check each member's customer) but
never miss one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError

from entitlements_sidecar.domain.model import ResolvedSubscription
from entitlements_sidecar.domain.ports import (
    Change,
    ChangeKind,
    ChangeListener,
    Origin,
    StoredCustomer,
    StoredSubscription,
)
from entitlements_sidecar.store import codec
from entitlements_sidecar.store.listeners import Listeners
from entitlements_sidecar.store.lua import Command, LuaScript, execute
from entitlements_sidecar.store.redis_connection import REDIS_FAILURES, RedisClient, open_redis, text
from entitlements_sidecar.store.redis_errors import unavailable

log = logging.getLogger(__name__)

# KEYS: subscription. ARGV: digest, body, customer, synced ms, channel, id.
# -> {version, changed, customer before}
_PUT = LuaScript("""
local cur = redis.call('HMGET', KEYS[1], 'd', 'c', 'v')
if cur[1] == ARGV[1] then return {tonumber(cur[3]), 0, cur[2]} end
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'b', ARGV[2], 'c', ARGV[3], 't', ARGV[4])
redis.call('PUBLISH', ARGV[5], 's:' .. v .. ':' .. ARGV[6])
return {v, 1, cur[2]}
""")

# KEYS: subscription. ARGV: channel, id. -> {tombstone version or nil when absent, customer}
_DELETE = LuaScript("""
local cur = redis.call('HMGET', KEYS[1], 'c', 'b')
if not cur[2] then return {false, cur[1]} end
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HDEL', KEYS[1], 'd', 'b', 't')
redis.call('PUBLISH', ARGV[1], 's:' .. v .. ':' .. ARGV[2])
return {v, cur[1]}
""")

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

_RETRY_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0)  # feed reconnect backoff, capped at the last value
_NO_RETRY = Retry(NoBackoff(), 0)
_STABLE_SECONDS = 2.0  # a feed that keeps breaking sooner backs off (a cluster failing over drops it often)


class RedisStore:
    def __init__(self, client: RedisClient, prefix: str = "ent:") -> None:
        self._redis = client
        self._prefix = prefix
        self._channel = f"{prefix}changes"
        self._ids = f"{prefix}subs"
        self._listeners = Listeners()
        self._follower: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._feed_reconnected = False

    @classmethod
    def from_url(cls, url: str, prefix: str = "ent:", timeout: float = 2.0) -> RedisStore:
        return cls(open_redis(url, timeout), prefix)

    async def start(self) -> None:
        """Connect and subscribe to the change feed before anything is cached."""
        try:
            await self._redis.ping()
        except REDIS_FAILURES as exc:
            raise unavailable(exc, "redis unreachable") from exc
        self._follower = asyncio.create_task(self._follow(), name="redis-change-feed")
        await asyncio.wait_for(self._subscribed.wait(), timeout=10)

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            # Bounded: redis-py does not always honour a cancel promptly in the middle of a read.
            await asyncio.wait({self._follower}, timeout=2)
        await self._redis.aclose()

    # -- reads ----------------------------------------------------------------------------

    async def get_subscription(self, external_id: str, min_version: int = 0) -> StoredSubscription | None:
        try:
            fields = await self._redis.hmget(self._sub_key(external_id), "v", "b", "t")
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        return _record(fields)

    async def get_subscriptions(self, external_ids: Sequence[str]) -> list[StoredSubscription | None]:
        if not external_ids:
            return []
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for external_id in external_ids:
                    pipe.hmget(self._sub_key(external_id), "v", "b", "t")
                rows = await pipe.execute()
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        return [_record(row) for row in rows]

    async def get_customer(self, customer_id: str, min_version: int = 0) -> StoredCustomer | None:
        try:
            fields = await self._redis.hgetall(self._customer_key(customer_id))
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        members = sorted(text(k)[2:] for k in fields if text(k).startswith("m:"))
        if not members:
            return None
        return StoredCustomer(customer_id, tuple(members), int(fields.get(b"v", 0)), Origin.REDIS)

    async def subscription_ids(self) -> set[str]:
        try:
            members = await self._redis.smembers(self._ids)
        except REDIS_FAILURES as exc:
            raise unavailable(exc) from exc
        return {text(m) for m in members}

    # -- writes ---------------------------------------------------------------------------

    async def put_subscription(self, subscription: ResolvedSubscription) -> int:
        [(version, _)] = await self.put_subscriptions([subscription])
        return version

    async def put_subscriptions(self, subscriptions: Sequence[ResolvedSubscription]) -> list[tuple[int, bool]]:
        if not subscriptions:
            return []
        now_ms = int(time.time() * 1000)
        first: list[Command] = []
        for sub in subscriptions:
            body = codec.encode(sub)
            first += [
                Command("SADD", self._ids, sub.external_id),
                Command("HSETNX", self._customer_key(sub.external_customer_id), f"m:{sub.external_id}", "0"),
                _PUT.call(
                    [self._sub_key(sub.external_id)],
                    [codec.digest(body), body, sub.external_customer_id, now_ms, self._channel, sub.external_id],
                ),
            ]
        replies = await self._run(first)
        results: list[tuple[int, bool]] = []
        second: list[Command] = []
        for sub, (version, changed, before) in zip(subscriptions, replies[2::3], strict=True):
            results.append((int(version), bool(changed)))
            second.append(self._member(sub.external_customer_id, sub.external_id, int(version)))
            if before is not None and text(before) != sub.external_customer_id:
                second.append(self._member(text(before), sub.external_id, None))
        await self._run(second)
        return results

    async def delete_subscription(self, external_id: str) -> int | None:
        [(version, customer)] = await self._run(
            [_DELETE.call([self._sub_key(external_id)], [self._channel, external_id])]
        )
        # Also when it was already gone: this finishes a delete that was interrupted here.
        after = [Command("SREM", self._ids, external_id)]
        if customer is not None:
            after.append(self._member(text(customer), external_id, None))
        await self._run(after)
        return None if version is None else int(version)

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

    async def _follow(self) -> None:
        attempt = failures = 0
        while True:
            pubsub = self._feed(failures)
            held: tuple[Any, Retry] | None = None  # the feed's connection and the retry it came with
            try:
                await pubsub.subscribe(self._channel)
                if pubsub.connection is not None:
                    # A broken feed must be noticed at once, before any command can reach a Redis that came
                    # back empty: no retries on this connection (commands keep theirs). Should redis-py still
                    # reconnect and re-subscribe by itself, messages may have been missed: that is a loss too.
                    held = (pubsub.connection, pubsub.connection.retry)
                    pubsub.connection.retry = _NO_RETRY
                    pubsub.connection.register_connect_callback(self._reconnected)
                self._feed_reconnected = False
                # Anything cached before this point may have missed changes.
                self._listeners.emit(Change(ChangeKind.FEED_RESET))
                self._subscribed.set()
                up_since = asyncio.get_running_loop().time()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if self._feed_reconnected:
                        raise ConnectionError("the feed's connection was re-established by redis-py")
                    if not pubsub.subscribed:
                        raise ConnectionError("the feed is no longer subscribed")
                    if asyncio.get_running_loop().time() - up_since > _STABLE_SECONDS:
                        attempt = 0  # up for a while: the next loss is a new outage, retried at once
                    if message is not None and message["type"] == "message":
                        self._dispatch(message["data"])
            except REDIS_FAILURES as exc:
                # Once per outage at warning level; the retries of the same outage (backing off) at debug.
                (log.warning if attempt == 0 else log.debug)("redis change feed lost: %s", type(exc).__name__)
                self._listeners.emit(Change(ChangeKind.FEED_LOST))
                await asyncio.sleep(_RETRY_DELAYS[min(attempt, len(_RETRY_DELAYS) - 1)])
                attempt += 1
                failures += 1
            finally:
                if held is not None:  # it goes back to the pool, for commands: as it was
                    connection, retry = held
                    connection.deregister_connect_callback(self._reconnected)
                    connection.retry = retry
                with contextlib.suppress(*REDIS_FAILURES):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _reconnected(self, connection: object) -> None:
        self._feed_reconnected = True

    def _feed(self, failures: int) -> PubSub:
        # In a cluster every node hears every PUBLISH, so any node will do; after each failure try the next
        # one (the client's own pick follows the channel's slot to a primary, which may be the one that died).
        if isinstance(self._redis, RedisCluster) and (nodes := self._redis.get_nodes()):
            return self._redis.pubsub(node=nodes[failures % len(nodes)], ignore_subscribe_messages=True)
        return self._redis.pubsub(ignore_subscribe_messages=True)

    def _dispatch(self, data: bytes) -> None:
        kind, version, identifier = data.decode().split(":", 2)
        change_kind = ChangeKind.SUBSCRIPTION if kind == "s" else ChangeKind.CUSTOMER
        self._listeners.emit(Change(change_kind, identifier, int(version)))

    def _sub_key(self, external_id: str) -> str:
        return f"{self._prefix}s:{{{external_id}}}"

    def _customer_key(self, customer_id: str) -> str:
        return f"{self._prefix}c:{{{customer_id}}}"


def _record(fields: Sequence[bytes | str | None]) -> StoredSubscription | None:
    version, body, synced_ms = fields
    if body is None or version is None:
        return None
    synced = datetime.fromtimestamp(int(synced_ms or 0) / 1000, UTC)
    return StoredSubscription(codec.decode(body), int(version), synced, Origin.REDIS)
