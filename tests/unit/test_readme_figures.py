"""Every figure the README's performance section quotes is in the results file it names: the reference
table is `bench.summary`'s output for its file, verbatim, and every target value (three decimals) in a
paragraph is in the summary of a file that paragraph names."""

from __future__ import annotations

import re
from pathlib import Path

from bench.summary import table

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
SECTION = README[README.index("## Performance") : README.index("## Check a feature")]
FILE = re.compile(r"(?:bench/results/)?(\d{4}-\d{2}-\d{2}-[0-9a-f]{7}(?:-[\w-]+)?\.json)")


def _summary(name: str) -> str:
    path = Path("bench/results") / name
    assert (REPO / path).exists(), f"the README names {path}, which is not committed"
    return table(REPO / path) if (REPO / path).read_text().lstrip().startswith("{") else ""


def test_every_summary_block_is_the_summary_of_its_file() -> None:
    blocks = re.findall(r"^`bench/results/([\w.-]+\.json)` \(commit", SECTION, re.MULTILINE)
    assert blocks
    for name in blocks:
        assert _summary(name) in SECTION, name  # every row and every target line, as printed


def test_every_target_value_is_in_a_file_its_paragraph_names() -> None:
    checked = 0
    for paragraph in SECTION.split("\n\n"):
        names = set(FILE.findall(paragraph))
        if not names:
            continue
        printed = "\n".join(_summary(name) for name in names)
        for value in re.findall(r"(?<![\d.])\d+\.\d{3}(?![\d])", paragraph):
            assert value in printed, f"{value} is in no summary of {sorted(names)}"
            checked += 1
    assert checked >= 20  # the section quotes its targets, not prose
