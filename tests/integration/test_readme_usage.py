"""The README's worked usage example, run against a sidecar serving the example catalog: what the block
prints is what the README shows after it."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from tests.support.processes import REPO, start_sidecar

pytestmark = pytest.mark.integration


def test_the_worked_example_prints_what_the_readme_shows(tmp_path: Path) -> None:
    section = (REPO / "README.md").read_text().split("### A worked example on the example catalog", 1)[1]
    code, shown = re.search(r"```python\n(.*?)```\s*```text\n(.*?)```", section, re.DOTALL).groups()  # type: ignore[union-attr]
    sidecar = start_sidecar(tmp_path, REPO / "examples" / "catalog.yaml")
    try:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(code.replace("127.0.0.1:50051", sidecar.address), {})
    finally:
        sidecar.terminate()
    assert printed.getvalue() == shown
