"""A results file names exactly the code it measured: a dirty tree is refused before the run, and a tree
that changed during it is noticed after."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench import provenance


def _repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "f").write_text("1")
    git("add", "f")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "one")
    monkeypatch.setattr(provenance, "REPO", tmp_path)
    return tmp_path


def test_a_dirty_tree_is_refused_and_a_change_during_the_run_is_noticed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo(tmp_path, monkeypatch)
    origin = provenance.provenance()
    assert origin["dirty"] is False and provenance.changed_since(origin) is None
    (repo / "f").write_text("2")
    with pytest.raises(SystemExit, match="refusing to measure a dirty tree"):
        provenance.provenance()
    assert provenance.changed_since(origin) == "the tree was changed during the run"
    assert provenance.provenance(allow_dirty=True)["dirty"] is True
