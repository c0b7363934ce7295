"""protos/buf.gen.yaml generates Go, Java and TypeScript clients of the public API into clients/."""

from __future__ import annotations

from pathlib import Path

import yaml

PROTOS = Path(__file__).resolve().parents[2] / "protos"


def test_buf_gen_names_a_go_java_and_typescript_client_of_the_public_api() -> None:
    config = yaml.safe_load((PROTOS / "buf.gen.yaml").read_text())
    assert config["version"] == "v2"
    [source] = config["inputs"]
    for path in source["paths"]:
        assert (PROTOS / source["directory"] / path).is_file(), path
    outputs = {plugin["remote"].split("/", 1)[1]: plugin["out"] for plugin in config["plugins"]}
    assert outputs == {
        "protocolbuffers/go": "../clients/go/gen",
        "grpc/go": "../clients/go/gen",
        "protocolbuffers/java": "../clients/java/gen",
        "grpc/java": "../clients/java/gen",
        "bufbuild/es": "../clients/typescript/gen",
    }
    assert (PROTOS / "../clients/README.md").is_file()
