"""`sync --full` progress: a bar on a terminal, a few log lines elsewhere."""

from __future__ import annotations

import io
import logging

import pytest

from entitlements_sidecar.cli import _progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_on_a_terminal() -> None:
    stream = _Terminal()
    show = _progress(stream)
    for done in range(0, 101):
        show(done, 100)
    assert stream.getvalue().endswith("[##############################] 100/100\n")


def test_elsewhere_one_log_line_per_tenth_and_nothing_on_the_stream(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    show = _progress(stream)
    with caplog.at_level(logging.INFO):
        for done in range(0, 1001):
            show(done, 1000)
    assert stream.getvalue() == ""
    lines = [r for r in caplog.records if r.getMessage() == "full sync progress"]
    assert len(lines) == 11 and lines[-1].__dict__["done"] == 1000
