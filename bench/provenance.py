"""Which code a results file measured: the commit is read before the run, and a dirty tree is refused
(a results file must name a commit that holds exactly the code it measured)."""

from __future__ import annotations

import datetime
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def provenance(allow_dirty: bool = False) -> dict[str, Any]:
    """The commit and machine; SystemExit if the tree has uncommitted changes and `allow_dirty` is False."""
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    if dirty and not allow_dirty:
        raise SystemExit("refusing to measure a dirty tree: commit first (or pass --dirty, which records dirty: true)")
    return {
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": dirty,
        "date": datetime.date.today().isoformat(),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": len(_cpus()),
    }


def changed_since(origin: dict[str, Any]) -> str | None:
    """Why the tree no longer holds the code `origin` measured (HEAD moved, or it got dirty), or None."""
    commit = _git("rev-parse", "--short", "HEAD")
    if commit != origin["commit"]:
        return f"HEAD moved from {origin['commit']} to {commit} during the run"
    if not origin["dirty"] and _git("status", "--porcelain", "--untracked-files=no"):
        return "the tree was changed during the run"
    return None


def write_results(name: str, origin: dict[str, Any], body: dict[str, Any]) -> Path:
    import json

    suffix = "-dirty" if origin["dirty"] else ""
    path = RESULTS / f"{origin['date']}-{origin['commit']}{suffix}-{name}.json"
    path.write_text(json.dumps({"provenance": origin, **body}, indent=2) + "\n")
    return path


def _cpus() -> set[int]:
    import os

    return os.sched_getaffinity(0)
