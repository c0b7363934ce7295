"""`make bench`: the sidecar and bare echo servers under h2load, in one run, with targets checked.

Servers are pinned to CPU 0 and h2load to CPU 1 (when there are two). Each run warms up with a run of
its own, then the server's count of calls answered OK is read (SIGUSR1) before and after the measured
run: CPU per call is the server's CPU time over that window divided by that count, and the count must
equal h2load's (which counts a non-OK grpc-status as done), single and batch calls alike. A count that
does not match, or a target missed, makes the exit status non-zero. Results are written only from a
clean tree, under the commit read before the run (and checked after it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import grpc

from bench import memory_bench, sync_bench, usage_bench, workers_bench
from bench.load import GHZ, SERVICE, SIDECAR_COUNTS, Run, Server, frame, measure, measure_mix, percentile, pin
from bench.provenance import changed_since, provenance
from entitlements_sidecar.client import EntitlementsClient
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from tests.support.processes import REPO, free_port, start_redis
from tests.support.wait import eventually

RESULTS = REPO / "bench" / "results"


def catalog(path: Path, subscriptions: int) -> None:
    lines = [
        "features:",
        "  - {code: seats, privileges: [{code: max, value_type: integer}]}",
        "  - {code: sso}",
        "plans:",
        "  - {code: pro, entitlements: {seats: {max: 10}, sso: {}}}",
        "subscriptions:",
    ]
    lines += [
        f"  - {{external_id: sub_{i:05d}, external_customer_id: c{i % 500}, plan_code: pro}}"
        for i in range(subscriptions)
    ]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--baseline-python",
        default=sys.executable,
        help="a Python with grpcio 1.85 for the reference aio echo (`make bench` builds one in .tools/)",
    )
    parser.add_argument("--dirty", action="store_true", help="measure uncommitted code (recorded as dirty)")
    args = parser.parse_args()
    origin = provenance(allow_dirty=args.dirty)  # the commit measured: read before the run
    if not shutil.which("h2load"):
        print("h2load not found: `make bench` installs Debian's nghttp2-client", file=sys.stderr)
        return 2
    if not GHZ.exists():
        print(f"{GHZ} not found: `make bench` builds it from the Go module proxy", file=sys.stderr)
        return 2
    baseline_grpcio = subprocess.run(
        [args.baseline_python, "-c", "import grpc; print(grpc.__version__)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    redis = start_redis()
    catalog(tmp / "catalog.yaml", 1000)
    check = pb.CheckEntitlementRequest(
        subscription_id="sub_00042", feature_code="seats", privilege_code="max", quantity=5
    )
    batch = pb.CheckEntitlementsRequest(
        checks=[
            pb.CheckEntitlementRequest(subscription_id=f"sub_{i:05d}", feature_code="seats", privilege_code="max")
            for i in range(100)
        ]
    )
    bodies = {
        "check": frame(check.SerializeToString(), tmp, "check.bin"),
        "batch": frame(batch.SerializeToString(), tmp, "batch.bin"),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENTITLEMENTS_")}
    baseline_env = {**env, "PYTHONPATH": f"{REPO}:{REPO / 'src'}"}
    sidecar_cmd = _sidecar_cmd(redis.url, tmp / "catalog.yaml")
    sidecar_port, echo_port, sync_port = free_port(), free_port(), free_port()
    sidecar = Server(
        "sidecar", [*sidecar_cmd, f"127.0.0.1:{sidecar_port}"], sidecar_port, env, count_pattern=SIDECAR_COUNTS
    )
    # The realistic mix: many subjects and quantities, so L1 hits miss the answer cache; and the same
    # requests to a sidecar without an L1, so every call reads Redis.
    no_l1_port = free_port()
    no_l1_cmd = [*sidecar_cmd[:-1], "--l1-max-entries", "0", sidecar_cmd[-1], f"127.0.0.1:{no_l1_port}"]
    no_l1 = Server("sidecar-no-l1", no_l1_cmd, no_l1_port, env, count_pattern=SIDECAR_COUNTS)
    protoset, mix_data = _mix_inputs(tmp)
    echo_cmd = [args.baseline_python, "-m", "bench.echo_server", "--stack", "aio", "--port", str(echo_port)]
    echo = Server("echo-aio", echo_cmd, echo_port, baseline_env)
    sync_cmd = [sys.executable, "-m", "bench.echo_server", "--stack", "sync", "--port", str(sync_port)]
    sync_echo = Server("echo-sync", sync_cmd, sync_port, env)
    # The same aio server with no protobuf at all (fixed answer bytes): P2 is also stated against it.
    raw_port = free_port()
    raw_echo = Server("echo-raw", [args.baseline_python, "bench/raw_echo.py", "aio", str(raw_port)], raw_port, env)
    plan = [
        (echo, "CheckEntitlement", "check", 1, 1),
        (echo, "CheckEntitlement", "check", 64, 1),
        (raw_echo, "CheckEntitlement", "check", 64, 1),
        (sync_echo, "CheckEntitlement", "check", 1, 1),
        (sync_echo, "CheckEntitlement", "check", 64, 1),
        (sidecar, "CheckEntitlement", "check", 1, 1),
        (sidecar, "CheckEntitlement", "check", 64, 1),
        (sidecar, "CheckEntitlements", "batch", 4, 100),
    ]
    runs: list[Run] = []
    client = redis.client()
    _warm(sidecar, client, check, batch)
    redis_reads_on_hits = 0
    try:
        for round_index in range(args.rounds):
            order = plan[round_index % len(plan) :] + plan[: round_index % len(plan)]  # rotate the order
            for server, rpc, body, in_flight, checks in order:
                if server is sidecar:
                    client.config_resetstat()
                started = time.monotonic()
                run = measure(server, rpc, bodies[body], in_flight, args.seconds, checks, tmp)
                if server is sidecar:
                    seconds = time.monotonic() - started
                    redis_reads_on_hits += _commands_since_reset(client, f"{rpc}/{in_flight}", seconds)
                runs.append(run)
                _print_run(run)
            for server, mix in ((sidecar, "many subjects, L1 hits, answer-cache misses"),
                                (no_l1, "many subjects, every call read from Redis (no L1)")):  # fmt: skip
                run = measure_mix(server, protoset, mix_data, mix, 64, args.seconds)
                runs.append(run)
                _print_run(run)
        local_us = _local_check_us(sidecar)
        print(f"  client local cached check: {local_us:.2f} µs", flush=True)
    finally:
        sidecar_log, echo_log, sync_log = sidecar.stop()[0], echo.stop()[0], sync_echo.stop()[0]
        raw_echo.stop()
        no_l1.stop()
    try:
        workers = workers_bench.measure_workers(sidecar_cmd, env, bodies["check"], args.seconds, tmp)
        changes = sorted(sync_bench.propagation(redis))
        p6_p99_ms = 1000 * percentile(changes, 0.99)  # nearest rank: of 100 changes, the 99th
        print(f"  webhook -> two sidecars: p50 {1000 * statistics.median(changes):.1f} ms, p99 {p6_p99_ms:.1f} ms")
        p7_seconds, p7_requests = sync_bench.plan_fan_out(redis)
        print(f"  plan.updated for 10,000 subscriptions: {p7_seconds:.2f} s, {p7_requests} Lago requests")
        memory = memory_bench.measure(redis)
        print(
            f"  memory: {memory['redis_bytes_per_subscription']:.0f} Redis bytes per 10-feature subscription "
            f"({memory['redis_bytes_per_subscription_with_definitions']:.0f} with a syncer's definitions); "
            f"sidecar RSS {memory['sidecar_rss_idle_mib']:.0f} MiB idle, "
            f"{memory['sidecar_rss_with_l1_mib']:.0f} MiB with 100,000 subscriptions in L1"
        )
    finally:
        redis.stop()
    usage_rows, usage = usage_bench.measure(args.seconds)  # U1-U5: processes and a Redis of their own
    del sidecar_log, echo_log, sync_log  # counted per run (Run.counts_ok), not at shutdown
    counts_ok = all(r.counts_ok for r in runs) and workers.counts_ok
    report = _targets(runs, redis_reads_on_hits, local_us)
    report.insert(5, ("P6", "webhook -> both of two sidecars answer it, p99 (ms)", p6_p99_ms, 100.0, p6_p99_ms <= 100))
    ok7 = p7_seconds <= 5 and p7_requests <= 2
    report.insert(
        6,
        ("P7", f"plan.updated, 10,000 subscriptions consistent (s; {p7_requests} Lago requests)", p7_seconds, 5.0, ok7),
    )
    report.append(workers.target())
    report += usage_rows
    changed = changed_since(origin)
    if changed is not None:
        print(f"{changed}: results not written", file=sys.stderr)
        return 1
    _write(runs + workers.runs, report, counts_ok, args, memory, baseline_grpcio, workers.summary(), origin, usage)
    missed = [key for key, _, _, _, passed in report if passed is False]
    problems = ([f"targets missed: {', '.join(missed)}"] if missed else []) + (
        [] if counts_ok else ["call counts did not match"]
    )
    if problems:
        print(f"\nFAILED: {'; '.join(problems)}")
        return 1
    return 0


def _mix_inputs(tmp: Path) -> tuple[Path, Path]:
    """ghz's inputs: the API's descriptor set, and 20,000 different checks (1,000 subscriptions x quantities
    1-20: more distinct questions than the answer cache holds, half of them over the limit of 10)."""
    protoset = tmp / "entitlements.protoset"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{REPO / 'protos'}", "--include_imports",
         f"--descriptor_set_out={protoset}", str(REPO / "protos" / "entitlements" / "v1" / "entitlements.proto")],
        check=True,
    )  # fmt: skip
    checks = [
        {"subscription_id": f"sub_{i % 1000:05d}", "feature_code": "seats", "privilege_code": "max",
         "quantity": 1 + (i // 1000)}
        for i in range(20_000)
    ]  # fmt: skip
    data = tmp / "mix.json"
    data.write_text(json.dumps(checks))
    return protoset, data


def _sidecar_cmd(redis_url: str, catalog_path: Path) -> list[str]:
    """`serve` on Redis and the generated catalog; the listen address goes last."""
    return [
        sys.executable,
        "-m",
        "entitlements_sidecar.cli",
        "serve",
        "--store",
        "redis",
        "--redis-url",
        redis_url,
        "--catalog-path",
        str(catalog_path),
        "--http-address",
        "127.0.0.1:0",  # several sidecars run at once; nothing here reads their HTTP port
        "--grpc-address",
    ]


SIDECARS_ON_REDIS = 2  # the L1 sidecar and the one without an L1: each probes the marker once a second


def _commands_since_reset(client: Any, what: str, seconds: float, quiet: bool = False) -> int:
    """Redis commands since CONFIG RESETSTAT, except our own bookkeeping and the readiness probes' HGETALL
    of the map's marker (once a second per sidecar, whatever the load): what the checks themselves sent."""
    stats = client.info("commandstats")
    ignored = ("cmdstat_info", "cmdstat_config", "cmdstat_config|resetstat")
    used = {k: int(v["calls"]) for k, v in stats.items() if k not in ignored}
    probes = SIDECARS_ON_REDIS * (math.ceil(seconds) + 1)
    if used.get("cmdstat_hgetall", 0) <= probes:  # more would be checks reading customers from Redis
        used.pop("cmdstat_hgetall", None)
    if used and not quiet:
        print(f"  redis commands during {what}: {used}")
    return sum(used.values())


