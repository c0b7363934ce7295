"""Startup, health, graceful shutdown and the unix-socket listener."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from entitlements_sidecar.app import App
from entitlements_sidecar.config import load_settings
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from entitlements_sidecar.sync.snapshot import ApplyResult
from tests.integration.conftest import stub
from tests.support.processes import free_port, rpc_error, run_cli, start_sidecar
from tests.support.wait import eventually, eventually_async

pytestmark = pytest.mark.integration


async def test_health_is_not_serving_until_the_first_load(example_catalog: Path) -> None:
    port = free_port()
    overrides = {"grpc_address": f"127.0.0.1:{port}", "http_address": f"127.0.0.1:{free_port()}"}
    settings = load_settings({**overrides, "catalog_path": str(example_catalog)}, environ={})
    app = App(settings)
    release = asyncio.Event()
    assert app.catalog_sync is not None
    real_load = app.catalog_sync.initial_load

    async def held_load() -> ApplyResult:
        await release.wait()
        return await real_load()

    app.catalog_sync.initial_load = held_load  # type: ignore[method-assign]
    starting = asyncio.create_task(app.start())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def status() -> int:
            return int((await health.Check(health_pb2.HealthCheckRequest(), timeout=2)).status)

        assert await eventually_async(status, what="health answering") == health_pb2.HealthCheckResponse.NOT_SERVING
        release.set()
        await starting

        async def serving() -> bool:
            return bool(await status() == health_pb2.HealthCheckResponse.SERVING)

        await eventually_async(serving, what="SERVING after load")
        answer = await pb_grpc.EntitlementServiceStub(channel).CheckEntitlement(
            pb.CheckEntitlementRequest(subscription_id="sub_globex", feature_code="seats"), timeout=5
        )
        assert answer.allowed
    await app.stop()


def test_sigterm_ends_watch_streams_and_exits_cleanly(tmp_path: Path, example_catalog: Path) -> None:
    sidecar = start_sidecar(tmp_path, example_catalog)
    stream = stub(sidecar).WatchEntitlements(
        pb.WatchEntitlementsRequest(subjects=[pb.Subject(customer_id="acme")]), timeout=30
    )
    assert next(stream).initial
    assert sidecar.terminate(timeout=15, keep_channel=True) == 0
    code, details = rpc_error(lambda: next(stream))
    assert code is grpc.StatusCode.UNAVAILABLE, details
    assert "stopped" in sidecar.log()
    assert "calls served" in sidecar.log() and "WatchEntitlements=1" in sidecar.log()


def test_unix_socket_listener(tmp_path: Path, example_catalog: Path) -> None:
    socket_path = tmp_path / "ent.sock"
    sidecar = start_sidecar(tmp_path, example_catalog, address=f"unix:{socket_path}")
    try:
        assert socket_path.exists()
        answer = stub(sidecar).CheckEntitlement(
            pb.CheckEntitlementRequest(customer_id="acme", feature_code="sso"), timeout=5
        )
        assert answer.allowed
    finally:
        sidecar.terminate()


def test_invalid_catalog_stops_startup_with_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("features:\n  - {code: f, privileges: [{code: p, value_type: money}]}\n")
    result = run_cli("serve", "--catalog-path", str(bad), "--grpc-address", f"127.0.0.1:{free_port()}",
                     "--http-address", f"127.0.0.1:{free_port()}")  # fmt: skip
    assert result.returncode == 2
    assert f"{bad}: features[0].privileges[0].value_type: must be one of" in result.stderr


def test_unreachable_redis_stops_startup(example_catalog: Path) -> None:
    result = run_cli(
        "serve", "--catalog-path", str(example_catalog), "--grpc-address", f"127.0.0.1:{free_port()}",
        "--http-address", f"127.0.0.1:{free_port()}", "--store", "redis",
        "--redis-url", f"redis://127.0.0.1:{free_port()}/0",
    )  # fmt: skip
    assert result.returncode == 2
    assert "redis unreachable" in result.stderr


def test_a_taken_http_port_stops_a_syncer_with_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "serve", "--source", "lago", "--lago-api-url", f"http://127.0.0.1:{free_port()}",
            "--grpc-address", f"127.0.0.1:{free_port()}", "--http-address", f"127.0.0.1:{port}",
            env={"ENTITLEMENTS_LAGO_API_KEY": "k", "ENTITLEMENTS_LAGO_HMAC_KEY": "h"},
        )  # fmt: skip
    assert result.returncode == 2
    assert f"error: cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


def test_a_rejected_catalog_edit_shows_in_readiness_and_status(tmp_path: Path, example_catalog: Path) -> None:
    sidecar = start_sidecar(tmp_path, example_catalog)
    try:
        example_catalog.write_text("features:\n  - {code: f, privileges: [{code: p, value_type: money}]}\n")

        def warned() -> dict[str, object] | None:
            body = httpx.get(f"{sidecar.http_url}/readyz", timeout=2).json()
            return body if "warning" in body["checks"].get("source", {}) else None

        body = eventually(warned, timeout=10, what="the rejected edit in /readyz")
        assert body is not None
        warning = body["checks"]["source"]["warning"]  # type: ignore[index]
        assert "serving the catalog applied at" in warning and "value_type: must be one of" in warning
        assert body["ready"] is True  # still within the staleness budget: the last good catalog is served
        host, port = sidecar.http_url.removeprefix("http://").rsplit(":", 1)
        status = run_cli("status", "--target", sidecar.address, "--http", f"{host}:{port}")
        assert "WARNING: the catalog file was not loaded" in status.stdout, status.stdout
        answer = stub(sidecar).CheckEntitlement(
            pb.CheckEntitlementRequest(subscription_id="sub_globex", feature_code="seats"), timeout=5
        )
        assert answer.allowed  # the last good catalog
    finally:
        sidecar.terminate()
