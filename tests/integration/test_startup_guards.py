"""What a process refuses at start, with a clear error and exit code 2: serving with no source of truth
configured (no demo data by accident), roles that do not apply, and an address another process serves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from tests.integration.conftest import stub
from tests.support.processes import REPO, free_port, run_cli, start_sidecar

pytestmark = pytest.mark.integration


def image_environment() -> dict[str, str]:
    """The ENTITLEMENTS_* variables the Dockerfile's final stage sets, with free local ports."""
    text = (REPO / "Dockerfile").read_text().split("FROM ")[-1]
    found = dict(re.findall(r"(ENTITLEMENTS_[A-Z0-9_]+)=(\S+)", text))
    found["ENTITLEMENTS_GRPC_ADDRESS"] = f"127.0.0.1:{free_port()}"
    found["ENTITLEMENTS_HTTP_ADDRESS"] = f"127.0.0.1:{free_port()}"
    return found


@pytest.mark.parametrize("args", [["serve"], ["serve", "--roles", "reader"], ["serve", "--roles", "syncer"]])
def test_the_image_with_no_source_configured_refuses_to_serve(args: list[str]) -> None:
    result = run_cli(*args, env=image_environment(), timeout=20)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no source of truth is configured" in result.stderr
    assert "ENTITLEMENTS_SOURCE" in result.stderr and "ENTITLEMENTS_CATALOG_PATH" in result.stderr
    assert "Traceback" not in result.stderr


def test_options_that_do_not_apply_to_the_source_are_errors(example_catalog: Path) -> None:
    cases = [
        (["serve", "--catalog-path", str(example_catalog), "--roles", "reader"], {}, "--roles"),
        (["serve"], {"ENTITLEMENTS_ROLES": "syncer", "ENTITLEMENTS_CATALOG_PATH": str(example_catalog)},
         "ENTITLEMENTS_ROLES"),
        (["serve", "--source", "catalog"], {}, "ENTITLEMENTS_CATALOG_PATH"),
        (["serve", "--source", "lago", "--catalog-path", str(example_catalog)], {"ENTITLEMENTS_LAGO_API_KEY": "k"},
         "--catalog-path"),
    ]  # fmt: skip
    for args, env, named in cases:
        result = run_cli(*args, "--grpc-address", f"127.0.0.1:{free_port()}", env=env, timeout=20)
        assert result.returncode == 2, (args, result.stderr)
        assert named in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)


def test_a_second_serve_on_an_address_in_use_is_refused(tmp_path: Path, example_catalog: Path) -> None:
    first = start_sidecar(tmp_path, example_catalog, name="first")
    other = tmp_path / "other.yaml"
    other.write_text(example_catalog.read_text().replace("seats: {max: 25}", "seats: {max: 99}"))
    try:
        result = run_cli("serve", "--catalog-path", str(other), "--grpc-address", first.address,
                         "--http-address", f"127.0.0.1:{free_port()}", timeout=20)  # fmt: skip
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"cannot listen on {first.address}: the address is already in use" in result.stderr
        assert "ENTITLEMENTS_GRPC_REUSE_PORT" in result.stderr and "Traceback" not in result.stderr
        seats = pb.CheckEntitlementRequest(subscription_id="sub_acme_main", feature_code="seats", privilege_code="max")
        assert {stub(first).CheckEntitlement(seats, timeout=5).value.int_value for _ in range(20)} == {25}
    finally:
        first.terminate()


def test_a_unix_socket_in_use_is_refused(tmp_path: Path, example_catalog: Path) -> None:
    address = f"unix:{tmp_path}/sidecar.sock"
    first = start_sidecar(tmp_path, example_catalog, address=address, name="first")
    try:
        result = run_cli("serve", "--catalog-path", str(example_catalog), "--grpc-address", address,
                         "--http-address", f"127.0.0.1:{free_port()}", timeout=20)  # fmt: skip
        assert result.returncode == 2 and "the address is already in use" in result.stderr, result.stderr
        assert first.health() == 1  # SERVING: its socket was not taken over
    finally:
        first.terminate()


def test_port_sharing_is_opt_in(tmp_path: Path, example_catalog: Path) -> None:
    shared = ["--grpc-reuse-port", "true"]
    first = start_sidecar(tmp_path, example_catalog, shared, name="first")
    try:
        second = start_sidecar(tmp_path, example_catalog, shared, address=first.address, name="second")
        second.terminate()
    finally:
        first.terminate()


def test_a_meter_that_cannot_be_counted_refuses_the_start_naming_it(tmp_path: Path, example_catalog: Path) -> None:
    meters = tmp_path / "meters.yaml"
    meters.write_text("meters:\n  - {metric: seats_peak, feature: seats, aggregation: max_agg, quota: max}\n")
    lago = ["serve", "--source", "lago", "--store", "redis", "--roles", "reader", "--meters-path", str(meters)]
    catalog = example_catalog.read_text().replace("aggregation: count,", "aggregation: unique_count,")
    bad_catalog = tmp_path / "catalog.yaml"
    bad_catalog.write_text(catalog)
    for args, named in (
        (lago, f"{meters}: meters[0].aggregation: 'max_agg' cannot be counted per event (count or sum)"),
        (["serve", "--catalog-path", str(bad_catalog)], "meters[0].aggregation: 'unique_count' cannot be counted"),
    ):
        addresses = ["--grpc-address", f"127.0.0.1:{free_port()}", "--http-address", f"127.0.0.1:{free_port()}"]
        result = run_cli(*args, *addresses, env={"ENTITLEMENTS_LAGO_API_KEY": "k"}, timeout=20)
        assert result.returncode == 2, (args, result.stderr)
        assert named in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
