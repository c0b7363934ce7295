"""A subscription's billing survives the store's JSON, and records written before it read as the default."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from entitlements_sidecar.domain.model import ResolvedSubscription, SubscriptionDefinition, SubscriptionStatus
from entitlements_sidecar.domain.periods import CALENDAR_BILLING, Billing, BillingTime, Period
from entitlements_sidecar.store.codec import decode, encode
from entitlements_sidecar.store.definition_codec import decode_definition, encode_definition

BILLING = Billing(
    BillingTime.ANNIVERSARY,
    Period(datetime(2026, 11, 15, tzinfo=UTC), datetime(2026, 12, 14, 23, 59, 59, tzinfo=UTC)),
)


def test_billing_round_trips_in_both_records() -> None:
    resolved = ResolvedSubscription("s", "c", "pro", SubscriptionStatus.ACTIVE, None, {}, BILLING)
    assert decode(encode(resolved)) == resolved
    definition = SubscriptionDefinition("s", "c", "pro", SubscriptionStatus.ACTIVE, billing=BILLING)
    assert decode_definition(encode_definition(definition)) == definition


def test_a_record_without_billing_is_billed_by_the_calendar_month() -> None:
    record = orjson.loads(encode(ResolvedSubscription("s", "c", "pro", SubscriptionStatus.ACTIVE, None, {})))
    assert record["billing"] is None  # the default is not written
    del record["billing"]  # a record from before usage counting
    assert decode(orjson.dumps(record)).billing == Billing()


def test_subscriptions_billed_alike_share_one_billing_object() -> None:
    # A cache of a million answers holds one Billing per distinct billing, not one per subscription.
    first, second = (SubscriptionDefinition(s, "c", "pro", SubscriptionStatus.ACTIVE, billing=BILLING) for s in "ab")
    one, two = decode_definition(encode_definition(first)), decode_definition(encode_definition(second))
    assert one.billing == BILLING and one.billing is two.billing
    plain = decode_definition(encode_definition(SubscriptionDefinition("s", "c", "pro", SubscriptionStatus.ACTIVE)))
    assert plain.billing is CALENDAR_BILLING
