"""The scale targets (S1-S5) judged from a `make bench-scale` results file: the lines the bench prints as each
step ends, and the README's table of a committed file (tests/unit/test_readme_figures.py holds the README
to it). One place decides PASS or MISS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.load import percentile

S1_BYTES, S2_BYTES, S2_RSS_MIB, S3_SECONDS, S3_REQUESTS = 400, 400, 1024, 1.0, 2
S4_GROWTH, S4_SLACK, S4_SHARE, S5_RATIO = 1.2, 1.02, 0.9, 1.5


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def is_scale(results: dict[str, Any]) -> bool:
    return "S1_redis_bytes_per_subscription" in results


def rows(results: dict[str, Any], step: str) -> list[tuple[str, str, str, str]]:
    """(target, measured, limit, PASS/MISS) for one step, from what the results hold (none if it did not run)."""
    found: list[tuple[str, str, str, str]] = []
    if step == "S1":
        for n, per in results.get("S1_redis_bytes_per_subscription", {}).items():
            found.append((f"S1 Redis bytes per subscription, N={int(n):,}", f"{per:,.0f}", f"<= {S1_BYTES}",
                          verdict(per <= S1_BYTES)))  # fmt: skip
    elif step == "S2":
        for n, held in results.get("S2_l1_memory", {}).items():
            per, idle, full = held["bytes_per_cached"], held["rss_idle_mib"], held["rss_full_mib"]
            found.append((f"S2 RSS per cached subscription, N={int(n):,}", f"{per:,.0f} B", f"<= {S2_BYTES} B",
                          verdict(per <= S2_BYTES)))  # fmt: skip
            found.append((f"S2 reader RSS, N={int(n):,} in the L1", f"{idle:.0f} -> {full:.0f} MiB",
                          f"<= {S2_RSS_MIB} MiB", verdict(full <= S2_RSS_MIB)))  # fmt: skip
    elif step == "S3" and "S3_plan_updated" in results:
        runs = results["S3_plan_updated"]
        small, large = min(runs, key=int), max(runs, key=int)
        big = runs[large]
        flat = big["redis_map_writes"] == runs[small]["redis_map_writes"]
        found.append((f"S3 plan.updated, N={int(large):,}: both readers at the new value", f"{big['seconds']:.3f} s",
                      f"<= {S3_SECONDS} s", verdict(big["seconds"] <= S3_SECONDS)))  # fmt: skip
        found.append(("S3 Lago requests", f"{big['lago_requests']}", f"<= {S3_REQUESTS}",
                      verdict(big["lago_requests"] <= S3_REQUESTS)))  # fmt: skip
        writes = f"{runs[small]['redis_map_writes']} and {big['redis_map_writes']}"
        found.append((f"S3 map writes in Redis, N={int(small):,} and N={int(large):,}", writes, "the same",
                      verdict(flat)))  # fmt: skip
    elif step == "S4" and "S4_full_sync" in results:
        rate, runs = results["S4_full_sync"]["rate_limit"], results["S4_full_sync"]["runs"]
        small, large = runs[min(runs, key=int)], runs[max(runs, key=int)]
        grown = large["syncer_peak_rss_mib"] / small["syncer_peak_rss_mib"]
        allowed = S4_SLACK * large["subscriptions"] * 1.01
        share = large["requests_per_second"] / rate
        found.append((f"S4 syncer peak RSS, N={large['subscriptions']:,} / N={small['subscriptions']:,}",
                      f"{large['syncer_peak_rss_mib']:.0f} / {small['syncer_peak_rss_mib']:.0f} MiB = x{grown:.2f}",
                      f"<= x{S4_GROWTH}", verdict(grown <= S4_GROWTH)))  # fmt: skip
        found.append((f"S4 Lago requests, N={large['subscriptions']:,}, killed halfway",
                      f"{large['lago_requests']:,}", f"<= {allowed:,.0f}",
                      verdict(large["lago_requests"] <= allowed)))  # fmt: skip
        speed = f"{large['requests_per_second']:.0f}/s ({100 * share:.0f} %)"
        found.append((f"S4 request rate at a limit of {rate}/s", speed, f">= {100 * S4_SHARE:.0f} %",
                      verdict(share >= S4_SHARE)))  # fmt: skip
    elif step == "S5" and "S5_webhook_to_visible_seconds" in results:
        seen = results["S5_webhook_to_visible_seconds"]
        busy, quiet = p99(seen["during_reconciliation"]), p99(seen["without_reconciliation"])
        found.append(("S5 webhook -> visible p99, during a reconciliation / without",
                      f"{1000 * busy:.1f} / {1000 * quiet:.1f} ms = x{busy / quiet:.2f}", f"<= x{S5_RATIO}",
                      verdict(busy / quiet <= S5_RATIO)))  # fmt: skip
    return found


def p99(values: list[float]) -> float:
    return percentile(sorted(values), 0.99)


def printed(results: dict[str, Any], step: str) -> str:
    return "\n".join(f"{target}: {measured} ({limit}) {mark}" for target, measured, limit, mark in rows(results, step))


def table(path: Path) -> str:
    """The README's table for a committed results file."""
    results = json.loads(path.read_text())
    lines = ["| target | measured | limit | |", "|---|---|---|---|"]
    for step in ("S1", "S2", "S3", "S4", "S5"):
        lines += [f"| {t} | {m} | {lim} | {mark} |" for t, m, lim, mark in rows(results, step)]
    redis = results.get("redis", {})
    lines.append("")
    lines.append(
        f"Sizes {', '.join(f'{n:,}' for n in results['sizes'])}; {results['plans']} plans of 10 features, "
        f"{results['overrides']} with an override; redis-server {redis.get('version', '?')} "
        f"({redis.get('allocator', '?')}); {results['seconds']:.0f} s in all. S6: {results.get('S6', 'not run')}."
    )
    return "\n".join(lines)
