"""Whether the map is known to hold every subject: only then is "not found" an answer.

A map is complete once a load finished and nothing says it was lost since. While it is not (before the
first load, after Redis restarted empty, while it is rebuilt), a subject the map lacks may exist: reads
say so (NotReadyError, which the failure policy answers) instead of a fresh-looking denial, and a
customer's answer is marked stale, since its index may still be filling.
"""

from __future__ import annotations

from entitlements_sidecar.domain.errors import NotReadyError


class MapStatus:
    def __init__(self, complete: bool = False, reason: str = "no complete load yet") -> None:
        self._complete = complete
        self.reason = "" if complete else reason
        self.progress = ""  # set by whoever rebuilds the map in this process

    @property
    def complete(self) -> bool:
        return self._complete

    @property
    def detail(self) -> str:
        return f"{self.reason}; {self.progress}" if self.progress else self.reason

    def confirm(self) -> None:
        self._complete, self.reason, self.progress = True, "", ""

    def doubt(self, reason: str) -> None:
        self._complete, self.reason = False, reason

    def require_complete(self) -> None:
        """Raise NotReadyError, saying why, unless the map is complete."""
        if not self._complete:
            raise NotReadyError(f"the map is not complete ({self.detail}): a subject it lacks may exist")
