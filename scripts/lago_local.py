"""Lago mode on one machine, in one command (`make lago-local`): a Redis, the repo's Lago emulator
with demo data, a syncer and two readers, all on 127.0.0.1, each process on its own ports.

Type `set <subscription> <feature> <privilege> <value>` to change an entitlement in the emulated
Lago: it sends the signed webhook, the syncer re-reads, and both readers answer the new value.
Ctrl-C (or end of input) stops everything.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.lago_emulator.server import LagoEmulator
from tests.support.processes import Sidecar, free_port, start_redis, start_sidecar


def seed(lago: LagoEmulator) -> None:
    state = lago.state
    state.create_feature("seats", [{"code": "max", "value_type": "integer"}], name="Seats")
    state.create_feature(
        "sso", [{"code": "provider", "value_type": "select", "config": {"select_options": ["google", "okta"]}}]
    )
    state.create_plan("starter", amount_cents=1000)
    state.create_plan("pro", amount_cents=5000)
    state.write_plan_entitlements("starter", {"seats": {"max": 3}}, replace=True)
    state.write_plan_entitlements("pro", {"seats": {"max": 10}, "sso": {"provider": "google"}}, replace=True)
    state.create_subscription("sub_acme", "acme", "pro")
    state.create_subscription("sub_globex", "globex", "starter")
    lago.take_outbox()  # the organization existed before the sidecars


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="ent-lago-local-"))
    redis = start_redis()
    lago = LagoEmulator().start()
    seed(lago)
    started: list[Sidecar] = []
    try:
        common = ["--source", "lago", "--store", "redis", "--redis-url", redis.url, "--lago-api-url", lago.url]
        env = {"ENTITLEMENTS_LAGO_API_KEY": lago.api_key, "ENTITLEMENTS_LAGO_HMAC_KEY": lago.signer.hmac_key}
        syncer_http = f"127.0.0.1:{free_port()}"
        syncer_args = [*common, "--roles", "syncer", "--http-address", syncer_http]
        started.append(start_sidecar(work, None, syncer_args, env=env, name="syncer", ready=_logged_serving))
        lago.webhook_url = f"http://{syncer_http}/webhooks/lago"
        for name in ("reader-1", "reader-2"):
            started.append(start_sidecar(work, None, [*common, "--roles", "reader"], env=env, name=name))
        _print_guide(started, lago, redis.url, work)
        for line in sys.stdin:
            _command(line.split(), lago)
    except KeyboardInterrupt:
        pass
    finally:
        for sidecar in reversed(started):
            sidecar.terminate()
        lago.stop()
        redis.stop()
    print("stopped", flush=True)
    return 0


def _logged_serving(sidecar: Sidecar) -> bool:
    return " serving " in sidecar.log()  # a syncer serves no gRPC health to ask


def _print_guide(started: list[Sidecar], lago: LagoEmulator, redis_url: str, work: Path) -> None:
    readers = started[1:]
    print(f"redis        {redis_url}")
    print(f"lago         {lago.url} (emulator; API key {lago.api_key})")
    print(f"syncer       webhooks at {lago.webhook_url}")
    for reader in readers:
        print(f"{reader.log_path.stem:<12} gRPC {reader.address}, HTTP {reader.http_url}")
    print(f"logs         {work}/*.log")
    first = readers[0]
    print("\ntry:")
    print(f"  .venv/bin/entitlements-sidecar check --target {first.address} --subscription sub_acme --feature seats "
          "--privilege max")  # fmt: skip
    print(f"  curl -s -X POST {readers[1].http_url}/ofrep/v1/evaluate/flags/seats:max "
          """-d '{"context": {"targetingKey": "sub_globex"}}'""")  # fmt: skip
    print("  set sub_acme seats max 25      (here: changes Lago, which sends the webhook)")
    print("ready", flush=True)


def _command(words: list[str], lago: LagoEmulator) -> None:
    if not words:
        return
    if words[0] != "set" or len(words) != 5:
        print("usage: set <subscription> <feature> <privilege> <value>", flush=True)
        return
    _, subscription, feature, privilege, text = words
    value: int | str = int(text) if text.lstrip("-").isdigit() else text
    try:
        lago.state.patch_subscription_entitlements(subscription, {feature: {privilege: value}})
    except Exception as exc:  # the emulator refuses what Lago would refuse; say so and go on
        print(f"error: {exc}", flush=True)
        return
    print(f"webhooks delivered: {lago.flush()}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
