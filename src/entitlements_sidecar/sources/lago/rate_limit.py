"""A token bucket shared by every Lago request of a process (Lago Cloud allows 50 requests/s)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate: float, burst: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = rate
        # A burst of one second's worth would let a cold start send `rate` requests at once; one token
        # keeps the spacing even, which is what a per-second server-side limit wants to see.
        self._capacity = float(burst if burst is not None else 1)
        self._tokens = self._capacity
        self._clock = clock
        self._updated = clock()
        self._lock = asyncio.Lock()
        self._paused_until = 0.0

    async def acquire(self) -> None:
        async with self._lock:  # first come, first served
            while True:
                now = self._clock()
                if now < self._paused_until:
                    await asyncio.sleep(self._paused_until - now)
                    continue
                self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self._rate)

    def pause(self, seconds: float) -> None:
        """Hold every caller back (Lago answered 429 and said when its window resets)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
