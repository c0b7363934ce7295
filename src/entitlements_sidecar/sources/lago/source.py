"""Lago as the read path's source of truth: a fully consistent read re-reads Lago through the refresher,
which stores what it read (definitions included) exactly as a webhook-triggered refresh would, ordered
against concurrent refreshes by when each read began. The refresher is the one writer."""

from __future__ import annotations

from entitlements_sidecar.domain.ports import LATEST, EntitlementStore
from entitlements_sidecar.sources.lago.client import ACTIVE_AND_PENDING
from entitlements_sidecar.sources.lago.refresher import LagoReader, Refresher


class LagoSource:
    def __init__(self, lago: LagoReader, refresher: Refresher, store: EntitlementStore) -> None:
        self._lago = lago
        self._refresher = refresher
        self._store = store

    async def refresh_subscription(self, external_id: str) -> None:
        await self._refresher.refresh_subscription(external_id, "read_through")

    async def refresh_customer(self, customer_id: str) -> None:
        before = await self._store.get_customer(customer_id, LATEST)
        rows = [r async for r in self._lago.list_subscriptions(ACTIVE_AND_PENDING, external_customer_id=customer_id)]
        listed = sorted({r["external_id"] for r in rows})
        # Those the store lists under the customer but Lago does not: moved to another customer, or gone.
        for external_id in listed + sorted(set(before.subscription_ids if before else ()) - set(listed)):
            await self._refresher.refresh_subscription(external_id, "read_through")
