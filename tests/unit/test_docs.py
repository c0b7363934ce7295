"""The README says what an operator needs in the first hour, and what it says matches the repo."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from entitlements_sidecar.cli import _parser

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def test_openfeature_differences_are_documented() -> None:
    assert "**flagd v1 differs**" in README and "gRPC `NOT_FOUND`" in README
    assert "**OFREP carries no type.**" in README and "(use gRPC for the object form)" in README
    assert "**Bulk answers are the singles**" in README
    assert re.search(r"curl -s -X POST http://127\.0\.0\.1:8080/ofrep/v1/evaluate/flags/\S+", README)


def test_the_local_lago_quick_start_is_a_make_target() -> None:
    assert "make lago-local" in README
    assert re.search(r"^lago-local:", (REPO / "Makefile").read_text(), re.MULTILINE)


def test_the_cli_tls_flags_it_documents_exist() -> None:
    documented = set(re.findall(r"(--(?:ca|cert|key)-file) \S+\.pem", README))
    assert documented == {"--ca-file", "--cert-file", "--key-file"}
    for command in ("check", "get", "status"):
        args = _parser().parse_args([command, "--ca-file", "c", "--cert-file", "a", "--key-file", "k",
                                     *(["--subscription", "s"] if command != "status" else []),
                                     *(["--feature", "f"] if command == "check" else [])])  # fmt: skip
        assert (args.ca_file, args.cert_file, args.key_file) == ("c", "a", "k")


def test_the_clients_return_types_are_documented() -> None:
    assert "`check` returns a `CheckResult` dataclass" in README and "`EntitlementSet` message" in README


def test_the_topology_says_as_many_syncers_as_the_base_runs() -> None:
    base = yaml.safe_load((REPO / "k8s" / "base" / "syncer-deployment.yaml").read_text())
    [shown] = re.findall(r"syncer Deployment \((\d+) replicas?\)", README)
    assert int(shown) == base["spec"]["replicas"]
