"""Print a results file as the README's Markdown table: `python -m bench.summary bench/results/<file>.json`."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from bench import scale_summary

ROWS = [
    ("sidecar", "CheckEntitlement", 1, "CheckEntitlement"),
    ("sidecar", "CheckEntitlement", 64, "CheckEntitlement"),
    ("sidecar", "CheckEntitlements", 4, "CheckEntitlements, 100 checks per call"),
    ("sidecar", "CheckEntitlement", 64, "CheckEntitlement, many subjects, L1 hits, answer-cache misses"),
    ("sidecar-no-l1", "CheckEntitlement", 64, "CheckEntitlement, many subjects, every call read from Redis (no L1)"),
    ("echo-sync", "CheckEntitlement", 64, "bare echo on the stack we ship (grpcio thread-pool server)"),
    ("echo-aio", "CheckEntitlement", 64, "bare grpcio 1.85 aio echo (the reference of P2)"),
    ("echo-raw", "CheckEntitlement", 64, "bare grpcio 1.85 aio echo of fixed bytes, no protobuf (P2r)"),
]


def _ms(us: float) -> str:
    return f"{us / 1000:.1f} ms" if us >= 1000 else f"{us:.0f} µs"


def table(path: Path) -> str:
    data = json.loads(path.read_text())
    if scale_summary.is_scale(data):
        return scale_summary.table(path)
    lines = ["| | calls in flight | rps | p50 | p99 | server CPU per call |", "|---|---|---|---|---|---|"]
    for server, rpc, in_flight, label in ROWS:
        mix = label.split(", ", 1)[1] if label.startswith("CheckEntitlement, many") else ""
        runs = [
            r
            for r in data["runs"]
            if (r["server"], r["rpc"], r["in_flight"], r.get("mix", "")) == (server, rpc, in_flight, mix)
        ]
        if not runs:
            continue
        rps = statistics.median(r["rps"] for r in runs)
        checks = runs[0]["checks_per_call"]
        shown = f"{rps:,.0f}" + (f" ({rps * checks:,.0f} checks/s)" if checks > 1 else "")
        lines.append(
            f"| {label} | {in_flight} | {shown} | {_ms(statistics.median(r['p50_us'] for r in runs))} | "
            f"{_ms(statistics.median(r['p99_us'] for r in runs))} | "
            f"{statistics.median(r['cpu_us_per_call'] for r in runs):.0f} µs |"
        )
    machine = data["machine"]
    lines.append("")
    lines.append(
        f"`bench/results/{path.name}` (commit {data['commit']}): {machine['cpus']} CPUs ({machine['cpu']}), "
        f"Python {machine['python']}, grpcio {machine['grpcio']} (reference {machine.get('baseline_grpcio', '-')}), "
        + ("server pinned to one CPU and h2load to another." if machine["pinned"] else "no CPU pinning.")
    )
    memory = data.get("memory")
    if memory:
        with_definitions = memory.get("redis_bytes_per_subscription_with_definitions")
        if with_definitions:
            stored = f" ({with_definitions:,.0f} with the syncer's definitions, in Lago mode)"
        else:
            stored = " (the map alone: in Lago mode the syncer's definitions come on top)"
        lines.append(
            f"- memory: {memory['redis_bytes_per_subscription']:,.0f} Redis bytes per subscription with 10 features"
            f"{stored}; sidecar RSS {memory['sidecar_rss_idle_mib']:.0f} MiB idle, "
            f"{memory['sidecar_rss_with_l1_mib']:,.0f} MiB with {memory['subscriptions']:,.0f} such subscriptions in L1"
        )
    if data["settings"].get("counts") != "per run":
        verdict = "checked only at shutdown, with slack for h2load's uncounted warm-up (files before issue 12)"
    elif data["counts_verified"]:
        verdict = "every run's load-generator count (h2load or ghz) matched the server's count of OK answers"
    else:
        verdict = "MISMATCH: some run's calls were not all answered OK (see the runs' `served`)"
    lines.append(f"- call counts: {verdict}")
    for target in data["targets"]:
        lines.append(
            f"- {target['id']}: {target['what']}: {target['value']:.3f} (limit {target['limit']:g}) "
            f"{'not built' if target['pass'] is None else ('PASS' if target['pass'] else 'MISS')}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(Path(sys.argv[1])))
