"""Wall-clock time in milliseconds: the unit sync reads, heartbeats and loads are stamped in."""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
