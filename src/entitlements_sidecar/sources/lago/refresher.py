"""Turning sync events into store writes.

A webhook is a signal, not data: its body is a snapshot taken when Lago's job ran and deliveries are
unordered, so every subscription event re-reads the subscription from Lago. The map is factorized
(docs/adr/0012): a subscription is stored as its own part, so a plan or feature event is one Lago
request and one write, however many subscriptions are on the plan.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, Protocol, TypeVar

from entitlements_sidecar.domain.clock import now_ms
from entitlements_sidecar.domain.events import SyncEvent, Target
from entitlements_sidecar.domain.model import FeatureDefinition, PlanDefinition, SubscriptionDefinition
from entitlements_sidecar.domain.ports import EntitlementStore
from entitlements_sidecar.domain.resolution import resolve_subscription
from entitlements_sidecar.sources.lago import mapping
from entitlements_sidecar.sources.lago.errors import LagoContractError, LagoRequestError

log = logging.getLogger(__name__)
Json = dict[str, Any]
T = TypeVar("T")
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
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self._lago = lago
        self._store = store
        self._clock_ms = clock_ms
        self._diverged: set[str] = set()  # plans whose composition disagreed with Lago's view (logged once)

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
        features = await self._learn_features(mapping.features_in(raw.get("entitlements") or []))
        definition = await self._own_part(raw, features)
        [result] = await self._store.put_subscriptions([definition], observed)
        if result.superseded:
            log.info("older read ignored", extra={"subscription": definition.external_id, "event": reason})
            return False
        if result.changed:
            # A full sync writes every subscription: its report counts them, one line each would drown the log.
            log.log(
                logging.DEBUG if reason == "full_sync" else logging.INFO,
                "subscription applied",
                extra={
                    "subscription": definition.external_id,
                    "event": reason,
                    "version": result.version,
                    "status": definition.status.value,
                },
            )
        return result.changed

    async def _own_part(self, raw: Json, features: dict[str, FeatureDefinition]) -> SubscriptionDefinition:
        """The subscription's own rows, derived against the plan. Its answer is their composition with the
        plan, which must be Lago's resolved view: when it is not, the plan we hold is behind Lago's (its
        webhook is still on the way), so the plan is read again, and then the features, once each."""
        code = raw["plan_code"]
        previous = await self._store.definition(raw["external_id"])  # its removals may outlive plan edits
        plan = await self._plan(code)
        definition = mapping.subscription_definition(raw, plan, previous)
        view = mapping.resolved_subscription(raw)
        if resolve_subscription(definition, plan, features).features == view.features:
            return definition
        plan = await self.fetch_plan(code)
        definition = mapping.subscription_definition(raw, plan, previous)
        features = await self._store.features()
        if resolve_subscription(definition, plan, features).features != view.features:
            # A feature or privilege Lago deleted (its feature.deleted is still on the way): read them all.
            await self.refresh_features("composition check")
            features = await self._store.features()
        diverged = resolve_subscription(definition, plan, features).features != view.features
        if diverged and code not in self._diverged:  # once per plan: a systematic difference must not flood the log
            self._diverged.add(code)
            log.warning(
                "the composed answer differs from Lago's resolved view; serving the composition",
                extra={"subscription": definition.external_id, "plan": code},
            )
        return definition

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
        version = await self._store.delete_subscription(external_id, observed)
        if version is not None:
            log.info("subscription removed", extra={"subscription": external_id, "event": reason, "version": version})
        return version is not None

    # -- plans and features ---------------------------------------------------------------

    async def refresh_plan(self, code: str) -> bool:
        """Re-read a plan's entitlements: one write, which every subscription on it answers from."""
        # Deleted: Lago terminates its subscriptions and says so in their own webhooks.
        return await self.fetch_plan(code) is not None

    async def refresh_features(self, reason: str = "feature.updated") -> int:
        """Re-read every feature definition: one write of the catalog; returns its version."""
        features = {f["code"]: mapping.feature_definition(f) async for f in self._lago.list_features()}
        version = await self._store.put_features(features)
        log.info("features applied", extra={"event": reason, "version": version, "features": len(features)})
        return version

    async def fetch_plan(self, code: str) -> PlanDefinition | None:
        entitlements = await self._lago.get_plan_entitlements(code)
        if entitlements is None:
            return None
        plan = mapping.plan_definition(code, entitlements)
        await self._learn_features(mapping.features_in(entitlements))
        version = await self._store.put_plan(plan)
        log.debug("plan applied", extra={"plan": code, "version": version})
        return plan

    async def _plan(self, code: str) -> PlanDefinition | None:
        return await self._store.plan(code) or await self.fetch_plan(code)

    async def _learn_features(self, seen: list[FeatureDefinition]) -> dict[str, FeatureDefinition]:
        """The catalog with what a response revealed merged in (and stored when that changed it)."""
        known = await self._store.features()
        if mapping.merge_features(known, seen):
            await self._store.put_features(known)
        return known


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
