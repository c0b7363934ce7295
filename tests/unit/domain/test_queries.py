from __future__ import annotations

import pytest

from entitlements_sidecar.domain.errors import InvalidArgumentError
from entitlements_sidecar.domain.queries import CheckQuery, Consistency, Subject, SubjectKind

SUB = Subject(SubjectKind.SUBSCRIPTION, "s")


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("", ""), "subscription_id"),
        (("a", "b"), "subscription_id"),
        (("x" * 256, ""), "subscription_id"),
        (("", "y" * 256), "customer_id"),
        ((" padded", ""), "subscription_id"),
        (("a\x00b", ""), "subscription_id"),
        (("../plans/pro", ""), "subscription_id"),
        (("..", ""), "subscription_id"),
        (("", "acme\n"), "customer_id"),
        (("", "ac\x7fme"), "customer_id"),
    ],
)
def test_subject_errors_name_the_field(args: tuple[str, str], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        Subject.of(*args)
    assert caught.value.field == field


def test_subject_prefix_qualifies_field() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        Subject.of("", "", "checks[3].")
    assert caught.value.field == "checks[3].subscription_id"


def test_ids_at_the_limit_are_fine() -> None:
    assert Subject.of("x" * 255, "").id == "x" * 255


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"feature_code": ""}, "feature_code"),
        ({"feature_code": "f" * 256}, "feature_code"),
        ({"feature_code": "f", "privilege_code": "p" * 256}, "privilege_code"),
        ({"feature_code": "f", "privilege_code": "p", "quantity": -1}, "quantity"),
        ({"feature_code": "f", "privilege_code": "p", "quantity": 1, "value": "v"}, "quantity"),
        ({"feature_code": "f", "quantity": 1}, "privilege_code"),
        ({"feature_code": "f", "value": "v"}, "privilege_code"),
    ],
)
def test_check_query_errors_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        CheckQuery.build(SUB, **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_negative_min_version_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        Consistency.at_least(-1)
    assert caught.value.field == "consistency.min_version"


def test_valid_query_keeps_codes_with_dots() -> None:
    query = CheckQuery.build(SUB, "audit.log", "retention.days", quantity=3)
    assert (query.feature_code, query.privilege_code, query.quantity) == ("audit.log", "retention.days", 3)
