"""OFREP and health handlers on the memory store, without a socket: statuses and bodies from the one table."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from entitlements_sidecar.domain.map_status import MapStatus
from entitlements_sidecar.domain.service import ReadService
from entitlements_sidecar.metrics import Metrics
from entitlements_sidecar.sources.catalog_source import CatalogSource
from entitlements_sidecar.store.map_meta_memory import MemoryMapMeta
from entitlements_sidecar.store.memory import MemoryStore
from entitlements_sidecar.sync.catalog_sync import CatalogSync
from entitlements_sidecar.transport.http.health import HealthMonitor
from entitlements_sidecar.transport.openfeature.flag_events import FlagChangeFeed
from entitlements_sidecar.transport.openfeature.ofrep import MAX_BODY_BYTES, OfrepEndpoints
from tests.unit.transport.http.requests import request


@pytest.fixture
async def ofrep(example_catalog: Path) -> OfrepEndpoints:
    store = MemoryStore()
    source = CatalogSource(example_catalog, store)
    await CatalogSync(source, store, MemoryMapMeta()).initial_load()
    service = ReadService(store, source, MapStatus(complete=True))
    return OfrepEndpoints(service, FlagChangeFeed(service, store), source)


async def evaluate(ofrep: OfrepEndpoints, key: str | None, body: bytes) -> tuple[int, dict[str, object]]:
    path = "/ofrep/v1/evaluate/flags" + (f"/{key}" if key else "")
    req = request("POST", path, body, {"Content-Type": "application/json"})
    if key is None:
        response = await ofrep.evaluate_all(req)
    else:
        req.match_info.update({"key": key})  # the router fills it in a real server
        response = await ofrep.evaluate_one(req)
    assert isinstance(response.body, bytes)
    return response.status, orjson.loads(response.body)


ACME = orjson.dumps({"context": {"targetingKey": "sub_acme_main"}})


async def test_a_flag_is_answered_with_its_value(ofrep: OfrepEndpoints) -> None:
    assert await evaluate(ofrep, "seats:max", ACME) == (
        200,
        {"key": "seats:max", "reason": "TARGETING_MATCH", "variant": "25", "value": 25},
    )


@pytest.mark.parametrize(
    ("key", "body", "status", "code"),
    [
        ("seats:max", b"{not json", 400, "PARSE_ERROR"),
        ("seats:max", b"{}", 400, "TARGETING_KEY_MISSING"),
        ("seats:max", orjson.dumps({"context": []}), 400, "INVALID_CONTEXT"),
        ("seats:max", b" " * (MAX_BODY_BYTES + 1), 413, "GENERAL"),
        (None, b"{not json", 400, "PARSE_ERROR"),
    ],
)
async def test_a_bad_request_gets_the_openfeature_code_and_its_status(
    ofrep: OfrepEndpoints, key: str | None, body: bytes, status: int, code: str
) -> None:
    got, json = await evaluate(ofrep, key, body)
    assert (got, json["errorCode"]) == (status, code) and json["errorDetails"]


class Probe:
    def __init__(self, confirmed_at: float | None, problem: str | None = None) -> None:
        self._confirmed_at, self._problem = confirmed_at, problem

    def confirmed_at(self) -> float | None:
        return self._confirmed_at

    def snapshot_at(self) -> float | None:
        return self._confirmed_at

    def problem(self) -> str | None:
        return self._problem

    def reconciliation(self) -> dict[str, object] | None:
        return {"cycles": 3, "cycle_seconds": 12.5, "running": True}


async def ping() -> None:
    return None


async def readyz(health: HealthMonitor) -> tuple[int, dict[str, object]]:
    await health.evaluate()
    response = await health.readyz(request("GET", "/readyz"))
    assert isinstance(response.body, bytes)
    return response.status, orjson.loads(response.body)


async def test_readiness_needs_the_first_load_and_a_sync_lag_within_the_budget() -> None:
    import time

    health = HealthMonitor(Metrics(), 30.0, Probe(time.time()), MapStatus(complete=True), ping)
    status, body = await readyz(health)
    assert status == 503 and body["checks"]["first_load"] == {"ok": False, "reads_pending": False}  # type: ignore[index]
    health.loaded = True
    status, body = await readyz(health)
    assert status == 200
    assert body["checks"]["reconciliation"] == {"ok": True, "cycles": 3, "cycle_seconds": 12.5, "running": True}  # type: ignore[index]
    late = HealthMonitor(Metrics(), 30.0, Probe(time.time() - 60), MapStatus(complete=True), ping)
    late.loaded = True
    status, body = await readyz(late)
    assert status == 503 and body["checks"]["sync_lag"]["ok"] is False  # type: ignore[index]


async def test_a_source_problem_is_a_warning_and_a_lost_map_is_not_ready() -> None:
    import time

    lost = MapStatus(complete=True)
    health = HealthMonitor(Metrics(), 30.0, Probe(time.time(), "the source refuses the syncer"), lost, ping)
    health.loaded = True
    status, body = await readyz(health)
    assert status == 200 and body["checks"]["source"] == {"ok": True, "warning": "the source refuses the syncer"}  # type: ignore[index]
    lost.doubt("the store's change feed was interrupted")
    assert (await readyz(health))[0] == 503
