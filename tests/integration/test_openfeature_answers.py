"""Every kind of answer through the real, unmodified OpenFeature providers: entitled, a feature the
subject lacks, an inactive and an unknown subject, a customer, bulk (the OFREP web provider reads only
the bulk answer), then the same once the map is stale. Each provider must hand the application its
value, or its own default with the reason that says why."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import REPO, Sidecar, start_sidecar
from tests.support.wait import eventually

pytestmark = pytest.mark.integration

INTEROP_PYTHON = REPO / ".tools" / "openfeature-py" / "bin" / "python"
INTEROP_NODE = REPO / ".tools" / "interop-node"
INTEROP_GO = REPO / ".tools" / "interop-go" / "go_ofrep"
CASES = json.loads((REPO / "tests" / "interop" / "answer_cases.json").read_text())

# (value, reason) each provider must give; the default is the case's own.
EXPECTED: dict[str, tuple[Any, str]] = {
    "entitled": (True, "TARGETING_MATCH"),
    "entitled_value": (25, "TARGETING_MATCH"),
    "lacking": (False, "TARGETING_MATCH"),  # the subject is known: not entitled is an answer
    "lacking_value": ("none", "DISABLED"),  # the caller's default
    "inactive": (False, "TARGETING_MATCH"),
    "inactive_value": (-1, "DISABLED"),
    "unknown": (True, "DISABLED"),  # nothing known: the caller's default, even a permissive one
    "unknown_value": (-1, "DISABLED"),
    "unknown_customer": (-1, "DISABLED"),
    "customer": (25, "TARGETING_MATCH"),
}
# @openfeature/ofrep-provider 0.1.3 (the only server version on npm) predates OFREP's optional `value`:
# it reports an answer without one as a general error. The application still gets its default.
OLD_OFREP = "node-ofrep"


@pytest.fixture
def sidecar(tmp_path: Path, example_catalog: Path) -> Iterator[Sidecar]:
    sidecar = start_sidecar(tmp_path, example_catalog, env={"ENTITLEMENTS_STALENESS_BUDGET_SECONDS": "1"})
    yield sidecar
    sidecar.terminate()


def _start(command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def _phase(process: subprocess.Popen[str], name: str) -> dict[str, Any]:
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("{"):
            answer: dict[str, Any] = json.loads(line)
            assert answer["phase"] == name, answer
            return answer
    raise AssertionError(f"{process.args!r} ended before phase {name!r}")


def _check(provider: str, results: dict[str, Any], stale: bool) -> None:
    for case, (value, reason) in EXPECTED.items():
        got = results[case]
        if stale and reason == "TARGETING_MATCH":
            reason = "STALE"  # a value from a map that may be behind says so
        if provider == OLD_OFREP and reason == "DISABLED":
            assert (got["value"], got["reason"], got["error"]) == (value, "ERROR", "GENERAL"), (provider, case)
            continue
        assert (got["value"], got["reason"], got["error"]) == (value, reason, None), (provider, case, got)


def test_every_provider_gives_the_value_or_the_callers_default_with_the_reason(
    sidecar: Sidecar, example_catalog: Path
) -> None:
    if not INTEROP_PYTHON.exists():
        pytest.fail("the OpenFeature interop venv is missing: run `make interop` (make test does)")
    host, port = sidecar.address.rsplit(":", 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    script = REPO / "tests" / "interop" / "openfeature_answers"
    processes = [_start([str(INTEROP_PYTHON), f"{script}.py", host, port, sidecar.http_url], env)]
    if shutil.which("node") is not None:
        if not (INTEROP_NODE / ".installed").exists():
            pytest.fail("npm packages for the Node interop tests are missing: run `make interop` (make test does)")
        processes.append(
            _start(["node", f"{script}.mjs", host, port, sidecar.http_url], {**env, "INTEROP_NODE": str(INTEROP_NODE)})
        )
    if shutil.which("go") is not None:
        if not INTEROP_GO.exists():
            pytest.fail("the Go OFREP interop program is missing: run `make interop` (make test does)")
        cases = str(REPO / "tests" / "interop" / "answer_cases.json")
        processes.append(_start([str(INTEROP_GO), cases, sidecar.http_url], env))
    try:
        seen: set[str] = set()
        for process in processes:
            fresh = _phase(process, "fresh")
            for provider, results in fresh.items():
                if provider != "phase":
                    _check(provider, results, stale=False)
                    seen.add(provider)
        assert {"python-flagd", "python-ofrep"} <= seen
        if shutil.which("node") is not None:
            assert {"node-flagd", "node-ofrep", "node-ofrep-web"} <= seen
        if shutil.which("go") is not None:
            assert "go-ofrep" in seen

        example_catalog.write_text("features: [oops\n")  # an invalid edit: the last good catalog is served
        ready = f"{sidecar.http_url}/readyz"
        eventually(lambda: httpx.get(ready, timeout=2).status_code == 503, timeout=15, what="the map going stale")
        changed = eventually(lambda: [ln for ln in sidecar.log().splitlines() if "readiness changed" in ln], timeout=5)
        assert " INFO " in changed[0], changed  # an expected transition, not a warning
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("stale\n")
            process.stdin.flush()
            stale = _phase(process, "stale")
            for provider, results in stale.items():
                if provider != "phase":
                    _check(provider, results, stale=True)
        for process in processes:
            assert process.wait(timeout=20) == 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            output = process.communicate(timeout=10)[0]
            if process.returncode != 0:
                print(output)
