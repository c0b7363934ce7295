"""S6's side-by-side (bench/compare.py): a cost may grow by at most the tolerance, a gain shrink by it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.compare import rows, table, unchanged


def _results(commit: str, cpu: float, p3: float, p7: float) -> dict[str, Any]:
    runs = [
        {"server": "sidecar", "rpc": "CheckEntitlement", "in_flight": n, "mix": "", "cpu_us_per_call": cpu * n}
        for n in (1, 64)
    ] + [{"server": "sidecar", "rpc": "CheckEntitlement", "in_flight": 64, "mix": "many", "cpu_us_per_call": 1e9}]
    targets = [{"id": "P3", "what": "batch", "value": p3}, {"id": "P7", "what": "plan", "value": p7}]
    return {"commit": commit, "runs": runs, "targets": targets}


def test_a_cost_may_grow_by_the_tolerance_and_a_gain_shrink_by_it() -> None:
    assert unchanged(100.0, 110.0, gain=False) and not unchanged(100.0, 110.5, gain=False)
    assert unchanged(100.0, 90.0, gain=True) and not unchanged(100.0, 89.5, gain=True)
    assert unchanged(100.0, 1.0, gain=False) and unchanged(100.0, 1000.0, gain=True)  # better is never a miss
    assert unchanged(0.0, 0.0, gain=False) and not unchanged(0.0, 1.0, gain=False)


def test_rows_take_the_repeated_requests_cpu_and_each_target_both_hold() -> None:
    before, after = _results("aaaaaaa", 2.0, 50.0, 8.0), _results("bbbbbbb", 2.5, 40.0, 2.0)
    found = [(what.split(" (")[0].split(",")[-1].strip(), b, a, ok) for what, b, a, ok in rows(before, after)]
    assert found == [
        ("64 in flight", 128.0, 160.0, False),  # the mixed-subject run (1e9) is not the cached check
        ("1 in flight", 2.0, 2.5, False),
        ("P3 batch", 50.0, 40.0, False),  # a gain that fell 20 %
        ("P7 plan", 8.0, 2.0, True),
    ]


def test_the_table_names_both_files_and_marks_each_row(tmp_path: Path) -> None:
    paths = []
    for name, results in (("before.json", _results("aaaaaaa", 2.0, 50.0, 8.0)),
                          ("after.json", _results("bbbbbbb", 2.0, 55.0, 9.0))):  # fmt: skip
        (tmp_path / name).write_text(json.dumps(results))
        paths.append(tmp_path / name)
    printed = table(*paths)
    assert "aaaaaaa (before) -> bbbbbbb" in printed and "`bench/results/before.json`" in printed
    assert "| P7 plan | 8.000 | 9.000 | x1.12 | MISS |" in printed
    assert "| P3 batch | 50.000 | 55.000 | x1.10 | PASS |" in printed
