"""Lago's entitlement model and write services, as described in lago-contract.md §1-§5.

Values are stored as strings (Lago's varchar column) and cast on output. Every write queues the
webhooks Lago would emit, with the payload serialized when queued.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Json = dict[str, Any]
_CANONICAL_INT = re.compile(r"-?(0|[1-9][0-9]*)")


class ApiError(Exception):
    def __init__(self, status: int, code: str | None = None, details: Json | None = None) -> None:
        super().__init__(code or str(status))
        self.status, self.code, self.details = status, code, details


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None, millis: bool = False) -> str | None:
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if millis else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Privilege:
    code: str
    name: str | None
    value_type: str
    config: Json
    deleted: bool = False


@dataclass
class Feature:
    code: str
    name: str | None
    description: str | None
    privileges: dict[str, Privilege]
    created_at: datetime
    seq: int
    deleted: bool = False


@dataclass
class Plan:
    code: str
    name: str
    amount_cents: int
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # feature -> privilege -> value


@dataclass
class Subscription:
    lago_id: str
    external_id: str
    external_customer_id: str
    plan_code: str
    status: str
    created_at: datetime
    started_at: datetime | None = None
    terminated_at: datetime | None = None
    canceled_at: datetime | None = None
    previous_plan_code: str | None = None
    next_plan_code: str | None = None
    downgrade_plan_date: str | None = None
    features: set[str] = field(default_factory=set)  # subscription-level entitlement rows
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    feature_removals: set[str] = field(default_factory=set)
    privilege_removals: dict[str, set[str]] = field(default_factory=dict)
    billing_time: str = "calendar"  # or "anniversary": periods start on the day of the month it started


@dataclass
class Webhook:
    webhook_type: str
    object_type: str
    payload: Json
    unique_key: str = field(default_factory=lambda: str(uuid.uuid4()))
