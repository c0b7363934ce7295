"""`make bench-stacks`: the floor of each candidate serving stack, to choose the one we ship.

For each grpcio version (in its own venv under .tools/survey/) and stack (aio; the thread-pool
server), and for Envoy through pyvoy with an ASGI gRPC unary layer, a server that answers
CheckEntitlement with fixed bytes (bench/raw_echo.py) is driven by h2load at 64 calls in flight.
Same pinning and CPU accounting as `make bench` (the whole process tree: pyvoy runs Envoy in a
child). Writes bench/results/<date>-stack-survey.json. Takes about five minutes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.load import cpu_seconds, frame, h2load, percentile, pin, signalled_count
from entitlements_sidecar.gen.entitlements.v1 import entitlements_pb2 as pb
from tests.support.processes import REPO, free_port
from tests.support.wait import eventually

VERSIONS = ("1.66.2", "1.70.0", "1.74.0", "1.78.2", "1.80.1", "1.82.1", "1.85.1")
PYVOY = "1.3.0"
SURVEY = REPO / ".tools" / "survey"


def venv(name: str, requirement: str) -> Path:
    python = SURVEY / name / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(SURVEY / name)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", requirement], check=True)
    return python


def tree_cpu_seconds(root: int) -> float:
    """CPU time of a process and all its descendants."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    family, grew = {root}, True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in family and pid not in family:
                family.add(pid)
                grew = True
    total = 0.0
    for pid in family:
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue
    return total


_SERVED = re.compile(r"served (\d+)")


def run_one(
    name: str, cmd: list[str], port: int, body: Path, seconds: int, tmp: Path, live_counts: bool = True
) -> dict[str, object]:
    """`live_counts` False: the server cannot print its count on SIGUSR1 (pyvoy embeds Python in Envoy's
    threads): its calls are then not verified, and CPU per call divides by h2load's count."""
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen([*pin(0), *cmd], stdout=out, stderr=subprocess.STDOUT, cwd=REPO / "bench")
    try:
        eventually(lambda: _listening(port), timeout=60, what=f"{name} listening")
        h2load(port, "CheckEntitlement", body, 64, 1, tmp / "h2load.log")  # warm-up, not counted
        served_before = signalled_count(process, log, _SERVED, name) if live_counts else 0
        before = tree_cpu_seconds(process.pid)
        calls, rps, latencies = h2load(port, "CheckEntitlement", body, 64, seconds, tmp / "h2load.log")
        used = tree_cpu_seconds(process.pid) - before
        served = signalled_count(process, log, _SERVED, name) - served_before if live_counts else -1
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    result = {
        "stack": name,
        "rps": rps,
        "p99_us": percentile(latencies, 0.99),
        "cpu_us_per_call": 1e6 * used / max(1, served if live_counts else calls),
        "calls": calls,
        "served": served,
        "counts_ok": calls <= served <= calls + 64 if live_counts else None,
    }
    print(
        f"  {name:24} {rps:9.0f} rps, {result['cpu_us_per_call']:6.1f} µs CPU/call, "
        f"p99 {result['p99_us']:7.0f} µs, served {served} (h2load {calls})",
        flush=True,
    )
    return result


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="survey-"))
    request = pb.CheckEntitlementRequest(subscription_id="sub_00042", feature_code="seats", privilege_code="max")
    body = frame(request.SerializeToString(), tmp, "check.bin")
    results = []
    for version in VERSIONS:
        python = str(venv(f"grpcio-{version}", f"grpcio=={version}"))
        for stack, threads in (("aio", 0), ("sync", 2), ("sync", 4)):
            port = free_port()
            label = f"grpcio {version} {stack}" + (f" x{threads}" if threads else "")
            results.append(
                run_one(label, [python, "raw_echo.py", stack, str(port), str(threads)], port, body, args.seconds, tmp)
            )
    pyvoy = venv("pyvoy", f"pyvoy=={PYVOY}").parent / "pyvoy"
    port = free_port()
    cmd = [str(pyvoy), "--port", str(port), "--worker-threads", "1", "raw_echo:app"]
    results.append(run_one(f"pyvoy {PYVOY} asgi", cmd, port, body, args.seconds, tmp, live_counts=False))
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    out = REPO / "bench" / "results" / f"{date[:10]}-stack-survey.json"
    out.write_text(
        json.dumps({"date": date, "cpus": os.cpu_count(), "pinned": bool(pin(0)), "runs": results}, indent=2) + "\n"
    )
    print(f"written {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
