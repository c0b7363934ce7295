"""The caller's deadline, carried from the gRPC call into the coroutine that answers it.

The bridge records when the caller gives up (`CALL_DEADLINE`, in event-loop time) before the
servicer runs; `CallDeadline.within` bounds a store or Lago read by it, less a margin, so the
failure policy can still answer before the caller stops listening (a read the caller would never
see the end of is cancelled instead). Calls without a deadline are not bounded here: Redis and Lago
have their own timeouts.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable
from typing import TypeVar

from entitlements_sidecar.domain.errors import DeadlineError

T = TypeVar("T")

CALL_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("call_deadline", default=None)


class CallDeadline:
    """Reads end before the deadline by `margin_seconds`, or by a tenth of the time left if that is more
    (the answer still has to travel back: serialize, send, wake the caller, longer on a busy host), but
    never by more than half of it, so a short deadline still leaves time to read a healthy Redis."""

    def __init__(self, margin_seconds: float) -> None:
        self.margin = margin_seconds

    def budget(self, left: float) -> float:
        return left - max(min(self.margin, left / 2), left / 10)

    async def within(self, work: Awaitable[T]) -> T:
        deadline = CALL_DEADLINE.get()
        if deadline is None:
            return await work
        budget = self.budget(deadline - asyncio.get_running_loop().time())
        if budget <= 0:
            _discard(work)
            raise DeadlineError("no time left before the call's deadline to read the store or the source")
        try:
            async with asyncio.timeout(budget):
                return await work
        except TimeoutError:
            raise DeadlineError(
                f"the store or the source did not answer within the call's deadline ({budget * 1000:.0f} ms left)"
            ) from None


def _discard(work: Awaitable[object]) -> None:
    close = getattr(work, "close", None)  # a coroutine never awaited: close it, so nothing warns about it
    if close is not None:
        close()
