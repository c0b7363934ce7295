"""protos/buf.gen.yaml generates the Go client's code with local plugins only, each one the Makefile pins
(`make lint` regenerates it and fails on drift: scripts/gen_go.py)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_every_plugin_is_local_and_pinned_by_the_makefile() -> None:
    config = yaml.safe_load((REPO / "protos" / "buf.gen.yaml").read_text())
    assert config["version"] == "v2"
    makefile = (REPO / "Makefile").read_text()
    for plugin in config["plugins"]:
        assert "remote" not in plugin, plugin  # a remote plugin needs buf.build, which CI cannot reach
        name = plugin["local"]
        [version_variable] = re.findall(rf"go install \S+/{re.escape(name)}@\$\((\w+)\)", makefile)
        assert re.search(rf"^{version_variable} := v\d+\.\d+\.\d+$", makefile, re.MULTILINE), version_variable
        assert plugin["out"] == "clients/go"
