"""Node applications against a running sidecar: a @grpc/grpc-js client of our four RPCs, and the
OpenFeature Node server SDK with the flagd provider. Runs where node is installed (`make interop`
installs the npm packages into .tools/interop-node)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import REPO, Sidecar, start_sidecar

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
]

INTEROP_NODE = REPO / ".tools" / "interop-node"


@pytest.fixture
def sidecar(tmp_path: Path, example_catalog: Path) -> Iterator[Sidecar]:
    if not (INTEROP_NODE / ".installed").exists():
        pytest.fail("npm packages for the Node interop tests are missing: run `make interop` (make test does)")
    sidecar = start_sidecar(tmp_path, example_catalog, ["--openfeature-keepalive-seconds", "1"])
    yield sidecar
    sidecar.terminate()


def _run(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["node", str(REPO / "tests" / "interop" / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "INTEROP_NODE": str(INTEROP_NODE)},
    )


def _lines(process: subprocess.Popen[str]) -> Iterator[dict[str, Any]]:
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("{"):
            yield json.loads(line)
        else:
            print("node:", line.rstrip())


def _bump_acme_seats(catalog: Path) -> None:
    catalog.write_text(catalog.read_text().replace("seats: {max: 25}", "seats: {max: 26}"))
    stat = catalog.stat()
    os.utime(catalog, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def _finish(process: subprocess.Popen[str]) -> None:
    try:
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


def test_grpc_js_client_calls_every_rpc(sidecar: Sidecar, example_catalog: Path) -> None:
    process = _run("grpc_node_client.mjs", sidecar.address, str(REPO / "protos"))
    lines = _lines(process)
    try:
        assert next(lines) == {"phase": "check", "allowed": True, "reason": "REASON_ENTITLED", "value": 25}
        assert next(lines) == {
            "phase": "batch",
            "results": [
                {"allowed": True, "reason": "REASON_ENTITLED"},
                {"allowed": False, "reason": "REASON_FEATURE_NOT_ENTITLED"},
                {"error": "checks[2].subscription_id"},
            ],
        }
        got = next(lines)
        assert got["found"] is True and {"seats", "sso", "analytics_api"} <= set(got["features"])
        invalid = next(lines)
        assert invalid["code"] == 3 and "feature_code" in invalid["details"]  # INVALID_ARGUMENT
        assert next(lines) == {"phase": "watch_initial", "max": 25}
        _bump_acme_seats(example_catalog)
        assert next(lines) == {"phase": "watch_update", "max": 26}
    finally:
        _finish(process)


def test_openfeature_node_flagd_provider_evaluates_and_sees_changes(sidecar: Sidecar, example_catalog: Path) -> None:
    host, port = sidecar.address.rsplit(":", 1)
    process = _run("openfeature_node.mjs", host, port)
    lines = _lines(process)
    try:
        before = next(lines)["flagd"]
        assert before["sub_acme_main"] == {
            "seats": {"value": True, "error": None},
            "seats:max": {"value": 25, "error": None},
            "sso:provider": {"value": "okta", "error": None},
        }
        assert before["sub_globex"]["seats"]["value"] is True and before["sub_globex"]["seats:max"]["value"] != 25
        assert before["errors"]["not_found"] == {"value": -1, "error": "FLAG_NOT_FOUND"}
        assert next(lines) == {"phase": "waiting"}
        _bump_acme_seats(example_catalog)
        changed = next(lines)
        assert changed["phase"] == "changed" and "seats:max" in changed["flags_changed"]
        after = next(lines)["flagd"]
        assert after["sub_acme_main"]["seats:max"]["value"] == 26
        assert after["sub_globex"] == before["sub_globex"]
    finally:
        _finish(process)
