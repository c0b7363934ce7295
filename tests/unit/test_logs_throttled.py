"""Client-error log lines are throttled per kind and say how many were left out."""

from __future__ import annotations

import logging

import pytest

from entitlements_sidecar.logs import Throttled


def test_one_line_per_kind_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttled = Throttled(logging.getLogger("t"), every=10, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="t"):
        for _ in range(100):
            throttled.log(logging.INFO, "a", "refused")
        throttled.log(logging.INFO, "b", "other")
        now[0] = 11
        throttled.log(logging.INFO, "a", "refused")
    lines = [(r.getMessage(), r.__dict__.get("similar_left_out")) for r in caplog.records]
    assert lines == [("refused", None), ("other", None), ("refused", 99)]
