"""Check semantics: from resolved entitlements and a query to an allowed/denied decision.

Subscription subject: only an `active` subscription grants. With a privilege:
- integer: allowed (value returned); with a requested quantity, allowed iff quantity <= value;
- boolean: allowed iff the value is true;
- string/select: allowed (value returned); with a requested value, allowed iff equal.

Customer subject: the customer's active subscriptions are merged (domain/merge.py): integer -> max,
boolean -> OR, string/select -> the most recently started active subscription. The decision names
the subscription that granted it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from entitlements_sidecar.domain.merge import by_recency, pick_privilege
from entitlements_sidecar.domain.model import ResolvedPrivilege, ResolvedSubscription, ValueType
from entitlements_sidecar.domain.queries import CheckQuery


class Reason(enum.Enum):
    ENTITLED = "entitled"
    FEATURE_NOT_ENTITLED = "feature_not_entitled"
    SUBSCRIPTION_NOT_FOUND = "subscription_not_found"
    SUBSCRIPTION_NOT_ACTIVE = "subscription_not_active"
    PRIVILEGE_NOT_FOUND = "privilege_not_found"
    QUANTITY_EXCEEDS_LIMIT = "quantity_exceeds_limit"
    VALUE_MISMATCH = "value_mismatch"
    PRIVILEGE_FALSE = "privilege_false"
    CUSTOMER_NOT_FOUND = "customer_not_found"
    NO_ACTIVE_SUBSCRIPTION = "no_active_subscription"
    REQUEST_TYPE_MISMATCH = "request_type_mismatch"
    FAILURE_POLICY = "failure_policy"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: Reason
    subscription_id: str | None = None
    privilege: ResolvedPrivilege | None = None


def decide_for_subscription(subscription: ResolvedSubscription | None, query: CheckQuery) -> Decision:
    if subscription is None:
        return Decision(False, Reason.SUBSCRIPTION_NOT_FOUND)
    sub_id = subscription.external_id
    if not subscription.grants:
        return Decision(False, Reason.SUBSCRIPTION_NOT_ACTIVE, sub_id)
    feature = subscription.features.get(query.feature_code)
    if feature is None:
        return Decision(False, Reason.FEATURE_NOT_ENTITLED, sub_id)
    if query.privilege_code is None:
        return Decision(True, Reason.ENTITLED, sub_id)
    privilege = feature.privileges.get(query.privilege_code)
    if privilege is None:
        return Decision(False, Reason.PRIVILEGE_NOT_FOUND, sub_id)
    return judge_privilege(privilege, query, sub_id)


def decide_for_customer(subscriptions: Sequence[ResolvedSubscription], query: CheckQuery) -> Decision:
    if not subscriptions:
        return Decision(False, Reason.CUSTOMER_NOT_FOUND)
    active = by_recency(s for s in subscriptions if s.grants)
    if not active:
        return Decision(False, Reason.NO_ACTIVE_SUBSCRIPTION)
    with_feature = [s for s in active if query.feature_code in s.features]
    if not with_feature:
        return Decision(False, Reason.FEATURE_NOT_ENTITLED)
    if query.privilege_code is None:
        return Decision(True, Reason.ENTITLED, with_feature[0].external_id)
    picked = pick_privilege(with_feature, query.feature_code, query.privilege_code)
    if picked is None:
        return Decision(False, Reason.PRIVILEGE_NOT_FOUND, with_feature[0].external_id)
    privilege, sub_id = picked
    return judge_privilege(privilege, query, sub_id)


def judge_privilege(privilege: ResolvedPrivilege, query: CheckQuery, sub_id: str) -> Decision:
    value_type = privilege.value_type
    if value_type is ValueType.INTEGER:
        if query.value is not None:
            return Decision(False, Reason.REQUEST_TYPE_MISMATCH, sub_id, privilege)
        if query.quantity is not None and query.quantity > int(privilege.value):
            return Decision(False, Reason.QUANTITY_EXCEEDS_LIMIT, sub_id, privilege)
        return Decision(True, Reason.ENTITLED, sub_id, privilege)
    if value_type is ValueType.BOOLEAN:
        if query.quantity is not None or query.value is not None:
            return Decision(False, Reason.REQUEST_TYPE_MISMATCH, sub_id, privilege)
        if privilege.value is True:
            return Decision(True, Reason.ENTITLED, sub_id, privilege)
        return Decision(False, Reason.PRIVILEGE_FALSE, sub_id, privilege)
    # string and select
    if query.quantity is not None:
        return Decision(False, Reason.REQUEST_TYPE_MISMATCH, sub_id, privilege)
    if query.value is not None and query.value != privilege.value:
        return Decision(False, Reason.VALUE_MISMATCH, sub_id, privilege)
    return Decision(True, Reason.ENTITLED, sub_id, privilege)
