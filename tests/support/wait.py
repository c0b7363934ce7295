"""Polling helpers: eventual effects are awaited, never slept for."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class GiveUp(Exception):
    """Raised by a probe when waiting longer cannot help (e.g. the process died)."""


def eventually(probe: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = "condition") -> T:
    """Call `probe` until it returns a truthy value (returned) or the timeout passes (AssertionError).
    Exceptions from the probe count as "not yet" and the last one is reported."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = probe()
            if result:
                return result
            last = result
        except GiveUp:
            raise
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout}s; last: {last!r}")
        time.sleep(interval)


def holds_for(probe: Callable[[], object], seconds: float, interval: float = 0.05, what: str = "condition") -> None:
    """Check that `probe` stays truthy for `seconds` (for "this must not happen" assertions)."""
    deadline = time.monotonic() + seconds
    while True:
        result = probe()
        if not result:
            raise AssertionError(f"{what} stopped holding; last: {result!r}")
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


async def eventually_async(
    probe: Callable[[], Awaitable[T]],
    timeout: float = 10.0,  # noqa: ASYNC109 - a polling deadline, not a cancel scope
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = await probe()
            if result:
                return result
            last = result
        except GiveUp:
            raise
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout}s; last: {last!r}")
        await asyncio.sleep(interval)


async def holds_for_async(
    probe: Callable[[], Awaitable[object]], seconds: float, interval: float = 0.01, what: str = "condition"
) -> None:
    """`holds_for` on the event loop: `probe` stays truthy for `seconds` while other tasks run."""
    deadline = time.monotonic() + seconds
    while True:
        result = await probe()
        if not result:
            raise AssertionError(f"{what} stopped holding; last: {result!r}")
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(interval)