def _print_run(run: Run) -> None:
    print(
        f"  {run.server:12} {run.rpc:17} in-flight {run.in_flight:3}: {run.rps:9.0f} rps, "
        f"{run.mix + ': ' if run.mix else ''}p50 {run.p50_us:7.0f} µs, p99 {run.p99_us:7.0f} µs, "
        f"{run.cpu_us_per_call:6.1f} µs CPU/call",
        flush=True,
    )


def _warm(server: Server, redis: Any, check: pb.CheckEntitlementRequest, batch: pb.CheckEntitlementsRequest) -> None:
    """Read every subject the runs ask about until a pass sends Redis nothing, so the runs measure L1 hits
    (what P5 checks). One pass is not enough right after start: invalidations of the sidecar's own
    catalog load may still be arriving and dropping what the pass cached."""
    call = server.channel.unary_unary(
        f"{SERVICE}/CheckEntitlements",
        pb.CheckEntitlementsRequest.SerializeToString,
        pb.CheckEntitlementsResponse.FromString,
    )
    single = pb.CheckEntitlementsRequest(checks=[check])

    def quiet_pass() -> bool:
        redis.config_resetstat()
        call(batch, timeout=10)
        call(single, timeout=10)
        call(batch, timeout=10)  # the second read of each fills the answer cache from L1 hits
        call(single, timeout=10)
        server.probes += 4
        return _commands_since_reset(redis, "warm-up", 0.0, quiet=True) == 0

    eventually(quiet_pass, timeout=30, what="a warm-up pass without Redis commands")


