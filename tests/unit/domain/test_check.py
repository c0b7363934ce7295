from __future__ import annotations

import pytest

from entitlements_sidecar.domain.check import Reason, decide_for_customer, decide_for_subscription
from entitlements_sidecar.domain.model import SubscriptionStatus
from entitlements_sidecar.domain.queries import CheckQuery, Subject, SubjectKind
from tests.support.builders import STARTER, subscription

SUB = Subject(SubjectKind.SUBSCRIPTION, "sub_1")
CUSTOMER = Subject(SubjectKind.CUSTOMER, "acme")


def query(feature: str, privilege: str | None = None, subject: Subject = SUB, **kw: object) -> CheckQuery:
    return CheckQuery.build(subject, feature, privilege, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("q", "allowed", "reason"),
    [
        (query("api"), True, Reason.ENTITLED),
        (query("missing"), False, Reason.FEATURE_NOT_ENTITLED),
        (query("seats", "nope"), False, Reason.PRIVILEGE_NOT_FOUND),
        (query("seats", "max"), True, Reason.ENTITLED),
        (query("seats", "max", quantity=10), True, Reason.ENTITLED),
        (query("seats", "max", quantity=0), True, Reason.ENTITLED),
        (query("seats", "max", quantity=11), False, Reason.QUANTITY_EXCEEDS_LIMIT),
        (query("seats", "max", value="10"), False, Reason.REQUEST_TYPE_MISMATCH),
        (query("seats", "root"), True, Reason.ENTITLED),
        (query("seats", "root", quantity=1), False, Reason.REQUEST_TYPE_MISMATCH),
        (query("sso", "provider"), True, Reason.ENTITLED),
        (query("sso", "provider", value="google"), True, Reason.ENTITLED),
        (query("sso", "provider", value="okta"), False, Reason.VALUE_MISMATCH),
        (query("sso", "provider", quantity=1), False, Reason.REQUEST_TYPE_MISMATCH),
    ],
)
def test_subscription_rules(q: CheckQuery, allowed: bool, reason: Reason) -> None:
    decision = decide_for_subscription(subscription(), q)
    assert (decision.allowed, decision.reason) == (allowed, reason)
    assert decision.subscription_id == "sub_1"


def test_privilege_value_is_returned() -> None:
    decision = decide_for_subscription(subscription(entitlements={"seats": {"max": 25}}), query("seats", "max"))
    assert decision.privilege is not None and decision.privilege.value == 25


def test_string_privilege_value_match() -> None:
    sub = subscription(entitlements={"sso": {"domain": "acme.io"}})
    assert decide_for_subscription(sub, query("sso", "domain", value="acme.io")).allowed
    denied = decide_for_subscription(sub, query("sso", "domain", value="other.io"))
    assert denied.reason is Reason.VALUE_MISMATCH


def test_boolean_false_denies() -> None:
    decision = decide_for_subscription(subscription(plan=STARTER), query("seats", "root"))
    assert (decision.allowed, decision.reason) == (False, Reason.PRIVILEGE_FALSE)


def test_unknown_subscription() -> None:
    assert decide_for_subscription(None, query("api")).reason is Reason.SUBSCRIPTION_NOT_FOUND


@pytest.mark.parametrize(
    "status",
    [
        SubscriptionStatus.PENDING,
        SubscriptionStatus.TERMINATED,
        SubscriptionStatus.CANCELED,
        SubscriptionStatus.INCOMPLETE,
    ],
)
def test_only_active_subscriptions_grant(status: SubscriptionStatus) -> None:
    decision = decide_for_subscription(subscription(status=status), query("api"))
    assert (decision.allowed, decision.reason) == (False, Reason.SUBSCRIPTION_NOT_ACTIVE)


# -- customers --------------------------------------------------------------------------------

OLD = subscription("old", plan=STARTER, started="2026-01-01")
NEW = subscription(
    "new", entitlements={"seats": {"max": 7, "root": False}, "sso": {"domain": "n.io"}}, started="2026-09-01"
)


def test_customer_integer_takes_max_and_names_granting_subscription() -> None:
    bigger = subscription("big", entitlements={"seats": {"max": 50}}, started="2025-01-01")
    decision = decide_for_customer([OLD, NEW, bigger], query("seats", "max", CUSTOMER, quantity=40))
    assert (decision.allowed, decision.subscription_id) == (True, "big")
    assert decision.privilege is not None and decision.privilege.value == 50


def test_customer_boolean_is_or() -> None:
    granting = subscription("granting", started="2020-01-01")  # pro: root true
    decision = decide_for_customer([OLD, NEW, granting], query("seats", "root", CUSTOMER))
    assert (decision.allowed, decision.subscription_id) == (True, "granting")
    denied = decide_for_customer([OLD, NEW], query("seats", "root", CUSTOMER))
    assert (denied.allowed, denied.reason) == (False, Reason.PRIVILEGE_FALSE)


def test_customer_string_comes_from_most_recent_active_subscription() -> None:
    older = subscription("older", entitlements={"sso": {"domain": "o.io"}}, started="2026-02-01")
    decision = decide_for_customer([older, NEW], query("sso", "domain", CUSTOMER))
    assert decision.subscription_id == "new"
    assert decision.privilege is not None and decision.privilege.value == "n.io"
    mismatch = decide_for_customer([older, NEW], query("sso", "domain", CUSTOMER, value="o.io"))
    assert mismatch.reason is Reason.VALUE_MISMATCH


def test_customer_inactive_subscriptions_do_not_grant() -> None:
    terminated = subscription("t", status=SubscriptionStatus.TERMINATED, entitlements={"seats": {"max": 99}})
    decision = decide_for_customer([OLD, terminated], query("seats", "max", CUSTOMER))
    assert decision.privilege is not None and decision.privilege.value == 3
    only_inactive = decide_for_customer([terminated], query("api", subject=CUSTOMER))
    assert only_inactive.reason is Reason.NO_ACTIVE_SUBSCRIPTION


def test_customer_feature_from_any_active_subscription() -> None:
    decision = decide_for_customer([OLD, NEW], query("api", subject=CUSTOMER))
    assert (decision.allowed, decision.subscription_id) == (True, "new")
    assert decide_for_customer([OLD], query("api", subject=CUSTOMER)).reason is Reason.FEATURE_NOT_ENTITLED


def test_unknown_customer() -> None:
    assert decide_for_customer([], query("api", subject=CUSTOMER)).reason is Reason.CUSTOMER_NOT_FOUND


def test_customer_privilege_missing_everywhere() -> None:
    decision = decide_for_customer([OLD], query("seats", "nope", CUSTOMER))
    assert decision.reason is Reason.PRIVILEGE_NOT_FOUND
