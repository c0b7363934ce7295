"""Making the store match a full snapshot from the source: its catalog, its plans, its subscriptions."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from entitlements_sidecar.domain.model import Snapshot
from entitlements_sidecar.domain.ports import EntitlementStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    written: int
    deleted: int


async def apply_snapshot(store: EntitlementStore, snapshot: Snapshot) -> ApplyResult:
    """Write the parts (unchanged ones keep their version) and delete the subscriptions that are no
    longer in the snapshot."""
    before = await store.subscription_ids()
    await store.put_features(snapshot.features)
    for plan in snapshot.plans.values():
        await store.put_plan(plan)
    written = 0
    for result, definition in zip(
        await store.put_subscriptions(snapshot.subscriptions), snapshot.subscriptions, strict=True
    ):
        if result.changed:
            written += 1
            log.info("subscription applied", extra={"subscription": definition.external_id, "version": result.version})
    deleted = 0
    for gone in sorted(before - {s.external_id for s in snapshot.subscriptions}):
        if await store.delete_subscription(gone) is not None:
            deleted += 1
            log.info("subscription removed", extra={"subscription": gone})
    return ApplyResult(written, deleted)
