"""The house rules that a reader relies on: the domain does no I/O, config is the only reader of
the environment, modules stay small, and the README documents every option."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from entitlements_sidecar.config import OPTIONS
from tests.support.processes import REPO

SRC = REPO / "src" / "entitlements_sidecar"
IO_MODULES = {"grpc", "redis", "orjson", "yaml", "socket", "asyncio", "os", "httpx", "aiohttp", "google"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def own_modules() -> list[Path]:
    return [p for p in SRC.rglob("*.py") if "gen" not in p.relative_to(SRC).parts]


def test_domain_imports_no_io() -> None:
    for path in (SRC / "domain").glob("*.py"):
        assert not imports(path) & IO_MODULES, f"{path.name} imports {imports(path) & IO_MODULES}"


def test_only_config_reads_the_environment() -> None:
    for path in own_modules():
        if path.name != "config.py":
            assert "os.environ" not in path.read_text() and "getenv" not in path.read_text(), path


def test_modules_stay_small() -> None:
    for path in own_modules():
        assert len(path.read_text().splitlines()) <= 400, path


def test_readme_documents_every_option_with_its_default() -> None:
    readme = (REPO / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(ENTITLEMENTS_[A-Z0-9_]+)` \| `([^`]*)` \|", readme, re.MULTILINE))
    assert rows == {o.env: o.default for o in OPTIONS}


def test_readme_starts_with_the_two_setup_commands() -> None:
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert [line.strip() for line in first_block.strip().splitlines()[1:]] == ["make run", "make test"]


def test_readme_catalog_example_is_valid() -> None:
    from entitlements_sidecar.sources.catalog_file import parse_catalog

    readme = (REPO / "README.md").read_text()
    snippet = next(block for block in readme.split("```yaml")[1:] if "subscriptions:" in block).split("```")[0]
    resolved = parse_catalog(snippet.encode(), "README.md").resolve()["sub_1"]
    assert set(resolved.features) == {"seats", "sso"}
    assert set(resolved.features["seats"].privileges) == {"max"}
