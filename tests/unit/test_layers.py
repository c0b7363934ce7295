"""Every import between our own modules follows the layer table of docs/architecture.md ("May import")."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.processes import REPO

SRC = REPO / "src" / "entitlements_sidecar"
ARCHITECTURE = REPO / "docs" / "architecture.md"
EVERYTHING = "everything"


def layer_table(text: str) -> dict[str, set[str] | None]:
    """Layer name -> the layers it may import (None: everything). A layer is a folder (`sync`,
    `transport/grpc`) or a top-level module (`metrics`); the names in one row may import each other."""
    section = text[text.index("## Folders") :]
    rules: dict[str, set[str] | None] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        row = {_layer_name(n) for n in re.findall(r"`([^`]+)`", cells[0])}
        allowed = None if cells[2] == EVERYTHING else {_layer_name(n) for n in re.findall(r"`([^`]+)`", cells[2])}
        for name in row:
            rules[name] = None if allowed is None else allowed | row
    return rules


def _layer_name(name: str) -> str:
    return name.removesuffix("/").removesuffix(".py")


def layer_of(module: str, rules: dict[str, set[str] | None]) -> str:
    """The most specific layer holding a dotted module path inside the package (`transport.grpc.server`)."""
    parts = module.split(".")
    for length in range(len(parts), 0, -1):
        name = "/".join(parts[:length])
        if name in rules:
            return name
    raise AssertionError(f"{module} is in no layer of docs/architecture.md")


def own_imports(source: str) -> set[str]:
    """Dotted paths, inside our package, of what a module imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "entitlements_sidecar":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("entitlements_sidecar."):
                found.add(node.module.removeprefix("entitlements_sidecar."))
        elif isinstance(node, ast.Import):
            found.update(
                a.name.removeprefix("entitlements_sidecar.")
                for a in node.names
                if a.name.startswith("entitlements_sidecar.")
            )
    return found


def violations(module: str, source: str, rules: dict[str, set[str] | None]) -> list[str]:
    mine = layer_of(module, rules)
    allowed = rules[mine]
    if allowed is None:
        return []
    wrong = []
    for target in sorted(own_imports(source)):
        theirs = layer_of(target, rules)
        if theirs != mine and theirs not in allowed:
            wrong.append(
                f"{module} ({mine}) imports {target} ({theirs}); {mine} may import {sorted(allowed) or 'nothing'}"
            )
    return wrong


def _modules() -> dict[str, Path]:
    """Our modules by dotted path, generated code and the package's own entry files left out."""
    found = {".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): p for p in SRC.rglob("*.py")}
    return {m: p for m, p in found.items() if m.split(".")[0] != "gen" and m not in ("__init__", "__main__")}


RULES = layer_table(ARCHITECTURE.read_text())


def test_every_module_is_in_a_layer_of_the_table() -> None:
    for module in _modules():
        layer_of(module, RULES)


def test_imports_follow_the_layer_table() -> None:
    found = [v for module, path in _modules().items() for v in violations(module, path.read_text(), RULES)]
    assert not found, "\n".join(found)


def test_the_table_has_the_layers_the_code_relies_on() -> None:
    assert RULES["domain"] == {"domain"}
    assert RULES["sync"] is not None and "sources/lago" not in RULES["sync"]
    assert RULES["app"] is None


def test_a_forbidden_import_is_reported() -> None:
    # The check itself, on imports the table forbids: the generic syncer reaching into Lago, the domain
    # importing the store, a transport package reaching into the composition root.
    assert violations("sync.worker", "from entitlements_sidecar.sources.lago.refresher import Refresher\n", RULES)
    assert violations("domain.check", "import entitlements_sidecar.store.memory\n", RULES)
    assert violations("transport.http.webhook", "from entitlements_sidecar import app\n", RULES)
    assert violations("transport.grpc.server", "from entitlements_sidecar.transport.openfeature import flagd\n", RULES)
    # and allowed ones are not
    assert not violations("sync.worker", "from entitlements_sidecar.domain.events import EventHandler\n", RULES)
    assert not violations("app.root", "from entitlements_sidecar.sources.lago.full_sync import FullSync\n", RULES)
