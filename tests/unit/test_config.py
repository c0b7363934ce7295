from __future__ import annotations

from pathlib import Path

import pytest

from entitlements_sidecar.config import OPTIONS, Settings, load_settings
from entitlements_sidecar.domain.errors import ConfigError


def test_defaults() -> None:
    settings = load_settings(environ={})
    assert settings.grpc_address == "127.0.0.1:50051"
    assert (settings.store, settings.l1_max_entries, settings.redis_key_prefix) == ("memory", 10_000, "ent:")
    assert settings.catalog_path == Path("examples/catalog.yaml")


def test_flag_beats_environment_beats_default() -> None:
    env = {"ENTITLEMENTS_STORE": "redis", "ENTITLEMENTS_L1_MAX_ENTRIES": "5"}
    assert load_settings(environ=env).store == "redis"
    assert load_settings({"store": "memory"}, environ=env).store == "memory"
    assert load_settings({"store": None}, environ=env).l1_max_entries == 5


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"ENTITLEMENTS_STORE": "etcd"}, "ENTITLEMENTS_STORE='etcd': must be one of memory, redis"),
        ({"ENTITLEMENTS_L1_MAX_ENTRIES": "-1"}, "ENTITLEMENTS_L1_MAX_ENTRIES"),
        ({"ENTITLEMENTS_L1_MAX_ENTRIES": "many"}, "ENTITLEMENTS_L1_MAX_ENTRIES"),
        ({"ENTITLEMENTS_GRPC_ADDRESS": "localhost"}, "expected host:port or unix:/path"),
        ({"ENTITLEMENTS_GRPC_ADDRESS": "unix:"}, "needs a path"),
        ({"ENTITLEMENTS_CATALOG_POLL_SECONDS": "0"}, "greater than zero"),
        ({"ENTITLEMENTS_REDIS_CLUSTER_NODES": "10.0.0.1:7000,10.0.0.2"}, "ENTITLEMENTS_REDIS_CLUSTER_NODES="),
        (
            {"ENTITLEMENTS_REDIS_CLUSTER_NODES": "10.0.0.1:7000", "ENTITLEMENTS_REDIS_SENTINELS": "10.0.0.9:26379"},
            "set one of ENTITLEMENTS_REDIS_SENTINELS and ENTITLEMENTS_REDIS_CLUSTER_NODES",
        ),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        load_settings(environ=env)


def test_bad_flag_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--max-batch-size='x'"):
        load_settings({"max_batch_size": "x"}, environ={})


def test_unix_and_ipv6_addresses() -> None:
    assert load_settings({"grpc_address": "unix:/run/e.sock"}, environ={}).grpc_address == "unix:/run/e.sock"
    assert load_settings({"grpc_address": "[::1]:50051"}, environ={}).grpc_address == "[::1]:50051"


def test_every_option_is_a_settings_field() -> None:
    assert [o.field for o in OPTIONS] == list(Settings.__slots__)
    assert all(o.env == "ENTITLEMENTS_" + o.field.upper() for o in OPTIONS)
