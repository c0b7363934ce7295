"""Where an L1 entry's bytes go (S2 of `make bench-scale`, docs/adr/0012): the Python allocations that
filling the L1 with N subscriptions makes, by the line that made them, per entry.

N subscriptions as S1 writes them (bench/scale_bench.py: 4 plans of 10 features, 1 in 20 with an
override) go into a real redis-server; this process reads them all through the L1 (CachedStore over
RedisStore) in batches of 1,000, as checks would, and tracemalloc compares the heap before and after.
These are requested sizes: the allocator rounds each up (to 16 bytes for small objects), and RSS adds its
free lists, so S2's RSS figure is higher.

Then the floor: the same entries held the flattest way CPython allows, a plain dict from each id to one
slotted object with every field the answer and its record carry, and new copies of what each entry owns
(its id, customer, two datetimes, version, and the mapping of the 1 in 20 with features of their own; plan
codes, statuses, billing and resolved features stay shared, as in the L1). No LRU order, no second record.
What the floor allocates is what no rearrangement of these objects goes under.
`python -m bench.l1_entry_bytes [--subscriptions N]`; results in bench/results/<date>-<commit>-l1-entry.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tracemalloc
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.provenance import provenance, write_results
from bench.scale_bench import fill
from entitlements_sidecar.domain.composition import PlanFeatures
from entitlements_sidecar.domain.ports import StoredSubscription
from entitlements_sidecar.store.cached import CachedStore
from entitlements_sidecar.store.redis_store import RedisStore
from tests.support.processes import start_redis

ROOT = Path(__file__).resolve().parent.parent


class _Flat:
    """One object per entry: the answer's fields and its record's, side by side."""

    __slots__ = (
        "billing",
        "external_customer_id",
        "external_id",
        "features",
        "generation",
        "plan_code",
        "stale",
        "started_at",
        "status",
        "synced_at",
        "version",
    )

    def __init__(self, record: StoredSubscription) -> None:
        answer = record.subscription
        self.external_id = _copy(answer.external_id)
        self.external_customer_id = _copy(answer.external_customer_id)
        self.plan_code = answer.plan_code
        self.status = answer.status
        self.started_at = _copy_time(answer.started_at)
        features = answer.features
        self.features = features if isinstance(features, PlanFeatures) else dict(features)
        self.billing = answer.billing
        self.version = int(str(record.version))
        self.synced_at = _copy_time(record.synced_at)
        self.stale = record.stale
        self.generation = 0


def _copy(text: str) -> str:
    return (text + ".")[:-1]  # a new string object with the same characters


def _copy_time(moment: datetime | None) -> datetime | None:
    return None if moment is None else datetime.fromtimestamp(moment.timestamp(), moment.tzinfo)


async def measure(count: int) -> dict[str, Any]:
    server = start_redis()
    try:
        await fill(server, "l1:", count)
        store = CachedStore(RedisStore.from_url(server.url, "l1:"), max_entries=count + 1, max_bytes=1 << 40)
        await store.start()
        await store.get_subscriptions(["sub_0000000"])  # connections, the plans and the catalog: not per entry
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for start in range(1, count, 1000):
            # The ids are made here, as a request's are: the L1 keeps each as its key (and the answer's id).
            await store.get_subscriptions([f"sub_{i:07d}" for i in range(start, min(count, start + 1000))])
        gc.collect()
        after = tracemalloc.take_snapshot()
        held = len(store)
        records = await store.get_subscriptions([f"sub_{i:07d}" for i in range(1, count)])
        gc.collect()
        start_floor = tracemalloc.get_traced_memory()[0]
        floor: dict[str, _Flat] = {}
        for record in records:
            assert record is not None
            flat = _Flat(record)
            floor[flat.external_id] = flat
        gc.collect()
        floor_bytes = tracemalloc.get_traced_memory()[0] - start_floor
        tracemalloc.stop()
        await store.close()
    finally:
        server.stop()
    sites = [s for s in after.compare_to(before, "lineno") if s.size_diff > 0]
    total = sum(s.size_diff for s in sites)
    entries = held - 1
    assert len(floor) == entries
    lines = [
        {
            "site": _where(s.traceback[0].filename, s.traceback[0].lineno),
            "bytes_per_entry": round(s.size_diff / entries, 1),
            "objects_per_entry": round(s.count_diff / entries, 2),
        }
        for s in sites[:12]
    ]
    return {
        "subscriptions": count,
        "entries": entries,
        "bytes_per_entry": round(total / entries, 1),
        "sites": lines,
        "floor_bytes_per_entry": round(floor_bytes / entries, 1),
    }


def _where(filename: str, line: int) -> str:
    path = Path(filename)
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else Path(path.name)
    return f"{shown}:{line}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--dirty", action="store_true", help="measure a tree with uncommitted changes")
    args = parser.parse_args()
    origin = provenance(allow_dirty=args.dirty)
    results = asyncio.run(measure(args.subscriptions))
    print(f"{results['bytes_per_entry']:.1f} bytes allocated per L1 entry ({results['entries']:,} entries)")
    for site in results["sites"]:
        print(f"  {site['bytes_per_entry']:7.1f} B  {site['objects_per_entry']:5.2f} objects  {site['site']}")
    print(f"{results['floor_bytes_per_entry']:.1f} bytes per entry held flat in a plain dict (the floor)")
    print(write_results("l1-entry", origin, results))


if __name__ == "__main__":
    main()
