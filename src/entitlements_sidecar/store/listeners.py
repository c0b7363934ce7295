"""A small fan-out of change notifications shared by the store implementations."""

from __future__ import annotations

import logging
from collections.abc import Callable

from entitlements_sidecar.domain.ports import Change, ChangeListener

log = logging.getLogger(__name__)


class Listeners:
    def __init__(self) -> None:
        self._listeners: list[ChangeListener] = []

    def add(self, listener: ChangeListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def emit(self, change: Change) -> None:
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:  # one broken listener must not starve the others
                log.exception("change listener failed", extra={"change": change.kind.value})
