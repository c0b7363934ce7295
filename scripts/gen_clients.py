"""Regenerate the clients' protobuf and gRPC code (run by `make gen`; `--check` by `make lint`, which fails
when the checked-in code differs from what the pinned plugins write): clients/go/entitlementsv1 and
clients/typescript/src/gen.

buf (pinned by the Makefile, from npm) compiles protos/entitlements/v1 and runs the local plugins that
protos/buf.gen.yaml names: protoc-gen-go and protoc-gen-go-grpc (installed at pinned versions into
.tools/go/bin by the Makefile) and protoc-gen-es (pinned in clients/typescript/package.json).
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
PLUGINS = (ROOT / ".tools" / "go" / "bin", ROOT / "clients" / "typescript" / "node_modules" / ".bin")
OUTPUTS = (Path("clients") / "go" / "entitlementsv1", Path("clients") / "typescript" / "src" / "gen")


def generate(into: Path) -> None:
    path = os.pathsep.join([*(str(p) for p in PLUGINS), os.environ.get("PATH", "")])
    command = [str(BUF), "generate", "protos", "--template", "protos/buf.gen.yaml", "--path", "protos/entitlements/v1"]
    subprocess.run([*command, "-o", str(into)], check=True, cwd=ROOT, env={**os.environ, "PATH": path})


def differences(produced: Path, committed: Path) -> list[str]:
    if not committed.is_dir():
        return [f"{committed.relative_to(ROOT)} is missing"]
    found: list[str] = []
    pending = [filecmp.dircmp(produced, committed)]
    while pending:
        compared = pending.pop()
        found += [*compared.left_only, *compared.right_only, *compared.diff_files, *compared.funny_files]
        pending += compared.subdirs.values()
    return found


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        if "--check" in argv:
            drift = {str(out): differences(Path(tmp) / out, ROOT / out) for out in OUTPUTS}
            drift = {out: files for out, files in drift.items() if files}
            for out, files in drift.items():
                print(f"{out} differs from what make gen writes ({', '.join(sorted(files))}): run make gen")
            if drift:
                return 1
            print("generated client code: up to date")
            return 0
        for out in OUTPUTS:
            if (ROOT / out).exists():
                shutil.rmtree(ROOT / out)
            shutil.copytree(Path(tmp) / out, ROOT / out)
            print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
