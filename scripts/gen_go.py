"""Regenerate the Go client's protobuf and gRPC code, clients/go/entitlementsv1 (run by `make gen`; `--check`
by `make lint`, which fails when the checked-in code differs from what the pinned plugins write).

buf (pinned by the Makefile, from npm) compiles protos/entitlements/v1 and runs the local plugins
protoc-gen-go and protoc-gen-go-grpc, which the Makefile installs at pinned versions into .tools/go/bin;
protos/buf.gen.yaml says where their output goes.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUF = ROOT / ".tools" / "npm" / "node_modules" / ".bin" / "buf"
PLUGINS = ROOT / ".tools" / "go" / "bin"
PACKAGE = Path("clients") / "go" / "entitlementsv1"


def generate(into: Path) -> Path:
    env = {**os.environ, "PATH": f"{PLUGINS}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [str(BUF), "generate", "protos", "--template", "protos/buf.gen.yaml", "--path", "protos/entitlements/v1"]
    subprocess.run([*command, "-o", str(into)], check=True, cwd=ROOT, env=env)
    return into / PACKAGE


def differences(produced: Path, committed: Path) -> list[str]:
    if not committed.is_dir():
        return [f"{committed.relative_to(ROOT)} is missing"]
    compared = filecmp.dircmp(produced, committed)
    return [*compared.left_only, *compared.right_only, *compared.diff_files, *compared.funny_files]


def main(argv: list[str]) -> int:
    committed = ROOT / PACKAGE
    with tempfile.TemporaryDirectory() as tmp:
        produced = generate(Path(tmp))
        if "--check" in argv:
            drift = differences(produced, committed)
            if drift:
                print(f"{PACKAGE} differs from what make gen writes ({', '.join(sorted(drift))}): run make gen")
                return 1
            print("generated Go code: up to date")
            return 0
        if committed.exists():
            shutil.rmtree(committed)
        shutil.copytree(produced, committed)
    print(f"wrote {PACKAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