def _median(runs: list[Run], server: str, rpc: str, in_flight: int, field: str) -> float:
    return statistics.median(
        getattr(r, field) for r in runs if (r.server, r.rpc, r.in_flight, r.mix) == (server, rpc, in_flight, "")
    )


def _local_check_us(server: Server, calls: int = 200_000) -> float:
    """P8: a check on a subject the application's client watches costs no RPC."""
    client = EntitlementsClient(f"127.0.0.1:{server.port}")
    client.watch(subscription_ids=["sub_00042"])
    assert client.check("seats", subscription_id="sub_00042", privilege="max", quantity=5).source == "local"
    started = time.perf_counter()
    for _ in range(calls):
        client.check("seats", subscription_id="sub_00042", privilege="max", quantity=5)
    elapsed = time.perf_counter() - started
    client.close()
    return 1e6 * elapsed / calls


def _targets(runs: list[Run], redis_reads: int, local_us: float) -> list[tuple[str, str, float, float, bool | None]]:
    cpu = lambda s, n: _median(runs, s, "CheckEntitlement", n, "cpu_us_per_call")  # noqa: E731
    single_rps = _median(runs, "sidecar", "CheckEntitlement", 64, "rps")
    batch_checks = _median(runs, "sidecar", "CheckEntitlements", 4, "rps") * 100
    p99_one = _median(runs, "sidecar", "CheckEntitlement", 1, "p99_us")
    rows: list[tuple[str, str, float, float, bool | None]] = [
        (
            "P1",
            "check CPU/call ÷ echo of the shipped stack (64 in flight)",
            cpu("sidecar", 64) / cpu("echo-sync", 64),
            1.10,
            None,
        ),
        ("P2", "check CPU/call at 64 ÷ grpcio 1.85 aio echo", cpu("sidecar", 64) / cpu("echo-aio", 64), 0.45, None),
        (
            "P2r",
            "check CPU/call at 64 ÷ grpcio 1.85 aio raw-bytes echo (no protobuf)",
            cpu("sidecar", 64) / cpu("echo-raw", 64),
            0.45,
            None,
        ),
        ("P3", "batch checks/s ÷ single-check RPS", batch_checks / single_rps, 50.0, None),
        ("P4", "p99 at 1 in flight (ms)", p99_one / 1000, 1.0, None),
        ("P5", "Redis commands during L1-hit load", float(redis_reads), 0.0, None),
        ("P8", "client check of a watched subject (µs)", local_us, 5.0, None),
    ]
    report = []
    for key, text, value, limit, _ in rows:
        passed = value >= limit if key == "P3" else value <= limit
        report.append((key, text, value, limit, passed))
    return report


