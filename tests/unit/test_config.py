from __future__ import annotations

from pathlib import Path

import pytest

from entitlements_sidecar.config import OPTIONS, Settings, load_settings
from entitlements_sidecar.domain.errors import ConfigError


def test_defaults() -> None:
    settings = load_settings(environ={}, serving=False)
    assert settings.grpc_address == "127.0.0.1:50051"
    assert (settings.store, settings.l1_max_entries, settings.redis_key_prefix) == ("memory", 10_000, "ent:")
    assert (settings.source, settings.catalog_path, settings.roles) == ("", None, frozenset())


def test_the_source_is_chosen_on_purpose() -> None:
    with pytest.raises(ConfigError, match="no source of truth is configured"):
        load_settings(environ={})
    catalog = load_settings({"catalog_path": "examples/catalog.yaml"}, environ={})
    assert (catalog.source, catalog.catalog_path) == ("catalog", Path("examples/catalog.yaml"))
    assert catalog.roles == frozenset()
    lago = load_settings(environ={"ENTITLEMENTS_SOURCE": "lago", "ENTITLEMENTS_LAGO_API_KEY": "k"})
    assert lago.roles == {"reader", "syncer"}
    reader = load_settings({"roles": "reader", "store": "redis"}, environ={"ENTITLEMENTS_SOURCE": "lago"})
    assert reader.roles == {"reader"}  # a reader needs no API key


@pytest.mark.parametrize(
    ("overrides", "env", "named"),
    [
        ({"catalog_path": "c.yaml", "roles": "reader"}, {}, "--roles: roles apply to source=lago only"),
        ({}, {"ENTITLEMENTS_CATALOG_PATH": "c.yaml", "ENTITLEMENTS_ROLES": "syncer"}, "ENTITLEMENTS_ROLES: roles"),
        ({"source": "catalog"}, {}, "--source=catalog needs ENTITLEMENTS_CATALOG_PATH"),
        ({"catalog_path": "c.yaml"}, {"ENTITLEMENTS_SOURCE": "lago"}, "--catalog-path: a catalog file applies"),
        ({"roles": ","}, {}, "a comma-separated list"),
    ],
)
def test_options_that_do_not_apply_are_errors(overrides: dict[str, str], env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        load_settings(overrides, environ=env)


def test_flag_beats_environment_beats_default() -> None:
    env = {"ENTITLEMENTS_STORE": "redis", "ENTITLEMENTS_L1_MAX_ENTRIES": "5"}
    assert load_settings(environ=env, serving=False).store == "redis"
    assert load_settings({"store": "memory"}, environ=env, serving=False).store == "memory"
    assert load_settings({"store": None}, environ=env, serving=False).l1_max_entries == 5


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
        load_settings(environ=env, serving=False)


def test_bad_flag_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--max-batch-size='x'"):
        load_settings({"max_batch_size": "x"}, environ={}, serving=False)


def test_unix_and_ipv6_addresses() -> None:
    for address in ("unix:/run/e.sock", "[::1]:50051"):
        assert load_settings({"grpc_address": address}, environ={}, serving=False).grpc_address == address


def test_every_option_is_a_settings_field() -> None:
    assert [o.field for o in OPTIONS] == list(Settings.__slots__)
    assert all(o.env == "ENTITLEMENTS_" + o.field.upper() for o in OPTIONS)
