"""Every figure the README's performance section and the ADRs quote is in the results file they name: the
README's tables are `bench.summary`'s output for their files, verbatim; every target value (three
decimals) in a paragraph is in the summary of a file that paragraph names; an ADR's measurements are in
the files its paragraph names."""

from __future__ import annotations

import re
from pathlib import Path

from bench.summary import table

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
SECTION = README[README.index("## Performance") : README.index("## Check a feature")]
FILE = re.compile(r"(?:bench/results/)?(\d{4}-\d{2}-\d{2}-[0-9a-f]{7}(?:-[\w-]+)?\.json)")


def _summary(name: str) -> str:
    """What bench.summary prints of a results file (bench.clients_bench for its own); the file itself for
    one it has no summary of (a probe's, such as bench/l1_entry_bytes.py's), whose figures are then quoted
    as the file holds them."""
    import json

    from bench.scale_summary import is_scale

    path = Path("bench/results") / name
    assert (REPO / path).exists(), f"the README names {path}, which is not committed"
    text = (REPO / path).read_text()
    if not text.lstrip().startswith("{"):
        return ""
    data = json.loads(text)
    if {"go", "python", "typescript"} <= set(data):  # make bench-clients: its lines, as it printed them
        from bench.clients_bench import lines

        return "\n".join(lines(data))
    return table(REPO / path) if is_scale(data) or {"runs", "targets"} <= set(data) else text


def test_every_summary_block_is_the_summary_of_its_file() -> None:
    blocks = re.findall(r"^`bench/results/([\w.-]+\.json)` \(commit", SECTION, re.MULTILINE)
    assert blocks
    for name in blocks:
        assert _summary(name) in SECTION, name  # every row and every target line, as printed


def test_the_side_by_side_block_is_bench_compare_of_its_two_files() -> None:
    from bench.compare import table as compared

    pairs = re.findall(r"^`bench/results/([\w.-]+\.json)` and `bench/results/([\w.-]+\.json)`: a row", SECTION, re.M)
    assert pairs  # S6 of the scale issue
    for before, after in pairs:
        assert compared(REPO / "bench/results" / before, REPO / "bench/results" / after) in SECTION, (before, after)


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


# -- the ADRs ---------------------------------------------------------------------------------------
# An ADR paragraph that names results files (a file name, or a commit in backticks whose results file is
# committed) quotes only figures those files hold: target ratios (three decimals) as bench.summary prints
# them, and measurements in µs, rps, calls/s or checks/s as the files hold them, rounded. A paragraph
# ending in ":" lends its files to the block after it (a table under "From <file>, CPU per call:").
ANY_FILE = re.compile(r"(\d{4}-\d{2}-\d{2}-(?:[0-9a-f]{7}(?:-[\w-]+)?|stack-survey)\.json)")
COMMIT = re.compile(r"`([0-9a-f]{7})`")
MEASURED = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*(?:µs|rps|calls/s|checks/s)")
RESULTS = sorted(p.name for p in (REPO / "bench" / "results").glob("*.json"))


def _numbers(value: object) -> list[float]:
    if isinstance(value, dict):
        return [n for item in value.values() for n in _numbers(item)]
    if isinstance(value, list):
        return [n for item in value for n in _numbers(item)]
    return [float(value)] if isinstance(value, int | float) and not isinstance(value, bool) else []


def _held(figure: float, numbers: list[float]) -> bool:
    # As printed: rounded to the unit shown, or a value in seconds shown in µs.
    return any(abs(n - figure) <= max(0.5, 0.0005 * abs(n)) or abs(n * 1e6 - figure) <= 0.5 for n in numbers)


def _is_bench_run(name: str) -> bool:
    """A `make bench` results file (the others, such as the stack survey or fault timings, have no summary)."""
    import json

    return {"runs", "targets"} <= set(json.loads((REPO / "bench" / "results" / name).read_text()))


def _adr_paragraphs() -> list[tuple[str, str, set[str]]]:
    found = []
    for adr in sorted((REPO / "docs" / "adr").glob("0*.md")):
        lent: set[str] = set()
        for paragraph in adr.read_text().split("\n\n"):
            names = set(ANY_FILE.findall(paragraph)) | lent
            for commit in COMMIT.findall(paragraph):
                names |= {n for n in RESULTS if re.search(rf"-{commit}(-|\.json)", n)}
            lent = names if paragraph.rstrip().endswith(":") else set()
            found.append((adr.name, paragraph, names))
    return found


def test_every_figure_an_adr_quotes_is_in_a_file_it_names() -> None:
    import json

    checked = 0
    for adr, paragraph, names in _adr_paragraphs():
        if not names:
            continue
        for name in names:
            assert name in RESULTS, f"{adr} names bench/results/{name}, which is not committed"
        printed = "\n".join(_summary(n) for n in names if _is_bench_run(n))
        numbers = [x for n in names for x in _numbers(json.loads((REPO / "bench" / "results" / n).read_text()))]
        others = [
            x
            for n in names
            if not _is_bench_run(n)
            for x in _numbers(json.loads((REPO / "bench" / "results" / n).read_text()))
        ]
        for value in re.findall(r"(?<![\d.])\d+\.\d{3}(?![\d])", paragraph):
            # a bench run's ratios as its summary prints them; another file's values rounded to three places
            held = value in printed or any(abs(x - float(value)) <= 0.0005 for x in others)
            assert held, f"{adr}: {value} is in no summary of {sorted(names)}"
            checked += 1
        for match in MEASURED.finditer(paragraph):
            assert _held(float(match.group(1).replace(",", "")), numbers), f"{adr}: {match.group(0)!r} not in {names}"
            checked += 1
    assert checked >= 30
