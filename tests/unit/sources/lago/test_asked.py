from __future__ import annotations

from typing import Any

import pytest

from entitlements_sidecar.sources.lago.asked import Asked
from entitlements_sidecar.sources.lago.client import _segment

ROW = {"external_id": "sub_1", "status": "active", "external_customer_id": "acme"}


@pytest.mark.parametrize(
    ("asked", "row", "problem"),
    [
        (Asked("sub_1", ("active",)), ROW, None),
        (Asked(statuses=("active", "pending")), ROW, None),
        (Asked(external_customer_id="acme"), ROW, None),
        (Asked(), ROW, None),
        (Asked("sub_2"), ROW, "external_id 'sub_1' (asked 'sub_2')"),
        (Asked("sub_1", ("pending",)), ROW, "status 'active' (asked pending)"),
        (Asked(external_customer_id="globex"), ROW, "external_customer_id 'acme' (asked 'globex')"),
        (Asked("sub_1"), {"status": "active"}, "external_id None (asked 'sub_1')"),
        (Asked("sub_1"), ["not", "a", "row"], "not a JSON object"),
        (Asked("sub_1"), {**ROW, "external_id": "y" * 300}, "external_id '" + "y" * 76 + "... (asked 'sub_1')"),
    ],
)
def test_a_row_answers_what_was_asked_or_says_why_not(asked: Asked, row: Any, problem: str | None) -> None:
    assert asked.mismatch(row) == problem


@pytest.mark.parametrize(
    ("value", "segment"),
    [("sub_1", "sub_1"), ("a/b", "a%2Fb"), ("..", "%2E%2E"), (".", "%2E"), ("a..b", "a..b"), ("a b", "a%20b")],
)
def test_path_segments_cannot_walk_up(value: str, segment: str) -> None:
    assert _segment(value) == segment
