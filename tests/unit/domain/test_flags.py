"""Entitlements as OpenFeature flags: the key scheme, subjects from contexts, and typed values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from entitlements_sidecar.domain.errors import FlagError, FlagErrorCode
from entitlements_sidecar.domain.flags import (
    FlagKey,
    FlagType,
    changed_keys,
    evaluate,
    evaluate_all,
    flag_values,
    parse_flag_key,
    subject_from_context,
)
from entitlements_sidecar.domain.merge import GrantedFeature, GrantedPrivilege
from entitlements_sidecar.domain.model import FeatureDefinition, PrivilegeDefinition, ResolvedPrivilege, ValueType
from entitlements_sidecar.domain.ports import Origin
from entitlements_sidecar.domain.queries import Subject, SubjectKind
from entitlements_sidecar.domain.service import EntitlementView, Freshness


def _view(**features: dict[str, tuple[ValueType, Any]]) -> EntitlementView:
    granted = {
        code: GrantedFeature(
            code,
            None,
            None,
            "sub_1",
            {
                p: GrantedPrivilege(ResolvedPrivilege(p, value_type, value), "sub_1")
                for p, (value_type, value) in privileges.items()
            },
        )
        for code, privileges in features.items()
    }
    freshness = Freshness(1, datetime(2026, 1, 1, tzinfo=UTC), Origin.MEMORY, False)
    return EntitlementView(Subject(SubjectKind.SUBSCRIPTION, "sub_1"), True, (), granted, freshness)


VIEW = _view(
    seats={"max": (ValueType.INTEGER, 25), "root": (ValueType.BOOLEAN, False)},
    sso={"provider": (ValueType.SELECT, "okta"), "domain": (ValueType.STRING, "a.io")},
    **{"audit.log": {"retention:days": (ValueType.INTEGER, 30)}},
)


@pytest.mark.parametrize(
    ("key", "parsed"),
    [
        ("seats", FlagKey("seats")),
        ("seats:max", FlagKey("seats", "max")),
        ("audit.log:retention\\:days", FlagKey("audit.log", "retention:days")),
        ("a\\\\b:c", FlagKey("a\\b", "c")),
    ],
)
def test_keys_round_trip_even_when_codes_contain_the_separator(key: str, parsed: FlagKey) -> None:
    assert parse_flag_key(key) == parsed
    assert str(parsed) == key


@pytest.mark.parametrize("key", ["", "a:", ":b", "a:b:c", "a\\x", "a\\"])
def test_malformed_keys_are_flag_not_found(key: str) -> None:
    with pytest.raises(FlagError) as caught:
        parse_flag_key(key)
    assert caught.value.code is FlagErrorCode.FLAG_NOT_FOUND


def test_subject_from_targeting_key_or_customer_attribute() -> None:
    assert subject_from_context({"targetingKey": "sub_1"}) == Subject(SubjectKind.SUBSCRIPTION, "sub_1")
    assert subject_from_context({"targetingKey": "x", "customerId": "acme"}) == Subject(SubjectKind.CUSTOMER, "acme")
    for context, code in (
        ({}, FlagErrorCode.TARGETING_KEY_MISSING),
        ({"targetingKey": None}, FlagErrorCode.TARGETING_KEY_MISSING),
        ({"targetingKey": 3}, FlagErrorCode.INVALID_CONTEXT),
        ({"customerId": ""}, FlagErrorCode.INVALID_CONTEXT),
    ):
        with pytest.raises(FlagError) as caught:
            subject_from_context(context)
        assert caught.value.code is code


def test_feature_flags_are_booleans_and_privileges_typed() -> None:
    assert evaluate(VIEW, "seats", FlagType.BOOLEAN).value is True
    assert evaluate(VIEW, "analytics", FlagType.BOOLEAN).value is False  # not entitled: false, not an error
    assert evaluate(VIEW, "seats:max", FlagType.INTEGER).value == 25
    assert evaluate(VIEW, "seats:max", FlagType.FLOAT).value == 25.0  # JS "number" asks for a float
    assert evaluate(VIEW, "seats:root", FlagType.BOOLEAN).value is False
    assert evaluate(VIEW, "sso:provider", FlagType.STRING).value == "okta"
    assert evaluate(VIEW, "audit.log:retention\\:days").value == 30
    assert evaluate(VIEW, "seats", FlagType.OBJECT).value == {
        "entitled": True,
        "privileges": {"max": 25, "root": False},
    }


def test_privileges_of_a_feature_not_entitled_have_no_value() -> None:
    result = evaluate(VIEW, "analytics:limit", FlagType.INTEGER)
    assert result.value is None and result.reason == "DISABLED"


@pytest.mark.parametrize(
    ("key", "wanted", "code"),
    [
        ("seats:max", FlagType.STRING, FlagErrorCode.TYPE_MISMATCH),
        ("sso:provider", FlagType.INTEGER, FlagErrorCode.TYPE_MISMATCH),
        ("seats", FlagType.INTEGER, FlagErrorCode.TYPE_MISMATCH),
        ("seats:nope", FlagType.INTEGER, FlagErrorCode.FLAG_NOT_FOUND),
    ],
)
def test_errors(key: str, wanted: FlagType, code: FlagErrorCode) -> None:
    with pytest.raises(FlagError) as caught:
        evaluate(VIEW, key, wanted)
    assert caught.value.code is code


def test_all_flags_and_what_changed() -> None:
    flags = evaluate_all(VIEW, {})
    assert set(flags) == {"seats", "seats:max", "seats:root", "sso", "sso:provider", "sso:domain", "audit.log",
                          "audit.log:retention\\:days"}  # fmt: skip
    after = _view(seats={"max": (ValueType.INTEGER, 26), "root": (ValueType.BOOLEAN, False)})
    assert changed_keys(flag_values(VIEW), flag_values(after)) == {
        "seats:max", "sso", "sso:provider", "sso:domain", "audit.log", "audit.log:retention\\:days"
    }  # fmt: skip


CATALOG = {
    "seats": FeatureDefinition("seats", privileges={"max": PrivilegeDefinition("max", ValueType.INTEGER)}),
    "analytics": FeatureDefinition("analytics", privileges={"limit": PrivilegeDefinition("limit", ValueType.INTEGER)}),
}


def _keys_of(view: EntitlementView) -> set[str]:
    return set(evaluate_all(view, CATALOG))


def test_bulk_is_the_singles_over_every_flag_of_the_catalog() -> None:
    unknown = EntitlementView(Subject(SubjectKind.SUBSCRIPTION, "nope"), False, (), {}, VIEW.freshness)
    for view in (VIEW, unknown):
        bulk = evaluate_all(view, CATALOG)
        assert {"seats", "seats:max", "analytics", "analytics:limit"} <= set(bulk)
        for key, result in bulk.items():
            assert result == evaluate(view, key), key
    # seats:root is held but not in the catalog; seats:max is in the catalog: both answered
    assert {"seats:root", "sso", "sso:provider"} <= _keys_of(VIEW)
    assert evaluate_all(VIEW, CATALOG)["analytics"].value is False
    assert evaluate_all(VIEW, CATALOG)["analytics:limit"].value is None


def test_every_answer_names_a_variant_and_no_value_means_the_callers_default() -> None:
    unknown = EntitlementView(Subject(SubjectKind.SUBSCRIPTION, "nope"), False, (), {}, VIEW.freshness)
    for key in ("seats", "seats:max", "anything:at_all"):
        result = evaluate(unknown, key, FlagType.INTEGER)  # no type check: nothing is known
        assert (result.value, result.reason, result.variant) == (None, "DISABLED", "subject_not_found")
    lacking = evaluate(VIEW, "analytics:limit")
    assert (lacking.value, lacking.reason, lacking.variant) == (None, "DISABLED", "not_entitled")
    assert evaluate(VIEW, "analytics").variant == "not_entitled"
    assert all(r.variant for r in evaluate_all(VIEW, CATALOG).values())


def test_stale_answers_say_stale() -> None:
    stale = EntitlementView(
        VIEW.subject, True, (), VIEW.features, Freshness(1, VIEW.freshness.synced_at, Origin.MEMORY, True)
    )
    assert evaluate(stale, "seats").reason == "STALE"
    assert evaluate(stale, "seats:max").reason == "STALE" and evaluate(stale, "seats:max").value == 25
    assert evaluate(VIEW, "seats").reason == "TARGETING_MATCH"
