"""protos/buf.gen.yaml generates the clients' code with local plugins only, each one pinned: the Go plugins
by the Makefile, protoc-gen-es by clients/typescript/package.json (`make lint` regenerates the code and
fails on drift: scripts/gen_clients.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_every_plugin_is_local_and_pinned() -> None:
    config = yaml.safe_load((REPO / "protos" / "buf.gen.yaml").read_text())
    assert config["version"] == "v2"
    makefile = (REPO / "Makefile").read_text()
    package = json.loads((REPO / "clients" / "typescript" / "package.json").read_text())
    outputs = set()
    for plugin in config["plugins"]:
        assert "remote" not in plugin, plugin  # a remote plugin needs buf.build, which CI cannot reach
        name = plugin["local"]
        outputs.add(plugin["out"])
        if name == "protoc-gen-es":
            assert re.fullmatch(r"\d+\.\d+\.\d+", package["devDependencies"]["@bufbuild/protoc-gen-es"])
            continue
        [version_variable] = re.findall(rf"go install \S+/{re.escape(name)}@\$\((\w+)\)", makefile)
        assert re.search(rf"^{version_variable} := v\d+\.\d+\.\d+$", makefile, re.MULTILINE), version_variable
    assert outputs == {"clients/go", "clients/typescript/src/gen"}
