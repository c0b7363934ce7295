from __future__ import annotations

from pathlib import Path

import pytest

from entitlements_sidecar.config import OPTIONS, Settings, load_settings
from entitlements_sidecar.domain.errors import ConfigError


def test_the_l1_defaults_to_at_most_half_the_containers_memory_and_a_setting_is_taken_as_given() -> None:
    assert load_settings(environ={}, serving=False, memory_limit=512 << 20).cache.l1_max_bytes == 256 << 20
    assert load_settings(environ={}, serving=False, memory_limit=8 << 30).cache.l1_max_bytes == 640 << 20
    given = {"ENTITLEMENTS_L1_MAX_BYTES": str(900 << 20)}
    assert load_settings(environ=given, serving=False, memory_limit=512 << 20).cache.l1_max_bytes == 900 << 20


def test_defaults() -> None:
    settings = load_settings(environ={}, serving=False, memory_limit=1 << 40)  # a large container
    assert settings.grpc.address == "127.0.0.1:50051"
    assert (settings.mode.store, settings.cache.l1_max_entries, settings.redis.key_prefix) == (
        "memory",
        2_000_000,
        "ent:",
    )
    assert (settings.mode.source, settings.mode.catalog_path, settings.mode.roles) == ("", None, frozenset())


def test_the_source_is_chosen_on_purpose() -> None:
    with pytest.raises(ConfigError, match="no source of truth is configured"):
        load_settings(environ={})
    catalog = load_settings({"catalog_path": "examples/catalog.yaml"}, environ={})
    assert (catalog.mode.source, catalog.mode.catalog_path) == ("catalog", Path("examples/catalog.yaml"))
    assert catalog.mode.roles == frozenset()
    lago = load_settings(environ={"ENTITLEMENTS_SOURCE": "lago", "ENTITLEMENTS_LAGO_API_KEY": "k"})
    assert lago.mode.roles == {"reader", "syncer"}
    reader = load_settings({"roles": "reader", "store": "redis"}, environ={"ENTITLEMENTS_SOURCE": "lago"})
    assert reader.mode.roles == {"reader"}  # a reader needs no API key


@pytest.mark.parametrize(
    ("overrides", "env", "named"),
    [
        ({"catalog_path": "c.yaml", "roles": "reader"}, {}, "--roles: roles apply to source=lago only"),
        ({}, {"ENTITLEMENTS_CATALOG_PATH": "c.yaml", "ENTITLEMENTS_ROLES": "syncer"}, "ENTITLEMENTS_ROLES: roles"),
        ({"source": "catalog"}, {}, "--source=catalog needs ENTITLEMENTS_CATALOG_PATH"),
        ({"catalog_path": "c.yaml"}, {"ENTITLEMENTS_SOURCE": "lago"}, "--catalog-path: a catalog file applies"),
        ({"roles": ","}, {}, "a comma-separated list"),
        ({"catalog_path": "c.yaml", "meters_path": "m.yaml"}, {}, "--meters-path: a catalog declares its meters"),
    ],
)
def test_options_that_do_not_apply_are_errors(overrides: dict[str, str], env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        load_settings(overrides, environ=env)


def test_flag_beats_environment_beats_default() -> None:
    env = {"ENTITLEMENTS_STORE": "redis", "ENTITLEMENTS_L1_MAX_ENTRIES": "5"}
    assert load_settings(environ=env, serving=False).mode.store == "redis"
    assert load_settings({"store": "memory"}, environ=env, serving=False).mode.store == "memory"
    assert load_settings({"store": None}, environ=env, serving=False).cache.l1_max_entries == 5


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
        assert load_settings({"grpc_address": address}, environ={}, serving=False).grpc.address == address


def test_every_option_is_a_field_of_a_group_and_its_names_derive_from_it() -> None:
    groups = {name: getattr(load_settings(environ={}, serving=False), name) for name in Settings.__slots__}
    assert {(o.group, o.attr) for o in OPTIONS} == {(g, a) for g, v in groups.items() for a in type(v).__slots__}
    assert len({o.env for o in OPTIONS}) == len(OPTIONS)
    redis_url = next(o for o in OPTIONS if (o.group, o.attr) == ("redis", "url"))
    assert (redis_url.env, redis_url.flag) == ("ENTITLEMENTS_REDIS_URL", "--redis-url")


def test_values_are_parsed_once_into_their_types() -> None:
    from entitlements_sidecar.domain.failure_policy import FailurePolicy, PolicyKind

    env = {
        "ENTITLEMENTS_FAILURE_POLICY": "fail_open",
        "ENTITLEMENTS_FAILURE_POLICY_FEATURES": "sso=last_known_good:60",
        "ENTITLEMENTS_REDIS_SENTINELS": "10.0.0.9:26379,10.0.0.10:26379",
    }
    settings = load_settings(environ=env, serving=False)
    assert settings.policy.failure_policy == FailurePolicy(PolicyKind.FAIL_OPEN)
    assert settings.policy.failure_policy_features == {"sso": FailurePolicy(PolicyKind.LAST_KNOWN_GOOD, 60.0)}
    assert settings.redis.sentinels == (("10.0.0.9", 26379), ("10.0.0.10", 26379))


def test_secrets_are_not_in_the_settings_repr() -> None:
    settings = load_settings(environ={"ENTITLEMENTS_LAGO_API_KEY": "very-secret"}, serving=False)
    assert settings.lago.api_key == "very-secret" and "very-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, ""),
        ({"HTTPS_PROXY": "http://egress:3128"}, "http://egress:3128"),
        ({"https_proxy": "http://lower:3128", "HTTPS_PROXY": "http://upper:3128"}, "http://lower:3128"),
        ({"https_proxy": "", "HTTPS_PROXY": "http://upper:3128"}, "http://upper:3128"),  # empty is unset (curl)
        ({"HTTPS_PROXY": "http://egress:3128", "no_proxy": "", "NO_PROXY": "api.getlago.com"}, ""),
        ({"HTTP_PROXY": "http://plain:3128"}, ""),  # the API URL is https
        ({"HTTPS_PROXY": "http://egress:3128", "NO_PROXY": "localhost,.getlago.com"}, ""),
        ({"HTTPS_PROXY": "http://egress:3128", "no_proxy": "api.getlago.com"}, ""),
        ({"HTTPS_PROXY": "http://egress:3128", "NO_PROXY": "*"}, ""),
        ({"HTTPS_PROXY": "http://egress:3128", "NO_PROXY": "lago.com,getlago.co"}, "http://egress:3128"),
        ({"HTTPS_PROXY": "http://egress:3128", "ENTITLEMENTS_LAGO_PROXY_URL": "http://ours:8080"}, "http://ours:8080"),
    ],
)
def test_lagos_proxy_is_the_setting_or_what_the_usual_variables_say(env: dict[str, str], expected: str) -> None:
    settings = load_settings(environ={"ENTITLEMENTS_LAGO_API_URL": "https://api.getlago.com", **env}, serving=False)
    assert settings.lago.proxy_url == expected
