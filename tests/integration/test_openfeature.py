"""The real OpenFeature providers, unmodified, against a running sidecar: the Python SDK with the
flagd provider (RPC mode, flagd.evaluation.v2 over gRPC) and the OFREP provider; they run in their
own venv (`make interop`), as an application would."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import REPO, Sidecar, start_sidecar

pytestmark = pytest.mark.integration

INTEROP_PYTHON = REPO / ".tools" / "openfeature-py" / "bin" / "python"
SCRIPT = REPO / "tests" / "interop" / "openfeature_python.py"


@pytest.fixture
def sidecar(tmp_path: Path, example_catalog: Path) -> Iterator[Sidecar]:
    sidecar = start_sidecar(tmp_path, example_catalog, ["--openfeature-keepalive-seconds", "1"])
    yield sidecar
    sidecar.terminate()


def _lines(process: subprocess.Popen[str]) -> Iterator[dict[str, Any]]:
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("{"):
            yield json.loads(line)


def test_python_flagd_and_ofrep_providers_evaluate_and_see_changes(sidecar: Sidecar, example_catalog: Path) -> None:
    if not INTEROP_PYTHON.exists():
        pytest.fail("the OpenFeature interop venv is missing: run `make interop` (make test does)")
    host, port = sidecar.address.rsplit(":", 1)
    process = subprocess.Popen(
        [str(INTEROP_PYTHON), str(SCRIPT), host, port, sidecar.http_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
    )
    try:
        lines = _lines(process)
        before = next(lines)
        for protocol in ("flagd", "ofrep"):
            results = before[protocol]
            acme, globex = results["sub_acme_main"], results["sub_globex"]
            assert acme["seats"] == {"value": True, "reason": "TARGETING_MATCH", "error": None}, protocol
            assert acme["seats:max"]["value"] == 25 and acme["sso:provider"]["value"] == "okta", protocol
            assert globex["seats:max"]["value"] != 25 and globex["seats"]["value"] is True, protocol
            errors = results["errors"]
            assert errors["not_found"] == {"value": -1, "error": "FLAG_NOT_FOUND"}, protocol
            assert errors["customer"]["value"] == 25, protocol  # customerId selects the customer
            assert errors["no_targeting_key"]["value"] is False and errors["no_targeting_key"]["error"], protocol
        assert before["flagd"]["errors"]["type_mismatch"]["error"] == "TYPE_MISMATCH"
        assert before["ofrep"]["errors"]["no_targeting_key"]["error"] == "TARGETING_KEY_MISSING"
        assert next(lines) == {"phase": "waiting"}

        text = example_catalog.read_text()
        example_catalog.write_text(text.replace("seats: {max: 25}", "seats: {max: 26}"))
        stat = example_catalog.stat()
        os.utime(example_catalog, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))

        changed = next(lines)
        assert changed["phase"] == "changed" and "seats:max" in changed["flags_changed"]
        after = next(lines)
        for protocol in ("flagd", "ofrep"):
            assert after[protocol]["sub_acme_main"]["seats:max"]["value"] == 26, protocol
            assert after[protocol]["sub_globex"]["seats:max"] == before[protocol]["sub_globex"]["seats:max"]
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate(timeout=10)[0]  # also closes the pipe
        if process.returncode not in (0, None):
            print(output)
