"""What it costs to keep removals right when a plan regains a feature (docs/adr/0007).

Lago keeps a subscription's removal when its plan loses the feature and applies it again when the plan
regains it; the subscription's resolved view cannot show the removal in between. Two ways to stay right:

- kept: the sidecar remembers removals it has seen (what it does); `plan.updated` costs one plan read and
  a local re-resolution;
- re-read: after a plan gains a feature or privilege, re-read every subscription on the plan from Lago.

Both run through the sidecar's own Refresher and LagoClient against the test emulator, rate limited to
Lago Cloud's 50 requests/s; requests are counted by the emulator, and each result is checked against
what Lago answers. `python -m bench.removal_cost [--subscriptions N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.provenance import provenance, write_results
from entitlements_sidecar.sources.lago import mapping
from entitlements_sidecar.sources.lago.client import LagoClient
from entitlements_sidecar.sources.lago.full_sync import FullSync
from entitlements_sidecar.sources.lago.rate_limit import TokenBucket
from entitlements_sidecar.sources.lago.refresher import Refresher
from entitlements_sidecar.store.checkpoint_memory import MemoryCheckpoints
from entitlements_sidecar.store.map_meta_memory import MemoryMapMeta
from entitlements_sidecar.store.memory import MemoryStore
from tests.lago_emulator.server import LagoEmulator

LAGO_CLOUD_RATE = 50.0


def seed(lago: LagoEmulator, subscriptions: int) -> None:
    state = lago.state
    state.create_feature("seats", [{"code": "max", "value_type": "integer"}])
    state.create_feature("sso", [{"code": "provider", "value_type": "string"}])
    state.create_plan("pro", 5000)
    state.write_plan_entitlements("pro", {"seats": {"max": 10}, "sso": {"provider": "google"}}, replace=True)
    for index in range(subscriptions):
        state.create_subscription(f"sub_{index:05d}", f"c{index}", "pro")
        if index % 10 == 0:
            state.remove_subscription_feature(f"sub_{index:05d}", "sso")
    lago.take_outbox()


async def scenario(lago: LagoEmulator, subscriptions: int, re_read: bool) -> dict[str, Any]:
    store = MemoryStore()
    await store.start()
    loader = LagoClient(lago.url, lago.api_key, TokenBucket(10_000))
    client = LagoClient(lago.url, lago.api_key, TokenBucket(LAGO_CLOUD_RATE))
    try:
        await FullSync(
            loader, store, Refresher(loader, store), MemoryMapMeta(), MemoryCheckpoints(), concurrency=16
        ).run()
        refresher = Refresher(client, store)
        # The plan loses sso, every subscription is re-read meanwhile (reconciliation), and the plan regains it.
        lago.state.write_plan_entitlements("pro", {"seats": {"max": 10}}, replace=True)
        await FullSync(
            loader, store, Refresher(loader, store), MemoryMapMeta(), MemoryCheckpoints(), concurrency=16
        ).run()
        lago.state.write_plan_entitlements("pro", {"sso": {"provider": "google"}}, replace=False)
        lago.take_outbox()
        before = len(lago.controls.api_requests())
        started = time.perf_counter()
        await refresher.refresh_plan("pro")
        if re_read:
            for external_id in sorted(await store.subscription_ids()):  # all on the plan
                await refresher.refresh_subscription(external_id, "plan gained a feature")
        seconds = time.perf_counter() - started
        requests = len(lago.controls.api_requests()) - before
        wrong = 0
        for index in range(subscriptions):
            external_id = f"sub_{index:05d}"
            with lago.state.lock:
                raw = lago.state.subscription_json(lago.state.find_row(external_id), True)
            stored = await store.get_subscription(external_id)
            wrong += stored is None or stored.subscription != mapping.resolved_subscription(raw)
        return {"requests": requests, "seconds": round(seconds, 3), "wrong_answers": wrong}
    finally:
        await loader.close()
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscriptions", type=int, default=200)
    parser.add_argument("--dirty", action="store_true", help="measure uncommitted code (recorded as dirty)")
    args = parser.parse_args()
    origin = provenance(args.dirty)
    results: dict[str, Any] = {"subscriptions_on_the_plan": args.subscriptions, "lago_rate_limit": LAGO_CLOUD_RATE}
    for name, re_read in (("kept_removals", False), ("re_read_subscriptions", True)):
        lago = LagoEmulator().start()
        try:
            seed(lago, args.subscriptions)
            results[name] = asyncio.run(scenario(lago, args.subscriptions, re_read))
        finally:
            lago.stop()
        print(f"{name:24} {results[name]}", flush=True)
    print(f"results: {write_results('removal-cost', origin, results)}")


if __name__ == "__main__":
    main()
