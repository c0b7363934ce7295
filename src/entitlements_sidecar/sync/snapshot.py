"""Making the store match a full snapshot from the source."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from entitlements_sidecar.domain.model import ResolvedSubscription
from entitlements_sidecar.domain.ports import EntitlementStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    written: int
    deleted: int


async def apply_snapshot(store: EntitlementStore, subscriptions: Sequence[ResolvedSubscription]) -> ApplyResult:
    """Write every subscription (unchanged ones keep their version) and delete the ones that
    are no longer in the snapshot."""
    before = await store.subscription_ids()
    written = 0
    for subscription in subscriptions:
        previous = await store.get_subscription(subscription.external_id)
        version = await store.put_subscription(subscription)
        if previous is None or previous.version != version:
            written += 1
            log.info(
                "subscription applied",
                extra={"subscription": subscription.external_id, "version": version},
            )
    deleted = 0
    for gone in sorted(before - {s.external_id for s in subscriptions}):
        if await store.delete_subscription(gone) is not None:
            deleted += 1
            log.info("subscription removed", extra={"subscription": gone})
    return ApplyResult(written, deleted)
