"""Usage targets U1-U5 (`make bench` runs them after the check targets; `make bench-usage` alone).

Real sidecar processes on a real Redis, ghz as the load (every request a new transaction id, from ghz's
request number, so nothing is a duplicate), and the Lago emulator for forwarding. Each figure is checked
against the state it claims: U1's events are in the counters, U3 reads the counter and the transaction
records, U4 reads what the emulator received.

- U1: ReportUsages of 100 events, events/s, over single ReportUsage calls/s (target >= 50).
- U2: ConsumeUsage p99 at one call in flight (target <= 2 ms).
- U3: 4 sidecars x 16 concurrent consumers on one quota, 10 runs: units counted past the quota (target 0).
- U4: a syncer forwarding 5,000 events/s into the emulator (target: delivered >= 5,000/s), and across a
  syncer killed with SIGKILL mid-stream every event reaching it exactly once.
- U5: local quota leases: not built (the moonshot), reported as such.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from bench.load import GHZ, pin
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2_grpc as pb_grpc
from tests.lago_emulator.server import LagoEmulator
from tests.support.processes import REPO, RedisServer, free_port, start_redis
from tests.support.wait import eventually

Row = tuple[str, str, float, float, bool | None]
SUBSCRIPTIONS = 200
QUOTA = 500  # U3's quota per run (each run has a subscription of its own)
METERS = "  - {metric: api_calls, feature: api, aggregation: sum, property: n, quota: calls_max}\n"


def _catalog(path: Path) -> None:
    lines = [
        "features:",
        "  - {code: seats, privileges: [{code: max, value_type: integer}]}",
        "  - {code: api, privileges: [{code: calls_max, value_type: integer}]}",
        "plans:",
        "  - {code: pro, entitlements: {seats: {max: 10}, api: {calls_max: 1000000000}}}",
        f"  - {{code: tight, entitlements: {{seats: {{max: 10}}, api: {{calls_max: {QUOTA}}}}}}}",
        "subscriptions:",
        *(
            f"  - {{external_id: sub_{i:05d}, external_customer_id: c{i}, plan_code: pro}}"
            for i in range(SUBSCRIPTIONS)
        ),
        *(f"  - {{external_id: race_{i}, external_customer_id: r{i}, plan_code: tight}}" for i in range(10)),
        "meters:",
        METERS.rstrip(),
    ]
    path.write_text("\n".join(lines) + "\n")


def _protoset(tmp: Path) -> Path:
    out = tmp / "usage.protoset"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{REPO / 'protos'}", "--include_imports",
         f"--descriptor_set_out={out}", str(REPO / "protos" / "entitlements" / "v1" / "usage.proto")],
        check=True,
    )  # fmt: skip
    return out


def _ghz(port: int, protoset: Path, method: str, data: Any, in_flight: int, *, seconds: float = 0,
         calls: int = 0, rate: int = 0, cpu: int | None = 1) -> dict[str, Any]:  # fmt: skip
    """One ghz run of `method` with templated `data` (ghz fills {{.RequestNumber}}); its JSON report, after
    checking that every answer was OK (but for the cut-offs at the end of a timed run)."""
    limit = ["-z", f"{max(1, round(seconds))}s"] if seconds else ["-n", str(calls)]
    cmd = [*_ghz_cmd(port, protoset, method, data, in_flight, cpu), *(["-r", str(rate)] if rate else []), *limit]
    report: dict[str, Any] = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    codes = dict(report.get("statusCodeDistribution") or {})
    codes.pop("OK", None)
    if seconds and codes.get("Canceled", 0) + codes.get("Unavailable", 0) <= 2 * in_flight:
        codes.pop("Canceled", None)
        codes.pop("Unavailable", None)
    if codes:
        raise RuntimeError(f"ghz {method}: non-OK answers {codes}: {report.get('errorDistribution')}")
    return report


def _ghz_cmd(port: int, protoset: Path, method: str, data: Any, in_flight: int, cpu: int | None) -> list[str]:
    return [
        *pin(cpu), str(GHZ), "--insecure", "--protoset", str(protoset),
        "--call", f"entitlements.v1.UsageService/{method}", "-d", json.dumps(data),
        "-c", str(in_flight), "--connections", str(min(in_flight, 4)), "--cpus", "1", "-O", "json", f"127.0.0.1:{port}",
    ]  # fmt: skip


def _ok(report: dict[str, Any]) -> int:
    return int((report.get("statusCodeDistribution") or {}).get("OK", 0))


def _p99_ms(report: dict[str, Any]) -> float:
    latency = {d["percentage"]: d["latency"] / 1e6 for d in report.get("latencyDistribution") or []}
    return float(latency.get(99, float("nan")))


def _event(tag: str, subscription: str = "sub_00003") -> dict[str, Any]:
    return {"subscription_id": subscription, "metric_code": "api_calls", "properties": {"n": "1"},
            "transaction_id": f"{tag}-{{{{.RequestNumber}}}}"}  # fmt: skip


def _sidecar(
    catalog: Path | None,
    redis: RedisServer,
    prefix: str,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    catalog_args = ["--catalog-path", str(catalog)] if catalog is not None else []
    cmd = [
        sys.executable, "-m", "entitlements_sidecar.cli", "serve", *catalog_args, "--store", "redis",
        "--redis-url", redis.url, "--redis-key-prefix", prefix, "--http-address", "127.0.0.1:0", *(extra or []),
        "--grpc-address", f"127.0.0.1:{port}",
    ]  # fmt: skip
    child_env = {**{k: v for k, v in os.environ.items() if not k.startswith("ENTITLEMENTS_")}, **(env or {})}
    with (Path(tempfile.gettempdir()) / f"usage-bench-sidecar-{port}.log").open("wb") as log:
        process = subprocess.Popen([*pin(0), *cmd], stdout=log, stderr=subprocess.STDOUT, env=child_env, cwd=REPO)
    probe = pb.CheckEntitlementRequest(subscription_id="sub_00001", feature_code="seats")

    def answers() -> bool:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            return bool(pb_grpc.EntitlementServiceStub(channel).CheckEntitlement(probe, timeout=1).allowed)

    eventually(answers, timeout=30, what="a usage bench sidecar answering")
    return process, port


def _stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=15)


def _used(redis: RedisServer, prefix: str, subscription: str = "") -> int:
    client = redis.client()
    return sum(int(client.hget(k, "n") or 0) for k in client.scan_iter(f"{prefix}u:*{subscription}:api_calls:*"))


def measure(seconds: float = 3) -> tuple[list[Row], dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="usage-bench-"))
    catalog, protoset = tmp / "catalog.yaml", _protoset(tmp)
    _catalog(catalog)
    redis = start_redis()
    try:
        rows, details = _counting(catalog, protoset, redis, seconds)
        forwarding_rows, forwarding = _forwarding(protoset, redis, tmp)
    finally:
        redis.stop()
    rows += forwarding_rows
    rows.append(("U5", "local quota leases: CPU per consume ÷ a cached check (not built)", 0.0, 2.0, None))
    return rows, {**details, **forwarding}


def _counting(catalog: Path, protoset: Path, redis: RedisServer, seconds: float) -> tuple[list[Row], dict[str, Any]]:
    process, port = _sidecar(catalog, redis, "ub:")
    try:
        _ghz(port, protoset, "ReportUsage", _event("warm"), 16, calls=2000)
        single = _ghz(port, protoset, "ReportUsage", _event("s"), 64, seconds=seconds)
        batch_data = {"events": [_event(f"b{i}", f"sub_{i:05d}") for i in range(100)]}
        batch = _ghz(port, protoset, "ReportUsages", batch_data, 4, seconds=seconds)
        counted = _used(redis, "ub:")
        expected = 2000 + _ok(single) + 100 * _ok(batch)
        # A timed run ends with calls in flight: the server may have counted them, ghz does not.
        counts_ok = expected <= counted <= expected + 64 + 4 * 100
        events_per_second = 100 * float(batch["rps"])
        u1 = events_per_second / float(single["rps"])
        consume = {"subscription_id": "sub_00007", "feature_code": "api", "value": 1,
                   "transaction_id": "c-{{.RequestNumber}}"}  # fmt: skip
        _ghz(port, protoset, "ConsumeUsage", consume, 1, calls=500)  # warm-up (other ids: ghz restarts numbering)
        consume["transaction_id"] = "u2-{{.RequestNumber}}"
        latency = _ghz(port, protoset, "ConsumeUsage", consume, 1, calls=3000)
    finally:
        _stop(process)
    overshoot, races = _races(catalog, protoset, redis)
    print(
        f"  usage: ReportUsage {float(single['rps']):,.0f}/s; ReportUsages of 100: {events_per_second:,.0f} events/s "
        f"(counted {counted:,} of {expected:,}); ConsumeUsage p99 at 1 in flight {_p99_ms(latency):.2f} ms; "
        f"races: {races}",
        flush=True,
    )
    rows: list[Row] = [
        (
            "U1",
            "ReportUsages of 100: events/s ÷ single ReportUsage calls/s",
            u1,
            50.0,
            u1 >= 50 and counts_ok,
        ),
        ("U2", "ConsumeUsage p99, one call in flight (ms)", _p99_ms(latency), 2.0, _p99_ms(latency) <= 2.0),
        ("U3", "hard quota, 4 sidecars x 16 consumers, 10 runs: units past the quota", overshoot, 0.0, overshoot == 0),
    ]
    details = {
        "single_rps": float(single["rps"]),
        "batch_events_per_second": events_per_second,
        "counted": counted,
        "expected": expected,
        "consume_p99_ms": _p99_ms(latency),
        "races": races,
    }
    return rows, details


def _races(catalog: Path, protoset: Path, redis: RedisServer) -> tuple[int, list[int]]:
    """10 runs; each: 4 sidecars, 16 consumers each, 1,600 attempts on a quota of 500. Overshoot: units
    counted past the quota; each run's count of recorded uses is kept to show the quota was reached."""
    sidecars = [_sidecar(catalog, redis, "ur:") for _ in range(4)]
    counts: list[int] = []
    try:
        for run in range(10):
            data = {"subscription_id": f"race_{run}", "feature_code": "api", "value": 1}
            loads = [
                subprocess.Popen(
                    [
                        *_ghz_cmd(
                            port,
                            protoset,
                            "ConsumeUsage",
                            {**data, "transaction_id": f"r{run}s{n}-{{{{.RequestNumber}}}}"},
                            16,
                            None,
                        ),
                        "-n",
                        "400",
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for n, (_, port) in enumerate(sidecars)
            ]
            for load in loads:
                out, _ = load.communicate(timeout=120)
                if _ok(json.loads(out)) != 400:
                    raise RuntimeError(f"U3: a consumer got non-OK answers: {out[:300]}")
            counts.append(_used(redis, "ur:", f"race_{run}"))
    finally:
        _stop(*(process for process, _ in sidecars))
    return max(count - QUOTA for count in counts), counts


def _organization(lago: LagoEmulator) -> None:
    state = lago.state
    state.create_feature("seats", [{"code": "max", "value_type": "integer"}])
    state.create_feature("api", [{"code": "calls_max", "value_type": "integer"}])
    state.create_plan("pro")
    state.write_plan_entitlements("pro", {"seats": {"max": 10}, "api": {"calls_max": 1_000_000_000}}, replace=True)
    for i in range(SUBSCRIPTIONS):
        state.create_subscription(f"sub_{i:05d}", f"c{i}", "pro")
    state.usage.create_metric("api_calls", "sum_agg", field_name="n")
    lago.take_outbox()


def _forwarding(protoset: Path, redis: RedisServer, tmp: Path) -> tuple[list[Row], dict[str, Any]]:
    """The reader records into the outbox while no syncer runs; then a syncer drains it into the emulator:
    its rate is the forwarding capacity. Then again, with the syncer killed (SIGKILL) halfway and started
    anew: every event must reach Lago once."""
    lago = LagoEmulator().start()
    _organization(lago)
    meters = tmp / "meters.yaml"
    meters.write_text("meters:\n" + METERS)
    env = {"ENTITLEMENTS_LAGO_API_KEY": lago.api_key, "ENTITLEMENTS_LAGO_HMAC_KEY": lago.signer.hmac_key}
    common = ["--source", "lago", "--lago-api-url", lago.url, "--meters-path", str(meters), "--lago-rate-limit", "500"]
    syncer_args = [*common, "--roles", "reader,syncer", "--queue-consumer", "bench-syncer"]

    def syncer() -> subprocess.Popen[bytes]:
        return _sidecar(None, redis, "uf:", syncer_args, env)[0]

    def ledger() -> list[str]:
        with lago.state.lock:
            return [e["transaction_id"] for e in lago.state.usage.events]

    first = syncer()  # loads the map for the reader, then stops: the outbox fills with nobody forwarding
    reader, port = _sidecar(None, redis, "uf:", [*common, "--roles", "reader"], env)
    _stop(first)
    try:
        drain = _fill_and_drain(protoset, port, "a", 200, syncer, ledger)
        resumed = _fill_and_drain(protoset, port, "k", 100, syncer, ledger, kill_halfway=True)
    finally:
        _stop(reader)
        lago.stop()
    every = ledger()
    twice, missing = len(every) - len(set(every)), 30_000 - len(set(every))
    print(
        f"  usage forwarding: {drain['rate']:,.0f} events/s into the emulator; across a SIGKILL: "
        f"{resumed['delivered']:,} of {resumed['sent']:,} delivered, {twice} twice",
        flush=True,
    )
    rows: list[Row] = [
        ("U4", "forwarding into the emulator (events/s)", drain["rate"], 5000.0, drain["rate"] >= 5000),
        (
            "U4k",
            "across a syncer SIGKILL: events missing or twice in Lago",
            float(missing + twice),
            0.0,
            not missing + twice,
        ),
    ]
    return rows, {"forwarding": drain, "forwarding_killed": resumed}


def _fill_and_drain(protoset: Path, port: int, tag: str, batches: int, syncer: Any, ledger: Any,
                    kill_halfway: bool = False) -> dict[str, Any]:  # fmt: skip
    data = {"events": [_event(f"{tag}{i}", f"sub_{i:05d}") for i in range(100)]}
    _ghz(port, protoset, "ReportUsages", data, 4, calls=batches)
    sent = 100 * batches
    before = len(ledger())
    running = syncer()
    try:
        eventually(lambda: len(ledger()) > before, timeout=60, interval=0.005, what="the first event in Lago")
        started = time.monotonic()
        if kill_halfway:
            eventually(lambda: len(ledger()) - before >= sent // 2, timeout=60, interval=0.005, what="half delivered")
            running.send_signal(signal.SIGKILL)
            running.wait(timeout=10)
            running = syncer()
        eventually(lambda: len(ledger()) - before >= sent, timeout=120, interval=0.005, what="everything delivered")
        seconds = time.monotonic() - started
    finally:
        _stop(running)
    delivered = len(ledger()) - before
    return {"sent": sent, "delivered": delivered, "seconds": seconds, "rate": (delivered - 1) / seconds}


def main() -> int:
    rows, _ = measure()
    for key, text, value, limit, passed in rows:
        verdict = "not built" if passed is None else ("PASS" if passed else "MISS")
        print(f"  {key}: {text}: {value:.3f} (target {'≥' if key in ('U1', 'U4') else '≤'} {limit:g}) {verdict}")
    return 0 if all(passed is not False for *_, passed in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
