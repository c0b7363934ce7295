"""The entitlement model, mirroring Lago's shapes (see docs/lago-contract.md §1-§4).

Definitions (features, plans, subscriptions with their overrides) are what a source provides;
`ResolvedSubscription` is what the store keeps and what checks read.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from entitlements_sidecar.domain.periods import CALENDAR_BILLING, Billing

# A privilege value as Lago serializes it: integers as numbers, booleans as true/false, strings
# and selects as strings.
PrivilegeValue = bool | int | str


class ValueType(enum.StrEnum):
    BOOLEAN = "boolean"
    INTEGER = "integer"
    STRING = "string"
    SELECT = "select"


class SubscriptionStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    TERMINATED = "terminated"
    CANCELED = "canceled"
    INCOMPLETE = "incomplete"


@dataclass(frozen=True, slots=True)
class PrivilegeDefinition:
    code: str
    value_type: ValueType
    name: str | None = None
    select_options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FeatureDefinition:
    code: str
    name: str | None = None
    description: str | None = None
    privileges: Mapping[str, PrivilegeDefinition] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlanDefinition:
    """A plan's entitlements: feature code -> privilege code -> value (Lago's POST body shape)."""

    code: str
    entitlements: Mapping[str, Mapping[str, PrivilegeValue]]
    name: str | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionDefinition:
    """A subscription with its subscription-level entitlement rows.

    `entitlements` holds subscription values by feature: overrides of plan features and additions
    of features the plan lacks look the same in Lago (one PATCH). `removed_features` and
    `removed_privileges` are Lago's DELETE-style removals; they hide the plan's values, also when
    the plan loses a feature and regains it later. `row_id` is the source's id of this row (Lago's
    `lago_id`): an upgrade is a new row with the same external id, and starts without removals.
    """

    external_id: str
    external_customer_id: str
    plan_code: str
    status: SubscriptionStatus
    started_at: datetime | None = None
    entitlements: Mapping[str, Mapping[str, PrivilegeValue]] = field(default_factory=dict)
    removed_features: frozenset[str] = frozenset()
    removed_privileges: Mapping[str, frozenset[str]] = field(default_factory=dict)
    row_id: str | None = None
    billing: Billing = CALENDAR_BILLING


@dataclass(frozen=True, slots=True)
class ResolvedPrivilege:
    code: str
    value_type: ValueType
    value: PrivilegeValue
    name: str | None = None
    plan_value: PrivilegeValue | None = None
    overridden: bool = False
    select_options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ResolvedFeature:
    code: str
    name: str | None = None
    description: str | None = None
    privileges: Mapping[str, ResolvedPrivilege] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ResolvedSubscription:
    """One subscription's effective entitlements, as Lago's resolved view would list them."""

    external_id: str
    external_customer_id: str
    plan_code: str
    status: SubscriptionStatus
    started_at: datetime | None
    features: Mapping[str, ResolvedFeature]
    billing: Billing = CALENDAR_BILLING  # the billing time and current period (usage counters are per period)

    @property
    def grants(self) -> bool:
        # Only active subscriptions grant anything (Lago's default status filter is `active`).
        return self.status is SubscriptionStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a source says at once: the parts of the factorized map."""

    features: Mapping[str, FeatureDefinition]
    plans: Mapping[str, PlanDefinition]
    subscriptions: Sequence[SubscriptionDefinition]
