"""The `check` and `get` client commands against a running sidecar on the example catalog."""

from __future__ import annotations

import json

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
