"""A token bucket shared by every Lago request of a process (Lago Cloud allows 50 requests/s), with two
lanes: webhook refreshes and read-throughs take tokens first; bulk work (a full sync's reads) takes one
only while no such request waits, so a reconciliation never delays a webhook by more than one token."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class Limiter(Protocol):
    async def acquire(self) -> None: ...

    def pause(self, seconds: float) -> None: ...


class TokenBucket:
    def __init__(self, rate: float, burst: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        # A burst of one second's worth would let a cold start send `rate` requests at once. Two tokens keep
        # the spacing even (any one second holds at most rate + 1 requests, what a per-second server-side
        # limit wants to see) and let a caller whose wake-up came late (a busy event loop: about 5 ms
        # here) catch up by one interval; with one, every late wake-up was lost, and a full sync reached
        # 65 % of a limit of 100/s (bench-scale S4, 2026-12-02).
        self._capacity = float(burst if burst is not None else 2)
        self._tokens = 1.0  # a start sends one request, not a burst
        self._clock = clock
        self._updated = clock()
        self._lock = asyncio.Lock()  # the priority lane: first come, first served
        self._bulk = asyncio.Lock()  # the bulk lane queues behind it
        self._paused_until = 0.0

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                wait = self._take()
                if wait == 0:
                    return
                await asyncio.sleep(wait)

    async def acquire_bulk(self) -> None:
        async with self._bulk:
            while True:
                if not self._lock.locked():  # no priority request waits (nor holds the gate)
                    wait = self._take()
                    if wait == 0:
                        return
                else:
                    wait = 1 / self.rate
                await asyncio.sleep(wait)

    def pause(self, seconds: float) -> None:
        """Hold every caller back (Lago answered 429 and said when its window resets)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def bulk(self) -> Limiter:
        """This bucket's bulk lane, for a client of its own."""
        return _BulkLane(self)

    def _take(self) -> float:
        """Take a token (0.0), or say how long to wait for one."""
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate


class _BulkLane:
    def __init__(self, bucket: TokenBucket) -> None:
        self._bucket = bucket

    async def acquire(self) -> None:
        await self._bucket.acquire_bulk()

    def pause(self, seconds: float) -> None:
        self._bucket.pause(seconds)
