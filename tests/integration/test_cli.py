"""The `check` and `get` client commands against a running sidecar on the example catalog."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.processes import Sidecar, free_port
from tests.support.processes import run_cli as cli

pytestmark = pytest.mark.integration


def test_check_prints_a_readable_answer_and_exits_by_verdict(memory_sidecar: Sidecar) -> None:
    target = ["--target", memory_sidecar.address]
    allowed = cli(
        "check",
        *target,
        "--subscription",
        "sub_acme_main",
        "--feature",
        "seats",
        "--privilege",
        "max",
        "--quantity",
        "20",
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "ALLOWED: subscription sub_acme_main -> seats / max" in allowed.stdout
    assert "value:     25 (integer)" in allowed.stdout
    denied = cli(
        "check", *target, "--customer", "acme", "--feature", "sso", "--privilege", "provider", "--value", "google"
    )
    assert denied.returncode == 1
    assert "DENIED" in denied.stdout and "reason:    value_mismatch" in denied.stdout


def test_check_json(memory_sidecar: Sidecar) -> None:
    result = cli(
        "check",
        "--target",
        memory_sidecar.address,
        "--subscription",
        "sub_globex",
        "--feature",
        "seats",
        "--privilege",
        "root",
        "--json",
    )
    answer = json.loads(result.stdout)
    assert result.returncode == 1
    assert answer["reason"] == "REASON_PRIVILEGE_FALSE"
    assert answer["value"] == {"bool_value": False}
    assert answer["freshness"]["source"] == "SOURCE_MEMORY"


def test_get_lists_entitlements(memory_sidecar: Sidecar) -> None:
    result = cli("get", "--target", memory_sidecar.address, "--customer", "acme")
    assert result.returncode == 0, result.stderr
    assert "subscription sub_acme_eu: plan starter, active" in result.stdout
    assert "max = 25 (integer)  [override]" in result.stdout
    as_json = json.loads(
        cli("get", "--target", memory_sidecar.address, "--subscription", "sub_acme_main", "--json").stdout
    )
    assert as_json["plan_code"] == "pro"
    assert {f["code"] for f in as_json["features"]} == {"seats", "sso", "audit.log"}
    missing = cli("get", "--target", memory_sidecar.address, "--subscription", "nope")
    assert "subscription nope: not found" in missing.stdout


def test_errors_exit_2_with_a_message(memory_sidecar: Sidecar) -> None:
    bad = cli(
        "check",
        "--target",
        memory_sidecar.address,
        "--subscription",
        "s",
        "--feature",
        "f",
        "--quantity",
        "-1",
        "--privilege",
        "p",
    )
    assert bad.returncode == 2
    assert "INVALID_ARGUMENT: quantity: must not be negative" in bad.stderr
    down = cli(
        "check", "--target", f"127.0.0.1:{free_port()}", "--subscription", "s", "--feature", "f", "--timeout", "1"
    )
    assert down.returncode == 2 and "error:" in down.stderr
    bad_env = cli("check", "--subscription", "s", "--feature", "f", env={"ENTITLEMENTS_GRPC_ADDRESS": "nowhere"})
    assert bad_env.returncode == 2
    assert "ENTITLEMENTS_GRPC_ADDRESS='nowhere': expected host:port or unix:/path" in bad_env.stderr


def test_target_defaults_to_the_configured_address(memory_sidecar: Sidecar) -> None:
    result = cli(
        "check",
        "--subscription",
        "sub_globex",
        "--feature",
        "seats",
        env={"ENTITLEMENTS_GRPC_ADDRESS": memory_sidecar.address},
    )
    assert result.returncode == 0, result.stderr
    assert "ALLOWED" in result.stdout


def _one_error_line(result: object) -> str:
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert result.returncode == 2, stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(("error:", "entitlements-sidecar")) and "error:" in lines[-1], stderr
    return lines[-1]


def test_operator_mistakes_are_one_error_line_and_exit_2(memory_sidecar: Sidecar, tmp_path: object) -> None:
    target = ["--target", memory_sidecar.address, "--subscription", "s", "--feature", "f", "--privilege", "p"]
    huge = cli("check", *target, "--quantity", "99999999999999999999")
    assert "out of range" in _one_error_line(huge)
    missing = cli("check", *target, "--ca-file", "/missing/ca.pem")
    assert "cannot read --ca-file /missing/ca.pem" in _one_error_line(missing)
    bad_port = cli(
        "sync", "--full", "--source", "lago", "--store", "redis", env={"ENTITLEMENTS_REDIS_URL": "redis://127.0.0.1:99999/0",
                                                                      "ENTITLEMENTS_LAGO_API_KEY": "k"}
    )  # fmt: skip
    line = _one_error_line(bad_port)
    assert "ENTITLEMENTS_REDIS_URL=<secret>: the port must be a number from 1 to 65535" in line


def test_a_closed_pipe_is_not_a_traceback(memory_sidecar: Sidecar) -> None:
    command = [sys.executable, "-m", "entitlements_sidecar.cli", "get", "--target", memory_sidecar.address]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENTITLEMENTS_")}
    # `| head -c 1` closes the pipe after one byte; a customer's listing is longer than a pipe write
    reader = subprocess.Popen(["head", "-c", "1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert reader.stdin is not None
    writer = subprocess.run(
        [*command, "--customer", "acme"], stdout=reader.stdin, stderr=subprocess.PIPE, text=True, env=env, timeout=30
    )
    reader.stdin.close()
    reader.wait(timeout=10)
    assert "Traceback" not in writer.stderr and "BrokenPipe" not in writer.stderr, writer.stderr


def test_json_answers_are_complete_and_typed(memory_sidecar: Sidecar) -> None:
    denied = cli("check", "--target", memory_sidecar.address, "--subscription", "sub_nobody", "--feature", "seats",
                 "--json")  # fmt: skip
    answer = json.loads(denied.stdout)
    assert denied.returncode == 1
    assert answer["allowed"] is False and answer["freshness"]["stale"] is False
    assert answer["freshness"]["version"] == 0 and answer["subscription_id"] == ""
    allowed = cli("check", "--target", memory_sidecar.address, "--subscription", "sub_acme_main", "--feature", "seats",
                  "--privilege", "max", "--json")  # fmt: skip
    answer = json.loads(allowed.stdout)
    assert answer["allowed"] is True and answer["value"] == {"int_value": 25}
    assert isinstance(answer["freshness"]["version"], int) and answer["freshness"]["version"] > 0
    listing = json.loads(cli("get", "--target", memory_sidecar.address, "--customer", "acme", "--json").stdout)
    assert all(isinstance(s["version"], int) for s in listing["subscriptions"])


def test_text_answers_say_what_is_true(memory_sidecar: Sidecar) -> None:
    target = ["--target", memory_sidecar.address]
    denied = cli("check", *target, "--subscription", "sub_globex", "--feature", "sso")
    assert denied.returncode == 1 and "granted by" not in denied.stdout
    assert "decided on subscription sub_globex" in denied.stdout
    unknown = cli("check", *target, "--subscription", "sub_nobody", "--feature", "sso")
    assert "1970" not in unknown.stdout and "version 0" not in unknown.stdout
    assert "not in the map" in unknown.stdout
    consistent = cli("check", *target, "--subscription", "sub_globex", "--feature", "seats", "--fully-consistent")
    assert "source source" not in consistent.stdout
    assert "the source of truth, read just now" in consistent.stdout
