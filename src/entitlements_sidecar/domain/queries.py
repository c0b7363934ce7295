"""Validated read requests. Built by the transport from protobuf messages (or by tests directly);
`validate_*` raise InvalidArgumentError naming the offending field."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from entitlements_sidecar.domain.errors import InvalidArgumentError
from entitlements_sidecar.domain.ids import MAX_ID_LENGTH, IdKind, id_problem


class SubjectKind(enum.Enum):
    SUBSCRIPTION = "subscription"
    CUSTOMER = "customer"


@dataclass(frozen=True, slots=True)
class Subject:
    kind: SubjectKind
    id: str

    @classmethod
    def of(cls, subscription_id: str, customer_id: str, prefix: str = "") -> Subject:
        """Exactly one of the two ids must be set; `prefix` qualifies field names in errors."""
        if subscription_id and customer_id:
            raise InvalidArgumentError(f"{prefix}subscription_id", "set only one of subscription_id and customer_id")
        if subscription_id:
            _check_id(f"{prefix}subscription_id", subscription_id, IdKind.SUBSCRIPTION)
            return cls(SubjectKind.SUBSCRIPTION, subscription_id)
        if customer_id:
            _check_id(f"{prefix}customer_id", customer_id, IdKind.CUSTOMER)
            return cls(SubjectKind.CUSTOMER, customer_id)
        raise InvalidArgumentError(f"{prefix}subscription_id", "one of subscription_id or customer_id is required")


class ConsistencyMode(enum.Enum):
    CACHED = "cached"
    MIN_VERSION = "min_version"
    FULL = "fully_consistent"


@dataclass(frozen=True, slots=True)
class Consistency:
    mode: ConsistencyMode = ConsistencyMode.CACHED
    min_version: int = 0

    @classmethod
    def at_least(cls, version: int, field: str = "consistency.min_version") -> Consistency:
        if version < 0:
            raise InvalidArgumentError(field, f"must not be negative, got {version}")
        return cls(ConsistencyMode.MIN_VERSION, version)


CACHED = Consistency()
FULLY_CONSISTENT = Consistency(ConsistencyMode.FULL)


@dataclass(frozen=True, slots=True)
class CheckQuery:
    subject: Subject
    feature_code: str
    privilege_code: str | None = None
    quantity: int | None = None
    value: str | None = None
    consistency: Consistency = CACHED

    @classmethod
    def build(
        cls,
        subject: Subject,
        feature_code: str,
        privilege_code: str | None = None,
        quantity: int | None = None,
        value: str | None = None,
        consistency: Consistency = CACHED,
        prefix: str = "",
    ) -> CheckQuery:
        if not feature_code:
            raise InvalidArgumentError(f"{prefix}feature_code", "is required")
        _check_id(f"{prefix}feature_code", feature_code, IdKind.CODE)
        if privilege_code:
            _check_id(f"{prefix}privilege_code", privilege_code, IdKind.CODE)
        if quantity is not None and value is not None:
            raise InvalidArgumentError(f"{prefix}quantity", "set only one of quantity and value")
        if quantity is not None and quantity < 0:
            raise InvalidArgumentError(f"{prefix}quantity", f"must not be negative, got {quantity}")
        if (quantity is not None or value is not None) and not privilege_code:
            requested = "quantity" if quantity is not None else "value"
            raise InvalidArgumentError(f"{prefix}privilege_code", f"is required when {requested} is requested")
        if value is not None and len(value) > MAX_ID_LENGTH:
            raise InvalidArgumentError(f"{prefix}value", f"longer than {MAX_ID_LENGTH} characters")
        return cls(subject, feature_code, privilege_code or None, quantity, value, consistency)


def _check_id(field: str, value: str, kind: IdKind) -> None:
    problem = id_problem(value, kind)
    if problem is not None:
        raise InvalidArgumentError(field, problem)
