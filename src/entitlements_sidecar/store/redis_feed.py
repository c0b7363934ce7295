"""The Redis change feed: one subscription to the map's channel, held for the life of the store.

A broken feed must be noticed at once (everything cached may have missed changes), so its connection
has no retries of its own; it reconnects with a backoff, and says FEED_LOST / FEED_RESET each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError

from entitlements_sidecar.domain.ports import Change, ChangeKind
from entitlements_sidecar.store.redis_connection import REDIS_FAILURES, RedisClient

log = logging.getLogger(__name__)

_RETRY_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0)  # feed reconnect backoff, capped at the last value
_NO_RETRY = Retry(NoBackoff(), 0)
_STABLE_SECONDS = 2.0  # a feed that keeps breaking sooner backs off (a cluster failing over drops it often)


class ChangeFeed:
    def __init__(
        self,
        client: RedisClient,
        channel: str,
        on_message: Callable[[bytes], None],
        on_state: Callable[[Change], None],
    ) -> None:
        self._client = client
        self._channel = channel
        self._on_message = on_message
        self._on_state = on_state
        self._follower: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._feed_reconnected = False

    async def start(self) -> None:
        self._follower = asyncio.create_task(self._follow(), name="redis-change-feed")
        await asyncio.wait_for(self._subscribed.wait(), timeout=10)

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            # Bounded: redis-py does not always honour a cancel promptly in the middle of a read.
            await asyncio.wait({self._follower}, timeout=2)

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
                self._on_state(Change(ChangeKind.FEED_RESET))
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
                        self._on_message(message["data"])
            except REDIS_FAILURES as exc:
                # Once per outage at warning level; the retries of the same outage (backing off) at debug.
                (log.warning if attempt == 0 else log.debug)("redis change feed lost: %s", type(exc).__name__)
                self._on_state(Change(ChangeKind.FEED_LOST))
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
        if isinstance(self._client, RedisCluster) and (nodes := self._client.get_nodes()):
            return self._client.pubsub(node=nodes[failures % len(nodes)], ignore_subscribe_messages=True)
        return self._client.pubsub(ignore_subscribe_messages=True)
