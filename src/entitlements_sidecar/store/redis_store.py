"""The shared resolved-entitlement map in Redis.

Layout (prefix configurable, default `ent:`):
- `{prefix}s:{subscription_id}` hash: v (version), b (encoded body), d (digest), c (customer), t (synced ms).
  Deleting keeps `v` as a tombstone so a re-created subscription never reuses a lower version.
- `{prefix}c:{customer_id}` hash: v (version), `m:{subscription_id}` one field per member.
- `{prefix}subs` set of live subscription ids.
- channel `{prefix}changes`: `s:{version}:{id}` / `c:{version}:{id}` after every change.
Writes run as one Lua script each, so a subscription, its customer index and the notification
change together or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from entitlements_sidecar.domain.errors import StoreUnavailableError
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

log = logging.getLogger(__name__)

_PUT = """
local cur = redis.call('HMGET', KEYS[1], 'd', 'c', 'v')
if cur[1] == ARGV[3] then return {tonumber(cur[3]), 0} end
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HSET', KEYS[1], 'd', ARGV[3], 'b', ARGV[4], 'c', ARGV[2], 't', ARGV[5])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('PUBLISH', ARGV[7], 's:' .. v .. ':' .. ARGV[1])
if cur[2] and cur[2] ~= ARGV[2] then
  local old = ARGV[6] .. 'c:' .. cur[2]
  redis.call('HDEL', old, 'm:' .. ARGV[1])
  redis.call('PUBLISH', ARGV[7], 'c:' .. redis.call('HINCRBY', old, 'v', 1) .. ':' .. cur[2])
end
redis.call('HSET', KEYS[2], 'm:' .. ARGV[1], '1')
redis.call('PUBLISH', ARGV[7], 'c:' .. redis.call('HINCRBY', KEYS[2], 'v', 1) .. ':' .. ARGV[2])
return {v, 1}
"""

_DELETE = """
local cur = redis.call('HMGET', KEYS[1], 'c', 'b')
if not cur[2] then return false end
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('HDEL', KEYS[1], 'd', 'b', 'c', 't')
redis.call('SREM', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[3], 's:' .. v .. ':' .. ARGV[1])
local ck = ARGV[2] .. 'c:' .. cur[1]
redis.call('HDEL', ck, 'm:' .. ARGV[1])
redis.call('PUBLISH', ARGV[3], 'c:' .. redis.call('HINCRBY', ck, 'v', 1) .. ':' .. cur[1])
return v
"""

_RETRY_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0)  # feed reconnect backoff, capped at the last value


class RedisStore:
    def __init__(self, client: aioredis.Redis, prefix: str = "ent:") -> None:
        self._redis = client
        self._prefix = prefix
        self._channel = f"{prefix}changes"
        self._listeners = Listeners()
        self._put = client.register_script(_PUT)
        self._delete = client.register_script(_DELETE)
        self._follower: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    @classmethod
    def from_url(cls, url: str, prefix: str = "ent:", timeout: float = 2.0) -> RedisStore:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        return cls(client, prefix)

    async def start(self) -> None:
        """Connect and subscribe to the change feed before anything is cached."""
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise StoreUnavailableError(f"redis unreachable: {type(exc).__name__}") from exc
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
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc
        return _record(fields)

    async def get_subscriptions(self, external_ids: Sequence[str]) -> list[StoredSubscription | None]:
        if not external_ids:
            return []
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for external_id in external_ids:
                    pipe.hmget(self._sub_key(external_id), "v", "b", "t")
                rows = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc
        return [_record(row) for row in rows]

    async def get_customer(self, customer_id: str, min_version: int = 0) -> StoredCustomer | None:
        try:
            fields = await self._redis.hgetall(self._customer_key(customer_id))
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc
        members = sorted(_text(k)[2:] for k in fields if _text(k).startswith("m:"))
        if not members:
            return None
        return StoredCustomer(customer_id, tuple(members), int(fields[b"v"]), Origin.REDIS)

    async def subscription_ids(self) -> set[str]:
        try:
            members = await self._redis.smembers(f"{self._prefix}subs")
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc
        return {_text(m) for m in members}

    # -- writes ---------------------------------------------------------------------------

    async def put_subscription(self, subscription: ResolvedSubscription) -> int:
        keys, args = self._put_call(subscription)
        try:
            version, _ = await self._put(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc
        return int(version)

    async def put_subscriptions(self, subscriptions: Sequence[ResolvedSubscription]) -> list[tuple[int, bool]]:
        if not subscriptions:
            return []
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for subscription in subscriptions:
                    keys, args = self._put_call(subscription)
                    await self._put(keys=keys, args=args, client=pipe)
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc
        return [(int(version), bool(changed)) for version, changed in replies]

    def _put_call(self, subscription: ResolvedSubscription) -> tuple[list[str], list[str | bytes | int]]:
        body = codec.encode(subscription)
        keys = [
            self._sub_key(subscription.external_id),
            self._customer_key(subscription.external_customer_id),
            f"{self._prefix}subs",
        ]
        args: list[str | bytes | int] = [
            subscription.external_id,
            subscription.external_customer_id,
            codec.digest(body),
            body,
            int(time.time() * 1000),
            self._prefix,
            self._channel,
        ]
        return keys, args

    async def delete_subscription(self, external_id: str) -> int | None:
        keys = [self._sub_key(external_id), f"{self._prefix}subs"]
        try:
            version = await self._delete(keys=keys, args=[external_id, self._prefix, self._channel])
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc
        return None if version is None else int(version)

    # -- change feed ----------------------------------------------------------------------

    def add_listener(self, listener: ChangeListener) -> Callable[[], None]:
        return self._listeners.add(listener)

    async def _follow(self) -> None:
        attempt = 0
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                attempt = 0
                # Anything cached before this point may have missed changes.
                self._listeners.emit(Change(ChangeKind.FEED_RESET))
                self._subscribed.set()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message["type"] == "message":
                        self._dispatch(message["data"])
            except (RedisError, OSError) as exc:
                log.warning("redis change feed lost: %s", type(exc).__name__)
                self._listeners.emit(Change(ChangeKind.FEED_LOST))
                await asyncio.sleep(_RETRY_DELAYS[min(attempt, len(_RETRY_DELAYS) - 1)])
                attempt += 1
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _dispatch(self, data: bytes) -> None:
        kind, version, identifier = data.decode().split(":", 2)
        change_kind = ChangeKind.SUBSCRIPTION if kind == "s" else ChangeKind.CUSTOMER
        self._listeners.emit(Change(change_kind, identifier, int(version)))

    def _sub_key(self, external_id: str) -> str:
        return f"{self._prefix}s:{external_id}"

    def _customer_key(self, customer_id: str) -> str:
        return f"{self._prefix}c:{customer_id}"


def _record(fields: Sequence[bytes | str | None]) -> StoredSubscription | None:
    version, body, synced_ms = fields
    if body is None or version is None:
        return None
    synced = datetime.fromtimestamp(int(synced_ms or 0) / 1000, UTC)
    return StoredSubscription(codec.decode(body), int(version), synced, Origin.REDIS)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _unavailable(exc: BaseException) -> StoreUnavailableError:
    # Never pass raw library text to clients; the type is enough to diagnose from logs.
    return StoreUnavailableError(f"redis error: {type(exc).__name__}")
