"""How the syncer's loops wait when what they depend on fails (the queue worker, the usage forwarder)."""

from __future__ import annotations

from collections.abc import Sequence

RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)  # while the source or Redis is down; capped at the last
REJECTED_PAUSE = 30.0  # the source refuses us (a bad API key): ask again this rarely until it is fixed


def delay(attempt: int, delays: Sequence[float] = RETRY_DELAYS) -> float:
    return delays[min(attempt, len(delays) - 1)]
