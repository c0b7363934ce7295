"""Entitlements seen as OpenFeature flags (flagd and OFREP speak this; see README "OpenFeature").

- A feature code is a boolean flag: is the subject entitled to it.
- `<feature>:<privilege>` is a typed flag: the privilege's value (integer -> int, boolean -> bool,
  string and select -> string). Lago codes may contain any character, so `\\` and `:` inside a
  code are written `\\\\` and `\\:`; every key has exactly one reading.
- The evaluation context's `targetingKey` is the subscription external id; a `customerId`
  attribute selects the customer instead (its active subscriptions merged).
- A value is given only where the map determines one. Otherwise the answer has no value, reason
  DISABLED, and the caller's default applies; the variant says why (`not_entitled`: a privilege of a
  feature the subject lacks; `subject_not_found`: a subject the map does not know). DISABLED, not
  DEFAULT, because it is the reason every provider we read turns into "the default" (Go's OFREP
  provider reports a value-less DEFAULT as a type mismatch). Answers that may be out of date say STALE.
- Bulk answers are the singles over every flag the catalog defines: the same value, reason and
  variant for each key.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from entitlements_sidecar.domain.errors import FlagError, FlagErrorCode
from entitlements_sidecar.domain.ids import IdKind, id_problem
from entitlements_sidecar.domain.merge import GrantedFeature
from entitlements_sidecar.domain.model import FeatureDefinition, ValueType
from entitlements_sidecar.domain.queries import Subject, SubjectKind
from entitlements_sidecar.domain.service import EntitlementView

SEPARATOR = ":"
CUSTOMER_ATTRIBUTE = "customerId"
FlagValue = bool | int | float | str | dict[str, Any]


class FlagType(enum.Enum):
    BOOLEAN = "boolean"
    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    OBJECT = "object"


@dataclass(frozen=True, slots=True)
class FlagKey:
    feature: str
    privilege: str | None = None

    def __str__(self) -> str:
        text = _escape(self.feature)
        return text if self.privilege is None else f"{text}{SEPARATOR}{_escape(self.privilege)}"


class Variant:
    """Variant names; OFREP providers require one on every answer, defaults included."""

    ENTITLED = "entitled"
    NOT_ENTITLED = "not_entitled"
    SUBJECT_NOT_FOUND = "subject_not_found"


@dataclass(frozen=True, slots=True)
class FlagResult:
    """`value is None` means "no value: use the caller's default" (reason DISABLED)."""

    key: str
    value: FlagValue | None
    reason: str
    variant: str


def parse_flag_key(key: str) -> FlagKey:
    parts: list[str] = [""]
    chars = iter(key)
    for char in chars:
        if char == "\\":
            escaped = next(chars, None)
            if escaped not in ("\\", SEPARATOR):
                raise FlagError(FlagErrorCode.FLAG_NOT_FOUND, f"flag key {key!r}: '\\' must escape '\\' or ':'")
            parts[-1] += escaped
        elif char == SEPARATOR:
            parts.append("")
        else:
            parts[-1] += char
    if len(parts) > 2 or not all(parts):
        raise FlagError(FlagErrorCode.FLAG_NOT_FOUND, f"flag key {key!r}: expected 'feature' or 'feature:privilege'")
    return FlagKey(parts[0], parts[1] if len(parts) == 2 else None)


def subject_from_context(context: Mapping[str, Any]) -> Subject:
    customer = context.get(CUSTOMER_ATTRIBUTE)
    if customer is not None:
        if not isinstance(customer, str) or not customer:
            raise FlagError(FlagErrorCode.INVALID_CONTEXT, f"context.{CUSTOMER_ATTRIBUTE} must be a non-empty string")
        return Subject(SubjectKind.CUSTOMER, _checked(customer, IdKind.CUSTOMER, CUSTOMER_ATTRIBUTE))
    targeting_key = context.get("targetingKey")
    if targeting_key is None or targeting_key == "":
        raise FlagError(
            FlagErrorCode.TARGETING_KEY_MISSING,
            f"targetingKey (a subscription external id) or {CUSTOMER_ATTRIBUTE} is required",
        )
    if not isinstance(targeting_key, str):
        raise FlagError(FlagErrorCode.INVALID_CONTEXT, "targetingKey must be a string")
    return Subject(SubjectKind.SUBSCRIPTION, _checked(targeting_key, IdKind.SUBSCRIPTION, "targetingKey"))


def _checked(value: str, kind: IdKind, attribute: str) -> str:
    # The same rules as the gRPC API's ids (domain/ids.py), so both protocols accept the same subjects.
    problem = id_problem(value, kind)
    if problem is not None:
        raise FlagError(FlagErrorCode.INVALID_CONTEXT, f"context.{attribute} {problem}")
    return value


def evaluate(view: EntitlementView, key: str, wanted: FlagType | None = None) -> FlagResult:
    """One flag for the subject in `view`; `wanted` None means "whatever type it has" (OFREP)."""
    parsed = parse_flag_key(key)
    if not view.found:
        # Nothing is known about the subject (or no subscription of the customer is active): the
        # map determines no value, so the caller's default applies.
        return FlagResult(key, None, "DISABLED", Variant.SUBJECT_NOT_FOUND)
    matched = "STALE" if view.freshness.stale else "TARGETING_MATCH"
    feature = view.features.get(parsed.feature)
    if parsed.privilege is None:
        entitled = feature is not None
        if wanted is FlagType.OBJECT:
            return FlagResult(key, _feature_object(feature), matched, _variant(entitled))
        _expect(key, FlagType.BOOLEAN, wanted)
        return FlagResult(key, entitled, matched, _variant(entitled))
    if feature is None:
        # Not entitled to the feature: its privileges have no value here; the caller's default applies.
        return FlagResult(key, None, "DISABLED", Variant.NOT_ENTITLED)
    granted = feature.privileges.get(parsed.privilege)
    if granted is None:
        raise FlagError(FlagErrorCode.FLAG_NOT_FOUND, f"flag {key!r}: feature {parsed.feature!r} has no such privilege")
    value = granted.privilege.value
    natural = _flag_type(granted.privilege.value_type)
    if wanted is FlagType.FLOAT and natural is FlagType.INTEGER:
        return FlagResult(key, float(value), matched, str(value))  # JS "number" flags
    _expect(key, natural, wanted)
    return FlagResult(key, value, matched, str(value).lower() if isinstance(value, bool) else str(value))


def evaluate_all(view: EntitlementView, catalog: Mapping[str, FeatureDefinition]) -> dict[str, FlagResult]:
    """What `evaluate` answers for every flag of the catalog (and of the subject's own features),
    leaving out only the keys a single evaluation answers FLAG_NOT_FOUND."""
    flags: dict[str, FlagResult] = {}
    for code in sorted(catalog.keys() | view.features.keys()):
        flags[str(FlagKey(code))] = evaluate(view, str(FlagKey(code)))
        defined = catalog.get(code)
        held = view.features.get(code)
        privileges = set(defined.privileges if defined else ()) | set(held.privileges if held else ())
        for privilege_code in sorted(privileges):
            key = str(FlagKey(code, privilege_code))
            try:
                flags[key] = evaluate(view, key)
            except FlagError:
                continue  # a held feature without this privilege: FLAG_NOT_FOUND singly, absent here
    return flags


def flag_values(view: EntitlementView) -> dict[str, Any]:
    """What a subject's flags are, for telling which keys a change touched."""
    return {key: result.value for key, result in evaluate_all(view, {}).items()}


def changed_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> set[str]:
    return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}


def _expect(key: str, actual: FlagType, wanted: FlagType | None) -> None:
    if wanted is not None and wanted is not actual:
        raise FlagError(FlagErrorCode.TYPE_MISMATCH, f"flag {key!r} is {actual.value}, not {wanted.value}")


def _flag_type(value_type: ValueType) -> FlagType:
    if value_type is ValueType.INTEGER:
        return FlagType.INTEGER
    if value_type is ValueType.BOOLEAN:
        return FlagType.BOOLEAN
    return FlagType.STRING  # string and select


def _feature_object(feature: GrantedFeature | None) -> dict[str, Any]:
    if feature is None:
        return {"entitled": False, "privileges": {}}
    return {"entitled": True, "privileges": {code: p.privilege.value for code, p in feature.privileges.items()}}


def _variant(entitled: bool) -> str:
    return Variant.ENTITLED if entitled else Variant.NOT_ENTITLED


def _escape(code: str) -> str:
    return code.replace("\\", "\\\\").replace(SEPARATOR, "\\" + SEPARATOR)
