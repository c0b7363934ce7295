"""Regenerate the Python protobuf/gRPC modules from protos/ (run by `make gen`).

protoc writes imports as `entitlements.v1...`; we ship the code inside our own package, so the
imports are rewritten to `entitlements_sidecar.gen.entitlements.v1...`. The output depends only on
the pinned grpcio-tools and mypy-protobuf versions, so CI can regenerate and diff it.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
OUT_PACKAGE = ROOT / "src" / "entitlements_sidecar" / "gen"
PREFIX = "entitlements_sidecar.gen."


def main(argv: list[str]) -> int:
    check = "--check" in argv
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    bin_dir = pathlib.Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            f"--mypy_out={tmp}",
            f"--mypy_grpc_out={tmp}",
            *protos,
        ]
        subprocess.run(cmd, check=True, cwd=PROTO_ROOT)
        generated = pathlib.Path(tmp)
        for path in sorted(generated.rglob("*.py*")):
            text = path.read_text()
            for package in {p.split("/")[0] for p in protos}:
                text = text.replace(f"from {package}.", f"from {PREFIX}{package}.")
                text = text.replace(f"import {package}.", f"import {PREFIX}{package}.")
            path.write_text(text)
        for directory in [generated, *[d for d in generated.rglob("*") if d.is_dir()]]:
            (directory / "__init__.py").write_text("")
        if check:
            return _compare(generated, OUT_PACKAGE)
        if OUT_PACKAGE.exists():
            shutil.rmtree(OUT_PACKAGE)
        shutil.copytree(generated, OUT_PACKAGE)
    return 0


def _compare(expected: pathlib.Path, actual: pathlib.Path) -> int:
    def files(root: pathlib.Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        }

    want, have = files(expected), files(actual) if actual.exists() else {}
    drifted = sorted(name for name in want.keys() | have.keys() if want.get(name) != have.get(name))
    if drifted:
        print("generated code is out of date; run `make gen` and commit:", *drifted, sep="\n  ")
        return 1
    print("generated code: up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
