"""Turns store changes into "these flag keys changed" notices for OpenFeature event streams.

A flagd event stream is not tied to one subject, but its `configuration_change` names flag keys.
For subjects evaluated through OpenFeature, the last flag values are remembered (bounded), so a
change names exactly the keys whose values moved, removals included. For a subject not remembered,
the keys of its new flags are named. Changes arriving within `coalesce_seconds` are sent as one
notice, so a plan change touching thousands of subscriptions is a handful of messages.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from entitlements_sidecar.domain.flags import changed_keys, flag_values
from entitlements_sidecar.domain.ports import Change, ChangeKind, EntitlementStore
from entitlements_sidecar.domain.queries import Subject, SubjectKind
from entitlements_sidecar.domain.service import EntitlementView, ReadService

log = logging.getLogger(__name__)
Notice = frozenset[str] | None  # None: the server is shutting down


class FlagChangeFeed:
    def __init__(
        self,
        service: ReadService,
        store: EntitlementStore,
        coalesce_seconds: float = 0.05,
        remembered: int = 10_000,
    ) -> None:
        self._service = service
        self._coalesce = coalesce_seconds
        self._max_remembered = remembered
        self._last: OrderedDict[Subject, dict[str, Any]] = OrderedDict()
        self._subscribers: set[asyncio.Queue[Notice]] = set()
        self._pending: set[Subject] = set()
        self._flush: asyncio.Task[None] | None = None
        store.add_listener(self._on_change)

    def remember(self, view: EntitlementView) -> None:
        self._last[view.subject] = flag_values(view)
        self._last.move_to_end(view.subject)
        while len(self._last) > self._max_remembered:
            self._last.popitem(last=False)

    def subscribe(self) -> asyncio.Queue[Notice]:
        queue: asyncio.Queue[Notice] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Notice]) -> None:
        self._subscribers.discard(queue)

    def close(self) -> None:
        """End every subscriber's stream (shutdown)."""
        for queue in self._subscribers:
            queue.put_nowait(None)

    def _on_change(self, change: Change) -> None:
        if not self._subscribers:
            return
        if change.kind is ChangeKind.SUBSCRIPTION:
            self._pending.add(Subject(SubjectKind.SUBSCRIPTION, change.id))
        elif change.kind is ChangeKind.CUSTOMER:
            self._pending.add(Subject(SubjectKind.CUSTOMER, change.id))
        elif change.kind in (ChangeKind.FEED_RESET, ChangeKind.PLAN, ChangeKind.FEATURES):
            # Anything may have changed meanwhile, or a plan or the catalog that answers are composed with.
            self._pending.update(self._last)
        else:
            return
        if self._flush is None or self._flush.done():
            self._flush = asyncio.get_running_loop().create_task(self._send_soon(), name="flag-change-feed")

    async def _send_soon(self) -> None:
        await asyncio.sleep(self._coalesce)
        subjects, self._pending = self._pending, set()
        keys: set[str] = set()
        for subject in subjects:
            try:
                view = await self._service.get(subject)
            except Exception:
                log.warning("could not read a changed subject; naming no keys for it", exc_info=True)
                continue
            after = flag_values(view)
            before = self._last.get(subject)
            keys |= changed_keys(before, after) if before is not None else set(after)
            if before is not None:
                self._last[subject] = after
        if keys:
            notice = frozenset(keys)
            for queue in self._subscribers:
                queue.put_nowait(notice)
