from __future__ import annotations

import pytest

from entitlements_sidecar.domain.ids import IdKind, id_problem


@pytest.mark.parametrize(
    ("value", "kind", "problem"),
    [
        ("", IdKind.CODE, "is empty"),
        ("x" * 256, IdKind.CODE, "longer than 255 characters (256)"),
        (" sub", IdKind.SUBSCRIPTION, "has leading or trailing whitespace"),
        ("sub\t", IdKind.SUBSCRIPTION, "has leading or trailing whitespace"),
        ("a\x00b", IdKind.CUSTOMER, "contains a control character"),
        ("a\u0085b", IdKind.CODE, "contains a control character"),
        ("..", IdKind.CODE, "'..' is not an id"),
        (".", IdKind.CUSTOMER, "'.' is not an id"),
        ("../plans/pro", IdKind.SUBSCRIPTION, "contains '/', which Lago cannot route to a subscription"),
    ],
)
def test_what_cannot_be_an_id(value: str, kind: IdKind, problem: str) -> None:
    assert id_problem(value, kind) == problem


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("x" * 255, IdKind.SUBSCRIPTION),
        ("sub_acme main", IdKind.SUBSCRIPTION),  # inner spaces are fine
        ("analytics.api", IdKind.CODE),
        ("a/b", IdKind.CODE),  # codes may hold '/': they are quoted into paths
        ("team/acme", IdKind.CUSTOMER),  # customers are asked for by query parameter
        ("...", IdKind.SUBSCRIPTION),
        ("ünïcödé", IdKind.SUBSCRIPTION),
    ],
)
def test_what_can(value: str, kind: IdKind) -> None:
    assert id_problem(value, kind) is None
