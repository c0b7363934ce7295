"""Turning sync events into store writes.

A webhook is a signal, not data: its body is a snapshot taken when Lago's job ran and deliveries are
unordered, so every subscription event re-reads the subscription from Lago. Plan and feature events are
re-resolved locally from stored definitions (one Lago request per plan, however many subscriptions).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

from entitlements_sidecar.domain.clock import now_ms
from entitlements_sidecar.domain.events import SyncEvent, Target
from entitlements_sidecar.domain.model import (
    FeatureDefinition,
    PlanDefinition,
)
from entitlements_sidecar.domain.ports import EntitlementStore, SyncStateStore
from entitlements_sidecar.domain.resolution import resolve_subscription
from entitlements_sidecar.sources.lago import mapping
from entitlements_sidecar.sources.lago.errors import LagoContractError, LagoRequestError

log = logging.getLogger(__name__)
Json = dict[str, Any]
T = TypeVar("T")
_CHUNK = 500  # subscriptions re-resolved per pipelined read and write
_INACTIVE_PREFERENCE = ("pending", "incomplete", "terminated", "canceled")


class LagoReader(Protocol):
    async def get_subscription(self, external_id: str, status: str | None = None) -> Json | None: ...

    def list_subscriptions(
        self,
        statuses: Sequence[str] = ...,
        external_id: str | None = None,
        external_customer_id: str | None = None,
        per_page: int = ...,
    ) -> AsyncIterator[Json]: ...

    async def get_plan_entitlements(self, plan_code: str) -> list[Json] | None: ...

    def list_features(self, per_page: int = ...) -> AsyncIterator[Json]: ...


class Refresher:
    def __init__(
        self,
        lago: LagoReader,
        store: EntitlementStore,
        state: SyncStateStore,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self._lago = lago
        self._store = store
        self._state = state
        self._clock_ms = clock_ms

    async def apply(self, events: Sequence[SyncEvent]) -> None:
        """Handle a batch; repeated targets are refreshed once (coalescing)."""
        features = [e for e in events if e.target is Target.FEATURE]
        plans = dict.fromkeys(e.key for e in events if e.target is Target.PLAN)
        subscriptions: dict[str, str] = {}
        for event in events:
            if event.target is Target.SUBSCRIPTION:
                subscriptions[event.key] = event.webhook_type
        if features:
            await self.refresh_features(features[-1].webhook_type)
        for code in plans:
            await self.refresh_plan(code)
        for external_id, webhook_type in subscriptions.items():
            try:
                await self.refresh_subscription(external_id, webhook_type)
            except (LagoContractError, LagoRequestError) as exc:
                # Lago answered for another subscription, something we cannot read, or refused this one
                # request: nothing is written, and retrying the batch would not make the answer true.
                # Reconciliation reads it again. (A refused API key is not caught: the batch stays pending.)
                log.warning("subscription not refreshed", extra={"subscription": external_id, "error": str(exc)})
                continue

    # -- subscriptions --------------------------------------------------------------------

    async def refresh_subscription(self, external_id: str, reason: str = "refresh") -> bool:
        """Re-read one subscription from Lago and store it; True if the store changed. The one writer of
        what Lago says: webhooks, reconciliation and read-throughs all come here."""
        observed = self._clock_ms()
        raw = await self._lago.get_subscription(external_id)
        if raw is None:
            raw = await self._inactive_row(external_id)
        # Once Lago has answered, the write is finished even if the caller stops waiting (its deadline).
        if raw is None:
            return await _finished(self._forget(external_id, observed, reason))
        return await _finished(self.store_subscription(raw, observed, reason))

    async def store_subscription(self, raw: Json, observed: int, reason: str) -> bool:
        """Store one Lago subscription object (with its embedded entitlements) read at `observed`."""
        plan = await self._plan(raw["plan_code"])
        previous = await self._state.definition(raw["external_id"])  # its removals may outlive plan edits
        definition = mapping.subscription_definition(raw, plan, previous)
        if not await self._state.put_definition(definition, observed):
            log.info("older read ignored", extra={"subscription": definition.external_id, "event": reason})
            return False
        await self._learn_features(mapping.features_in(raw.get("entitlements") or []))
        [(version, changed)] = await self._store.put_subscriptions([mapping.resolved_subscription(raw)])
        if changed:
            # A full sync writes every subscription: its report counts them, one line each would drown the log.
            log.log(
                logging.DEBUG if reason == "full_sync" else logging.INFO,
                "subscription applied",
                extra={
                    "subscription": definition.external_id,
                    "event": reason,
                    "version": version,
                    "status": definition.status.value,
                },
            )
        return changed

    async def _inactive_row(self, external_id: str) -> Json | None:
        rows = [r async for r in self._lago.list_subscriptions(_INACTIVE_PREFERENCE, external_id=external_id)]
        for status in _INACTIVE_PREFERENCE:
            row = next((r for r in rows if r.get("status") == status), None)
            if row is None:
                continue
            if status == "pending":  # may become active: keep its entitlements
                return await self._lago.get_subscription(external_id, status="pending") or row
            return row
        return None

    async def _forget(self, external_id: str, observed: int, reason: str) -> bool:
        if not await self._state.delete_definition(external_id, observed):
            return False
        version = await self._store.delete_subscription(external_id)
        if version is not None:
            log.info("subscription removed", extra={"subscription": external_id, "event": reason, "version": version})
        return version is not None

    # -- plans and features ---------------------------------------------------------------

    async def refresh_plan(self, code: str) -> int:
        """Re-read a plan's entitlements and re-resolve its subscriptions locally; returns writes."""
        if await self.fetch_plan(code) is None:
            return 0  # deleted: Lago terminates its subscriptions and says so in their own webhooks
        return await self._re_resolve(await self._state.on_plan(code), f"plan.updated:{code}")

    async def refresh_features(self, reason: str = "feature.updated") -> int:
        """Re-read every feature definition and re-resolve every stored subscription locally."""
        features = {f["code"]: mapping.feature_definition(f) async for f in self._lago.list_features()}
        await self._state.replace_features(features)
        return await self._re_resolve(await self._state.definition_ids(), reason)

    async def fetch_plan(self, code: str) -> PlanDefinition | None:
        entitlements = await self._lago.get_plan_entitlements(code)
        if entitlements is None:
            return None
        plan = mapping.plan_definition(code, entitlements)
        await self._learn_features(mapping.features_in(entitlements))
        await self._state.put_plan(plan)
        return plan

    async def _plan(self, code: str) -> PlanDefinition | None:
        return await self._state.plan(code) or await self.fetch_plan(code)

    async def _re_resolve(self, external_ids: set[str], reason: str) -> int:
        features = await self._state.features()
        plans: dict[str, PlanDefinition | None] = {}
        writes = 0
        ordered = sorted(external_ids)
        for start in range(0, len(ordered), _CHUNK):  # a few round trips per chunk, not per subscription
            definitions = await self._state.definitions(ordered[start : start + _CHUNK])
            resolved = []
            for definition in definitions.values():
                if definition.plan_code not in plans:
                    plans[definition.plan_code] = await self._state.plan(definition.plan_code)
                resolved.append(resolve_subscription(definition, plans[definition.plan_code], features))
            for subscription, (version, changed) in zip(
                resolved, await self._store.put_subscriptions(resolved), strict=True
            ):
                if changed:
                    writes += 1
                    log.info(
                        "subscription applied",
                        extra={"subscription": subscription.external_id, "event": reason, "version": version},
                    )
        return writes

    async def _learn_features(self, seen: list[FeatureDefinition]) -> None:
        known = await self._state.features()
        if mapping.merge_features(known, seen):
            await self._state.replace_features(known)


async def _finished(write: Coroutine[Any, Any, T]) -> T:
    task = asyncio.ensure_future(write)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        _LEFT.add(task)  # the loop holds tasks weakly: keep it until it ends
        task.add_done_callback(_LEFT.discard)
        task.add_done_callback(_log_failure)  # nobody else will see how it ends
        raise


_LEFT: set[asyncio.Future[Any]] = set()


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("a write after a Lago read failed", exc_info=task.exception())
