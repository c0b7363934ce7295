from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2

from tests.lago_emulator.server import LagoEmulator
from tests.support.processes import RedisServer, Sidecar, free_port, start_sidecar

pytestmark = pytest.mark.integration


@pytest.fixture
def lago() -> Iterator[LagoEmulator]:
    emulator = LagoEmulator().start()
    yield emulator
    emulator.stop()


@dataclass
class Syncer:
    sidecar: Sidecar
    http_port: int

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/webhooks/lago"


SyncerFactory = Callable[..., Syncer]


@pytest.fixture
def redis_args(redis_server: RedisServer) -> list[str]:
    """How the sidecars reach Redis; a module can override it (the Redis Cluster scenario does)."""
    return ["--redis-url", redis_server.url]


@pytest.fixture
def start_syncer(tmp_path: Path, redis_args: list[str], key_prefix: str, lago: LagoEmulator) -> Iterator[SyncerFactory]:
    """Start a sidecar with source=lago against the emulator, on the test's Redis prefix."""
    started: list[Syncer] = []

    def start(
        *extra: str,
        roles: str = "reader,syncer",
        name: str = "syncer",
        rate: str = "1000",
        ready: Callable[[Sidecar], bool] | None = None,
        env: dict[str, str] | None = None,
    ) -> Syncer:
        http_port = free_port()
        args = [
            "--source", "lago", "--store", "redis", *redis_args, "--redis-key-prefix", key_prefix,
            "--roles", roles, "--http-address", f"127.0.0.1:{http_port}", "--lago-api-url", lago.url,
            "--lago-rate-limit", rate, "--lago-max-retries", "2", "--queue-claim-idle-seconds", "1", *extra,
        ]  # fmt: skip
        env = {
            "ENTITLEMENTS_LAGO_API_KEY": lago.api_key,
            "ENTITLEMENTS_LAGO_HMAC_KEY": lago.signer.hmac_key,
            **(env or {}),
        }
        if ready is None and "syncer" in roles:
            ready = first_load_read  # a test that asserts a subscription's own values needs its read
        sidecar = start_sidecar(tmp_path, None, args, env=env, name=name, ready=ready)
        syncer = Syncer(sidecar, http_port)
        if "syncer" in roles:
            lago.webhook_url = syncer.webhook_url
        started.append(syncer)
        return syncer

    yield start
    for syncer in started:
        syncer.sidecar.terminate()


def first_load_read(sidecar: Sidecar) -> bool:
    """SERVING, and the first load's reads are over: no answer is still the listing's provisional one."""
    if sidecar.health() != health_pb2.HealthCheckResponse.SERVING:
        return False
    return not sidecar.readiness()["checks"]["first_load"]["reads_pending"]


def seed(lago: LagoEmulator, subscriptions: int = 2) -> None:
    """A small Lago organization: three features (every privilege type), two plans, subscriptions on pro."""
    state = lago.state
    state.create_feature(
        "seats",
        [{"code": "max", "value_type": "integer"}, {"code": "root", "value_type": "boolean"}],
        name="Seats",
    )
    state.create_feature(
        "sso",
        [{"code": "provider", "value_type": "select", "config": {"select_options": ["google", "okta"]}},
         {"code": "domain", "value_type": "string"}],
    )  # fmt: skip
    state.create_feature("analytics.api")
    state.create_plan("starter", amount_cents=1000)
    state.create_plan("pro", amount_cents=5000)
    state.write_plan_entitlements("starter", {"seats": {"max": 3, "root": False}}, replace=True)
    state.write_plan_entitlements(
        "pro", {"seats": {"max": 10, "root": True}, "sso": {"provider": "google"}, "analytics.api": {}}, replace=True
    )
    for index in range(subscriptions):
        state.create_subscription(f"sub_{index}", f"cust_{index % 2}", "pro")
    lago.take_outbox()  # the organization existed before the sidecar: no webhooks for it


METERS = """
meters:
  - {metric: api_calls, feature: api, aggregation: count, quota: calls_max}
  - {metric: tokens, feature: llm, aggregation: sum, property: tokens, allowance: tokens_included}
"""


@pytest.fixture
def meters(tmp_path: Path, lago: LagoEmulator) -> list[str]:
    seed(lago, subscriptions=3)
    state = lago.state
    state.create_feature("api", [{"code": "calls_max", "value_type": "integer"}])
    state.create_feature("llm", [{"code": "tokens_included", "value_type": "integer"}])
    state.write_plan_entitlements("pro", {"api": {"calls_max": 5}, "llm": {"tokens_included": 100}}, replace=False)
    state.usage.create_metric("api_calls", "count_agg")
    state.usage.create_metric("tokens", "sum_agg", field_name="tokens")
    lago.take_outbox()
    path = tmp_path / "meters.yaml"
    path.write_text(METERS)
    return ["--meters-path", str(path)]
