"""Lago as the read path's source of truth: fully consistent reads re-read Lago (and store what they
read, definitions included, exactly as a webhook-triggered refresh would)."""

from __future__ import annotations

from entitlements_sidecar.domain.model import ResolvedSubscription
from entitlements_sidecar.sources.lago.refresher import LagoReader, Refresher


class LagoSource:
    def __init__(self, lago: LagoReader, refresher: Refresher) -> None:
        self._lago = lago
        self._refresher = refresher

    async def load_all(self) -> list[ResolvedSubscription]:
        rows = [r async for r in self._lago.list_subscriptions(("active", "pending"))]
        return await self._read([r["external_id"] for r in rows])

    async def fetch_subscription(self, external_id: str) -> ResolvedSubscription | None:
        return await self._refresher.read_through(external_id)

    async def fetch_customer(self, customer_id: str) -> list[ResolvedSubscription]:
        rows = [r async for r in self._lago.list_subscriptions(("active", "pending"), external_customer_id=customer_id)]
        return await self._read(sorted({r["external_id"] for r in rows}))

    async def _read(self, external_ids: list[str]) -> list[ResolvedSubscription]:
        found = []
        for external_id in dict.fromkeys(external_ids):
            resolved = await self._refresher.read_through(external_id)
            if resolved is not None:
                found.append(resolved)
        return found