def _print_p2_plus(runs: list[Run]) -> None:
    """P2+ is not adopted (docs/adr/0004): print the candidate's ceiling from the latest stack survey
    against this run's aio echo, so the number is still in front of whoever reads the targets."""
    surveys = sorted(RESULTS.glob("*-stack-survey.json"))
    pyvoy = (
        [r for r in json.loads(surveys[-1].read_text())["runs"] if r["stack"].startswith("pyvoy")] if surveys else []
    )
    if not pyvoy:
        print("  P2+: no stack survey with the pyvoy candidate (make bench-stacks)")
        return
    ratio = pyvoy[0]["cpu_us_per_call"] / _median(runs, "echo-aio", "CheckEntitlement", 64, "cpu_us_per_call")
    print(
        f"  P2+: not adopted (docs/adr/0004); its candidate's floor, pyvoy bare echo from {surveys[-1].name}, "
        f"÷ this run's aio echo: {ratio:.3f} (target ≤ 0.2)"
    )


def _write(
    runs: list[Run],
    report: list[tuple[str, str, float, float, bool | None]],
    counts_ok: bool,
    args: argparse.Namespace,
    memory: dict[str, float],
    baseline_grpcio: str,
    workers: dict[str, Any],
    origin: dict[str, Any],
    usage: dict[str, Any],
) -> None:
    print("\nTargets (medians of the rounds):")
    for key, text, value, limit, passed in report:
        relation = "≥" if key in ("P3", "P9", "U1", "U4") else "≤"
        verdict = "not built" if passed is None else ("PASS" if passed else "MISS")
        print(f"  {key}: {text}: {value:.3f} (target {relation} {limit:g}) {verdict}")
    sync_ratio = _median(runs, "echo-sync", "CheckEntitlement", 64, "cpu_us_per_call") / _median(
        runs, "echo-aio", "CheckEntitlement", 64, "cpu_us_per_call"
    )
    print(f"  (baseline) shipped echo ÷ grpcio {baseline_grpcio} aio echo, CPU/call at 64: {sync_ratio:.3f}")
    _print_p2_plus(runs)
    print(f"  call counts verified against the servers: {'yes' if counts_ok else 'NO'}")
    commit = origin["commit"] + ("-dirty" if origin["dirty"] else "")
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": cpu_model,
            "python": platform.python_version(),
            "grpcio": grpc.__version__,
            "baseline_grpcio": baseline_grpcio,
            "pinned": bool(pin(0)),
        },
        "settings": {"seconds": args.seconds, "rounds": args.rounds, "counts": "per run"},
        "runs": [asdict(r) for r in runs],
        "targets": [{"id": k, "what": t, "value": v, "limit": lim, "pass": p} for k, t, v, lim, p in report],
        "counts_verified": counts_ok,
        "memory": memory,
        "workers": workers,
        "usage": usage,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{result['date'][:10]}-{result['commit']}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten {path.relative_to(REPO)}")


if __name__ == "__main__":
    sys.exit(main())
