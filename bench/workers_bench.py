"""P9: several sidecar processes on one port.

With ENTITLEMENTS_GRPC_REUSE_PORT=true, processes given the same address share it (SO_REUSEPORT) and the
kernel spreads new *connections* (not calls) over them. Each layout gets the same load, unpinned: 64
calls in flight over 16 connections. Reported: throughput against one process, CPU per call, and
each process's share of the calls (from the counts each logs at shutdown).
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.load import SIDECAR_COUNTS, Run, Server, measure
from tests.support.processes import free_port

CONNECTIONS = 16
SCALING_TARGET = 1.5  # two processes should give 1.5x one, where two cores are free for them


@dataclass
class WorkersResult:
    runs: list[Run] = field(default_factory=list)
    shares: dict[int, list[float]] = field(default_factory=dict)
    counts_ok: bool = True

    def scaling(self) -> float:
        by_workers = {int(r.server.split("-")[1]): r.rps for r in self.runs}
        return by_workers[2] / by_workers[1]

    def target(self) -> tuple[str, str, float, float, bool]:
        scaling = self.scaling()
        text = (
            f"2 processes on one port ÷ 1, calls/s ({CONNECTIONS} connections, {os.cpu_count()} CPUs shared with "
            f"h2load; call shares {', '.join(f'{s:.0%}' for s in self.shares[2])})"
        )
        return ("P9", text, scaling, SCALING_TARGET, scaling >= SCALING_TARGET)

    def summary(self) -> dict[str, Any]:
        return {
            "connections": CONNECTIONS,
            "runs": [asdict(r) for r in self.runs],
            "shares": self.shares,
            "scaling": self.scaling(),
        }


def measure_workers(
    sidecar_cmd: list[str], env: dict[str, str], body: Path, seconds: float, tmp: Path
) -> WorkersResult:
    result = WorkersResult()
    for workers in (1, 2):
        port = free_port()
        # Sharing a port is opt-in (ENTITLEMENTS_GRPC_REUSE_PORT); sidecar_cmd ends with --grpc-address.
        command = [*sidecar_cmd[:-1], "--grpc-reuse-port", "true", sidecar_cmd[-1], f"127.0.0.1:{port}"]
        server = Server(f"workers-{workers}", command, port, env, cpu=None, count_pattern=SIDECAR_COUNTS)
        for _ in range(1, workers):
            server.add_worker(command, ready="serving")
        run = measure(server, "CheckEntitlement", body, 64, seconds, 1, tmp, connections=CONNECTIONS, load_cpu=None)
        served = [_served(log) for log in server.stop()]
        total = sum(served)
        result.shares[workers] = [count / total for count in served]  # over the whole life: warm-ups too
        result.counts_ok = result.counts_ok and run.counts_ok
        result.runs.append(run)
        print(
            f"  {workers} process(es) on one port: {run.rps:9.0f} rps, {run.cpu_us_per_call:6.1f} µs CPU/call, "
            f"p99 {run.p99_us:7.0f} µs, shares {[f'{s:.0%}' for s in result.shares[workers]]}",
            flush=True,
        )
    return result


def _served(log: str) -> int:
    found = re.search(r"calls served CheckEntitlement=(\d+)", log)
    return int(found.group(1)) if found else 0
